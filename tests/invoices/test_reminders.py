"""Overdue reminders: once per invoice per interval, only for what is really overdue, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from buyersclub import mail
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db, utcnow
from invoices.models import Invoice
from invoices.services import credit_notes, issuing, payments, reminders

D = Decimal
BANK = "Harm Reduction Credit Union\nAccount 12345678, routing 021000021"


@pytest.fixture
def overdue(app, approved):
    """The example's invoices: B paid, D void, A and C unpaid; ``now(days)`` is that long past due."""
    saved = {key: app.config.get(key) for key in ("CLUB_BANK_DETAILS", "REMINDER_INTERVAL_DAYS")}
    app.config.update(CLUB_BANK_DETAILS=BANK, REMINDER_INTERVAL_DAYS=7)
    finance = approved.finance
    issued = issuing.issue_round_invoices(finance, approved.round.id)
    invoices = {key: next(i for i in issued if i.organisation_id == org.id)
                for key, org in approved.members.items()}
    payments.record_payment(finance, invoices["B"].id, "cheque", "1", utcnow().date(),
                            str(payments.balance_due(invoices["B"])))
    credit_notes.void_invoice(finance, invoices["D"].id, "Issued in error")
    for invoice in issued:  # their members were told when they were issued (test_notices.py)
        invoice.notified_at = utcnow()
    db.session.commit()
    due_on = invoices["A"].due_on

    def now(days: int, hour: int = 9) -> datetime:
        return datetime.combine(due_on + timedelta(days=days), time(hour), tzinfo=UTC)

    yield SimpleNamespace(**vars(approved), invoices=invoices, now=now)
    app.config.update(saved)


def run(fixture, now: datetime, **options) -> reminders.Summary:
    return reminders.send_reminders(fixture.finance, commit=db.session.commit, now=now, **options)


def sent_to() -> list[tuple[str, str]]:
    return [(message["To"], message["Subject"]) for message in mail.outbox()]


def test_an_overdue_invoice_gets_one_notice_naming_what_is_owed_and_how_to_pay(overdue):
    a, c = overdue.invoices["A"], overdue.invoices["C"]
    summary = run(overdue, overdue.now(1))
    assert [(r.number, r.outcome) for r in summary.reminders] == [(a.number, "sent"), (c.number, "sent")]
    assert sorted(sent_to()) == sorted([
        ("staff@alder.test", f"Overdue: invoice {a.number}, ${a.total:,.2f} due since {a.due_on}"),
        ("staff@cedar.test", f"Overdue: invoice {c.number}, ${c.total:,.2f} due since {c.due_on}"),
    ])
    message = next(m for m in mail.outbox() if m["To"] == "staff@alder.test")
    body = message.get_content()
    assert a.number in body and f"Balance due: ${a.total:,.2f}" in body
    assert f"Due date: {a.due_on.isoformat()}" in body and "1 day overdue" in body
    assert f"http://club.test/invoices/{a.id}" in body
    assert "Account 12345678, routing 021000021" in body
    db.session.expire_all()
    assert db.session.get(Invoice, a.id).last_reminder_at == overdue.now(1)
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "invoice.reminder_sent")).all()
    assert {event.entity_id for event in audit} == {a.id, c.id}


def test_not_before_the_due_date_has_passed(overdue):
    assert run(overdue, overdue.now(0, hour=23)).reminders == []
    assert run(overdue, overdue.now(-5)).reminders == []
    assert mail.outbox() == []


def test_not_again_within_the_interval_and_again_after_it(overdue):
    run(overdue, overdue.now(1))
    assert len(mail.outbox()) == 2
    for days in (2, 5, 7):  # 7 days later at 08:00 is still an hour short of the interval
        assert run(overdue, overdue.now(days, hour=8)).reminders == []
    assert len(mail.outbox()) == 2
    again = run(overdue, overdue.now(8))
    assert again.sent == 2 and len(mail.outbox()) == 4


def test_paid_void_and_credited_in_full_invoices_get_none(overdue):
    credit_notes.issue_credit_note(overdue.finance, overdue.invoices["C"].id, reason="Goodwill")
    db.session.commit()
    summary = run(overdue, overdue.now(30))
    assert [r.number for r in summary.reminders] == [overdue.invoices["A"].number]
    assert [to for to, _ in sent_to()] == ["staff@alder.test"]


def test_a_dry_run_lists_and_sends_nothing(overdue):
    summary = run(overdue, overdue.now(1), dry_run=True)
    assert [(r.number, r.outcome) for r in summary.reminders] == [
        (overdue.invoices["A"].number, "would send"), (overdue.invoices["C"].number, "would send")]
    assert summary.reminders[0].recipients == ("staff@alder.test",)
    assert mail.outbox() == []
    db.session.expire_all()
    assert db.session.get(Invoice, overdue.invoices["A"].id).last_reminder_at is None
    assert run(overdue, overdue.now(1)).sent == 2  # nothing was marked: the real run sends them


def test_a_run_that_stops_half_way_sends_the_rest_next_time_and_none_twice(overdue):
    commits = []

    def crash_on_the_second():
        commits.append(1)
        if len(commits) == 2:
            raise KeyboardInterrupt  # the process is stopped before the second invoice commits
        db.session.commit()

    with pytest.raises(KeyboardInterrupt):
        reminders.send_reminders(overdue.finance, commit=crash_on_the_second, now=overdue.now(1))
    db.session.rollback()  # what dying does to the open transaction
    assert [to for to, _ in sent_to()] == ["staff@alder.test"]

    summary = run(overdue, overdue.now(1, hour=10))
    assert [r.number for r in summary.reminders] == [overdue.invoices["C"].number]
    assert [to for to, _ in sent_to()] == ["staff@alder.test", "staff@cedar.test"]


def test_a_notice_that_cannot_be_delivered_is_tried_again_next_time(app, overdue):
    app.config["MAIL_BACKEND"] = "carrier-pigeon"  # not a backend: delivery fails after the commit
    try:
        summary = run(overdue, overdue.now(1))
    finally:
        app.config["MAIL_BACKEND"] = "memory"
    assert summary.failed == 2 and summary.sent == 0
    assert "carrier-pigeon" in summary.reminders[0].problem
    db.session.expire_all()
    assert db.session.get(Invoice, overdue.invoices["A"].id).last_reminder_at is None
    assert run(overdue, overdue.now(1, hour=10)).sent == 2
    assert len(mail.outbox()) == 2


def test_an_organisation_without_staff_is_reported_not_marked(overdue):
    for person in overdue.members["C"].staff:
        person.is_active = False
    db.session.commit()
    summary = run(overdue, overdue.now(1))
    assert [r.outcome for r in summary.reminders] == ["sent", "no recipients"]
    db.session.expire_all()
    assert db.session.get(Invoice, overdue.invoices["C"].id).last_reminder_at is None


def test_the_command_prints_progress_and_a_summary(app, session, approved):
    """Invoices issued due yesterday (net -1 days), so the command's own clock finds them overdue."""
    saved = app.config["INVOICE_NET_DAYS"]
    app.config["INVOICE_NET_DAYS"] = -1
    try:
        issued = issuing.issue_round_invoices(approved.finance, approved.round.id)
    finally:
        app.config["INVOICE_NET_DAYS"] = saved
    session.commit()
    owing = sorted(i.number for i in issued if payments.balance_due(i) > 0)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["send-reminders", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert all(number in dry.output for number in owing)
    assert (f"Dry run: {len(issued)} notices of new invoices and {len(owing)} reminders would be sent"
            in dry.output)
    assert mail.outbox() == []

    result = runner.invoke(args=["send-reminders"])
    assert result.exit_code == 0, result.output
    assert "(new invoice)\tsent to 1 person" in result.output
    assert "(1 day overdue)\tsent to 1 person" in result.output
    assert f"Sent {len(issued)} notices of new invoices and {len(owing)} reminders" in result.output
    assert len(mail.outbox()) == len(issued) + len(owing)
    assert ("Sent 0 notices of new invoices and 0 reminders (0 new invoices, 0 invoices"
            in runner.invoke(args=["send-reminders"]).output)
