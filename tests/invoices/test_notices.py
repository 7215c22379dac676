"""Notices of new invoices: each member's staff are told once, by the issuing command or the next
``send-reminders``, with what is due and how to pay."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from buyersclub import mail
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db, utcnow
from invoices.models import Invoice
from invoices.services import credit_notes, payments, reminders
from tests.invoices.conftest import issue_all

BANK = "Harm Reduction Credit Union\nAccount 12345678, routing 021000021"


@pytest.fixture
def issued(app, approved):
    saved = app.config.get("CLUB_BANK_DETAILS")
    app.config["CLUB_BANK_DETAILS"] = BANK
    invoices = issue_all(approved)
    db.session.commit()
    yield invoices
    app.config["CLUB_BANK_DETAILS"] = saved


def send(approved, **options) -> reminders.Summary:
    return reminders.send_notices(approved.finance, commit=db.session.commit, **options)


def messages() -> dict[str, tuple[str, str]]:
    return {message["To"]: (message["Subject"], message.get_content()) for message in mail.outbox()}


def test_each_new_invoice_is_told_once_with_what_is_due_and_how_to_pay(app, approved, issued):
    a, c = issued["A"], issued["C"]
    payments.record_payment(approved.finance, c.id, "cheque", "CHQ-9", utcnow().date(),
                            payments.balance_due(c))  # paid before its notice went
    db.session.commit()
    summary = send(approved)
    assert sorted(r.number for r in summary.reminders if r.outcome == reminders.SENT) == sorted(
        invoice.number for invoice in issued.values())
    club = app.config["CLUB_NAME"]
    found = messages()
    subject, body = found["staff@alder.test"]
    assert subject == f"Invoice {a.number} from {club}: ${a.total:,.2f} due by {a.due_on.isoformat()}"
    assert f"Balance due: ${a.total:,.2f}, by {a.due_on.isoformat()}" in body
    assert f"http://club.test/invoices/{a.id}" in body and "Account 12345678, routing 021000021" in body
    assert "for the round" in body and approved.round.name in body
    # Cedar has paid already: it is told so, with nothing to pay.
    subject, body = found["staff@cedar.test"]
    assert subject.endswith(": nothing to pay") and "Nothing is due on it" in body
    assert "bank transfer" not in body

    assert send(approved).reminders == [] and len(mail.outbox()) == 4  # never twice
    db.session.expire_all()
    assert all(db.session.get(Invoice, invoice.id).notified_at is not None for invoice in issued.values())
    told = db.session.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "invoice.notice_sent"))
    assert sorted(told) == sorted(invoice.id for invoice in issued.values())


def test_a_dry_run_tells_nobody_and_a_void_invoice_is_not_told(approved, issued):
    credit_notes.void_invoice(approved.finance, issued["D"].id, "Issued to the wrong programme")
    db.session.commit()
    dry = send(approved, dry_run=True)
    assert [r.outcome for r in dry.reminders] == [reminders.DRY_RUN] * 3
    assert mail.outbox() == []
    db.session.expire_all()
    assert db.session.get(Invoice, issued["A"].id).notified_at is None
    assert issued["D"].number not in {r.number for r in send(approved).reminders}


def test_a_notice_that_cannot_be_delivered_goes_with_the_next_run(app, approved, issued):
    app.config["MAIL_BACKEND"] = "carrier-pigeon"  # not a backend: delivery fails after the commit
    try:
        failed = send(approved)
    finally:
        app.config["MAIL_BACKEND"] = "memory"
    assert failed.failed == 4 and "carrier-pigeon" in failed.reminders[0].problem
    db.session.expire_all()
    assert db.session.get(Invoice, issued["A"].id).notified_at is None
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "invoice.notice_failed")).all()
    assert send(approved).sent == 4 and len(mail.outbox()) == 4


def test_an_organisation_without_staff_is_reported_and_left_to_tell(approved, issued):
    for person in approved.members["B"].staff:
        person.is_active = False
    db.session.commit()
    outcomes = {r.number: r.outcome for r in send(approved).reminders}
    assert outcomes[issued["B"].number] == reminders.NO_RECIPIENTS
    db.session.expire_all()
    assert db.session.get(Invoice, issued["B"].id).notified_at is None


def test_the_issuing_command_tells_the_members_unless_asked_not_to(app, approved):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["issue-invoices", str(approved.round.id), "--no-pdfs", "--no-notices"])
    assert result.exit_code == 0, result.output
    assert mail.outbox() == []

    told = runner.invoke(args=["send-reminders"])
    assert told.exit_code == 0, told.output
    assert "(new invoice)\tsent to 1 person" in told.output
    assert "Sent 4 notices of new invoices and 0 reminders (4 new invoices" in told.output
    assert len(mail.outbox()) == 4


def test_issuing_from_the_command_line_tells_each_member(app, approved):
    result = app.test_cli_runner().invoke(args=["issue-invoices", str(approved.round.id), "--no-pdfs"])
    assert result.exit_code == 0, result.output
    assert "Issued 4 invoices." in result.output
    assert "Sent 4 notices of new invoices (4 new invoices)." in result.output
    assert sorted(messages()) == ["staff@alder.test", "staff@birch.test", "staff@cedar.test",
                                  "staff@dune.test"]


def test_finance_e_mail_a_round_s_members_from_its_invoices_page(client, sign_in, finance, approved):
    client = sign_in(finance)
    issued = client.post(f"/rounds/{approved.round.id}/invoices", follow_redirects=True)
    page = issued.get_data(as_text=True)
    assert "Their members are not e-mailed yet" in page and "4 members have not been e-mailed" in page
    assert mail.outbox() == []

    told = client.post(f"/rounds/{approved.round.id}/invoices/notices", follow_redirects=True)
    page = told.get_data(as_text=True)
    assert told.status_code == 200 and "4 members e-mailed their invoice." in page
    assert "E-mail them now" not in page
    assert len(mail.outbox()) == 4


def test_members_cannot_send_the_notices(client, sign_in, approved, issued):
    client = sign_in(approved.members["A"].staff[0])
    assert client.post(f"/rounds/{approved.round.id}/invoices/notices").status_code == 403
    assert mail.outbox() == []


def test_the_api_sends_a_round_s_notices_once_and_shows_when(client, auth, finance, approved, issued):
    url = f"/api/v1/rounds/{approved.round.id}/invoices/notices"
    assert client.post(url, headers=auth(approved.members["A"].staff[0])).status_code == 403

    first = client.post(url, headers=auth(finance))
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["sent"] == 4 and {n["outcome"] for n in body["notices"]} == {"sent"}
    assert {n["number"] for n in body["notices"]} == {invoice.number for invoice in issued.values()}
    assert all(n["recipients"] == 1 and n["problem"] is None for n in body["notices"])
    again = client.post(url, headers=auth(finance)).get_json()
    assert again["sent"] == 0 and again["notices"] == []
    assert len(mail.outbox()) == 4

    shown = client.get(f"/api/v1/invoices/{issued['A'].id}", headers=auth(finance)).get_json()
    assert shown["notified_at"] is not None
    assert client.post(f"/api/v1/rounds/{approved.round.id + 99}/invoices/notices",
                       headers=auth(finance)).status_code == 404
