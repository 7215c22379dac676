"""Paying an invoice by card: the Checkout Session asked of Stripe, reuse on a double click, who may pay,
what the invoice page offers with and without Stripe, and the API."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db, utcnow
from invoices.models import CheckoutAttempt, CheckoutStatus, Invoice
from invoices.services import checkout, credit_notes, payments
from tests.invoices.conftest import issue_all
from tests.invoices.stripe_helpers import FakeStripe, one_issued_invoice, stripe_configured

SESSIONS = "/v1/checkout/sessions"
BANK = "Club Bank, account 12345678, routing 011000015"


@pytest.fixture
def invoices(approved):
    return issue_all(approved)


def staff(approved, key: str):
    return approved.members[key].staff[0]


def attempts(invoice: Invoice) -> list[CheckoutAttempt]:
    return list(db.session.scalars(select(CheckoutAttempt).where(CheckoutAttempt.invoice_id == invoice.id)
                                   .order_by(CheckoutAttempt.attempt)))


def test_pay_by_card_sends_the_member_to_one_session_for_the_balance_due(client, sign_in, approved, invoices,
                                                                       fake):
    invoice = invoices["D"]
    due = payments.balance_due(invoice)
    sign_in(staff(approved, "D"))
    page = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert "Pay by card" in page

    response = client.post(f"/invoices/{invoice.id}/pay")

    assert response.status_code == 303
    [sent] = fake.of("POST", SESSIONS)
    form = sent.form
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == str(invoice.id)
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == str(int(due * 100)) == "1282"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][product_data][name]"] == f"Invoice {invoice.number}"
    for prefix in ("metadata", "payment_intent_data[metadata]"):
        sent_metadata = [form[f"{prefix}[{name}]"] for name in ("invoice_id", "invoice_number", "attempt")]
        assert sent_metadata == [str(invoice.id), invoice.number, "1"]
    assert form["success_url"] == f"http://club.test/invoices/{invoice.id}?checkout=success"
    assert form["cancel_url"] == f"http://club.test/invoices/{invoice.id}?checkout=cancelled"
    assert sent.headers["Idempotency-Key"] == f"checkout-{invoice.id}-1"
    assert sent.headers["Authorization"] == "Bearer sk_test_buyersclub"
    [attempt] = attempts(invoice)
    assert (attempt.attempt, attempt.amount_cents, attempt.status) == (1, 1282, CheckoutStatus.OPEN)
    assert attempt.url == response.headers["Location"] and attempt.expires_at > utcnow()
    # Nothing is paid until Stripe's webhook says so.
    assert payments.balance_due(invoice) == due


def test_the_pay_form_carries_its_csrf_token(client, sign_in, app, approved, invoices, fake):
    invoice = invoices["D"]
    sign_in(staff(approved, "D"))
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
        form = page[page.index(f'action="/invoices/{invoice.id}/pay"'):]
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        forged = client.post(f"/invoices/{invoice.id}/pay")
        assert forged.status_code == 400 and fake.requests == []
        assert client.post(f"/invoices/{invoice.id}/pay", data={"csrf_token": token}).status_code == 303
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert len(attempts(invoice)) == 1


def test_a_double_click_reuses_the_open_session(client, sign_in, approved, invoices, fake):
    invoice = invoices["D"]
    sign_in(staff(approved, "D"))
    first = client.post(f"/invoices/{invoice.id}/pay")
    second = client.post(f"/invoices/{invoice.id}/pay")
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert len(fake.of("POST", SESSIONS)) == 1 and len(attempts(invoice)) == 1


def test_a_new_amount_or_an_expired_session_makes_a_new_attempt(session, approved, invoices, fake):
    invoice = invoices["A"]
    member = Actor.for_user(staff(approved, "A"))
    first = checkout.start_checkout(member, invoice.id)
    payments.record_payment(approved.finance, invoice.id, "bank_transfer", "part", utcnow().date(), "100.00")

    second = checkout.start_checkout(member, invoice.id)

    assert not second.reused and second.attempt.attempt == 2
    assert second.attempt.amount_cents == first.attempt.amount_cents - 10000
    assert [each.headers["Idempotency-Key"] for each in fake.of("POST", SESSIONS)] == [
        f"checkout-{invoice.id}-1", f"checkout-{invoice.id}-2"]
    second.attempt.expires_at = utcnow() + timedelta(minutes=2)  # about to close: not handed out again
    third = checkout.start_checkout(member, invoice.id)
    assert not third.reused and third.attempt.attempt == 3
    assert checkout.start_checkout(member, invoice.id).attempt.id == third.attempt.id


def test_without_stripe_keys_the_button_is_hidden_and_bank_details_shown(client, sign_in, app, approved,
                                                                        invoices):
    invoice = invoices["D"]
    saved = app.config.get("CLUB_BANK_DETAILS")
    app.config["CLUB_BANK_DETAILS"] = BANK
    try:
        sign_in(staff(approved, "D"))
        page = client.get(f"/invoices/{invoice.id}")
        text = page.get_data(as_text=True)
        assert "Pay by card" not in text
        assert BANK in text and f"quoting <strong>{invoice.number}</strong>" in text
        assert page.headers["Content-Security-Policy"].endswith("form-action 'self'")
        refused = client.post(f"/invoices/{invoice.id}/pay")
        assert refused.status_code == 409 and "Card payments are not set up" in refused.get_data(as_text=True)
        assert attempts(invoice) == []
    finally:
        app.config["CLUB_BANK_DETAILS"] = saved


def test_with_stripe_the_page_allows_the_checkout_origin_as_a_form_target(client, sign_in, approved,
                                                                         invoices, fake, app):
    sign_in(staff(approved, "D"))
    policy = client.get(f"/invoices/{invoices['D'].id}").headers["Content-Security-Policy"]
    assert "form-action 'self' https://checkout.stripe.com" in policy
    app.config["STRIPE_CHECKOUT_ORIGIN"] = "http://127.0.0.1:8111"
    policy = client.get(f"/invoices/{invoices['D'].id}").headers["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:8111" in policy and "checkout.stripe.com" not in policy


def test_coming_back_from_checkout_thanks_but_marks_nothing_paid(client, sign_in, approved, invoices, fake):
    invoice = invoices["D"]
    sign_in(staff(approved, "D"))
    text = client.get(f"/invoices/{invoice.id}?checkout=success").get_data(as_text=True)
    assert "Thank you — the payment will show here once Stripe confirms it" in text
    assert "$12.82" in text and "Pay by card" in text  # still due, still payable
    assert payments.status_label(invoice) == payments.Status.OPEN
    assert "nothing was charged" in client.get(f"/invoices/{invoice.id}?checkout=cancelled").get_data(
        as_text=True)


def test_a_member_of_another_organisation_gets_404(client, sign_in, auth, approved, invoices, fake):
    invoice = invoices["D"]
    sign_in(staff(approved, "C"))
    assert client.post(f"/invoices/{invoice.id}/pay").status_code == 404
    response = client.post(f"/api/v1/invoices/{invoice.id}/checkout", headers=auth(staff(approved, "C")))
    assert response.status_code == 404
    assert fake.requests == [] and attempts(invoice) == []


def test_administrators_do_not_pay_nor_see_the_button(client, sign_in, admin, approved, invoices, fake):
    invoice = invoices["D"]
    sign_in(admin)
    assert "Pay by card" not in client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert client.post(f"/invoices/{invoice.id}/pay").status_code == 403
    assert fake.requests == []


def test_void_or_paid_invoices_are_refused_with_409(client, auth, approved, invoices, fake):
    paid, void = invoices["D"], invoices["C"]
    payments.record_payment(approved.finance, paid.id, "cheque", "CHQ-1", utcnow().date(),
                            payments.balance_due(paid))
    credit_notes.void_invoice(approved.finance, void.id, "Issued to the wrong programme")
    headers = auth(staff(approved, "D"))
    response = client.post(f"/api/v1/invoices/{paid.id}/checkout", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == f"Invoice {paid.number} is paid: nothing is due on it."
    response = client.post(f"/api/v1/invoices/{void.id}/checkout", headers=auth(staff(approved, "C")))
    assert response.status_code == 409 and "is void" in response.get_json()["error"]["message"]
    assert fake.requests == []


def test_the_api_returns_the_checkout_url_and_reuses_it(client, auth, finance, approved, invoices, fake):
    invoice = invoices["B"]
    due = payments.balance_due(invoice)
    response = client.post(f"/api/v1/invoices/{invoice.id}/checkout", headers=auth(staff(approved, "B")))
    assert response.status_code == 201
    body = response.get_json()
    [attempt] = attempts(invoice)
    assert body == {"url": attempt.url, "session_id": attempt.session_id, "attempt": 1,
                    "amount": f"{due:.2f}"}
    assert body["url"].startswith("https://checkout.stripe.com/c/pay/cs_")
    again = client.post(f"/api/v1/invoices/{invoice.id}/checkout", headers=auth(finance))
    assert again.status_code == 200 and again.get_json() == body
    assert len(fake.of("POST", SESSIONS)) == 1


def test_public_url_names_the_return_pages(session, app, approved, invoices, fake):
    app.config["PUBLIC_URL"], saved = "https://club.example.org", app.config.get("PUBLIC_URL")
    try:
        checkout.start_checkout(approved.finance, invoices["A"].id)
    finally:
        app.config["PUBLIC_URL"] = saved
    [sent] = fake.of("POST", SESSIONS)
    assert sent.form["success_url"] == f"https://club.example.org/invoices/{invoices['A'].id}?checkout=success"


def test_a_stripe_failure_says_so_and_writes_nothing(client, sign_in, auth, approved, invoices, fake):
    invoice = invoices["D"]
    fake.fail_with = (400, "invalid_request_error", "Amount must convert to at least 50 cents.")
    sign_in(staff(approved, "D"))
    headers = auth(staff(approved, "D"))
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    response = client.post(f"/api/v1/invoices/{invoice.id}/checkout", headers=headers)
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "stripe_error" and "Amount must convert to at least 50 cents" in error["message"]
    fake.fail_with = (500, "api_error", "Something went wrong")
    page = client.post(f"/invoices/{invoice.id}/pay")
    assert page.status_code == 502 and "Stripe could not be reached" in page.get_data(as_text=True)
    assert attempts(invoice) == []
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before


@pytest.mark.postgres_only
def test_two_clicks_at_once_make_one_session(committing_db):
    """Two requests racing: the invoice's row lock serves them in turn; the second reuses the first's."""
    app = committing_db
    invoice_id, staff_id = one_issued_invoice()
    db.session.commit()
    fake = FakeStripe()
    barrier = threading.Barrier(2)
    urls: list[str] = []

    def pay() -> None:
        with app.app_context():
            barrier.wait()
            started = checkout.start_checkout(Actor.for_user(db.session.get(User, staff_id)), invoice_id)
            urls.append(started.url)
            db.session.commit()
            db.session.remove()

    with stripe_configured(app, STRIPE_HTTP_CLIENT=fake):
        threads = [threading.Thread(target=pay) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(urls) == 2 and urls[0] == urls[1]
    assert len(fake.of("POST", SESSIONS)) == 1
    assert db.session.scalar(select(func.count()).select_from(CheckoutAttempt)) == 1
