"""Stripe for tests: events signed the way Stripe signs them, and a recording fake of its API.

* ``sign(payload, secret)`` gives the ``Stripe-Signature`` header for a body;
  ``post_event(client, event)`` sends an event to ``/stripe/webhook`` signed
  with :data:`WEBHOOK_SECRET`.
* ``checkout_completed_event(invoice, amount_cents, ...)`` and its siblings
  build the events Checkout sends, naming the invoice the way the club's
  sessions do (``client_reference_id`` and metadata).
* :class:`FakeStripe` is a ``stripe.HTTPClient``: give it to the application
  as ``STRIPE_HTTP_CLIENT`` and it records every request (method, path, form
  fields, headers) and answers Checkout Sessions, refunds and refund lists
  like Stripe, replaying a request sent again with the same Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

WEBHOOK_SECRET = "whsec_test_buyersclub"
SECRET_KEY = "sk_test_buyersclub"
CHECKOUT_BASE = "https://checkout.stripe.com/c/pay/"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_ids):06d}"


STRIPE_SETTINGS = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "STRIPE_HTTP_CLIENT",
                   "STRIPE_CHECKOUT_ORIGIN", "STRIPE_MAX_NETWORK_RETRIES")


@contextmanager
def stripe_configured(app, **settings: Any) -> Iterator[None]:
    """The app with card payments on (test key and webhook secret, no retries) and these settings;
    the previous settings are put back afterwards."""
    saved = {name: app.config.get(name) for name in STRIPE_SETTINGS}
    app.config.update({"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                       "STRIPE_MAX_NETWORK_RETRIES": 0, **settings})
    try:
        yield
    finally:
        app.config.update(saved)


# --- Signing ----------------------------------------------------------------------------------------


def sign(payload: str | bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for this body: ``t=<unix>,v1=<HMAC-SHA256 of "t.body">``."""
    body = payload.decode() if isinstance(payload, bytes) else payload
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def post_event(client, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
               signature: str | None = None):
    """POST the event to the webhook, signed (or with the ``signature`` given)."""
    body = json.dumps(event)
    header = signature if signature is not None else sign(body, secret, timestamp)
    return client.post("/stripe/webhook", data=body, content_type="application/json",
                        headers={"Stripe-Signature": header})


# --- Events -------------------------------------------------------------------------------------------


def event(type_: str, obj: dict[str, Any], *, event_id: str | None = None,
          created: int | None = None) -> dict[str, Any]:
    return {"id": event_id or new_id("evt"), "object": "event", "type": type_, "api_version": "2024-06-20",
            "created": created or int(time.time()), "livemode": False, "data": {"object": obj}}


def checkout_session(invoice, amount_cents: int, *, session_id: str | None = None,
                     payment_intent: str | None = None, payment_status: str = "paid", attempt: int = 1,
                     currency: str | None = None) -> dict[str, Any]:
    """A Checkout Session as Stripe sends it for the invoice (anything with id, number, currency)."""
    session_id = session_id or new_id("cs")
    metadata = {"invoice_id": str(invoice.id), "invoice_number": invoice.number, "attempt": str(attempt)}
    return {
        "id": session_id, "object": "checkout.session", "mode": "payment",
        "client_reference_id": str(invoice.id), "metadata": metadata,
        "amount_total": amount_cents, "amount_subtotal": amount_cents,
        "currency": (currency or getattr(invoice, "currency", "usd")).lower(),
        "payment_status": payment_status, "status": "complete",
        "payment_intent": payment_intent or new_id("pi"), "url": None,
    }


def checkout_completed_event(invoice, amount_cents: int, *, event_id: str | None = None,
                             **session: Any) -> dict[str, Any]:
    """``checkout.session.completed`` for the invoice; ``payment_status="unpaid"`` for a bank debit."""
    return event("checkout.session.completed", checkout_session(invoice, amount_cents, **session),
                 event_id=event_id)


def async_payment_event(invoice, amount_cents: int, *, succeeded: bool = True, event_id: str | None = None,
                        **session: Any) -> dict[str, Any]:
    """``checkout.session.async_payment_succeeded`` (or ``_failed``) for the invoice."""
    status = "paid" if succeeded else "unpaid"
    name = "succeeded" if succeeded else "failed"
    return event(f"checkout.session.async_payment_{name}",
                 checkout_session(invoice, amount_cents, payment_status=status, **session), event_id=event_id)


def charge_refunded_event(payment_intent: str, charge_cents: int, refunds: list[dict[str, Any]] | None, *,
                          event_id: str | None = None, charge_id: str | None = None) -> dict[str, Any]:
    """``charge.refunded`` for the charge of ``payment_intent``; ``refunds=None`` leaves the list out
    (as newer API versions do), so the club has to fetch it."""
    refunded = sum(refund["amount"] for refund in refunds or []
                   if refund["status"] in ("succeeded", "pending"))
    charge: dict[str, Any] = {
        "id": charge_id or new_id("ch"), "object": "charge", "amount": charge_cents,
        "amount_refunded": refunded, "payment_intent": payment_intent, "refunded": refunded >= charge_cents,
        "currency": "usd",
    }
    if refunds is not None:
        charge["refunds"] = {"object": "list", "data": refunds, "has_more": False,
                             "total_count": len(refunds)}
    return event("charge.refunded", charge, event_id=event_id)


def refund(amount_cents: int, *, refund_id: str | None = None, status: str = "succeeded",
           payment_intent: str | None = None) -> dict[str, Any]:
    return {"id": refund_id or new_id("re"), "object": "refund", "amount": amount_cents, "status": status,
            "payment_intent": payment_intent, "created": int(time.time()), "reason": None}


# --- A fake of Stripe's API ---------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]


class FakeStripe(stripe.HTTPClient):
    """Answers like Stripe for Checkout Sessions and refunds; records what it was sent.

    ``fail_with = (status, error_type, message)`` makes the next requests fail that way.
    """

    name = "fake"

    def __init__(self, checkout_base: str = CHECKOUT_BASE) -> None:
        super().__init__()
        self.checkout_base = checkout_base
        self.requests: list[Recorded] = []
        self.refunds: list[dict[str, Any]] = []
        self.fail_with: tuple[int, str, str] | None = None
        self._replies: dict[str, tuple[str, int]] = {}

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        recorded = Recorded(method.upper(), parts.path, dict(headers or {}), form,
                            dict(parse_qsl(parts.query)))
        self.requests.append(recorded)
        key = recorded.headers.get("Idempotency-Key")
        if key and key in self._replies:
            body, status = self._replies[key]
            return body, status, {"Idempotent-Replayed": "true"}
        if self.fail_with is not None:
            status, kind, message = self.fail_with
            return json.dumps({"error": {"type": kind, "message": message}}), status, {}
        body, status = self._answer(recorded)
        if key:
            self._replies[key] = (body, status)
        return body, status, {}

    def _answer(self, recorded: Recorded) -> tuple[str, int]:
        if recorded.method == "POST" and recorded.path == "/v1/checkout/sessions":
            session_id = new_id("cs")
            form = recorded.form
            return json.dumps({
                "id": session_id, "object": "checkout.session", "mode": form.get("mode"),
                "url": self.checkout_base + session_id, "status": "open", "payment_status": "unpaid",
                "client_reference_id": form.get("client_reference_id"),
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "currency": form["line_items[0][price_data][currency]"],
                "expires_at": int(time.time()) + 24 * 3600, "payment_intent": None,
                "metadata": {name[len("metadata["):-1]: value for name, value in form.items()
                             if name.startswith("metadata[")},
            }), 200
        if recorded.method == "POST" and recorded.path == "/v1/refunds":
            made = refund(int(recorded.form["amount"]), payment_intent=recorded.form.get("payment_intent"))
            self.refunds.append(made)
            return json.dumps(made), 200
        if recorded.method == "GET" and recorded.path == "/v1/refunds":
            return json.dumps({"object": "list", "url": "/v1/refunds", "has_more": False,
                               "data": self.refunds}), 200
        return json.dumps({"error": {"type": "invalid_request_error",
                                     "message": f"Unrecognized request URL ({recorded.path})"}}), 404

    def of(self, method: str, path: str) -> list[Recorded]:
        return [each for each in self.requests if each.method == method and each.path == path]


# --- Set-up for tests with real commits -------------------------------------------------------------


def one_issued_invoice() -> tuple[int, int]:
    """A received round with one member allocated 24 units, its invoice issued (not committed):
    returns (invoice id, the member's staff user id). For ``committing_db`` tests, which cannot use
    the rolled-back fixtures."""
    from datetime import UTC, datetime

    from buyersclub.actor import Actor
    from invoices.services import issuing
    from orders.models import RoundStatus
    from tests import factories

    now = datetime.now(UTC)
    found = factories.RoundFactory(status=RoundStatus.RECEIVED, opened_at=now, closed_at=now)
    item = factories.RoundItemFactory(round=found)
    closing = factories.ProductClosingFactory(round_item=item, units=24)
    organisation = factories.OrganisationFactory()
    staff = factories.UserFactory(roles=["member"], organisation=organisation)
    factories.AllocationFactory(closing=closing, organisation_id=organisation.id, firm_units=24)
    [invoice] = issuing.issue_round_invoices(Actor.system("test"), found.id, without_subsidy_run=True)
    return invoice.id, staff.id
