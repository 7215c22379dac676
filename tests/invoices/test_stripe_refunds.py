"""Refunding a card payment through Stripe, against localstripe (a Stripe-compatible test server).

localstripe runs in a subprocess on 127.0.0.1 only, on a free port, with its state kept in memory (its
own command listens on every interface and writes ``/tmp/localstripe.pickle``, which parallel runs would
share). It makes real payment intents (``confirm=True`` with a test card) and refunds by payment intent;
it has no Checkout Sessions, so the payment reaches the club as a signed ``checkout.session.completed``
naming that payment intent. When localstripe cannot start, these tests fail: they never skip.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import stripe
from sqlalchemy import select

from buyersclub.db import db
from buyersclub.ledger import chart
from invoices.models import Payment, Refund
from invoices.services import payments
from tests.invoices.conftest import issue_all
from tests.invoices.stripe_helpers import (
    SECRET_KEY,
    checkout_completed_event,
    event,
    post_event,
    stripe_configured,
)
from tests.invoices.test_webhooks import assert_books_agree, posted

D = Decimal
SERVER = (
    "import sys\n"
    "from localstripe import resources\n"
    "resources.Store.dump_to_disk = lambda self: None  # state in memory only\n"
    "from aiohttp import web\n"
    "from localstripe.server import app\n"
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def localstripe():
    """The base URL of a localstripe server of this module's own."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"localstripe exited at start: {process.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("localstripe did not start listening within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


@pytest.fixture
def stripe_server(app, localstripe):
    with stripe_configured(app, STRIPE_API_BASE=localstripe, STRIPE_HTTP_CLIENT=None):
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe}, max_network_retries=0)
        yield client


@pytest.fixture
def paid(client, approved, stripe_server):
    """Member A's invoice paid by card: a real payment intent at localstripe, reported by webhook."""
    invoices = issue_all(approved)
    invoice = invoices["A"]
    cents = int(payments.balance_due(invoice) * 100) + 1000  # 10.00 more: account credit
    intent = stripe_server.v1.payment_intents.create(params={
        "amount": cents, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"invoice_id": str(invoice.id), "invoice_number": invoice.number}})
    assert intent.status == "succeeded"
    response = post_event(client, checkout_completed_event(invoice, cents, payment_intent=intent.id))
    assert response.status_code == 200, response.get_json()
    payment = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == intent.id))
    approved.invoices, approved.invoice = invoices, invoice
    approved.payment, approved.intent = payment, intent
    return approved


def refunds_at_stripe(server: stripe.StripeClient, intent_id: str) -> list[dict]:
    charge_id = server.v1.payment_intents.retrieve(intent_id).to_dict()["latest_charge"]["id"]
    return server.v1.charges.retrieve(charge_id).to_dict()["refunds"]["data"]


def refund_via_api(client, auth, finance, payment_id: int, amount: str, reason: str = "Damaged in transit"):
    return client.post(f"/api/v1/payments/{payment_id}/refunds", headers=auth(finance),
                       json={"amount": amount, "reason": reason})


def test_finance_refunds_a_card_payment_through_stripe(client, auth, finance, paid, stripe_server):
    payment = paid.payment
    response = refund_via_api(client, auth, finance, payment.id, "25.00")

    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["refunded"], response.get_json()["method"]) == ("25.00", "card")
    [at_stripe] = refunds_at_stripe(stripe_server, paid.intent.id)
    [recorded] = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert recorded.stripe_refund == at_stripe["id"] and at_stripe["amount"] == 2500
    assert at_stripe["payment_intent"] == paid.intent.id
    # 10.00 of the payment was account credit: the refund takes that first, then 15.00 off the invoice.
    assert posted(recorded.journal_entry_id) == {
        chart.MEMBER_CREDIT: D("10.00"), chart.RECEIVABLES: D("15.00"), chart.STRIPE_CLEARING: D("-25.00")}
    assert payments.balance_due(paid.invoice) == D("15.00")
    assert_books_agree(paid, paid.invoices)


def test_the_later_charge_refunded_event_records_nothing_twice(client, auth, finance, paid, stripe_server):
    assert refund_via_api(client, auth, finance, paid.payment.id, "4.00").status_code == 201
    charge_id = stripe_server.v1.payment_intents.retrieve(paid.intent.id).to_dict()["latest_charge"]["id"]
    charge = stripe_server.v1.charges.retrieve(charge_id).to_dict()

    response = post_event(client, event("charge.refunded", charge))

    assert response.status_code == 200 and response.get_json()["outcome"].startswith("nothing to do")
    assert len(db.session.scalars(select(Refund).where(Refund.payment_id == paid.payment.id)).all()) == 1
    assert_books_agree(paid, paid.invoices)


def test_a_refund_made_at_stripe_is_recorded_from_the_webhook(client, paid, stripe_server):
    made = stripe_server.v1.refunds.create(params={"payment_intent": paid.intent.id, "amount": 700})
    charge = stripe_server.v1.charges.retrieve(made.charge).to_dict()
    response = post_event(client, event("charge.refunded", charge))
    assert response.status_code == 200, response.get_json()
    [recorded] = db.session.scalars(select(Refund).where(Refund.payment_id == paid.payment.id)).all()
    assert (recorded.stripe_refund, recorded.amount) == (made.id, D("7.00"))
    assert_books_agree(paid, paid.invoices)


def test_too_large_a_refund_is_refused_before_stripe_is_asked(client, auth, finance, paid, stripe_server):
    response = refund_via_api(client, auth, finance, paid.payment.id, f"{paid.payment.amount + 1:.2f}")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "refund_too_large"
    assert refunds_at_stripe(stripe_server, paid.intent.id) == []


def test_a_refund_stripe_refuses_records_nothing(client, auth, finance, paid, stripe_server):
    """A payment intent Stripe does not know (e.g. made in another account): 502, nothing recorded."""
    invoice = paid.invoices["B"]
    unknown = "pi_not_at_this_stripe"
    completed = checkout_completed_event(invoice, 5000, payment_intent=unknown)
    assert post_event(client, completed).status_code == 200
    payment = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent == unknown))
    response = refund_via_api(client, auth, finance, payment.id, "5.00")
    assert response.status_code == 502
    assert "Stripe refused the refund" in response.get_json()["error"]["message"]
    assert db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all() == []
    assert payments.balance_due(invoice) == payments.settlement(invoice).total - D("50.00")
