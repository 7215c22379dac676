"""Grants and donations into the fund: the service, the ledger it writes, reversal."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import utcnow
from buyersclub.errors import Conflict, InvalidInput, PermissionDenied, RuleRefused
from buyersclub.ledger.chart import CASH, FUND_RESTRICTED, SUBSIDIES_GIVEN
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, post_entry
from subsidies import fund
from subsidies.models import Grant
from subsidies.services.grants import record_grant, reverse_grant

D = Decimal
RECEIVED = date(2026, 3, 2)


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _spend(restriction: str | None, amount: str) -> None:
    """Money leaving the fund, as an approved run's awards would take it."""
    post_entry(Actor.system("test"), entry_date=RECEIVED, memo="awards", kind="subsidy_awards",
               lines=[Line(fund.account_for(restriction), D(amount)),
                      Line(SUBSIDIES_GIVEN, -D(amount))])


@pytest.fixture
def treasurer(finance):
    return Actor.for_user(finance)


def test_a_grant_posts_a_balanced_entry_into_its_restriction(session, treasurer):
    grant = record_grant(treasurer, "  State naloxone programme ", "2500.00", RECEIVED,
                         restricted_to="naloxone", note="Award letter NX-2026-14")

    assert grant.source == "State naloxone programme"
    assert grant.amount == D("2500.00")
    entry = session.get(JournalEntry, grant.journal_entry_id)
    assert (entry.kind, entry.source_type, entry.source_id) == ("grant", "grant", grant.id)
    assert entry.entry_date == RECEIVED
    lines = {posting.account.code: posting.amount for posting in entry.postings}
    assert lines == {CASH: D("2500.00"), FUND_RESTRICTED["naloxone"]: D("-2500.00")}
    balances = fund.balances()
    assert balances["naloxone"] == D("2500.00")
    assert balances[None] == balances["pipes"] == balances["oxygen"] == balances["other"] == D("0.00")
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "grant.recorded")).one()
    assert event.entity_id == grant.id
    assert event.after["amount"] == "2500.00"
    assert event.after["restricted_to"] == "naloxone"
    assert event.actor_label == "finance@club.test"


def test_unrestricted_money_shows_only_as_unrestricted(session, treasurer):
    record_grant(treasurer, "Bake sale", D("120.50"), RECEIVED)
    record_grant(treasurer, "Pipe fund donor", "80.00", RECEIVED, restricted_to="pipes")

    balances = fund.balances()
    assert balances[None] == D("120.50")
    assert balances["pipes"] == D("80.00")
    assert balances["naloxone"] == D("0.00")
    # Restricted money never covers another category, however much of it there is.
    with pytest.raises(RuleRefused):
        fund.require_available("naloxone", D("0.01"))


def test_a_grant_received_today_is_accepted(session, treasurer):
    grant = record_grant(treasurer, "Walk-in donation", "5.00", utcnow().date().isoformat())
    assert grant.received_on == utcnow().date()


TOMORROW = utcnow().date() + timedelta(days=1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"source": ""}, "source"),
        ({"source": "   "}, "source"),
        ({"source": "x" * 161}, "source"),
        ({"amount": "0"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "-25.00"}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": "ten dollars"}, "amount"),
        ({"amount": ""}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "100000000000.00"}, "amount"),
        ({"received_on": TOMORROW}, "received_on"),
        ({"received_on": "31/03/2026"}, "received_on"),
        ({"received_on": None}, "received_on"),
        ({"restricted_to": "syringes"}, "restricted_to"),
        ({"note": "n" * 2001}, "note"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(session, treasurer, changes, field):
    arguments = {"source": "City grant", "amount": "100.00", "received_on": RECEIVED,
                 "restricted_to": None, "note": None, **changes}
    entries, events = _count(session, JournalEntry), _count(session, AuditEvent)

    with pytest.raises(InvalidInput) as refused:
        record_grant(treasurer, **arguments)

    assert refused.value.field == field
    assert _count(session, Grant) == 0
    assert _count(session, JournalEntry) == entries
    assert _count(session, AuditEvent) == events


@pytest.mark.parametrize("roles", [["admin"], ["member"]])
def test_only_finance_records_grants(session, roles):
    from tests.factories import UserFactory

    person = Actor.for_user(UserFactory(roles=roles))
    with pytest.raises(PermissionDenied):
        record_grant(person, "City grant", "100.00", RECEIVED)
    assert _count(session, JournalEntry) == 0


def test_someone_with_both_roles_may_record_a_grant(session):
    from tests.factories import UserFactory

    both = Actor.for_user(UserFactory(roles=["admin", "finance"]))
    assert record_grant(both, "City grant", "100.00", RECEIVED).id


def test_reversing_a_grant_takes_its_money_back_out_and_keeps_the_record(session, treasurer):
    mistaken = record_grant(treasurer, "Recorded twice", "500.00", RECEIVED, restricted_to="oxygen")
    kept = record_grant(treasurer, "Oxygen trust", "500.00", RECEIVED, restricted_to="oxygen")

    reversal = reverse_grant(treasurer, mistaken.id, "Recorded twice")

    assert reversal.reverses_id == mistaken.journal_entry_id
    assert reversal.source_type == "grant" and reversal.source_id == mistaken.id
    lines = {posting.account.code: posting.amount for posting in reversal.postings}
    assert lines == {CASH: D("-500.00"), FUND_RESTRICTED["oxygen"]: D("500.00")}
    assert fund.available("oxygen") == D("500.00")
    assert session.get(Grant, mistaken.id) is not None  # never deleted
    assert kept.id != mistaken.id
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "grant.reversed")).one()
    assert event.entity_id == mistaken.id
    assert event.after == {"reversal_entry_id": reversal.id, "reason": "Recorded twice"}

    with pytest.raises(Conflict, match="already reversed"):
        reverse_grant(treasurer, mistaken.id, "again")
    assert fund.available("oxygen") == D("500.00")


def test_a_reversal_needs_a_reason(session, treasurer):
    grant = record_grant(treasurer, "City grant", "100.00", RECEIVED)
    with pytest.raises(InvalidInput) as refused:
        reverse_grant(treasurer, grant.id, "  ")
    assert refused.value.field == "reason"


def test_a_reversal_that_would_make_the_fund_negative_is_refused(session, treasurer):
    grant = record_grant(treasurer, "Naloxone grant", "500.00", RECEIVED, restricted_to="naloxone")
    record_grant(treasurer, "General donation", "10000.00", RECEIVED)
    _spend("naloxone", "300.01")
    entries = _count(session, JournalEntry)

    with pytest.raises(RuleRefused, match=r"restricted to naloxone money, which holds only \$199.99"):
        reverse_grant(treasurer, grant.id, "Wrong amount")

    # Unrestricted money does not stand in for the restricted money already awarded.
    assert _count(session, JournalEntry) == entries
    assert fund.available("naloxone") == D("199.99")
    assert fund.available(None) == D("10000.00")


def test_a_reversal_that_empties_the_restriction_exactly_is_allowed(session, treasurer):
    grant = record_grant(treasurer, "Pipes grant", "300.00", RECEIVED, restricted_to="pipes")
    record_grant(treasurer, "Second pipes grant", "200.00", RECEIVED, restricted_to="pipes")
    _spend("pipes", "200.00")

    reverse_grant(treasurer, grant.id, "Returned to the funder")

    assert fund.available("pipes") == D("0.00")


def test_admins_cannot_reverse_grants(session, treasurer, admin):
    grant = record_grant(treasurer, "City grant", "100.00", RECEIVED, restricted_to=None)
    with pytest.raises(PermissionDenied):
        reverse_grant(Actor.for_user(admin), grant.id, "mistake")
    assert fund.available(None) == D("100.00")

