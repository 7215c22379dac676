"""What the club does with Stripe's events (the signature is checked by the view first).

Each event is handled once: its ``StripeEvent`` row is written at the start of
the same transaction as its effect, so a repeated delivery finds it and does
nothing (the answer is still 200), and two copies racing on PostgreSQL queue
on its primary key -- the loser's insert fails once the winner commits, and
its retry is a repeat. Unknown event types are stored as ignored.

* ``checkout.session.completed`` with ``payment_status`` ``paid``, and
  ``checkout.session.async_payment_succeeded``: a card payment is recorded
  (``payments.apply_payment``): Dr 1010 card clearing, Cr 1100 the part
  applied to the balance due, Cr 2100 account credit for any excess. With
  ``unpaid`` (a bank debit on its way) the attempt waits as pending.
* ``checkout.session.async_payment_failed``: the attempt failed; nothing is
  posted; audited.
* ``checkout.session.expired``: the attempt is closed unpaid.
* ``charge.refunded``: every refund of the charge not yet recorded (by its
  Stripe id) is recorded as ``payments.post_refund`` does -- Dr 2100 / Dr
  1100, Cr 1010. Refunds finance made here are recorded with their Stripe id
  when made, so they are recognised and not recorded twice.
* ``charge.refund.updated`` (and ``refund.updated``, ``refund.failed``) with
  the refund ``failed`` or ``canceled``: the money came back. A recorded
  refund is marked failed and its entry reversed
  (``payments.record_refund_failure``): the member's balance is as it was
  before the refund, and finance sees the failure on the invoice page. A
  refund not recorded yet gets a row marked failed and no entry, so a late
  ``charge.refunded`` still listing it as pending does not record it.

Stripe repeats events and sends them out of order:

* a payment intent is paid once: the invoice's row is locked, an existing
  payment for the intent is looked for, and the unique constraint on
  ``payments.stripe_payment_intent`` backs that up -- so "completed" twice
  under two event ids, or "async succeeded" before "completed", pay once,
  and a late "completed/unpaid" or "failed" never undoes a payment;
* ``charge.refunded`` before the payment is known: answered 409
  (:class:`RetryLater`), storing nothing, so Stripe delivers it again later,
  when the payment is there;
* money for a void invoice, or more than the balance due, becomes the
  member's account credit; less than the balance due leaves the rest due.
  Either way -- or when the amount differs from what the session asked for --
  the attempt's ``problem`` says what happened, the invoice page shows it to
  finance, and the audit log has a ``checkout.amount_mismatch`` row.

When the charge in a ``charge.refunded`` event does not list its refunds
(newer API versions leave the list out), they are fetched from Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, NotFound
from buyersclub.money import format_money, from_cents, to_cents
from invoices import stripe_gateway
from invoices.models import (
    CheckoutAttempt,
    CheckoutStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Refund,
    StripeEvent,
)
from invoices.services.issuing import get_invoice
from invoices.services.payments import apply_payment, balance_due, post_refund, record_refund_failure

log = logging.getLogger("buyersclub.stripe")

STRIPE = Actor.system("stripe webhook")
# Refunds in these states have left (or are leaving) the club's Stripe balance.
REFUND_STATES = frozenset({"succeeded", "pending"})
# Refunds in these states never left, or came back: their money is in the club's balance again.
FAILED_REFUND_STATES = frozenset({"failed", "canceled"})

Event = Mapping[str, Any]


class RetryLater(Conflict):
    """The event is early (what it refers to is not recorded yet): answer non-2xx, store nothing."""

    code = "retry_later"


def handle_event(event: Event) -> str:
    """Apply one verified event once; returns what was done (stored as the event's outcome)."""
    event_id = str(event["id"])
    seen = db.session.get(StripeEvent, event_id)
    if seen is not None:
        return f"duplicate of an event already handled: {seen.outcome}"
    row = StripeEvent(id=event_id, type=str(event["type"])[:80], created=_time(event.get("created")),
                      outcome="handling")
    db.session.add(row)
    db.session.flush()  # a concurrent copy of this event queues here
    handler = HANDLERS.get(row.type)
    obj = (event.get("data") or {}).get("object") or {}
    outcome = handler(obj, row) if handler else "ignored: not an event the club acts on"
    row.outcome = outcome[:255]
    db.session.flush()
    log.info("stripe event %s (%s): %s", row.id, row.type, outcome)
    return outcome


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC) if value else utcnow()


# --- Checkout Sessions ----------------------------------------------------------------------------


def _invoice_for(session: Event) -> Invoice | None:
    """The invoice the session was made for, its row locked; None when it names none of ours."""
    raw = session.get("client_reference_id") or (session.get("metadata") or {}).get("invoice_id")
    if raw is None or not str(raw).isdigit():
        return None
    try:
        return get_invoice(STRIPE, int(raw), lock=True)
    except NotFound:
        return None


def _attempt_for(session: Event) -> CheckoutAttempt | None:
    return db.session.scalar(select(CheckoutAttempt).where(CheckoutAttempt.session_id == str(session["id"])))


def _paid_already(payment_intent: str | None) -> Payment | None:
    if not payment_intent:
        return None
    return db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == payment_intent))


def _close(attempt: CheckoutAttempt | None, status: CheckoutStatus) -> None:
    if attempt is not None and attempt.status != status:
        attempt.status = status
        attempt.closed_at = utcnow()


def session_completed(session: Event, event: StripeEvent) -> str:
    if session.get("mode") != "payment":
        return "ignored: not a payment session"
    invoice = _invoice_for(session)
    if invoice is None:
        return "ignored: the session names no invoice of the club's"
    status = session.get("payment_status")
    if status == "paid":
        return _pay(invoice, session, event)
    if status == "unpaid":
        attempt = _attempt_for(session)
        if _paid_already(_intent_of(session)):
            return "nothing to do: already paid"
        if attempt is not None and attempt.status == CheckoutStatus.OPEN:
            attempt.status = CheckoutStatus.PENDING
            record(STRIPE, "checkout.pending", "invoice", invoice.id, organisation_id=invoice.organisation_id,
                   after={"session_id": attempt.session_id, "attempt": attempt.attempt})
        return f"waiting: the payment for {invoice.number} is on its way (bank debit)"
    return f"ignored: payment status {status!r}"


def async_payment_succeeded(session: Event, event: StripeEvent) -> str:
    invoice = _invoice_for(session)
    if invoice is None:
        return "ignored: the session names no invoice of the club's"
    return _pay(invoice, session, event)


def async_payment_failed(session: Event, event: StripeEvent) -> str:
    invoice = _invoice_for(session)
    if invoice is None:
        return "ignored: the session names no invoice of the club's"
    if _paid_already(_intent_of(session)):
        return "nothing to do: already paid"
    attempt = _attempt_for(session)
    _close(attempt, CheckoutStatus.FAILED)
    record(STRIPE, "checkout.failed", "invoice", invoice.id, organisation_id=invoice.organisation_id,
           after={"session_id": session.get("id"), "attempt": attempt.attempt if attempt else None,
                  "invoice_number": invoice.number})
    return f"failed: the bank debit for {invoice.number} did not go through; nothing posted"


def session_expired(session: Event, event: StripeEvent) -> str:
    attempt = _attempt_for(session)
    if attempt is None or attempt.status not in (CheckoutStatus.OPEN, CheckoutStatus.PENDING):
        return "nothing to do"
    _close(attempt, CheckoutStatus.EXPIRED)
    return f"attempt {attempt.attempt} expired unpaid"


def _pay(invoice: Invoice, session: Event, event: StripeEvent) -> str:
    if session.get("payment_status") != "paid":
        return f"ignored: payment status {session.get('payment_status')!r}"
    payment_intent = _intent_of(session)
    if not payment_intent:
        log.error("stripe session %s is paid but names no payment intent", session.get("id"))
        return "ignored: a paid session without a payment intent"
    attempt = _attempt_for(session)
    existing = _paid_already(payment_intent)
    if existing is not None:
        _close(attempt, CheckoutStatus.COMPLETED)
        return f"nothing to do: already recorded as payment #{existing.id}"
    currency = str(session.get("currency") or "").upper()
    if currency != invoice.currency.upper():
        log.error("stripe session %s paid in %s for invoice %s in %s", session.get("id"), currency,
                  invoice.number, invoice.currency)
        record(STRIPE, "checkout.currency_mismatch", "invoice", invoice.id,
               organisation_id=invoice.organisation_id,
               after={"session_id": session.get("id"), "currency": currency,
                      "payment_intent": payment_intent})
        return f"ignored: paid in {currency}, not {invoice.currency}; finance must settle it by hand"
    cents = int(session.get("amount_total") or 0)
    if cents <= 0:
        return "ignored: nothing was paid"
    if attempt is None:
        attempt = _adopt(invoice, session, cents)
    due_cents = 0 if invoice.status == InvoiceStatus.VOID else max(to_cents(balance_due(invoice)), 0)
    payment = apply_payment(STRIPE, invoice, method=PaymentMethod.CARD, amount=from_cents(cents),
                            received_on=event.created.date(), reference=f"Stripe {payment_intent}"[:120],
                            stripe_payment_intent=payment_intent, stripe_checkout_session=str(session["id"]))
    problems = _problems(invoice, attempt, cents, due_cents)
    _close(attempt, CheckoutStatus.COMPLETED)
    attempt.received_cents = cents
    if problems:
        attempt.problem = " ".join(filter(None, [attempt.problem, *problems]))
        record(STRIPE, "checkout.amount_mismatch", "invoice", invoice.id,
               organisation_id=invoice.organisation_id,
               after={"payment_id": payment.id, "session_id": attempt.session_id,
                      "received": from_cents(cents), "asked": from_cents(attempt.amount_cents),
                      "balance_due": from_cents(due_cents), "problem": attempt.problem})
    db.session.flush()
    return f"paid {from_cents(cents)} on {invoice.number} (payment #{payment.id})" + (
        f"; {' '.join(problems)}" if problems else "")


def _adopt(invoice: Invoice, session: Event, cents: int) -> CheckoutAttempt:
    """A paid session this site has no attempt for (its own write failed after Stripe answered)."""
    latest = db.session.scalar(select(CheckoutAttempt.attempt).where(CheckoutAttempt.invoice_id == invoice.id)
                               .order_by(CheckoutAttempt.attempt.desc()).limit(1))
    attempt = CheckoutAttempt(invoice_id=invoice.id, attempt=(latest or 0) + 1, session_id=str(session["id"]),
                              url=str(session.get("url") or ""), amount_cents=cents,
                              status=CheckoutStatus.OPEN,
                              problem="Stripe reported this session, which this site had no record of.")
    db.session.add(attempt)
    db.session.flush()
    return attempt


def _problems(invoice: Invoice, attempt: CheckoutAttempt, cents: int, due_cents: int) -> list[str]:
    def money(value: int) -> str:
        return format_money(from_cents(value), invoice.currency)

    problems = []
    if cents != attempt.amount_cents:
        problems.append(f"Stripe received {money(cents)} where the payment page asked for "
                        f"{money(attempt.amount_cents)}.")
    if invoice.status == InvoiceStatus.VOID:
        problems.append(f"The invoice was void when {money(cents)} arrived: all of it became the member's "
                        "account credit.")
    elif cents > due_cents:
        problems.append(f"The balance due was {money(due_cents)}: {money(cents - due_cents)} became the "
                        "member's account credit.")
    elif cents < due_cents:
        problems.append(f"The balance due was {money(due_cents)}: {money(due_cents - cents)} is still due.")
    return problems


# --- Refunds --------------------------------------------------------------------------------------


def charge_refunded(charge: Event, event: StripeEvent) -> str:
    payment_intent = _intent_of(charge)
    if not payment_intent:
        return "ignored: a charge not made through a payment intent"
    payment = _paid_already(payment_intent)
    if payment is None:
        raise RetryLater(f"The payment {payment_intent} is not recorded yet: send this event again later.")
    if payment.invoice_id is not None:
        get_invoice(STRIPE, payment.invoice_id, lock=True)  # one refund at a time per invoice
    recorded = set(db.session.scalars(select(Refund.stripe_refund).where(Refund.payment_id == payment.id,
                                                                         Refund.stripe_refund.is_not(None))))
    new = [refund for refund in _refunds_of(charge)
           if refund.get("id") not in recorded and refund.get("status") in REFUND_STATES]
    for refund in sorted(new, key=lambda refund: (refund.get("created") or 0, refund["id"])):
        reason = f"Refunded in Stripe ({refund['id']})"
        if refund.get("reason"):
            reason += f": {refund['reason']}"
        post_refund(STRIPE, payment, from_cents(int(refund["amount"])), reason, stripe_refund=refund["id"],
                    enforce_credit=False)
    if not new:
        return f"nothing to do: every refund of payment #{payment.id} is recorded"
    return f"recorded {len(new)} refund(s) of payment #{payment.id}: " + ", ".join(r["id"] for r in new)


def refund_updated(refund: Event, event: StripeEvent) -> str:
    """A refund Stripe could not make (``failed``, or ``canceled`` before it left): the money is back."""
    status = refund.get("status")
    if status not in FAILED_REFUND_STATES:
        return f"nothing to do: the refund is {status}"
    stripe_id = str(refund.get("id") or "")
    reason = f"Stripe could not make the refund ({refund.get('failure_reason') or status})"
    found = db.session.scalar(select(Refund).where(Refund.stripe_refund == stripe_id))
    if found is None:
        payment = _paid_already(_intent_of(refund))
        if payment is None:
            return "ignored: a refund of a payment the club has no record of"
        if payment.invoice_id is not None:
            get_invoice(STRIPE, payment.invoice_id, lock=True)  # as charge.refunded does
        found = db.session.scalar(select(Refund).where(Refund.stripe_refund == stripe_id))
    if found is None:
        return _note_unrecorded_failure(payment, refund, reason)
    if not record_refund_failure(STRIPE, found, reason):
        return f"nothing to do: refund #{found.id} is already marked failed"
    return f"refund #{found.id} ({stripe_id}) failed: its entry is reversed and the money is back"


def _note_unrecorded_failure(payment: Payment, refund: Event, reason: str) -> str:
    """A refund that failed before ``charge.refunded`` recorded it: nothing left the club, so nothing is
    posted; its row, marked failed, keeps a late copy of ``charge.refunded`` that still lists it as
    pending from recording it."""
    cents = int(refund.get("amount") or 0)
    if cents <= 0:
        return "ignored: a refund of nothing"
    now = utcnow()
    row = Refund(payment_id=payment.id, amount=from_cents(cents), reason=reason,
                 stripe_refund=str(refund["id"]), failed_at=now, failure_reason=reason, created_at=now)
    db.session.add(row)
    db.session.flush()
    record(STRIPE, "payment.refund_failed", "refund", row.id, organisation_id=payment.organisation_id,
           after={"stripe_refund": row.stripe_refund, "amount": row.amount, "invoice_id": payment.invoice_id,
                  "recorded_before": False})
    return f"noted: refund {row.stripe_refund} failed before it was recorded; nothing was posted"


def _intent_of(charge_or_refund: Event) -> str | None:
    payment_intent = charge_or_refund.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    return str(payment_intent) if payment_intent else None


def _refunds_of(charge: Event) -> list[Mapping[str, Any]]:
    """The charge's refunds: as listed in the event when the list is whole, else from Stripe."""
    listed = charge.get("refunds")
    if isinstance(listed, Mapping) and not listed.get("has_more"):
        refunds = list(listed.get("data") or [])
        total = sum(int(refund.get("amount") or 0) for refund in refunds
                    if refund.get("status") in REFUND_STATES)
        if total >= int(charge.get("amount_refunded") or 0):
            return refunds
    return _fetch_refunds(str(charge["id"]))


def _fetch_refunds(charge_id: str) -> list[Mapping[str, Any]]:
    if not stripe_gateway.enabled():
        raise RetryLater("The event does not list the charge's refunds and no Stripe key is configured to "
                         "fetch them.")
    client = stripe_gateway.client()
    found = stripe_gateway.call("the charge's refunds", lambda: client.v1.refunds.list(
        params={"charge": charge_id, "limit": 100}))
    return [refund.to_dict() for refund in found.auto_paging_iter()]


HANDLERS: dict[str, Callable[[Event, StripeEvent], str]] = {
    "checkout.session.completed": session_completed,
    "checkout.session.async_payment_succeeded": async_payment_succeeded,
    "checkout.session.async_payment_failed": async_payment_failed,
    "checkout.session.expired": session_expired,
    "charge.refunded": charge_refunded,
    # A refund that failed: the older event and its newer name; the second copy finds it marked.
    "charge.refund.updated": refund_updated,
    "refund.updated": refund_updated,
    "refund.failed": refund_updated,
}
