"""Posting, reversing and reading balances through the ledger services."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from buyersclub.ledger import chart, services
from buyersclub.ledger.models import JournalEntry, Posting
from buyersclub.ledger.services import (
    Line,
    account_balance,
    organisation_balances,
    post_entry,
    reverse_entry,
    trial_balance,
)
from tests import factories

D = Decimal


@pytest.fixture
def clerk(finance):
    return Actor.for_user(finance)


def grant(actor, amount="500.00", when=date(2026, 3, 1), **kwargs):
    return post_entry(
        actor,
        entry_date=when,
        memo="Grant from the city",
        kind="grant",
        lines=[Line(chart.CASH, D(amount)), Line(chart.FUND_UNRESTRICTED, -D(amount))],
        **kwargs,
    )


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_a_balanced_entry_is_recorded_with_its_postings_and_audited(session, clerk, finance):
    entry = grant(clerk, source=("grant", 7))

    assert entry.id is not None
    assert entry.created_by_id == finance.id
    assert (entry.source_type, entry.source_id) == ("grant", 7)
    assert [(p.account.code, p.amount) for p in entry.postings] == [
        (chart.CASH, D("500.00")),
        (chart.FUND_UNRESTRICTED, D("-500.00")),
    ]
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.entity_type == "journal_entry",
                                 AuditEvent.entity_id == entry.id)
    ).one()
    assert event.action == "ledger.entry_posted"
    assert event.actor_id == finance.id
    assert event.after["lines"][0] == {
        "account": chart.CASH, "amount": "500.00", "organisation_id": None, "memo": None,
    }


@pytest.mark.parametrize(
    ("lines", "field", "message"),
    [
        ([Line(chart.CASH, D("10.00"))], "lines", "at least two lines"),
        ([], "lines", "at least two lines"),
        ([Line(chart.CASH, D("10.00")), Line(chart.SALES, D("-9.99"))], "lines",
         "debits exceed credits by 0.01"),
        ([Line(chart.CASH, D("10.00")), Line(chart.SALES, D("-12.50"))], "lines",
         "credits exceed debits by 2.50"),
        ([Line(chart.CASH, D("0.00")), Line(chart.SALES, D("0"))], "lines.0.amount", "zero"),
        ([Line(chart.CASH, D("10.00")), Line(chart.SALES, D("-10.00")), Line(chart.SALES, D(0))],
         "lines.2.amount", "zero"),
        ([Line(chart.CASH, 10.0), Line(chart.SALES, D("-10.00"))], "lines.0.amount", "float"),
        ([Line(chart.CASH, D("10.005")), Line(chart.SALES, D("-10.005"))], "lines.0.amount",
         "more than two decimal places"),
        ([Line(chart.CASH, D("10.00")), Line("9999", D("-10.00"))], "lines.1.account",
         "no ledger account '9999'"),
    ],
)
def test_a_faulty_entry_is_refused_and_nothing_is_written(session, clerk, lines, field, message):
    entries, postings, events = (count(session, m) for m in (JournalEntry, Posting, AuditEvent))

    with pytest.raises(InvalidInput) as refused:
        post_entry(clerk, entry_date=date(2026, 3, 1), memo="Faulty", kind="test", lines=lines)

    assert refused.value.field == field
    assert message in refused.value.message
    assert count(session, JournalEntry) == entries
    assert count(session, Posting) == postings
    assert count(session, AuditEvent) == events


def test_an_unknown_organisation_is_refused(session, clerk):
    with pytest.raises(InvalidInput) as refused:
        post_entry(clerk, entry_date=date(2026, 3, 1), memo="Invoice", kind="invoice", lines=[
            Line(chart.RECEIVABLES, D("40.00"), organisation_id=999_999),
            Line(chart.SALES, D("-40.00")),
        ])
    assert refused.value.field == "lines.0.organisation_id"


def test_memo_is_required(session, clerk):
    with pytest.raises(InvalidInput) as refused:
        post_entry(clerk, entry_date=date(2026, 3, 1), memo="  ", kind="grant", lines=[
            Line(chart.CASH, D("1.00")), Line(chart.GRANT_INCOME, D("-1.00"))])
    assert refused.value.field == "memo"


def test_members_cannot_post(session, member):
    with pytest.raises(PermissionDenied):
        grant(Actor.for_user(member))
    assert count(session, JournalEntry) == 0


def test_system_jobs_may_post(session):
    entry = grant(Actor.system("round-close"))
    assert entry.created_by_id is None


def test_reversal_negates_every_line_and_restores_balances(session, clerk):
    harbour = factories.OrganisationFactory()
    invoice = post_entry(clerk, entry_date=date(2026, 3, 2), memo="Invoice 2026-0001",
                         kind="manual", lines=[
        Line(chart.RECEIVABLES, D("120.00"), organisation_id=harbour.id, memo="boxes"),
        Line(chart.SALES, D("-100.00")),
        Line(chart.TAX_PAYABLE, D("-20.00")),
    ])
    assert account_balance(chart.RECEIVABLES, harbour.id) == D("120.00")

    reversal = reverse_entry(clerk, invoice.id, "Issued to the wrong round")

    assert reversal.reverses_id == invoice.id
    assert reversal.kind == "reversal"
    assert "Issued to the wrong round" in reversal.memo
    assert f"#{invoice.id}" in reversal.memo
    assert [(p.account.code, p.amount, p.organisation_id, p.memo) for p in reversal.postings] == [
        (chart.RECEIVABLES, D("-120.00"), harbour.id, "boxes"),
        (chart.SALES, D("100.00"), None, None),
        (chart.TAX_PAYABLE, D("20.00"), None, None),
    ]
    # The original is untouched.
    session.expire_all()
    assert [p.amount for p in session.get(JournalEntry, invoice.id).postings] == [
        D("120.00"), D("-100.00"), D("-20.00")]
    assert account_balance(chart.RECEIVABLES, harbour.id) == D("0.00")
    assert account_balance(chart.SALES) == D("0.00")
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "ledger.entry_reversed")).one()
    assert event.entity_id == reversal.id
    assert event.after["reason"] == "Issued to the wrong round"
    assert event.organisation_id == harbour.id


def test_an_entry_is_reversed_only_once(session, clerk):
    entry = grant(clerk)
    reverse_entry(clerk, entry.id, "Duplicate")
    with pytest.raises(Conflict, match="already reversed"):
        reverse_entry(clerk, entry.id, "Duplicate again")
    assert account_balance(chart.CASH) == D("0.00")


def test_a_reversal_can_itself_be_reversed_once(session, clerk):
    entry = grant(clerk)
    reversal = reverse_entry(clerk, entry.id, "Thought it was a duplicate")
    reinstated = reverse_entry(clerk, reversal.id, "It was not a duplicate")
    assert account_balance(chart.CASH) == D("500.00")
    assert reinstated.reverses_id == reversal.id
    with pytest.raises(Conflict, match="already reversed"):
        reverse_entry(clerk, reversal.id, "Once more")
    assert account_balance(chart.CASH) == D("500.00")


def test_reversal_needs_a_reason_and_an_existing_entry(session, clerk):
    entry = grant(clerk)
    with pytest.raises(InvalidInput) as refused:
        reverse_entry(clerk, entry.id, "   ")
    assert refused.value.field == "reason"
    with pytest.raises(NotFound):
        reverse_entry(clerk, 987_654, "No such entry")


def test_balances_per_organisation_and_as_of_a_date(session, clerk):
    harbour, valley = factories.OrganisationFactory(), factories.OrganisationFactory()
    for org, amount, when in ((harbour, "40.00", date(2026, 1, 5)),
                              (valley, "25.50", date(2026, 2, 5)),
                              (harbour, "10.10", date(2026, 3, 5))):
        post_entry(clerk, entry_date=when, memo="Invoice", kind="invoice", lines=[
            Line(chart.RECEIVABLES, D(amount), organisation_id=org.id),
            Line(chart.SALES, -D(amount)),
        ])

    assert account_balance(chart.RECEIVABLES) == D("75.60")
    assert account_balance(chart.RECEIVABLES, harbour.id) == D("50.10")
    assert account_balance(chart.RECEIVABLES, as_of=date(2026, 2, 5)) == D("65.50")
    assert account_balance(chart.RECEIVABLES, harbour.id, as_of=date(2026, 2, 28)) == D("40.00")
    assert account_balance(chart.SALES) == D("-75.60")
    assert organisation_balances(chart.RECEIVABLES) == {harbour.id: D("50.10"),
                                                        valley.id: D("25.50")}
    assert organisation_balances(chart.SALES) == {None: D("-75.60")}
    with pytest.raises(NotFound):
        account_balance("9999")


def test_trial_balance_lists_every_account_with_debits_credits_and_totals(session, clerk):
    grant(clerk, "500.00", when=date(2026, 1, 1))
    post_entry(clerk, entry_date=date(2026, 2, 1), memo="Shipping", kind="shipping", lines=[
        Line(chart.SHIPPING_COSTS, D("30.25")), Line(chart.CASH, D("-30.25"))])

    report = trial_balance()

    rows = {row.code: row for row in report.accounts}
    assert [row.code for row in report.accounts] == sorted(account.code for account in chart.CHART)
    assert (rows[chart.CASH].debit, rows[chart.CASH].credit) == (D("500.00"), D("30.25"))
    assert rows[chart.CASH].balance == D("469.75")
    assert rows[chart.FUND_UNRESTRICTED].balance == D("-500.00")
    assert rows[chart.SALES].is_empty
    assert report.total_debit == report.total_credit == D("530.25")
    assert report.balanced
    assert sum(row.balance for row in report.accounts) == 0

    earlier = trial_balance(as_of=date(2026, 1, 31))
    assert earlier.total_debit == D("500.00")
    assert {row.code: row.balance for row in earlier.accounts}[chart.CASH] == D("500.00")
    assert trial_balance(as_of=date(2025, 12, 31)).is_empty


def test_trial_balance_is_one_query(session, clerk, count_queries):
    grant(clerk)
    with count_queries() as counter:
        trial_balance()
    assert counter.count == 1


def test_a_reversal_racing_another_is_a_conflict_not_a_broken_session(session, clerk,
                                                                       monkeypatch):
    entry = grant(clerk)
    first = reverse_entry(clerk, entry.id, "Duplicate")
    # As if the other request's reversal was not yet visible when this one checked.
    monkeypatch.setattr("buyersclub.ledger.services.reversal_of", lambda entry_id: None)

    with pytest.raises(Conflict, match="already been reversed"):
        reverse_entry(clerk, entry.id, "Duplicate, said twice")

    assert session.scalars(select(JournalEntry.id).where(
        JournalEntry.reverses_id == entry.id)).all() == [first.id]
    assert account_balance(chart.CASH) == D("0.00")
    assert trial_balance().balanced


def test_an_entry_a_document_posted_is_reversed_only_through_that_document(session, clerk):
    owned = grant(clerk, source=("grant", 7))
    with pytest.raises(Conflict, match=r"belongs to grant #7") as refused:
        reverse_entry(clerk, owned.id, "Trying the back door")
    assert refused.value.code == "entry_owned_by_document"
    reversal = reverse_entry(clerk, owned.id, "Withdrawn by the funder", by_its_document=True)
    # Its reversal belongs to the grant too: reinstating it goes through the grant as well.
    with pytest.raises(Conflict, match=r"belongs to grant #7"):
        reverse_entry(clerk, reversal.id, "Undo the withdrawal")
    assert account_balance(chart.FUND_UNRESTRICTED) == D("0.00")


@pytest.fixture
def many_organisations(session):
    return [factories.OrganisationFactory(name=f"Programme {number:03d}").id for number in range(150)]


def receivables_entry(actor, organisation_ids, **kwargs):
    """One line per organisation (150: the bulk path), 1.00 to 150.00, and the sales credit."""
    lines = [Line(chart.RECEIVABLES, D(number + 1), organisation_id=organisation_id, memo=f"Line {number}")
             for number, organisation_id in enumerate(organisation_ids)]
    total = sum((line.amount for line in lines), D("0"))
    return post_entry(actor, entry_date=date(2026, 3, 2), memo="Round close", kind="round_close",
                      lines=[*lines, Line(chart.SALES, -total)], **kwargs)


def test_an_entry_of_many_lines_is_written_in_bulk_with_every_line_and_audited(session, clerk,
                                                                              many_organisations):
    assert len(many_organisations) >= services.BULK_LINES
    entry = receivables_entry(clerk, many_organisations, source=("round", 3))

    assert session.scalar(select(func.count()).where(Posting.entry_id == entry.id)) == 151
    assert [(p.account.code, p.amount, p.organisation_id, p.memo) for p in entry.postings][:2] == [
        (chart.RECEIVABLES, D("1.00"), many_organisations[0], "Line 0"),
        (chart.RECEIVABLES, D("2.00"), many_organisations[1], "Line 1"),
    ]
    assert entry.postings[-1].amount == D("-11325.00")  # 1 + 2 + ... + 150
    assert [p.id for p in entry.postings] == sorted(p.id for p in entry.postings)
    assert organisation_balances(chart.RECEIVABLES)[many_organisations[149]] == D("150.00")
    assert trial_balance().balanced
    event = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "journal_entry",
                                                     AuditEvent.entity_id == entry.id)).one()
    assert len(event.after["lines"]) == 151
    assert event.after["lines"][0] == {"account": chart.RECEIVABLES, "amount": "1.00",
                                       "organisation_id": many_organisations[0], "memo": "Line 0"}

    reversal = reverse_entry(clerk, entry.id, "Closed by mistake", by_its_document=True)
    assert [p.amount for p in reversal.postings][:2] == [D("-1.00"), D("-2.00")]
    assert organisation_balances(chart.RECEIVABLES)[many_organisations[149]] == D("0.00")


def test_a_faulty_line_among_many_is_refused_naming_it_and_nothing_is_written(session, clerk,
                                                                             many_organisations):
    before = count(session, Posting), count(session, JournalEntry)
    with pytest.raises(InvalidInput) as refused:
        receivables_entry(clerk, [*many_organisations[:120], 999_999, *many_organisations[120:]])
    assert refused.value.field == "lines.120.organisation_id"
    assert (count(session, Posting), count(session, JournalEntry)) == before


def test_the_postings_of_an_entry_of_many_lines_are_append_only_too(session, clerk, many_organisations):
    entry = receivables_entry(clerk, many_organisations)
    entry.postings[5].amount = D("7.00")
    with pytest.raises(Conflict):
        session.flush()
