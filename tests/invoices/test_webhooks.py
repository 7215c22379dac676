"""Stripe's webhook: signatures, paying once whatever Stripe repeats or reorders, amounts that differ,
refunds made in Stripe, and books that agree with the invoices afterwards."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.ledger.services import trial_balance
from buyersclub.money import from_cents
from invoices.models import (
    CheckoutAttempt,
    CheckoutStatus,
    Invoice,
    Payment,
    PaymentMethod,
    Refund,
    StripeEvent,
)
from invoices.services import checkout, credit_notes, issuing, payments, statements
from invoices.services.periods import default_period
from tests.invoices.conftest import issue_all, receivable_movements
from tests.invoices.stripe_helpers import (
    async_payment_event,
    charge_refunded_event,
    checkout_completed_event,
    event,
    one_issued_invoice,
    post_event,
    refund,
    sign,
    stripe_configured,
)

D = Decimal


@pytest.fixture
def invoices(approved, fake):
    return issue_all(approved)


def started(approved, invoice: Invoice) -> CheckoutAttempt:
    """The member pressed "Pay by card": a session exists for the balance due."""
    return checkout.start_checkout(approved.finance, invoice.id).attempt


def card_payments(invoice: Invoice) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id,
                                                         Payment.method == PaymentMethod.CARD)))


def posted(entry_id: int) -> dict[str, Decimal]:
    """An entry's postings summed by account code (debits positive)."""
    sums: dict[str, Decimal] = defaultdict(lambda: D("0.00"))
    for code, amount in db.session.execute(select(LedgerAccount.code, Posting.amount).join(LedgerAccount)
                                           .where(Posting.entry_id == entry_id)):
        sums[code] += amount
    return dict(sums)


def audit_actions(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def assert_books_agree(approved, invoices: dict[str, Invoice]) -> None:
    """The ledger balances, and each member's receivable is what its invoice still asks for."""
    db.session.expire_all()
    assert trial_balance().balanced
    for key, invoice in invoices.items():
        assert receivable_movements(invoice.organisation_id) == payments.balance_due(invoice), key


def ok(response, text: str = "") -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    outcome = response.get_json()["outcome"]
    assert text in outcome
    return outcome


# --- Signatures -------------------------------------------------------------------------------------


def test_unsigned_wrongly_signed_or_altered_events_are_refused(client, approved, invoices):
    invoice = invoices["D"]
    payload = checkout_completed_event(invoice, 1282)
    assert post_event(client, payload, secret="whsec_someone_else").status_code == 400
    assert post_event(client, payload, signature="").status_code == 400
    body = '{"id": "evt_x", "type": "checkout.session.completed"}'
    forged = client.post("/stripe/webhook", data=body.replace("evt_x", "evt_y"),
                         content_type="application/json", headers={"Stripe-Signature": sign(body)})
    assert forged.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0
    assert card_payments(invoice) == []


def test_a_stale_signature_is_refused(client, approved, invoices):
    payload = checkout_completed_event(invoices["D"], 1282)
    response = post_event(client, payload, timestamp=int(time.time()) - 600)
    assert response.status_code == 400 and "Signature refused" in response.get_json()["error"]
    assert card_payments(invoices["D"]) == []
    ok(post_event(client, payload, timestamp=int(time.time()) - 60), "paid")


def test_without_a_signing_secret_webhooks_are_unavailable(client, app, approved, invoices):
    app.config["STRIPE_WEBHOOK_SECRET"] = None
    response = post_event(client, checkout_completed_event(invoices["D"], 1282))
    assert response.status_code == 503
    assert card_payments(invoices["D"]) == []


def test_the_webhook_needs_no_csrf_token_or_sign_in(app, approved, invoices):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        with app.test_client() as anonymous:
            ok(post_event(anonymous, checkout_completed_event(invoices["D"], 1282)), "paid")
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


# --- Paying -----------------------------------------------------------------------------------------


def test_a_completed_checkout_pays_the_invoice_once(client, sign_in, approved, invoices):
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    completed = checkout_completed_event(invoice, 1282, session_id=attempt.session_id, payment_intent="pi_d1")

    ok(post_event(client, completed), f"paid 12.82 on {invoice.number}")

    [payment] = card_payments(invoice)
    assert (payment.amount, payment.applied) == (D("12.82"), D("12.82"))
    assert (payment.stripe_payment_intent, payment.stripe_checkout_session) == ("pi_d1", attempt.session_id)
    assert posted(payment.journal_entry_id) == {chart.STRIPE_CLEARING: D("12.82"),
                                                chart.RECEIVABLES: D("-12.82")}
    assert payments.status_label(invoice) == payments.Status.PAID
    db.session.refresh(attempt)
    assert (attempt.status, attempt.received_cents, attempt.problem) == (CheckoutStatus.COMPLETED, 1282, None)

    ok(post_event(client, completed), "duplicate")
    again = checkout_completed_event(invoice, 1282, session_id=attempt.session_id, payment_intent="pi_d1")
    ok(post_event(client, again), "already recorded")
    assert len(card_payments(invoice)) == 1
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 2
    sign_in(approved.members["D"].staff[0])
    page = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert "Pay by card" not in page and "Stripe pi_d1" in page
    assert_books_agree(approved, invoices)


def test_a_bank_debit_waits_then_pays_and_late_events_undo_nothing(client, approved, invoices):
    invoice = invoices["B"]
    attempt = started(approved, invoice)
    cents = attempt.amount_cents
    ids = {"session_id": attempt.session_id, "payment_intent": "pi_b1"}

    unpaid = checkout_completed_event(invoice, cents, payment_status="unpaid", **ids)
    ok(post_event(client, unpaid), "waiting")
    db.session.refresh(attempt)
    assert attempt.status == CheckoutStatus.PENDING and card_payments(invoice) == []

    ok(post_event(client, async_payment_event(invoice, cents, **ids)), "paid")
    # Stripe delivers the earlier "completed, unpaid" again, and a stray "failed": the payment stands.
    ok(post_event(client, checkout_completed_event(invoice, cents, payment_status="unpaid", **ids)),
       "already paid")
    ok(post_event(client, async_payment_event(invoice, cents, succeeded=False, **ids)), "already paid")
    db.session.refresh(attempt)
    assert attempt.status == CheckoutStatus.COMPLETED
    assert [payment.amount for payment in card_payments(invoice)] == [payments.settlement(invoice).total]
    assert payments.balance_due(invoice) == 0
    assert_books_agree(approved, invoices)


def test_async_success_before_completed_pays_once(client, approved, invoices):
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    ids = {"session_id": attempt.session_id, "payment_intent": "pi_d2"}
    ok(post_event(client, async_payment_event(invoice, 1282, **ids)), "paid")
    ok(post_event(client, checkout_completed_event(invoice, 1282, **ids)), "already recorded")
    assert len(card_payments(invoice)) == 1 and payments.balance_due(invoice) == 0
    assert_books_agree(approved, invoices)


def test_a_failed_bank_debit_posts_nothing_and_is_audited(client, approved, invoices):
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    ids = {"session_id": attempt.session_id, "payment_intent": "pi_d3"}
    ok(post_event(client, checkout_completed_event(invoice, 1282, payment_status="unpaid", **ids)), "waiting")
    entries = db.session.scalar(select(func.count()).select_from(Posting))

    ok(post_event(client, async_payment_event(invoice, 1282, succeeded=False, **ids)), "nothing posted")

    db.session.refresh(attempt)
    assert attempt.status == CheckoutStatus.FAILED and attempt.closed_at is not None
    assert card_payments(invoice) == [] and payments.balance_due(invoice) == D("12.82")
    assert db.session.scalar(select(func.count()).select_from(Posting)) == entries
    [failed] = audit_actions("checkout.failed")
    assert failed.entity_id == invoice.id
    # The member may try again: a new attempt, not the failed one.
    assert checkout.start_checkout(approved.finance, invoice.id).attempt.attempt == 2


# --- Amounts that differ ----------------------------------------------------------------------------


def test_paying_more_than_due_becomes_account_credit_and_finance_is_told(client, sign_in, finance, approved,
                                                                         invoices):
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    ok(post_event(client, checkout_completed_event(invoice, 2000, session_id=attempt.session_id)),
       "became the member's account credit")

    [payment] = card_payments(invoice)
    assert (payment.amount, payment.applied) == (D("20.00"), D("12.82"))
    assert posted(payment.journal_entry_id) == {
        chart.STRIPE_CLEARING: D("20.00"), chart.RECEIVABLES: D("-12.82"), chart.MEMBER_CREDIT: D("-7.18")}
    assert issuing.member_credit(invoice.organisation_id) == D("7.18")
    db.session.refresh(attempt)
    assert "Stripe received $20.00 where the payment page asked for $12.82" in attempt.problem
    [mismatch] = audit_actions("checkout.amount_mismatch")
    assert (mismatch.entity_id, mismatch.after["received"], mismatch.after["balance_due"]) == (
        invoice.id, "20.00", "12.82")

    sign_in(approved.members["D"].staff[0])
    assert "Card payments to check" not in client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    client.post("/sign-out")
    sign_in(finance)
    page = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert "Card payments to check" in page and "$7.18 became the member&#39;s account credit" in page
    assert_books_agree(approved, invoices)


def test_paying_less_than_due_leaves_the_rest_due(client, approved, invoices):
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    ok(post_event(client, checkout_completed_event(invoice, 1000, session_id=attempt.session_id)),
       "$2.82 is still due")
    assert payments.balance_due(invoice) == D("2.82")
    assert payments.status_label(invoice) == payments.Status.PARTLY_PAID
    assert len(audit_actions("checkout.amount_mismatch")) == 1
    # The next "Pay by card" asks for the rest, on a new session.
    again = checkout.start_checkout(approved.finance, invoice.id).attempt
    assert (again.attempt, again.amount_cents) == (2, 282)
    assert_books_agree(approved, invoices)


def test_an_old_session_paid_after_the_balance_changed_is_credit(client, approved, invoices):
    """A payment recorded by finance meanwhile: the session's full amount arrives anyway."""
    invoice = invoices["D"]
    attempt = started(approved, invoice)
    payments.record_payment(approved.finance, invoice.id, "cheque", "CHQ-9", invoice.issued_on, "12.82")
    ok(post_event(client, checkout_completed_event(invoice, 1282, session_id=attempt.session_id)),
       "The balance due was $0.00: $12.82 became the member's account credit.")
    assert issuing.member_credit(invoice.organisation_id) == D("12.82")
    assert_books_agree(approved, invoices)


def test_money_for_a_void_invoice_becomes_account_credit(client, approved, invoices):
    invoice = invoices["C"]
    attempt = started(approved, invoice)
    credit_notes.void_invoice(approved.finance, invoice.id, "Issued to the wrong programme")
    ok(post_event(client, checkout_completed_event(invoice, attempt.amount_cents,
                                                   session_id=attempt.session_id)), "was void")
    [payment] = card_payments(invoice)
    assert payment.applied == 0 and payment.amount == D(attempt.amount_cents) / 100
    assert issuing.member_credit(invoice.organisation_id) >= payment.amount
    assert posted(payment.journal_entry_id) == {chart.STRIPE_CLEARING: payment.amount,
                                                chart.MEMBER_CREDIT: -payment.amount}
    assert_books_agree(approved, invoices)


def test_a_session_this_site_has_no_record_of_is_still_paid(client, approved, invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 1282, session_id="cs_lost")), "paid")
    [attempt] = checkout.attempts_for(invoice)
    assert (attempt.session_id, attempt.status) == ("cs_lost", CheckoutStatus.COMPLETED)
    assert "no record" in attempt.problem and payments.balance_due(invoice) == 0


# --- Refunds ----------------------------------------------------------------------------------------


def test_refunds_made_in_stripe_are_recorded_once_each(client, approved, invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 2000, payment_intent="pi_r1")), "paid")
    [payment] = card_payments(invoice)
    first = refund(500, refund_id="re_1", payment_intent="pi_r1")

    ok(post_event(client, charge_refunded_event("pi_r1", 2000, [first])), "recorded 1 refund")

    [recorded] = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert (recorded.amount, recorded.stripe_refund) == (D("5.00"), "re_1")
    # Excess first: 7.18 of the 20.00 was account credit, so this 5.00 comes out of it.
    assert posted(recorded.journal_entry_id) == {chart.MEMBER_CREDIT: D("5.00"),
                                                 chart.STRIPE_CLEARING: D("-5.00")}
    second = refund(1000, refund_id="re_2", payment_intent="pi_r1")
    failed = refund(300, refund_id="re_3", payment_intent="pi_r1", status="failed")
    ok(post_event(client, charge_refunded_event("pi_r1", 2000, [first, second, failed])), "re_2")
    ok(post_event(client, charge_refunded_event("pi_r1", 2000, [first, second])), "nothing to do")
    refunds = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)
                                 .order_by(Refund.id)).all()
    assert [(each.stripe_refund, each.amount) for each in refunds] == [
        ("re_1", D("5.00")), ("re_2", D("10.00"))]
    # 2.18 of the 10.00 was the rest of the credit; 7.82 comes off the invoice, which is due again.
    assert posted(refunds[1].journal_entry_id) == {
        chart.MEMBER_CREDIT: D("2.18"), chart.RECEIVABLES: D("7.82"), chart.STRIPE_CLEARING: D("-10.00")}
    assert payments.balance_due(invoice) == D("7.82")
    assert_books_agree(approved, invoices)


def test_a_refund_before_its_payment_is_known_is_sent_again_later(client, approved, invoices):
    invoice = invoices["D"]
    early = charge_refunded_event("pi_late", 1282, [refund(1282, refund_id="re_late")])
    response = post_event(client, early)
    assert response.status_code == 409 and "not recorded yet" in response.get_json()["error"]
    assert db.session.get(StripeEvent, early["id"]) is None
    ok(post_event(client, checkout_completed_event(invoice, 1282, payment_intent="pi_late")), "paid")
    ok(post_event(client, early), "recorded 1 refund")  # Stripe's retry
    assert payments.balance_due(invoice) == D("12.82")
    assert_books_agree(approved, invoices)


def test_refunds_left_out_of_the_event_are_fetched_from_stripe(client, approved, invoices, fake):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 1282, payment_intent="pi_f1")), "paid")
    fake.refunds.append(refund(282, refund_id="re_f1", payment_intent="pi_f1"))
    charge = charge_refunded_event("pi_f1", 1282, None, charge_id="ch_f1")
    charge["data"]["object"]["amount_refunded"] = 282
    ok(post_event(client, charge), "re_f1")
    [listed] = fake.of("GET", "/v1/refunds")
    assert listed.query["charge"] == "ch_f1"
    assert payments.balance_due(invoice) == D("2.82")


def refund_failed_event(stripe_refund: dict, *, type_: str = "charge.refund.updated",
                        failure_reason: str = "expired_or_canceled_card") -> dict:
    return event(type_, {**stripe_refund, "status": "failed", "failure_reason": failure_reason})


def test_a_refund_that_fails_is_reversed_once_and_finance_is_told(client, sign_in, finance, approved,
                                                                  invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 2000, payment_intent="pi_rf")), "paid")
    first = refund(500, refund_id="re_f_1", payment_intent="pi_rf")
    second = refund(1000, refund_id="re_f_2", payment_intent="pi_rf")
    ok(post_event(client, charge_refunded_event("pi_rf", 2000, [first, second])), "recorded 2 refund(s)")
    assert payments.balance_due(invoice) == D("7.82")  # 7.18 of the 15.00 was account credit

    failure = refund_failed_event(first)
    ok(post_event(client, failure), "failed: its entry is reversed")

    failed = db.session.scalar(select(Refund).where(Refund.stripe_refund == "re_f_1"))
    assert failed.failed_at is not None and "expired_or_canceled_card" in failed.failure_reason
    # The 10.00 refund that stands now takes all 7.18 of the excess, so the 5.00 that came back is
    # what the member had paid on the invoice: 2.82 is due, not 7.82.
    assert posted(failed.failure_entry_id) == {chart.STRIPE_CLEARING: D("5.00"),
                                                chart.RECEIVABLES: D("-5.00")}
    assert payments.balance_due(invoice) == D("2.82")
    assert payments.refunded_of(db.session.get(Payment, failed.payment_id)) == D("10.00")
    assert_books_agree(approved, invoices)

    ok(post_event(client, failure), "duplicate")
    ok(post_event(client, refund_failed_event(first, type_="refund.failed")), "already marked failed")
    assert len(audit_actions("payment.refund_failed")) == 1
    assert db.session.scalar(select(func.count(Posting.id)).where(
        Posting.entry_id == failed.failure_entry_id)) == 2
    assert_books_agree(approved, invoices)

    sign_in(approved.members["D"].staff[0])
    assert "Refunds that failed" not in client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    client.post("/sign-out")
    sign_in(finance)
    page = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert "Refunds that failed" in page and f"Refund #{failed.id} of $5.00 (re_f_1) failed" in page

    found = statements.statement_for(approved.finance, invoice.organisation_id, default_period())
    assert found.agrees
    kinds = [line.kind for line in found.lines]
    assert kinds[-3:] == ["refund", "refund", "refund_failed"]
    assert found.lines[-1].balance == payments.balance_due(invoice)


def test_a_failed_refund_of_account_credit_gives_the_credit_back(client, approved, invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 2000, payment_intent="pi_rc")), "paid")
    made = refund(500, refund_id="re_c_1", payment_intent="pi_rc")
    ok(post_event(client, charge_refunded_event("pi_rc", 2000, [made])), "re_c_1")
    assert issuing.member_credit(invoice.organisation_id) == D("2.18")

    ok(post_event(client, refund_failed_event(made, failure_reason="lost_or_stolen_card")), "reversed")
    failed = db.session.scalar(select(Refund).where(Refund.stripe_refund == "re_c_1"))
    assert posted(failed.failure_entry_id) == {chart.STRIPE_CLEARING: D("5.00"),
                                                chart.MEMBER_CREDIT: D("-5.00")}
    assert issuing.member_credit(invoice.organisation_id) == D("7.18")
    assert payments.balance_due(invoice) == D("0.00")
    assert statements.statement_for(approved.finance, invoice.organisation_id, default_period()).agrees
    assert_books_agree(approved, invoices)


def test_a_refund_that_failed_before_it_was_recorded_is_never_recorded(client, approved, invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 1282, payment_intent="pi_rn")), "paid")
    gone = refund(1282, refund_id="re_n_1", payment_intent="pi_rn")
    ok(post_event(client, refund_failed_event(gone, type_="refund.failed")), "nothing was posted")
    # A late copy of charge.refunded that still lists the refund as pending records nothing.
    ok(post_event(client, charge_refunded_event("pi_rn", 1282, [{**gone, "status": "pending"}])),
       "nothing to do")
    [row] = db.session.scalars(select(Refund).where(Refund.stripe_refund == "re_n_1")).all()
    assert row.failed_at is not None and row.journal_entry_id is None and row.failure_entry_id is None
    assert payments.balance_due(invoice) == D("0.00")
    assert_books_agree(approved, invoices)


def test_refund_updates_that_are_not_failures_change_nothing(client, approved, invoices):
    invoice = invoices["D"]
    ok(post_event(client, checkout_completed_event(invoice, 1282, payment_intent="pi_ru")), "paid")
    made = refund(282, refund_id="re_u_1", payment_intent="pi_ru", status="pending")
    ok(post_event(client, charge_refunded_event("pi_ru", 1282, [made])), "re_u_1")
    ok(post_event(client, event("charge.refund.updated", {**made, "status": "succeeded"})),
       "nothing to do: the refund is succeeded")
    ok(post_event(client, refund_failed_event(refund(100, payment_intent="pi_elsewhere"))),
       "ignored: a refund of a payment the club has no record of")
    assert payments.balance_due(invoice) == D("2.82")
    assert_books_agree(approved, invoices)


# --- Everything else --------------------------------------------------------------------------------


def test_unknown_events_and_others_sessions_are_stored_as_ignored(client, approved, invoices):
    unknown = event("customer.created", {"id": "cus_1", "object": "customer"})
    ok(post_event(client, unknown), "ignored")
    foreign = checkout_completed_event(invoices["D"], 1282)
    session = foreign["data"]["object"]
    session["client_reference_id"], session["metadata"] = None, {}
    ok(post_event(client, foreign), "ignored")
    outcomes = dict(db.session.execute(select(StripeEvent.id, StripeEvent.outcome)).all())
    assert outcomes[unknown["id"]].startswith("ignored") and outcomes[foreign["id"]].startswith("ignored")
    assert card_payments(invoices["D"]) == []


# --- Concurrency (PostgreSQL, real commits) ---------------------------------------------------------


def deliver_at_once(app, events: list[dict]) -> list[int]:
    """Each event from its own thread, all released together; a refused delivery is retried once, as
    Stripe would. Returns the final statuses."""
    barrier = threading.Barrier(len(events))
    statuses: list[int] = []

    def deliver(payload) -> None:
        client = app.test_client()
        barrier.wait()
        response = post_event(client, payload)
        if response.status_code != 200:  # Stripe's retry
            response = post_event(client, payload)
        statuses.append(response.status_code)

    with stripe_configured(app):
        threads = [threading.Thread(target=deliver, args=(payload,)) for payload in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return statuses


def committed_invoice() -> tuple[Invoice, Decimal]:
    """One issued invoice, committed for every connection to see, and its balance due."""
    invoice_id, _ = one_issued_invoice()
    db.session.commit()
    invoice = db.session.get(Invoice, invoice_id)
    return invoice, payments.balance_due(invoice)


@pytest.mark.postgres_only
def test_concurrent_duplicates_pay_once(committing_db):
    app = committing_db
    invoice, due = committed_invoice()
    invoice_id, cents = invoice.id, int(due * 100)
    same = checkout_completed_event(invoice, cents, payment_intent="pi_race", session_id="cs_race")
    # Four copies of one event, and the same payment under two other event ids.
    ids = {"payment_intent": "pi_race", "session_id": "cs_race"}
    events = [same] * 4 + [checkout_completed_event(invoice, cents, **ids),
                           async_payment_event(invoice, cents, **ids)]
    assert deliver_at_once(app, events) == [200] * len(events)
    db.session.expire_all()
    [payment] = db.session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
    assert payment.amount == payment.applied == due
    assert payments.balance_due(db.session.get(Invoice, invoice_id)) == 0
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 3
    assert trial_balance().balanced


@pytest.mark.postgres_only
def test_concurrent_news_of_one_failed_refund_reverse_it_once(committing_db):
    app = committing_db
    invoice, due = committed_invoice()
    invoice_id, cents = invoice.id, int(due * 100)
    made = refund(cents // 2, refund_id="re_race", payment_intent="pi_refund_race")
    with stripe_configured(app):
        client = app.test_client()
        paid = checkout_completed_event(invoice, cents, payment_intent="pi_refund_race")
        ok(post_event(client, paid), "paid")
        ok(post_event(client, charge_refunded_event("pi_refund_race", cents, [made])), "re_race")
    db.session.expire_all()
    assert payments.balance_due(db.session.get(Invoice, invoice_id)) == from_cents(cents // 2)

    # Three copies of one event, and the same failure under the two other event types.
    same = refund_failed_event(made)
    events = [same] * 3 + [refund_failed_event(made, type_="refund.failed"),
                           refund_failed_event(made, type_="refund.updated")]
    assert deliver_at_once(app, events) == [200] * len(events)
    db.session.expire_all()
    failed = db.session.scalar(select(Refund).where(Refund.stripe_refund == "re_race"))
    assert failed.failed_at is not None and failed.failure_entry_id is not None
    reversals = db.session.scalar(select(func.count(JournalEntry.id)).where(
        JournalEntry.source_type == "refund_failure", JournalEntry.source_id == failed.id))
    assert reversals == 1
    assert payments.balance_due(db.session.get(Invoice, invoice_id)) == 0
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 2 + 3
    assert trial_balance().balanced
