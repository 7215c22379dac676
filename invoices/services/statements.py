"""A member's statement of account for a period: opening balance, documents, closing balance.

What the balance is
-------------------
The **balance** is what the member owes the club net of its account credit:
its receivable (account 1100, the member's sub-ledger) minus the account
credit the club holds for it (account 2100, the member's sub-ledger; a credit
balance there is money held for the member). Positive: the member owes;
negative: the club owes the member.

One part of the receivable is not on any document yet: a round's close debits
the goods at the club price and its approved subsidy run credits the awards
*before* the member's invoice is issued. Until that invoice exists, those
movements are shown apart as **not yet invoiced** and left out of the
statement's balance; once the invoice is issued, its total carries them (see
``issuing``). So for any day D:

    balance(D) = receivable(D) - account credit(D) - not yet invoiced(D)

The **opening balance** is that, read from the ledger, on the day before the
period starts. The lines are the member's documents dated in the period, in
date order; each moves the balance:

* an **invoice** by its charges: its total plus any account credit applied on
  it (the credit was already counted in the balance; using it on the invoice
  moves it from "credit held" to "paid"),
* a **void** by minus the same (the account credit it used is given back),
* a **payment** by minus the money received (what exceeded the invoice's
  balance due became account credit),
* a **credit note** by minus its amount,
* a **refund** by plus the money paid back (out of the payment's excess held as
  account credit first, then out of what it paid on the invoice).

Each line also says how it moved the two parts, ``owed`` (the receivable) and
``credit`` (account credit held), so the account credit movements are visible.
The **closing balance** is the opening balance plus the lines. The statement
checks itself both ways: the documents dated before the period sum to the
opening balance, and the closing balance equals the ledger's on the last day
of the period (``agrees``); a statement that disagrees says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db, sql_cents_sum
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.ledger.services import account_balance
from buyersclub.money import ZERO, from_cents
from buyersclub.organisations.models import Organisation
from buyersclub.organisations.services import get_organisation
from invoices.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
    Refund,
)
from invoices.services.credit_notes import VOID_KIND
from invoices.services.payments import refunded_from_excess
from invoices.services.periods import Period
from subsidies.models import SubsidyRun

# Same-day documents recorded at the same moment: the invoice, then what pays or corrects it.
ORDER = {"invoice": 0, "payment": 1, "credit_note": 2, "refund": 3, "refund_failed": 4, "void": 5}
METHOD_NAMES = {
    PaymentMethod.CARD: "Card",
    PaymentMethod.BANK_TRANSFER: "Bank transfer",
    PaymentMethod.CHEQUE: "Cheque",
    PaymentMethod.ACCOUNT_CREDIT: "Account credit",
    PaymentMethod.OTHER: "Other",
}


@dataclass(frozen=True)
class Position:
    """What the member owes on its invoices and the account credit held for it, on one day."""

    owed: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.owed - self.credit

    def __add__(self, other: Position) -> Position:
        return Position(self.owed + other.owed, self.credit + other.credit)


NOTHING = Position(ZERO, ZERO)


@dataclass(frozen=True)
class Movement:
    """One document's effect on the member's account (before running balances are added)."""

    on: date
    kind: str
    document: str
    description: str
    owed: Decimal
    credit: Decimal
    amount: Decimal  # the document's own amount: invoice total, payment, credit note, refund
    sort_id: int
    # When the document was recorded: orders the documents of one day.
    recorded_at: datetime | None = None
    invoice_id: int | None = None
    invoice_number: str | None = None
    method: str | None = None
    reference: str | None = None
    # The statement's running balance after this line.
    balance: Decimal | None = None

    @property
    def position(self) -> Position:
        return Position(self.owed, self.credit)

    @property
    def change(self) -> Decimal:
        """How this moves the balance: positive charges the member, negative pays or credits it."""
        return self.owed - self.credit


@dataclass(frozen=True)
class Statement:
    """The opening position, the period's documents with running balances, and what checks them."""

    organisation: Organisation
    period: Period
    currency: str
    opening: Position
    lines: list[Movement]
    # Read from the ledger (receivable, account credit) on the day before the period and its last day.
    ledger_opening: Position
    ledger_closing: Position
    not_invoiced_opening: Decimal
    not_invoiced: Decimal
    # The documents dated before the period, summed: must equal the opening balance.
    documents_opening: Position

    @property
    def closing(self) -> Position:
        return self.opening + sum((line.position for line in self.lines), NOTHING)

    @property
    def charges(self) -> Decimal:
        return sum((line.change for line in self.lines if line.change > 0), ZERO)

    @property
    def payments_and_credits(self) -> Decimal:
        return -sum((line.change for line in self.lines if line.change < 0), ZERO)

    @property
    def ledger_balance(self) -> Decimal:
        """The ledger's receivable minus account credit on the period's last day, as the ledger says."""
        return self.ledger_closing.balance

    @property
    def difference(self) -> Decimal:
        """Closing balance + not yet invoiced - the ledger's balance: zero when everything agrees."""
        return self.closing.balance + self.not_invoiced - self.ledger_balance

    @property
    def agrees(self) -> bool:
        return self.difference == 0 and self.documents_opening == self.opening


# --- Building a statement -------------------------------------------------------------------------


def statement_for(actor: Actor, organisation_id: int, period: Period) -> Statement:
    """The member's statement (finance and administrators: any member; member staff: their own, else 404)."""
    organisation = get_organisation(actor, organisation_id)
    movements = sorted(movements_for(organisation.id, until=period.end),
                       key=_in_order)
    before = [move for move in movements if move.on < period.start]
    during = [move for move in movements if move.on >= period.start]
    documents_opening = sum((move.position for move in before), NOTHING)

    ledger_opening = ledger_position(organisation.id, period.day_before)
    not_invoiced_opening = not_invoiced(organisation.id, period.day_before)
    opening = Position(ledger_opening.owed - not_invoiced_opening, ledger_opening.credit)
    lines = []
    running = opening.balance
    for move in during:
        running += move.change
        lines.append(replace(move, balance=running))
    return Statement(
        organisation=organisation, period=period,
        currency=current_app.config.get("CLUB_CURRENCY", "USD"),
        opening=opening, lines=lines,
        ledger_opening=ledger_opening, ledger_closing=ledger_position(organisation.id, period.end),
        not_invoiced_opening=not_invoiced_opening, not_invoiced=not_invoiced(organisation.id, period.end),
        documents_opening=documents_opening,
    )


def _in_order(move: Movement) -> tuple:
    recorded = move.recorded_at.timestamp() if move.recorded_at else 0.0
    return (move.on, recorded, ORDER[move.kind], move.sort_id)


def ledger_position(organisation_id: int, as_of: date) -> Position:
    """The member's receivable (1100) and account credit held (minus its 2100 balance) at the end of a day."""
    return Position(account_balance(chart.RECEIVABLES, organisation_id, as_of),
                    -account_balance(chart.MEMBER_CREDIT, organisation_id, as_of))


def not_invoiced(organisation_id: int, as_of: date) -> Decimal:
    """What the receivable holds from rounds' closes and subsidy runs with no invoice for the member yet.

    Counted on the day ``as_of``: the entries of every round (its close, its
    approved run, their reversals) for which the member had no invoice issued
    on or before that day.
    """
    invoiced = select(Invoice.round_id).where(Invoice.organisation_id == organisation_id,
                                              Invoice.issued_on <= as_of)
    runs_not_invoiced = select(SubsidyRun.id).where(SubsidyRun.round_id.not_in(invoiced))
    of_rounds = (
        ((JournalEntry.source_type == "round") & JournalEntry.source_id.not_in(invoiced))
        | ((JournalEntry.source_type == "subsidy_run") & JournalEntry.source_id.in_(runs_not_invoiced))
    )
    cents = db.session.scalar(
        select(sql_cents_sum(Posting.amount))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
        .where(LedgerAccount.code == chart.RECEIVABLES, Posting.organisation_id == organisation_id,
               JournalEntry.entry_date <= as_of, of_rounds)
    )
    return from_cents(int(cents))


# --- The documents ------------------------------------------------------------------------------


def movements_for(organisation_id: int, *, until: date) -> list[Movement]:
    """Every document of the member dated on or before ``until``, as movements of its account."""
    invoices = db.session.scalars(select(Invoice).where(Invoice.organisation_id == organisation_id,
                                                        Invoice.issued_on <= until)).all()
    numbers = {invoice.id: invoice.number for invoice in invoices}
    applied = _credit_applied([invoice.id for invoice in invoices])
    moves = [_invoice_move(invoice, applied.get(invoice.id, ZERO)) for invoice in invoices]
    moves += [move for move in _void_moves(invoices, applied) if move.on <= until]

    payments = db.session.scalars(select(Payment).where(Payment.organisation_id == organisation_id,
                                                        Payment.received_on <= until)).all()
    numbers.update(_numbers({payment.invoice_id for payment in payments} - set(numbers)))
    moves += [_payment_move(payment, numbers.get(payment.invoice_id)) for payment in payments]
    moves += [move for move in _refund_moves(payments, numbers) if move.on <= until]

    notes = db.session.scalars(select(CreditNote).where(CreditNote.organisation_id == organisation_id,
                                                        CreditNote.issued_on <= until)).all()
    numbers.update(_numbers({note.invoice_id for note in notes} - set(numbers)))
    moves += [_credit_note_move(note, numbers.get(note.invoice_id)) for note in notes]
    return moves


def _numbers(invoice_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = [each for each in invoice_ids if each is not None]
    if not wanted:
        return {}
    return dict(db.session.execute(select(Invoice.id, Invoice.number).where(Invoice.id.in_(wanted))).all())


def _credit_applied(invoice_ids: list[int]) -> dict[int, Decimal]:
    """Account credit applied per invoice (its account-credit lines, as a positive amount)."""
    applied: dict[int, Decimal] = defaultdict(lambda: ZERO)
    if invoice_ids:
        for invoice_id, amount in db.session.execute(
            select(InvoiceLine.invoice_id, InvoiceLine.amount)
            .where(InvoiceLine.invoice_id.in_(invoice_ids), InvoiceLine.kind == LineKind.ACCOUNT_CREDIT)
        ):
            applied[invoice_id] -= amount
    return applied


def _invoice_move(invoice: Invoice, applied: Decimal) -> Movement:
    description = f"Invoice, total {invoice.total:,.2f}, due {invoice.due_on.isoformat()}"
    if applied:
        description += f"; {applied:,.2f} of account credit applied"
    return Movement(on=invoice.issued_on, kind="invoice", document=invoice.number, description=description,
                    owed=invoice.total, credit=-applied, amount=invoice.total, sort_id=invoice.id,
                    recorded_at=invoice.created_at, invoice_id=invoice.id, invoice_number=invoice.number)


def _void_moves(invoices: Iterable[Invoice], applied: dict[int, Decimal]) -> list[Movement]:
    void = [invoice for invoice in invoices if invoice.status == InvoiceStatus.VOID]
    if not void:
        return []
    # The day its void entry was posted (the ledger's day); an invoice with nothing to post has none.
    posted = dict(db.session.execute(
        select(JournalEntry.source_id, JournalEntry.entry_date)
        .where(JournalEntry.kind == VOID_KIND, JournalEntry.source_type == "invoice",
               JournalEntry.source_id.in_([invoice.id for invoice in void]))).all())
    moves = []
    for invoice in void:
        given_back = applied.get(invoice.id, ZERO)
        description = f"Invoice {invoice.number} void: its total {invoice.total:,.2f} is cancelled"
        if given_back:
            description += f"; {given_back:,.2f} of account credit given back"
        on = posted.get(invoice.id) or (invoice.voided_at.date() if invoice.voided_at else invoice.issued_on)
        moves.append(Movement(on=on, kind="void", document=invoice.number, description=description,
                              owed=-invoice.total, credit=given_back, amount=invoice.total,
                              sort_id=invoice.id, recorded_at=invoice.voided_at, invoice_id=invoice.id,
                              invoice_number=invoice.number))
    return moves


def _payment_move(payment: Payment, invoice_number: str | None) -> Movement:
    method = METHOD_NAMES.get(payment.method, str(payment.method))
    excess = payment.amount - payment.applied
    description = f"{method} payment" + (f" for {invoice_number}" if invoice_number else "")
    if payment.reference:
        description += f", reference {payment.reference}"
    if payment.method == PaymentMethod.ACCOUNT_CREDIT:
        # Paid out of credit already held: the balance does not move.
        owed, credit = -payment.applied, -payment.applied
    else:
        owed, credit = -payment.applied, excess
        if excess:
            description += f"; {excess:,.2f} over the balance due became account credit"
    return Movement(on=payment.received_on, kind="payment", document=f"Payment #{payment.id}",
                    description=description, owed=owed, credit=credit, amount=payment.amount,
                    sort_id=payment.id, recorded_at=payment.recorded_at, invoice_id=payment.invoice_id,
                    invoice_number=invoice_number, method=payment.method.value, reference=payment.reference)


def _refund_moves(payments: Iterable[Payment], numbers: dict[int, str]) -> list[Movement]:
    """Each refund, and each failure that turned one back, as the ledger moved them.

    A refund comes out of the payment's excess (held as account credit) first, then out of what it
    paid; a failure gives back the difference that refund made to that division. Replaying them in
    the order they happened gives each one's parts exactly as posted.
    """
    by_id = {payment.id: payment for payment in payments}
    if not by_id:
        return []
    refunds = db.session.scalars(select(Refund).where(Refund.payment_id.in_(list(by_id)),
                                                      Refund.journal_entry_id.is_not(None))).all()
    entries = [entry for r in refunds for entry in (r.journal_entry_id, r.failure_entry_id) if entry]
    posted = dict(db.session.execute(select(JournalEntry.id, JournalEntry.entry_date)
                                     .where(JournalEntry.id.in_(entries))).all())
    happened = [(refund.created_at, refund.id, False, refund) for refund in refunds]
    happened += [(refund.failed_at, refund.id, True, refund) for refund in refunds if refund.failure_entry_id]
    refunded: dict[int, Decimal] = defaultdict(lambda: ZERO)
    moves = []
    for when, _, failure, refund in sorted(happened, key=lambda each: each[:3]):
        payment = by_id[refund.payment_id]
        before = refunded[payment.id]
        refunded[payment.id] += -refund.amount if failure else refund.amount
        from_credit = abs(refunded_from_excess(payment, before)
                          - refunded_from_excess(payment, refunded[payment.id]))
        from_invoice = refund.amount - from_credit
        number = numbers.get(payment.invoice_id)
        of_payment = f"payment #{payment.id}" + (f" for {number}" if number else "")
        if failure:
            parts = ([f"{from_credit:,.2f} back to account credit"] if from_credit else []) + (
                [f"{from_invoice:,.2f} paid on the invoice again"] if from_invoice else [])
            description = f"Refund #{refund.id} of {of_payment} failed ({'; '.join(parts)}): " \
                          f"{refund.failure_reason}"
            owed, credit, entry = -from_invoice, from_credit, refund.failure_entry_id
        else:
            parts = ([f"{from_credit:,.2f} from account credit"] if from_credit else []) + (
                [f"{from_invoice:,.2f} owed again on the invoice"] if from_invoice else [])
            description = f"Refund of {of_payment} ({'; '.join(parts)}): {refund.reason}"
            owed, credit, entry = from_invoice, -from_credit, refund.journal_entry_id
        kind, document = ("refund_failed", f"Refund #{refund.id} failed") if failure else (
            "refund", f"Refund #{refund.id}")
        moves.append(Movement(on=posted.get(entry) or when.date(), kind=kind, document=document,
                              description=description, owed=owed, credit=credit, amount=refund.amount,
                              sort_id=refund.id, recorded_at=when, invoice_id=payment.invoice_id,
                              invoice_number=number, method=payment.method.value,
                              reference=refund.stripe_refund or payment.reference))
    return moves


def _credit_note_move(note: CreditNote, invoice_number: str | None) -> Movement:
    description = f"Credit note on {invoice_number or 'an invoice'}: {note.reason}"
    return Movement(on=note.issued_on, kind="credit_note", document=note.number, description=description,
                    owed=-note.amount, credit=ZERO, amount=note.amount, sort_id=note.id,
                    recorded_at=note.created_at, invoice_id=note.invoice_id, invoice_number=invoice_number)
