"""Issuing a round's invoices: the SPEC worked example carried through close, subsidy run and invoices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import utcnow
from buyersclub.errors import Conflict, PermissionDenied
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import account_balance, organisation_balances, trial_balance
from invoices.models import Invoice, InvoiceStatus, LineKind
from invoices.services import issuing, payments
from orders.models import Allocation, ProductClosing
from orders.services import closing, commitments
from subsidies.models import Award, FreeStockAward
from tests import factories
from tests.invoices.conftest import by_member, close_and_receive, member, open_round, receivable_movements

D = Decimal
YEAR = utcnow().year


def lines_of(invoice, kind):
    return [line for line in invoice.lines if line.kind == kind]


def test_the_worked_example_invoices_agree_with_the_close_and_the_run(session, approved):
    ex = approved
    issued = issuing.issue_round_invoices(ex.finance, ex.round.id)
    invoices = by_member(issued, ex.members)

    # Numbers: gapless, yearly, in organisation order.
    assert [invoice.number for invoice in issued] == [f"INV-{YEAR}-0000{n}" for n in (1, 2, 3, 4)]
    # Goods at the club price: the close's allocation (C got 12 of its tolerance).
    for key, units in (("A", 480), ("B", 300), ("C", 108), ("D", 48)):
        [goods] = lines_of(invoices[key], LineKind.GOODS)
        assert (goods.quantity, goods.unit_price, goods.amount) == (units, D("40.00"), D(40 * units))
    # The run's awards, as negative credit lines; the fund's free units at zero with their value.
    awards = {award.organisation_id: award.amount for award in session.scalars(
        select(Award).where(Award.run_id == ex.run.id, Award.amount > 0))}
    assert awards == {ex.members["C"].id: D("4320.00"), ex.members["D"].id: D("1920.00")}
    for key in ("C", "D"):
        [credit] = lines_of(invoices[key], LineKind.SUBSIDY_CREDIT)
        assert credit.amount == -awards[ex.members[key].id] and credit.category == "naloxone"
        [free] = lines_of(invoices[key], LineKind.FREE_GOODS)
        stock = session.scalar(select(FreeStockAward).where(
            FreeStockAward.organisation_id == ex.members[key].id))
        assert (free.quantity, free.amount) == (stock.units, D("0.00")) == (12, D("0.00"))
        assert free.note == "supplied free by the club fund, value $372.00"  # 12 x $31.00
    for key in ("A", "B"):
        assert not lines_of(invoices[key], LineKind.SUBSIDY_CREDIT)
        assert not lines_of(invoices[key], LineKind.FREE_GOODS)
    # Shipping $250.00 by goods units (936), largest remainder: exact.
    shipping = {key: lines_of(invoice, LineKind.SHIPPING)[0].amount for key, invoice in invoices.items()}
    assert shipping == {"A": D("128.20"), "B": D("80.13"), "C": D("28.85"), "D": D("12.82")}
    assert sum(shipping.values()) == D("250.00")
    # Totals due.
    totals = {key: invoice.total for key, invoice in invoices.items()}
    assert totals == {"A": D("19328.20"), "B": D("12080.13"), "C": D("28.85"), "D": D("12.82")}

    # The ledger: balanced; each member's receivable movements equal its invoice; shipping recovered.
    assert trial_balance().balanced
    receivables = organisation_balances(chart.RECEIVABLES)
    for key, invoice in invoices.items():
        member = ex.members[key].id
        assert receivable_movements(member) == invoice.total == receivables[member]
        assert payments.balance_due(invoice) == invoice.total
        assert payments.status_label(invoice) == "open"
    assert account_balance(chart.SHIPPING_COSTS) == D("-250.00")
    entries = session.scalars(select(JournalEntry).where(JournalEntry.kind == "invoice")).all()
    assert len(entries) == 4 and all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert {invoice.journal_entry_id for invoice in issued} == {entry.id for entry in entries}
    # bill_to snapshot and due date by net terms.
    a = invoices["A"]
    assert a.bill_to["name"] == "Programme Alder" and a.bill_to["city"] == "Boston"
    assert (a.due_on - a.issued_on).days == 30
    assert a.subsidy_run_id == ex.run.id
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "invoice.issued")) == 4


def test_tax_by_jurisdiction_and_none_for_an_exempt_member(app, session, approved, monkeypatch):
    ex = approved
    monkeypatch.setitem(app.config, "INVOICE_TAX_RATES", {"US-MA": "0.0625", "US": "0.05"})
    ex.members["B"].region = "NH"  # falls back to the country's rate
    ex.members["D"].tax_exempt_certificate = "MA-EX-2231"
    invoices = by_member(issuing.issue_round_invoices(ex.finance, ex.round.id), ex.members)

    [a_tax] = lines_of(invoices["A"], LineKind.TAX)
    assert a_tax.amount == D("1208.01")  # (19200.00 + 128.20) x 6.25% = 1208.0125
    assert "6.25%" in a_tax.description and "US-MA" in a_tax.description
    [b_tax] = lines_of(invoices["B"], LineKind.TAX)
    assert b_tax.amount == D("604.01")  # (12000.00 + 80.13) x 5% = 604.0065
    [c_tax] = lines_of(invoices["C"], LineKind.TAX)
    assert c_tax.amount == D("1.80")  # (4320.00 - 4320.00 + 28.85) x 6.25% = 1.803
    assert not lines_of(invoices["D"], LineKind.TAX)
    assert invoices["D"].tax_exempt_certificate == "MA-EX-2231"
    assert invoices["D"].bill_to["tax_exempt_certificate"] == "MA-EX-2231"
    assert account_balance(chart.TAX_PAYABLE) == -(D("1208.01") + D("604.01") + D("1.80"))
    for key, invoice in invoices.items():
        assert receivable_movements(ex.members[key].id) == invoice.total
    assert trial_balance().balanced


def test_invoices_wait_for_the_subsidy_run_unless_told_otherwise(session, example):
    with pytest.raises(Conflict, match="subsidy run is not approved") as refused:
        issuing.issue_round_invoices(example.finance, example.round.id)
    assert refused.value.code == "subsidy_run_not_approved"
    assert session.scalar(select(func.count()).select_from(Invoice)) == 0

    issued = issuing.issue_round_invoices(example.finance, example.round.id, without_subsidy_run=True)
    assert len(issued) == 4
    assert all(not lines_of(invoice, LineKind.SUBSIDY_CREDIT) for invoice in issued)
    assert all(invoice.subsidy_run_id is None for invoice in issued)


def test_running_again_issues_only_the_missing_invoices(session, approved):
    ex = approved
    first = issuing.issue_round_invoices(ex.finance, ex.round.id, organisation_ids={ex.members["A"].id})
    assert [invoice.number for invoice in first] == [f"INV-{YEAR}-00001"]
    rest = issuing.issue_round_invoices(ex.finance, ex.round.id)
    assert len(rest) == 3 and ex.members["A"].id not in {invoice.organisation_id for invoice in rest}
    assert issuing.issue_round_invoices(ex.finance, ex.round.id) == []
    # The shipping shares do not depend on who was invoiced first.
    assert lines_of(first[0], LineKind.SHIPPING)[0].amount == D("128.20")


def test_a_round_is_invoiced_only_once_received_and_members_cannot_issue(session, admin, naloxone, member):
    found = open_round(admin, naloxone)
    with pytest.raises(Conflict, match="once its delivery is received"):
        issuing.issue_round_invoices(Actor.system("test"), found.id, without_subsidy_run=True)
    closing.commit_close(Actor.for_user(admin), found.id)
    with pytest.raises(Conflict, match="once its delivery is received"):
        issuing.issue_round_invoices(Actor.system("test"), found.id, without_subsidy_run=True)
    with pytest.raises(PermissionDenied):
        issuing.issue_round_invoices(Actor.for_user(member), found.id, without_subsidy_run=True)
    with pytest.raises(PermissionDenied):
        issuing.issue_round_invoices(Actor.for_user(admin), found.id, without_subsidy_run=True)


def test_a_member_allocated_nothing_gets_no_invoice(session, approved):
    ex = approved
    short = member("Programme Short")
    row = session.scalar(select(Allocation).where(Allocation.round_id == ex.round.id))
    factories.AllocationFactory(closing=session.get(ProductClosing, row.product_closing_id),
                                organisation_id=short.id, firm_units=0)
    issued = issuing.issue_round_invoices(ex.finance, ex.round.id)
    assert short.id not in {invoice.organisation_id for invoice in issued}
    assert len(issued) == 4


def test_account_credit_is_applied_to_the_next_invoice(session, admin, finance, naloxone, approved):
    ex = approved
    invoices = by_member(issuing.issue_round_invoices(ex.finance, ex.round.id), ex.members)
    payments.record_payment(ex.finance, invoices["D"].id, "bank_transfer", "BT-1", utcnow().date(), "50.00")
    assert issuing.member_credit(ex.members["D"].id) == D("37.18")  # 50.00 - 12.82

    later = open_round(admin, naloxone, name="Naloxone, autumn")
    commitments.set_commitment(Actor.for_user(ex.members["D"].staff[0]), later.id, naloxone.id, quantity=24)
    close_and_receive(Actor.for_user(admin), later, naloxone)
    [next_invoice] = issuing.issue_round_invoices(ex.finance, later.id, without_subsidy_run=True)

    [credit] = lines_of(next_invoice, LineKind.ACCOUNT_CREDIT)
    assert credit.amount == D("-37.18")
    assert next_invoice.total == D("960.00") - D("37.18")
    assert issuing.member_credit(ex.members["D"].id) == D("0.00")
    assert receivable_movements(ex.members["D"].id) == next_invoice.total  # the first is paid
    assert trial_balance().balanced


def test_account_credit_is_applied_only_up_to_the_total(session, admin, naloxone, approved):
    ex = approved
    invoices = by_member(issuing.issue_round_invoices(ex.finance, ex.round.id), ex.members)
    payments.record_payment(ex.finance, invoices["D"].id, "cheque", "CHQ-9", utcnow().date(), "1000.00")
    assert issuing.member_credit(ex.members["D"].id) == D("987.18")

    later = open_round(admin, naloxone, name="Naloxone, autumn")
    commitments.set_commitment(Actor.for_user(ex.members["D"].staff[0]), later.id, naloxone.id, quantity=24)
    close_and_receive(Actor.for_user(admin), later, naloxone)
    [next_invoice] = issuing.issue_round_invoices(ex.finance, later.id, without_subsidy_run=True)

    assert lines_of(next_invoice, LineKind.ACCOUNT_CREDIT)[0].amount == D("-960.00")
    assert next_invoice.total == D("0.00") and payments.status_label(next_invoice) == "paid"
    assert issuing.member_credit(ex.members["D"].id) == D("27.18")
    assert trial_balance().balanced


def test_an_invoice_with_nothing_new_posts_no_entry(session, approved):
    ex = approved
    ex.round.shipping_cost = D("0.00")
    issued = issuing.issue_round_invoices(ex.finance, ex.round.id)
    assert all(invoice.journal_entry_id is None for invoice in issued)
    assert session.scalar(select(func.count()).select_from(JournalEntry)
                          .where(JournalEntry.kind == "invoice")) == 0
    invoices = by_member(issued, ex.members)
    assert invoices["C"].total == D("0.00") and payments.status_label(invoices["C"]) == "paid"
    for key, invoice in invoices.items():
        assert receivable_movements(ex.members[key].id) == invoice.total
    assert all(invoice.status == InvoiceStatus.ISSUED for invoice in issued)
