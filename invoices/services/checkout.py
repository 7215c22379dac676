"""Paying an invoice by card: one Stripe Checkout Session per attempt.

Member staff of the invoice's organisation, or finance, start a checkout for
an issued invoice with a balance due (409 otherwise, saying why). The session
asks for the balance due in cents, in the invoice's currency, as one line
named after the invoice number; ``client_reference_id`` is the invoice id and
the invoice id, number and attempt are in the metadata of the session and of
its payment intent, so every later event names the invoice.

The invoice's row is locked while this runs, so two clicks on "Pay by card"
are served one after the other: the second reuses the latest attempt that is
still open for the same amount (and not about to expire) instead of making a
second session. A new attempt's number is the next one for the invoice, and
the request's idempotency key ``checkout-<invoice>-<attempt>`` makes Stripe
hand back the same session if our transaction failed after Stripe answered
and the member tries again.

Nothing here marks an invoice paid: the money is recorded when Stripe's
webhook says so (``invoices.services.webhooks``). A Stripe failure writes
nothing and says so (502).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, PermissionDenied
from buyersclub.money import from_cents, to_cents
from invoices import stripe_gateway
from invoices.links import invoice_page_url
from invoices.models import CheckoutAttempt, CheckoutStatus, Invoice, InvoiceStatus
from invoices.services.issuing import get_invoice
from invoices.services.payments import balance_due

# An open session this close to expiring is not handed out again: the member needs time to pay.
REUSE_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Checkout:
    attempt: CheckoutAttempt
    reused: bool

    @property
    def url(self) -> str:
        return self.attempt.url


def may_pay(actor: Actor, invoice: Invoice) -> bool:
    """Finance, or staff of the invoice's organisation (administrators look, they do not pay)."""
    return actor.has_role(Role.FINANCE) or (
        actor.organisation_id is not None and actor.organisation_id == invoice.organisation_id)


def start_checkout(actor: Actor, invoice_id: int) -> Checkout:
    """The Checkout Session to send the payer to: the open one for this amount, or a new one."""
    invoice = get_invoice(actor, invoice_id, lock=True)
    if not may_pay(actor, invoice):
        raise PermissionDenied("Only the member's staff or finance pay an invoice.")
    if invoice.status == InvoiceStatus.VOID:
        raise Conflict(f"Invoice {invoice.number} is void: there is nothing to pay.", code="invoice_void")
    due = balance_due(invoice)
    if due <= 0:
        raise Conflict(f"Invoice {invoice.number} is paid: nothing is due on it.", code="nothing_due")
    cents = to_cents(due)
    latest = _latest_attempt(invoice.id)
    if latest is not None and _reusable(latest, cents):
        return Checkout(latest, reused=True)
    number = (latest.attempt if latest is not None else 0) + 1
    session = _create_session(invoice, number, cents)
    attempt = CheckoutAttempt(
        invoice_id=invoice.id, attempt=number, session_id=session.id, url=session.url,
        amount_cents=cents, created_by_id=actor.user_id, status=CheckoutStatus.OPEN,
        expires_at=datetime.fromtimestamp(session.expires_at, UTC) if session.expires_at else None)
    db.session.add(attempt)
    db.session.flush()
    record(actor, "checkout.started", "invoice", invoice.id, organisation_id=invoice.organisation_id,
           after={"attempt": number, "session_id": session.id, "amount": from_cents(cents),
                  "invoice_number": invoice.number})
    return Checkout(attempt, reused=False)


def _latest_attempt(invoice_id: int) -> CheckoutAttempt | None:
    return db.session.scalar(select(CheckoutAttempt).where(CheckoutAttempt.invoice_id == invoice_id)
                             .order_by(CheckoutAttempt.attempt.desc()).limit(1))


def _reusable(attempt: CheckoutAttempt, cents: int) -> bool:
    if attempt.status != CheckoutStatus.OPEN or attempt.amount_cents != cents:
        return False
    return attempt.expires_at is None or attempt.expires_at > utcnow() + REUSE_MARGIN


def attempts_for(invoice: Invoice) -> list[CheckoutAttempt]:
    return list(db.session.scalars(select(CheckoutAttempt).where(CheckoutAttempt.invoice_id == invoice.id)
                                   .order_by(CheckoutAttempt.attempt)))


def _create_session(invoice: Invoice, attempt: int, cents: int):
    metadata = {"invoice_id": str(invoice.id), "invoice_number": invoice.number, "attempt": str(attempt)}
    params = {
        "mode": "payment",
        "client_reference_id": str(invoice.id),
        "line_items": [{
            "quantity": 1,
            "price_data": {"currency": invoice.currency.lower(), "unit_amount": cents,
                           "product_data": {"name": f"Invoice {invoice.number}"}},
        }],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": f"Invoice {invoice.number}"},
        "success_url": invoice_page_url(invoice.id, checkout="success"),
        "cancel_url": invoice_page_url(invoice.id, checkout="cancelled"),
    }
    client = stripe_gateway.client()
    session = stripe_gateway.call("the card payment page", lambda: client.v1.checkout.sessions.create(
        params=params, options={"idempotency_key": f"checkout-{invoice.id}-{attempt}"}))
    if not session.url:
        raise stripe_gateway.StripeUnavailable("Stripe made no payment page for this invoice. Nothing was "
                                               "recorded; please try again in a moment.")
    return session
