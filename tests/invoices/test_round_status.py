"""A delivered round moves with its invoices: received -> invoiced -> settled, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from buyersclub.audit.models import AuditEvent
from buyersclub.db import utcnow
from buyersclub.errors import Conflict
from invoices.models import InvoiceStatus
from invoices.services import credit_notes, issuing, payments, queries
from orders.models import RoundStatus
from subsidies.services import runs


def test_issuing_invoices_the_round_and_paying_everything_settles_it(session, approved):
    ex = approved
    assert ex.round.status == RoundStatus.RECEIVED
    invoices = issuing.issue_round_invoices(ex.finance, ex.round.id)
    assert ex.round.status == RoundStatus.INVOICED

    *rest, last = invoices
    for invoice in rest:
        payments.record_payment(ex.finance, invoice.id, "bank_transfer", "BT", utcnow().date(),
                                payments.balance_due(invoice))
    assert ex.round.status == RoundStatus.INVOICED  # one invoice still asks for money
    credit_notes.issue_credit_note(ex.finance, last.id, reason="Goodwill: the delivery came late")
    assert ex.round.status == RoundStatus.SETTLED

    events = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "round",
                                                             AuditEvent.entity_id == ex.round.id)).all()
    assert "round.invoiced" in events and "round.settled" in events


def test_voiding_every_invoice_takes_the_round_back_to_received(session, example):
    ex = example
    invoices = issuing.issue_round_invoices(ex.finance, ex.round.id, without_subsidy_run=True)
    for invoice in invoices[:-1]:
        credit_notes.void_invoice(ex.finance, invoice.id, "Issued before the subsidy run")
        assert ex.round.status == RoundStatus.INVOICED
    credit_notes.void_invoice(ex.finance, invoices[-1].id, "Issued before the subsidy run")
    assert ex.round.status == RoundStatus.RECEIVED
    assert len(issuing.issue_round_invoices(ex.finance, ex.round.id, without_subsidy_run=True)) == 4
    assert ex.round.status == RoundStatus.INVOICED


def test_no_subsidy_run_is_started_or_approved_once_invoices_are_issued(session, example):
    ex = example
    preview = runs.start_run(ex.admin, ex.round.id)
    issuing.issue_round_invoices(ex.finance, ex.round.id, without_subsidy_run=True)

    with pytest.raises(Conflict, match="Void them first") as refused:
        runs.approve_run(ex.admin, preview.id)
    assert refused.value.code == "round_invoiced"
    with pytest.raises(Conflict, match="Void them first"):
        runs.start_run(ex.admin, ex.round.id)
    assert runs.approved_run(ex.round.id) is None


def test_the_last_payment_settles_the_round_and_a_refund_reopens_it(session, approved):
    ex = approved
    invoices = issuing.issue_round_invoices(ex.finance, ex.round.id)
    received = [payments.record_payment(ex.finance, invoice.id, "cheque", f"CHQ-{invoice.id}",
                                        utcnow().date(), payments.balance_due(invoice))
                for invoice in invoices]
    assert ex.round.status == RoundStatus.SETTLED

    payments.refund_payment(ex.finance, received[0].id, "10.00", "Two boxes arrived crushed")
    assert ex.round.status == RoundStatus.INVOICED
    assert payments.balance_due(invoices[0]) == Decimal("10.00")


def test_the_round_s_invoices_with_money_due_are_counted_as_their_settlements_say(session, approved):
    """``round_due`` (one aggregate query, in cents) agrees with each invoice's settlement after
    partial payments, an over-payment, refunds from the excess and from the applied part, credit
    notes and a void."""
    ex = approved
    a, b, c, d = issuing.issue_round_invoices(ex.finance, ex.round.id)
    today = utcnow().date()

    def by_settlements() -> queries.RoundDue:
        live = [invoice for invoice in (a, b, c, d) if invoice.status == InvoiceStatus.ISSUED]
        found = payments.settlements(live)
        return queries.RoundDue(len(live), sum(1 for each in found.values() if each.balance_due > 0))

    assert queries.round_due(ex.round.id) == by_settlements() == queries.RoundDue(4, 4)
    paid = {}
    steps = [
        lambda: payments.record_payment(ex.finance, a.id, "cheque", "CHQ-1", today, "10.01"),
        lambda: paid.setdefault("b", payments.record_payment(
            ex.finance, b.id, "bank_transfer", "BT-1", today, payments.balance_due(b) + Decimal("5.01"))),
        lambda: payments.refund_payment(ex.finance, paid["b"].id, "3.00", "Part of what was paid twice"),
        lambda: payments.refund_payment(ex.finance, paid["b"].id, "7.00", "The rest, and a crushed box"),
        lambda: credit_notes.issue_credit_note(ex.finance, c.id, reason="Goodwill", amount="0.01"),
        lambda: credit_notes.issue_credit_note(ex.finance, c.id, reason="The delivery came late"),
        lambda: payments.record_payment(ex.finance, b.id, "cheque", "CHQ-2", today, payments.balance_due(b)),
        lambda: credit_notes.void_invoice(ex.finance, d.id, "Issued to the wrong programme"),
        lambda: payments.record_payment(ex.finance, a.id, "cheque", "CHQ-3", today, payments.balance_due(a)),
    ]
    seen = []
    for step in steps:
        step()
        seen.append(queries.round_due(ex.round.id))
        assert seen[-1] == by_settlements()
    assert seen[1] == queries.RoundDue(4, 3) and seen[3] == queries.RoundDue(4, 4)  # b due again
    assert seen[-1] == queries.RoundDue(3, 0) and ex.round.status == RoundStatus.SETTLED
