"""Properties of the ledger over many generated balanced entries."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyersclub.actor import Actor
from buyersclub.ledger import chart
from buyersclub.ledger.services import (
    Line,
    account_balance,
    organisation_balances,
    post_entry,
    reverse_entry,
    trial_balance,
)
from buyersclub.money import from_cents
from tests import factories

CODES = [account.code for account in chart.CHART]
ORGANISATIONS = 3
CENTS = st.integers(min_value=-5_000_000, max_value=5_000_000).filter(bool)


@st.composite
def balanced_lines(draw):
    """2 to 6 lines whose amounts (in cents) sum to zero, none of them zero."""
    count = draw(st.integers(min_value=2, max_value=6))
    cents = draw(st.lists(CENTS, min_size=count - 1, max_size=count - 1))
    last = -sum(cents)
    if last == 0:  # nudge the first line so the balancing line is not zero
        cents[0] += 1 if cents[0] != -1 else 2
        last = -sum(cents)
    cents.append(last)
    return [
        (draw(st.sampled_from(CODES)), amount, draw(st.none() | st.integers(0, ORGANISATIONS - 1)))
        for amount in cents
    ]


@pytest.fixture
def organisation_ids(session):
    return [factories.OrganisationFactory().id for _ in range(ORGANISATIONS)]


def balances():
    return {row.code: row.balance for row in trial_balance().accounts}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(balanced_lines(), min_size=1, max_size=4), data=st.data())
def test_generated_entries_keep_the_books_balanced(session, organisation_ids, entries, data):
    actor = Actor.system("property test")
    with session.begin_nested() as example:  # each example starts from the same books
        before = balances()
        posted_to_account: Counter[str] = Counter()
        posted_to_organisation: Counter[tuple[str, int]] = Counter()
        recorded = []
        for lines in entries:
            recorded.append(post_entry(
                actor, entry_date=date(2026, 4, 1), memo="Generated", kind="test",
                lines=[Line(code, from_cents(cents),
                            None if org is None else organisation_ids[org])
                       for code, cents, org in lines],
            ))
            for code, cents, org in lines:
                posted_to_account[code] += cents
                if org is not None:
                    posted_to_organisation[(code, organisation_ids[org])] += cents

        report = trial_balance()
        assert report.balanced
        assert report.total_debit == report.total_credit
        assert sum(row.balance for row in report.accounts) == 0
        for row in report.accounts:
            expected = before[row.code] + from_cents(posted_to_account[row.code])
            assert row.balance == expected
        for code in posted_to_account:
            assert account_balance(code) == before[code] + from_cents(posted_to_account[code])
        for (code, organisation_id), cents in posted_to_organisation.items():
            assert account_balance(code, organisation_id) == from_cents(cents)
            assert organisation_balances(code)[organisation_id] == from_cents(cents)

        for entry in data.draw(st.permutations(recorded)):
            reverse_entry(actor, entry.id, "Generated mistake")
        assert balances() == before
        assert trial_balance().balanced
        example.rollback()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=balanced_lines())
def test_reversing_one_entry_restores_the_balances_before_it(session, organisation_ids, lines):
    actor = Actor.system("property test")
    with session.begin_nested() as example:
        post_entry(actor, entry_date=date(2026, 4, 1), memo="Earlier", kind="test", lines=[
            Line(chart.CASH, Decimal("100.00")), Line(chart.GRANT_INCOME, Decimal("-100.00"))])
        before = balances()
        entry = post_entry(actor, entry_date=date(2026, 4, 2), memo="Generated", kind="test",
                           lines=[Line(code, from_cents(cents)) for code, cents, _ in lines])
        posted: Counter[str] = Counter()
        for code, cents, _ in lines:
            posted[code] += cents
        assert balances() == {code: before[code] + from_cents(posted[code]) for code in before}
        reverse_entry(actor, entry.id, "Mistake")
        assert balances() == before
        example.rollback()
