"""Payments recorded by finance, refunds, and what an invoice still asks for.

* **Recording a payment** (bank transfer, cheque, other): the invoice's row is
  locked ``FOR UPDATE`` while the payment is applied, so two payments racing
  on one invoice never both pay the same balance. The payment pays the
  balance due at most (``applied``); any excess becomes the member's account
  credit, which its next invoice uses. One balanced entry: Dr 1000 bank the
  amount, Cr 1100 receivable the applied part, Cr 2100 member credit the
  excess. A payment on a void invoice is refused (409).
* **Card payments** arrive by Stripe webhook (``invoices.services.webhooks``)
  and are applied the same way (:func:`apply_payment`), but debit 1010 card
  payments clearing, and a void invoice takes none of it: the whole amount
  becomes account credit, so money that arrived is never lost.
* **Refunds**, never more than was paid less what was refunded already, come
  first out of the payment's excess (Dr 2100, while the member still holds
  that credit: once its next invoice used it, the refund is refused with
  409), then out of the applied part (Dr 1100: the invoice's balance due grows
  again). Cr 1000 bank, or Cr 1010 for a card payment: its refund is made
  through Stripe first (``refunds.create`` by payment intent, with an
  idempotency key) and recorded with Stripe's refund id in the same
  transaction, so the later ``charge.refunded`` webhook recognises it.
* **Balance due** is derived, never stored: total - (payments applied - the
  part of their refunds that came out of the applied part) - credit notes.
  The rule for refunds (excess first) makes it follow from the documents
  alone, and the ledger's receivable moves by the same amounts.
* **Status**: void, paid (nothing due), overdue (something due after the due
  date), partly paid (something paid or credited), open.

A double-clicked payment sent with the same ``Idempotency-Key`` is replayed
by the API layer, not recorded twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line, post_entry
from buyersclub.money import ZERO, MoneyError, to_cents, to_money
from invoices import stripe_gateway
from invoices.models import REFUND_STANDS, CreditNote, Invoice, InvoiceStatus, Payment, PaymentMethod, Refund
from invoices.services import round_billing  # the module: it reads this one's settlements back
from invoices.services.immutability import allow_change
from invoices.services.issuing import get_invoice, lock_member_credit, member_credit
from invoices.services.queries import Status

PAYMENT_KIND = "payment"
REFUND_KIND = "refund"
MANUAL_METHODS = (PaymentMethod.BANK_TRANSFER, PaymentMethod.CHEQUE, PaymentMethod.OTHER)
REFERENCE_LENGTH = 120


# --- Amounts derived from the documents ---------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """What has been paid and credited against one invoice."""

    total: Decimal
    paid: Decimal = ZERO
    credited: Decimal = ZERO

    @property
    def balance_due(self) -> Decimal:
        return self.total - self.paid - self.credited


def refunded_from_excess(payment: Payment, refunded: Decimal) -> Decimal:
    """Of ``refunded`` (a payment's refunds that stand, in all), what came out of its excess, held as
    account credit: refunds take the excess first."""
    return min(refunded, payment.amount - payment.applied)


def refunded_from_applied(payment: Payment, refunded: Decimal) -> Decimal:
    """The part of a payment's refunds that came out of what it paid on the invoice (excess first)."""
    return refunded - refunded_from_excess(payment, refunded)


def settlements(invoices: Iterable[Invoice]) -> dict[int, Settlement]:
    """Settlement per invoice id, in three queries whatever the number of invoices."""
    invoices = list(invoices)
    ids = [invoice.id for invoice in invoices]
    if not ids:
        return {}
    paid: dict[int, Decimal] = defaultdict(lambda: ZERO)
    payments = db.session.scalars(select(Payment).where(Payment.invoice_id.in_(ids))).all()
    refunds = _refunded([payment.id for payment in payments])
    for payment in payments:
        paid[payment.invoice_id] += payment.applied - refunded_from_applied(
            payment, refunds.get(payment.id, ZERO))
    credited: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for invoice_id, amount in db.session.execute(
        select(CreditNote.invoice_id, CreditNote.amount).where(CreditNote.invoice_id.in_(ids))
    ):
        credited[invoice_id] += amount
    return {invoice.id: Settlement(invoice.total, paid[invoice.id], credited[invoice.id])
            for invoice in invoices}


def _refunded(payment_ids: list[int]) -> dict[int, Decimal]:
    refunded: dict[int, Decimal] = defaultdict(lambda: ZERO)
    if payment_ids:
        for payment_id, amount in db.session.execute(
            select(Refund.payment_id, Refund.amount).where(Refund.payment_id.in_(payment_ids), REFUND_STANDS)
        ):
            refunded[payment_id] += amount
    return refunded


def settlement(invoice: Invoice) -> Settlement:
    return settlements([invoice])[invoice.id]


def balance_due(invoice: Invoice) -> Decimal:
    """Total - payments applied (less their refunds from it) - credit notes; zero once void."""
    if invoice.status == InvoiceStatus.VOID:
        return ZERO
    return settlement(invoice).balance_due


def status_label(invoice: Invoice, found: Settlement | None = None, *, today: date | None = None) -> str:
    if invoice.status == InvoiceStatus.VOID:
        return Status.VOID
    found = found or settlement(invoice)
    if found.balance_due <= 0:
        return Status.PAID
    if invoice.due_on < (today or utcnow().date()):
        return Status.OVERDUE
    if found.paid or found.credited:
        return Status.PARTLY_PAID
    return Status.OPEN


# --- Recording a payment ------------------------------------------------------------------------


def _amount(value: Decimal | str | int, field: str = "amount") -> Decimal:
    try:
        amount = to_money(value)
    except MoneyError as exc:
        raise InvalidInput(f"The amount: {exc}.", field=field) from exc
    if amount <= 0:
        raise InvalidInput("The amount must be more than zero.", field=field)
    return amount


def _reason(value: str | None, field: str = "reason") -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput("Give the reason: it is kept with the record.", field=field)
    if len(text) > 500:
        raise InvalidInput("Keep the reason to 500 characters.", field=field)
    return text


def apply_payment(
    actor: Actor,
    invoice: Invoice,
    *,
    method: PaymentMethod,
    amount: Decimal,
    received_on: date,
    reference: str | None,
    stripe_payment_intent: str | None = None,
    stripe_checkout_session: str | None = None,
) -> Payment:
    """Apply money received to an invoice the caller has locked: the balance due at most, the rest
    account credit (all of it on a void invoice). One balanced entry; audited."""
    due = ZERO if invoice.status == InvoiceStatus.VOID else max(balance_due(invoice), ZERO)
    applied = min(amount, due)
    payment = Payment(organisation_id=invoice.organisation_id, invoice_id=invoice.id, method=method,
                      reference=reference, received_on=received_on, amount=amount, applied=applied,
                      stripe_payment_intent=stripe_payment_intent,
                      stripe_checkout_session=stripe_checkout_session, recorded_by_id=actor.user_id)
    db.session.add(payment)
    db.session.flush()
    member = invoice.organisation_id
    received_into = chart.STRIPE_CLEARING if method == PaymentMethod.CARD else chart.CASH
    lines = [Line(received_into, amount, None, f"{invoice.number}: {method.value} {reference or ''}".strip()),
             Line(chart.RECEIVABLES, -applied, member, f"{invoice.number}: payment"),
             Line(chart.MEMBER_CREDIT, -(amount - applied), member,
                  f"{invoice.number}: over-payment to account credit")]
    entry = post_entry(actor, entry_date=received_on, memo=f"Payment for invoice {invoice.number}",
                       kind=PAYMENT_KIND, lines=[line for line in lines if line.amount],
                       source=("payment", payment.id))
    allow_change(db.session, payment, "journal_entry_id")
    payment.journal_entry_id = entry.id
    db.session.flush()
    record(actor, "payment.recorded", "payment", payment.id, organisation_id=member,
           after={**snapshot(payment), "invoice_number": invoice.number,
                  "account_credit": amount - applied})
    round_billing.refresh_round_status(actor, invoice)
    return payment


def record_payment(
    actor: Actor,
    invoice_id: int,
    method: PaymentMethod | str,
    reference: str | None,
    received_on: date,
    amount: Decimal | str,
) -> Payment:
    """Record money received for an invoice (finance); the excess over the balance is account credit."""
    actor.require(Role.FINANCE)
    try:
        method = PaymentMethod(method)
    except ValueError as exc:
        raise InvalidInput("Choose bank_transfer, cheque or other.", field="method") from exc
    if method not in MANUAL_METHODS:
        raise InvalidInput("Card payments arrive through Stripe; record bank transfers, cheques or other "
                           "payments here.", field="method")
    reference = (reference or "").strip() or None
    if reference and len(reference) > REFERENCE_LENGTH:
        raise InvalidInput(f"Keep the reference to {REFERENCE_LENGTH} characters.", field="reference")
    if not isinstance(received_on, date):
        raise InvalidInput("The day the money arrived is required.", field="received_on")
    if received_on > utcnow().date():
        raise InvalidInput("The day the money arrived cannot be in the future.", field="received_on")
    amount = _amount(amount)
    invoice = get_invoice(actor, invoice_id, lock=True)
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"Invoice {invoice.number} is void: it takes no payments.", code="invoice_void")
    return apply_payment(actor, invoice, method=method, amount=amount, received_on=received_on,
                         reference=reference)


# --- Refunds -------------------------------------------------------------------------------------


def refund_payment(actor: Actor, payment_id: int, amount: Decimal | str, reason: str) -> Refund:
    """Pay money back (finance): never more than paid less refunds; excess credit first.

    A card payment is refunded through Stripe first; a Stripe failure records nothing (502)."""
    actor.require(Role.FINANCE)
    amount = _amount(amount)
    reason = _reason(reason)
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    if payment.method not in (*MANUAL_METHODS, PaymentMethod.CARD):
        raise Conflict(f"A {payment.method.value.replace('_', ' ')} payment is not refunded in money.",
                       code="not_refundable")
    if payment.method == PaymentMethod.CARD and not payment.stripe_payment_intent:
        raise Conflict("This card payment has no Stripe payment intent to refund.", code="not_refundable")
    if payment.invoice_id:
        get_invoice(actor, payment.invoice_id, lock=True)
    split = _refund_split(payment, amount)
    _require_credit_held(payment, split)
    stripe_refund = None
    if payment.method == PaymentMethod.CARD:
        stripe_refund = _refund_through_stripe(payment, amount)
    return post_refund(actor, payment, amount, reason, stripe_refund=stripe_refund)


@dataclass(frozen=True)
class RefundSplit:
    """Where a refund comes from: the payment's excess (account credit) first, then the invoice."""

    from_credit: Decimal
    from_receivable: Decimal


def refunded_of(payment: Payment) -> Decimal:
    return _refunded([payment.id]).get(payment.id, ZERO)


def _refund_split(payment: Payment, amount: Decimal) -> RefundSplit:
    refunded = refunded_of(payment)
    left = payment.amount - refunded
    if amount > left:
        raise Conflict(f"Only {left:,.2f} of this payment is left to refund ({refunded:,.2f} refunded "
                       f"of {payment.amount:,.2f}).", field="amount", code="refund_too_large")
    from_credit = refunded_from_excess(payment, refunded + amount) - refunded_from_excess(payment, refunded)
    return RefundSplit(from_credit, amount - from_credit)


def _require_credit_held(payment: Payment, split: RefundSplit) -> None:
    if not split.from_credit:
        return
    lock_member_credit()
    held = member_credit(payment.organisation_id)
    if held < split.from_credit:
        raise Conflict(
            f"{split.from_credit:,.2f} of this refund comes out of the over-payment held as account credit, "
            f"but the member holds {held:,.2f} now (a later invoice used it).",
            field="amount", code="credit_already_used")


def _refund_through_stripe(payment: Payment, amount: Decimal) -> str:
    """Stripe's refund id. The key names the payment, the refund's place and its amount, so a retry
    after a failure here returns Stripe's first refund instead of making a second."""
    count = db.session.scalar(select(func.count(Refund.id)).where(Refund.payment_id == payment.id)) or 0
    cents = to_cents(amount)
    client = stripe_gateway.client()
    refund = stripe_gateway.call("the refund", lambda: client.v1.refunds.create(
        params={"payment_intent": payment.stripe_payment_intent, "amount": cents,
                "metadata": {"payment_id": str(payment.id), "invoice_id": str(payment.invoice_id or "")}},
        options={"idempotency_key": f"refund-{payment.id}-{count + 1}-{cents}"}))
    return refund.id


def post_refund(actor: Actor, payment: Payment, amount: Decimal, reason: str, *,
                stripe_refund: str | None = None, enforce_credit: bool = True) -> Refund:
    """Record a refund of ``payment`` (its invoice locked by the caller) as one balanced entry.

    ``enforce_credit=False`` is for money that has already left (a refund made in Stripe's dashboard):
    it is recorded even when the member no longer holds the account credit it comes out of, and the
    audit row says so for finance to follow up."""
    split = _refund_split(payment, amount)
    if enforce_credit:
        _require_credit_held(payment, split)
    member = payment.organisation_id
    short = ZERO
    if not enforce_credit and split.from_credit:
        short = max(ZERO, split.from_credit - member_credit(member))
    refund = Refund(payment_id=payment.id, amount=amount, reason=reason, stripe_refund=stripe_refund,
                    created_by_id=actor.user_id)
    db.session.add(refund)
    db.session.flush()
    invoice = db.session.get(Invoice, payment.invoice_id) if payment.invoice_id else None
    label = invoice.number if invoice else f"payment #{payment.id}"
    paid_from = chart.STRIPE_CLEARING if payment.method == PaymentMethod.CARD else chart.CASH
    lines = [Line(chart.MEMBER_CREDIT, split.from_credit, member, f"{label}: refund of account credit"),
             Line(chart.RECEIVABLES, split.from_receivable, member, f"{label}: refund of payment"),
             Line(paid_from, -amount, None, f"{label}: refund")]
    entry = post_entry(actor, entry_date=utcnow().date(), memo=f"Refund on {label}: {reason}"[:255],
                       kind=REFUND_KIND, lines=[line for line in lines if line.amount],
                       source=("refund", refund.id))
    allow_change(db.session, refund, "journal_entry_id")
    refund.journal_entry_id = entry.id
    db.session.flush()
    after = {**snapshot(refund), "from_account_credit": split.from_credit,
             "from_invoice": split.from_receivable, "invoice_id": payment.invoice_id}
    if short:
        after["account_credit_short"] = short
    record(actor, "payment.refunded", "refund", refund.id, organisation_id=member, after=after)
    if invoice is not None and split.from_receivable:
        round_billing.refresh_round_status(actor, invoice)
    return refund


def record_refund_failure(actor: Actor, refund: Refund, reason: str) -> bool:
    """Stripe could not make ``refund`` and gave the money back: mark it failed and reverse it.

    One balanced entry: Dr 1010 the refund's amount; Cr 2100 and Cr 1100 what the refund took out of
    the member's account credit and off the invoice, as the refunds that still stand now divide it
    (excess first: a later refund that came out of the invoice may now come out of the excess, and
    the entry moves it back so the ledger and the documents agree). Returns False, doing nothing,
    when the refund is already marked failed.
    """
    payment = db.session.get(Payment, refund.payment_id)
    invoice = get_invoice(actor, payment.invoice_id, lock=True) if payment.invoice_id else None
    db.session.refresh(refund)  # another delivery may have marked it while this one waited for the lock
    if refund.failed_at is not None:
        return False
    standing = refunded_of(payment)
    from_credit = (refunded_from_excess(payment, standing)
                   - refunded_from_excess(payment, standing - refund.amount))
    from_receivable = refund.amount - from_credit
    allow_change(db.session, refund, "failed_at", "failure_reason")
    refund.failed_at, refund.failure_reason = utcnow(), reason[:500]
    db.session.flush()
    member = payment.organisation_id
    label = invoice.number if invoice else f"payment #{payment.id}"
    lines = [Line(chart.STRIPE_CLEARING, refund.amount, None, f"{label}: refund #{refund.id} came back"),
             Line(chart.MEMBER_CREDIT, -from_credit, member, f"{label}: account credit restored"),
             Line(chart.RECEIVABLES, -from_receivable, member, f"{label}: payment restored")]
    entry = post_entry(actor, entry_date=utcnow().date(),
                       memo=f"Refund #{refund.id} on {label} failed: {reason}"[:255], kind=REFUND_KIND,
                       lines=[line for line in lines if line.amount], source=("refund_failure", refund.id))
    allow_change(db.session, refund, "failure_entry_id")
    refund.failure_entry_id = entry.id
    db.session.flush()
    record(actor, "payment.refund_failed", "refund", refund.id, organisation_id=member,
           after={**snapshot(refund), "to_account_credit": from_credit, "to_invoice": from_receivable,
                  "invoice_id": payment.invoice_id})
    if invoice is not None and from_receivable:
        round_billing.refresh_round_status(actor, invoice)
    return True


def failed_refunds(invoice: Invoice) -> list[Refund]:
    """Refunds of the invoice's payments that Stripe could not make, newest first (finance follows up)."""
    return list(db.session.scalars(
        select(Refund).join(Payment, Payment.id == Refund.payment_id)
        .where(Payment.invoice_id == invoice.id, Refund.failed_at.is_not(None))
        .order_by(Refund.failed_at.desc(), Refund.id.desc())))


def payments_for(invoice: Invoice) -> list[tuple[Payment, Decimal]]:
    """The invoice's payments, oldest first, each with what has been refunded of it."""
    payments = db.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)
                                  .order_by(Payment.received_on, Payment.id)).all()
    refunds = _refunded([payment.id for payment in payments])
    return [(payment, refunds.get(payment.id, ZERO)) for payment in payments]
