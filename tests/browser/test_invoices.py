"""Invoices in a real browser: finance issues a round's invoices; the member downloads the PDF, sees
its subsidy credit, pays by card through a stand-in for Stripe Checkout and a signed webhook, and the
invoice shows paid."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from buyersclub import mail
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.organisations.models import Organisation
from invoices.models import Invoice
from orders.models import RoundStatus
from subsidies.models import SubsidyPolicy
from subsidies.policy import DEFAULT_MAX_SHARE, DEFAULT_PRIORITY, DEFAULT_WEIGHTS
from subsidies.services import runs
from tests import factories
from tests.browser.conftest import Person
from tests.invoices.stripe_helpers import FakeStripe, checkout_completed_event, sign, stripe_configured
from tests.subsidies.test_runs import allocate, closed_round, give, large_programme, product_in

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class FakeCheckout:
    """Where the fake Stripe sends payers: a page on another local port, as Checkout is elsewhere."""

    origin: str


@pytest.fixture
def fake_checkout() -> Iterator[FakeCheckout]:
    @Request.application
    def checkout_page(request: Request) -> Response:
        return Response("<!doctype html><title>Test Checkout</title><h1>Test Checkout</h1>"
                        f"<p>Session {request.path.rsplit('/', 1)[-1]}</p>", mimetype="text/html")

    server = make_server("127.0.0.1", 0, checkout_page)
    thread = threading.Thread(target=server.serve_forever, name="fake-checkout", daemon=True)
    thread.start()
    try:
        yield FakeCheckout(origin=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def card_payments(live_server, fake_checkout) -> Iterator[FakeStripe]:
    fake = FakeStripe(checkout_base=f"{fake_checkout.origin}/c/pay/")
    with stripe_configured(live_server.app, STRIPE_HTTP_CLIENT=fake,
                           STRIPE_CHECKOUT_ORIGIN=fake_checkout.origin):
        yield fake


@pytest.fixture
def live_finance(live_db) -> Person:
    user = factories.UserFactory(roles=["finance"], email="finance@club.test", name="Fin Ance")
    person = Person(user.email, factories.PASSWORD, user.name)
    db.session.commit()
    return person


@pytest.fixture
def delivered(live_db, live_member) -> int:
    """A received naloxone round: Harbour Outreach (low-resource, 24 boxes) and Birch Health (48);
    $500.00 in the fund, the subsidy run approved."""
    harbour = db.session.scalars(
        select(Organisation).where(Organisation.name == live_member.organisation)).one()
    harbour.low_resource = True
    if db.session.scalar(select(SubsidyPolicy.id).limit(1)) is None:
        db.session.add(SubsidyPolicy(version=1, weights=DEFAULT_WEIGHTS, max_share=DEFAULT_MAX_SHARE,
                                     priority=DEFAULT_PRIORITY))
    found = closed_round(RoundStatus.RECEIVED)
    naloxone = product_in(found)
    allocate(naloxone, harbour, 24)
    allocate(naloxone, large_programme("Birch Health"), 48)
    give("500.00")
    db.session.flush()
    admin = Actor.system("browser test")
    runs.approve_run(admin, runs.start_run(admin, found.id).id)
    db.session.commit()
    return found.id


def pdf_text(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True,
                          check=True).stdout.decode()


def test_finance_issues_and_the_member_downloads_pays_by_card_and_sees_it_paid(
        page, live_server, delivered, card_payments, live_finance, live_member, browser_sign_in):
    browser_sign_in(page, live_finance)
    page.goto(f"/rounds/{delivered}/invoices")
    page.get_by_role("button", name="Issue invoices").click()
    expect(page.get_by_text(re.compile(r"2 invoices issued: INV-\d{4}-\d{5} to"))).to_be_visible()
    page.get_by_role("button", name="E-mail them now").click()
    expect(page.get_by_text("1 member e-mailed its invoice.")).to_be_visible()
    # Birch Health has no staff account yet: finance is told, and the next run tries again.
    expect(page.get_by_text(re.compile(r"\(Birch Health\): no recipients"))).to_be_visible()
    with live_server.app.app_context():
        told = {message["To"]: message["Subject"] for message in mail.outbox()}
    assert re.match(r"Invoice INV-\d{4}-\d{5} from .*: \$[\d,]+\.\d\d due by", told[live_member.email])
    page.get_by_role("button", name="Sign out").click()

    browser_sign_in(page, live_member)
    page.get_by_role("link", name="My invoices").click()
    page.get_by_role("link", name=re.compile(r"^INV-\d{4}-\d{5}$")).click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("open")
    number = re.search(r"INV-\d{4}-\d{5}", heading.inner_text()).group(0)
    subsidy = page.get_by_role("row", name=re.compile("Subsidy", re.IGNORECASE))
    expect(subsidy).to_be_visible()
    credit = re.search(r"-\$[\d,]+\.\d\d", subsidy.inner_text()).group(0)

    link = page.get_by_role("link", name="Download PDF")
    download = page.request.get(link.get_attribute("href"))
    assert download.ok and download.headers["content-type"] == "application/pdf"
    printed = pdf_text(download.body())
    assert number in printed
    assert "Harbour Outreach" in printed and credit in printed

    page.get_by_role("button", name="Pay by card").click()
    expect(page.get_by_role("heading", name="Test Checkout")).to_be_visible()
    [made] = card_payments.of("POST", "/v1/checkout/sessions")
    session_id = page.url.rsplit("/", 1)[-1]
    cents = int(made.form["line_items[0][price_data][unit_amount]"])

    with live_server.app.app_context():
        invoice = db.session.get(Invoice, int(made.form["client_reference_id"]))
        event = checkout_completed_event(invoice, cents, session_id=session_id)
    body = json.dumps(event)
    answer = requests.post(f"{live_server.url}/stripe/webhook", data=body, timeout=10,
                           headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text

    page.goto(f"/invoices/{invoice.id}?checkout=success")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {invoice.number} paid")
    expect(page.get_by_role("row", name=re.compile(r"^Balance due"))).to_contain_text("$0.00")
    expect(page.get_by_role("button", name="Pay by card")).to_have_count(0)
