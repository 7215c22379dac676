"""Corrections to issued invoices: credit notes, and voiding an invoice issued in error.

An issued invoice never changes. What it asks for is reduced by a **credit
note** (finance, with a reason), numbered in its own gapless yearly series
(``CN-2026-00001``):

* **by amount** (``amount``), or **whole** (no amount, no lines: the whole
  open amount): the amount is shared across the invoice's parts still open to
  credit -- goods net of subsidy, shipping, tax -- in proportion to what is
  left of each, by largest remainder, so the tax credited follows the goods
  and shipping credited;
* **by line** (``line_ids``): each named goods, shipping or tax line is
  credited in full, less what earlier credit notes took from it.

A credit note never exceeds the invoice's open amount (its balance due) and
never credits a part beyond what is left of it; subsidy, free-goods and
account-credit lines are not creditable (they are not charges).

The ledger: one balanced entry, Cr 1100 receivable (the member) and a debit
chosen by what is credited: goods -> Dr 4000 sales (the round's close sent
the goods' revenue straight to supplier payables, operating income and the
fund; 4000 gathers every later change to goods revenue, so the fund and the
payables stay as the close left them and finance sees credited sales in one
place); shipping -> Dr 5200 shipping (the recharge is taken back); tax -> Dr
2200 tax payable (the tax is no longer owed). The trial balance stays at zero
and the receivable falls by exactly the credit note, as the balance due does.

**Voiding** (finance, with a reason) is for an invoice issued in error: only
while nothing has been paid or credited on it (409 otherwise: credit it
instead). The invoice keeps its number and its lines, marked void. One
balanced entry takes its whole total out of the receivable, so the member
owes nothing for it: Dr 5200 shipping, Dr 2200 tax, Dr 4000 the goods net of
subsidy, Cr 2100 the account credit it used (given back), Cr 1100 the total.
Issuing the round's invoices again issues the member's replacement (with a new
number, from the round's allocation, run and member profile as they are
then), which debits the goods back (see ``issuing``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line, post_entry
from buyersclub.money import ZERO, allocate
from invoices.models import CreditNote, Invoice, InvoiceLine, InvoiceStatus, LineKind, Payment, SeriesKind
from invoices.services.immutability import allow_change
from invoices.services.issuing import GOODS_NET, get_invoice, invoice_summary
from invoices.services.numbering import next_number
from invoices.services.payments import _amount, _reason, balance_due
from invoices.services.round_billing import refresh_round_status

CREDIT_NOTE_KIND = "credit_note"
VOID_KIND = "invoice_void"

# The parts of an invoice a credit note may reduce, and the account each is debited to.
GOODS, SHIPPING, TAX = "goods", "shipping", "tax"
PART_ACCOUNTS = {GOODS: chart.SALES, SHIPPING: chart.SHIPPING_COSTS, TAX: chart.TAX_PAYABLE}
PART_OF_LINE = {LineKind.GOODS: GOODS, LineKind.SHIPPING: SHIPPING, LineKind.TAX: TAX}
PART_NAMES = {GOODS: "Goods", SHIPPING: "Shipping", TAX: "Sales tax"}


def parts_of(invoice: Invoice) -> dict[str, Decimal]:
    """The invoice's creditable parts: goods net of subsidy, shipping, tax."""
    parts = {GOODS: ZERO, SHIPPING: ZERO, TAX: ZERO}
    for line in invoice.lines:
        if line.kind in GOODS_NET:
            parts[GOODS] += line.amount
        elif line.kind in PART_OF_LINE:
            parts[PART_OF_LINE[line.kind]] += line.amount
    return parts


def credit_notes_for(invoice: Invoice) -> list[CreditNote]:
    return list(db.session.scalars(select(CreditNote).where(CreditNote.invoice_id == invoice.id)
                                   .order_by(CreditNote.id)))


def _credited(notes: Sequence[CreditNote]) -> tuple[dict[str, Decimal], dict[int, Decimal]]:
    by_part: dict[str, Decimal] = defaultdict(lambda: ZERO)
    by_line: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for note in notes:
        for row in note.lines:
            amount = Decimal(row["amount"])
            by_part[row["part"]] += amount
            if row.get("line_id") is not None:
                by_line[int(row["line_id"])] += amount
    return by_part, by_line


def issue_credit_note(
    actor: Actor,
    invoice_id: int,
    *,
    reason: str,
    amount: Decimal | str | None = None,
    line_ids: Sequence[int] | None = None,
) -> CreditNote:
    """Credit an issued invoice (finance): by ``amount``, by ``line_ids``, or the whole open amount."""
    actor.require(Role.FINANCE)
    reason = _reason(reason)
    if amount is not None and line_ids:
        raise InvalidInput("Credit an amount or some lines, not both.", field="line_ids")
    invoice = get_invoice(actor, invoice_id, lock=True)
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"Invoice {invoice.number} is void: there is nothing to credit.", code="invoice_void")
    open_amount = balance_due(invoice)
    previous = credit_notes_for(invoice)
    by_part, by_line = _credited(previous)
    parts = parts_of(invoice)
    left = {part: max(parts[part] - by_part[part], ZERO) for part in parts}
    if line_ids:
        rows = _by_lines(invoice, line_ids, left, by_line)
    else:
        wanted = open_amount if amount is None else _amount(amount)
        rows = _by_amount(wanted, left)
    total = sum((Decimal(row["amount"]) for row in rows), ZERO)
    if total <= 0:
        raise Conflict(f"Invoice {invoice.number} has nothing left to credit.", code="nothing_to_credit")
    if total > open_amount:
        raise Conflict(f"A credit note of {total:,.2f} is more than invoice {invoice.number}'s open amount "
                       f"({open_amount:,.2f}).", field="line_ids" if line_ids else "amount",
                       code="credit_too_large")
    today = utcnow().date()
    number, sequence = next_number(SeriesKind.CREDIT_NOTE, today.year)
    note = CreditNote(number=number, year=today.year, sequence_number=sequence, invoice_id=invoice.id,
                      organisation_id=invoice.organisation_id, issued_on=today, reason=reason, amount=total,
                      lines=rows, issued_by_id=actor.user_id)
    db.session.add(note)
    db.session.flush()
    member = invoice.organisation_id
    debits: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        debits[row["part"]] += Decimal(row["amount"])
    lines = [Line(PART_ACCOUNTS[part], value, None, f"{number}: {PART_NAMES[part].lower()} credited")
             for part, value in debits.items() if value]
    lines.append(Line(chart.RECEIVABLES, -total, member, f"{number} on {invoice.number}"))
    entry = post_entry(actor, entry_date=today, memo=f"Credit note {number} on invoice {invoice.number}",
                       kind=CREDIT_NOTE_KIND, lines=lines, source=("credit_note", note.id))
    allow_change(db.session, note, "journal_entry_id")
    note.journal_entry_id = entry.id
    db.session.flush()
    record(actor, "invoice.credited", "credit_note", note.id, organisation_id=member,
           after={**snapshot(note), "invoice_number": invoice.number})
    refresh_round_status(actor, invoice)
    return note


def _by_amount(wanted: Decimal, left: dict[str, Decimal]) -> list[dict[str, Any]]:
    available = sum(left.values(), ZERO)
    if wanted > available:
        raise Conflict(f"Only {available:,.2f} of this invoice's charges is left to credit.",
                       field="amount", code="credit_too_large")
    weights = {part: int(value * 100) for part, value in left.items() if value > 0}
    if not weights:
        return []
    shares = allocate(wanted, weights)
    return [{"part": part, "line_id": None, "description": PART_NAMES[part], "amount": f"{value:.2f}"}
            for part, value in sorted(shares.items(), key=lambda item: list(PART_NAMES).index(item[0]))
            if value]


def _by_lines(invoice: Invoice, line_ids: Sequence[int], left: dict[str, Decimal],
              by_line: dict[int, Decimal]) -> list[dict[str, Any]]:
    lines = {line.id: line for line in invoice.lines}
    rows = []
    taking: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for index, line_id in enumerate(dict.fromkeys(line_ids)):
        line: InvoiceLine | None = lines.get(line_id)
        field = f"line_ids.{index}"
        if line is None:
            raise InvalidInput(f"Line {line_id} is not a line of invoice {invoice.number}.", field=field)
        if line.kind not in PART_OF_LINE:
            raise InvalidInput(f"“{line.description}” is not a charge: only goods, shipping and tax lines "
                               "can be credited.", field=field)
        value = line.amount - by_line[line.id]
        if value <= 0:
            raise Conflict(f"“{line.description}” has been credited in full already.", field=field,
                           code="line_already_credited")
        part = PART_OF_LINE[line.kind]
        taking[part] += value
        if taking[part] > left[part]:
            raise Conflict(f"Crediting “{line.description}” would credit more {PART_NAMES[part].lower()} "
                           f"than the invoice charges net of subsidy ({left[part]:,.2f} left).",
                           field=field, code="credit_too_large")
        rows.append({"part": part, "line_id": line.id, "description": line.description,
                     "amount": f"{value:.2f}"})
    return rows


# --- Void ----------------------------------------------------------------------------------------


def void_invoice(actor: Actor, invoice_id: int, reason: str) -> Invoice:
    """Void an invoice issued in error (finance): only with no payment and no credit note on it."""
    actor.require(Role.FINANCE)
    reason = _reason(reason)
    invoice = get_invoice(actor, invoice_id, lock=True)
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"Invoice {invoice.number} is void already.", code="invoice_void")
    if db.session.scalar(select(Payment.id).where(Payment.invoice_id == invoice.id).limit(1)):
        raise Conflict(f"Invoice {invoice.number} has payments: it cannot be voided. Issue a credit note "
                       "(and refund the payment if the money goes back).", code="has_payments")
    if credit_notes_for(invoice):
        raise Conflict(f"Invoice {invoice.number} has credit notes: it cannot be voided. Credit what is "
                       "left of it instead.", code="has_credit_notes")
    before = snapshot(invoice, ["status", "voided_at", "void_reason"])
    member = invoice.organisation_id
    parts = parts_of(invoice)
    applied = -sum((line.amount for line in invoice.lines if line.kind == LineKind.ACCOUNT_CREDIT), ZERO)
    memo = f"{invoice.number}: void"
    lines = [Line(PART_ACCOUNTS[part], value, None, f"{memo}, {PART_NAMES[part].lower()}")
             for part, value in parts.items() if value]
    lines += [Line(chart.MEMBER_CREDIT, -applied, member, f"{memo}, account credit given back"),
              Line(chart.RECEIVABLES, -invoice.total, member, memo)]
    lines = [line for line in lines if line.amount]
    today = utcnow().date()
    if len(lines) >= 2:
        post_entry(actor, entry_date=today, memo=f"Void of invoice {invoice.number}: {reason}"[:255],
                   kind=VOID_KIND, lines=lines, source=("invoice", invoice.id))
    allow_change(db.session, invoice, "status", "voided_at", "void_reason")
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    invoice.void_reason = reason
    db.session.flush()
    record(actor, "invoice.voided", "invoice", invoice.id, organisation_id=member, before=before,
           after={**snapshot(invoice, ["status", "voided_at", "void_reason"]),
                  "summary": invoice_summary(invoice)})
    refresh_round_status(actor, invoice)
    return invoice
