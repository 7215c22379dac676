"""Invoice pages: finance issues, lists, records payments, credits and voids; members see their own."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from buyersclub.db import db, utcnow
from invoices.models import CreditNote, Invoice, InvoiceStatus, Payment, Refund
from invoices.services import credit_notes, payments
from tests.invoices.conftest import issue_all

YEAR = utcnow().year


issued = issue_all


def test_finance_issues_a_round_s_invoices_from_its_page(client, sign_in, finance, approved):
    sign_in(finance)
    page = client.get(f"/rounds/{approved.round.id}/invoices")
    assert page.status_code == 200 and "Issue invoices" in page.get_data(as_text=True)
    response = client.post(f"/rounds/{approved.round.id}/invoices", data={}, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"4 invoices issued: INV-{YEAR}-00001 to INV-{YEAR}-00004" in text
    assert "Programme Alder" in text and "$19,328.20" in text


def test_issuing_before_the_run_is_refused_with_the_reason(client, sign_in, finance, example):
    sign_in(finance)
    response = client.post(f"/rounds/{example.round.id}/invoices", data={})
    assert response.status_code == 409 and "subsidy run is not approved" in response.get_data(as_text=True)
    response = client.post(f"/rounds/{example.round.id}/invoices", data={"without_subsidy_run": "y"})
    assert response.status_code == 302


def test_the_list_filters_and_the_detail_shows_credits_and_free_goods(client, sign_in, finance, approved):
    invoices = issued(approved)
    sign_in(finance)
    text = client.get("/invoices").get_data(as_text=True)
    assert all(invoice.number in text for invoice in invoices.values())
    text = client.get(f"/invoices?organisation_id={approved.members['C'].id}").get_data(as_text=True)
    assert invoices["C"].number in text and invoices["A"].number not in text
    assert client.get("/invoices?status=nonsense").status_code == 400
    text = client.get(f"/invoices/{invoices['C'].id}").get_data(as_text=True)
    assert "Subsidy from the club fund: naloxone" in text and "-$4,320.00" in text
    assert "supplied free by the club fund, value $372.00" in text
    assert "Record a payment" in text and "Void" in text


def test_recording_a_payment_with_an_over_payment(client, sign_in, finance, approved):
    invoice = issued(approved)["D"]
    sign_in(finance)
    form = client.get(f"/invoices/{invoice.id}/payments/new").get_data(as_text=True)
    assert 'value="12.82"' in form
    bad = client.post(f"/invoices/{invoice.id}/payments/new", data={
        "method": "cheque", "reference": "CHQ-4", "received_on": utcnow().date().isoformat(),
        "amount": "abc"})
    assert bad.status_code == 400 and "is not an amount" in bad.get_data(as_text=True)
    response = client.post(f"/invoices/{invoice.id}/payments/new", data={
        "method": "cheque", "reference": "CHQ-4", "received_on": utcnow().date().isoformat(),
        "amount": "20.00"}, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "7.18 is now the member&#39;s account credit" in text and "paid" in text
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_credit_note_needs_a_reason_and_a_confirmation(client, sign_in, finance, approved):
    invoice = issued(approved)["A"]
    sign_in(finance)
    missing = client.post(f"/invoices/{invoice.id}/credit-notes/new", data={"amount": "10.00"})
    assert missing.status_code == 400 and "Give the reason" in missing.get_data(as_text=True)
    review = client.post(f"/invoices/{invoice.id}/credit-notes/new",
                         data={"reason": "Late", "amount": "10.00"})
    assert review.status_code == 200 and "Issue the credit note" in review.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(CreditNote)) == 0
    done = client.post(f"/invoices/{invoice.id}/credit-notes/new", follow_redirects=True,
                       data={"reason": "Late", "amount": "10.00", "confirmed": "yes"})
    assert f"Credit note CN-{YEAR}-00001 for 10.00 issued" in done.get_data(as_text=True)


def test_void_needs_the_box_ticked(client, sign_in, finance, approved):
    invoice = issued(approved)["B"]
    sign_in(finance)
    refused = client.post(f"/invoices/{invoice.id}/void", data={"reason": "Wrong member"})
    assert refused.status_code == 400 and "Tick the box" in refused.get_data(as_text=True)
    done = client.post(f"/invoices/{invoice.id}/void", data={"reason": "Wrong member", "confirm": "y"},
                       follow_redirects=True)
    assert "is void" in done.get_data(as_text=True)
    assert db.session.get(Invoice, invoice.id).status == InvoiceStatus.VOID


def test_members_see_my_invoices_and_only_their_own(client, sign_in, approved):
    invoices = issued(approved)
    sign_in(approved.members["A"].staff[0])
    text = client.get("/invoices").get_data(as_text=True)
    assert "My invoices" in text and invoices["A"].number in text and invoices["B"].number not in text
    assert client.get(f"/invoices/{invoices['A'].id}").status_code == 200
    other = client.get(f"/invoices/{invoices['B'].id}")
    assert other.status_code == 404 and "Birch" not in other.get_data(as_text=True)
    assert "Record a payment" not in client.get(f"/invoices/{invoices['A'].id}").get_data(as_text=True)
    for path in (f"/invoices/{invoices['A'].id}/payments/new", f"/invoices/{invoices['A'].id}/void",
                 f"/rounds/{approved.round.id}/invoices"):
        assert client.get(path).status_code == 403


def test_finance_refunds_a_payment_from_its_invoice_with_a_reason_and_a_confirmation(
        client, sign_in, finance, member, approved):
    invoice = issued(approved)["D"]
    sign_in(finance)
    client.post(f"/invoices/{invoice.id}/payments/new", data={
        "method": "bank_transfer", "reference": "BT-77", "received_on": utcnow().date().isoformat(),
        "amount": "20.00"})
    payment = db.session.scalars(select(Payment)).one()
    detail = client.get(f"/invoices/{invoice.id}").get_data(as_text=True)
    assert f'href="/payments/{payment.id}/refund"' in detail

    form = client.get(f"/payments/{payment.id}/refund").get_data(as_text=True)
    assert "Left to refund</dt><dd><strong>$20.00" in form and "($7.18)" in form
    unconfirmed = client.post(f"/payments/{payment.id}/refund", data={"amount": "5.00", "reason": "Twice"})
    assert unconfirmed.status_code == 400 and "Tick the box to confirm." in unconfirmed.get_data(as_text=True)
    too_much = client.post(f"/payments/{payment.id}/refund",
                           data={"amount": "25.00", "reason": "Twice", "confirm": "y"})
    assert too_much.status_code == 409
    assert "Only 20.00 of this payment is left" in too_much.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0

    done = client.post(f"/payments/{payment.id}/refund", follow_redirects=True,
                       data={"amount": "10.00", "reason": "Paid twice by mistake", "confirm": "y"})
    text = done.get_data(as_text=True)
    assert "Refund of 10.00 recorded." in text and "$10.00" in text
    assert payments.balance_due(invoice) == Decimal("2.82")  # 7.18 from credit, 2.82 due again

    client.post("/sign-out")
    sign_in(member)
    assert client.get(f"/payments/{payment.id}/refund").status_code == 403


def test_the_issue_button_shows_only_while_a_member_has_no_invoice(client, sign_in, finance, approved):
    sign_in(finance)
    url = f"/rounds/{approved.round.id}/invoices"
    before = client.get(url).get_data(as_text=True)
    assert "4 members are allocated units with no invoice for this round yet" in before
    invoices = issued(approved)
    db.session.commit()
    after = client.get(url).get_data(as_text=True)
    assert "Issue invoices</button>" not in after and "Every member allocated units has an invoice" in after
    credit_notes.void_invoice(approved.finance, invoices["B"].id, "Issued to the wrong address")
    db.session.commit()
    voided = client.get(url).get_data(as_text=True)
    assert "1 member is allocated units with no invoice for this round yet" in voided
    assert "Issue invoices</button>" in voided


def test_a_round_s_invoices_are_paged_and_its_total_counts_them_all(client, sign_in, finance, approved,
                                                                     monkeypatch):
    invoices = issued(approved)
    db.session.commit()
    monkeypatch.setattr("invoices.views.PER_PAGE", 3)
    sign_in(finance)
    total = sum((invoice.total for invoice in invoices.values()), Decimal("0.00"))
    first = client.get(f"/rounds/{approved.round.id}/invoices").get_data(as_text=True)
    assert "Page 1 of 2" in first and f"${total:,.2f}" in first
    assert f"INV-{YEAR}-00003" in first and f"INV-{YEAR}-00004" not in first
    second = client.get(f"/rounds/{approved.round.id}/invoices?page=2").get_data(as_text=True)
    assert f"INV-{YEAR}-00004" in second and f"INV-{YEAR}-00001<" not in second
