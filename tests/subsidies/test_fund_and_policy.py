"""The fund's balances by restriction and the need-weight formula."""

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.errors import RuleRefused
from buyersclub.ledger.chart import CASH, FUND_RESTRICTED, FUND_UNRESTRICTED
from buyersclub.ledger.services import Line, post_entry
from subsidies import fund
from subsidies.models import SubsidyPolicy
from subsidies.policy import DEFAULT_WEIGHTS, need_weight

SYSTEM = Actor.system("test")


def _grant(amount: str, account: str) -> None:
    post_entry(SYSTEM, entry_date=date(2026, 11, 1), memo="grant", kind="grant",
               lines=[Line(CASH, Decimal(amount)), Line(account, -Decimal(amount))])


def test_balances_are_money_available_by_restriction(session):
    assert fund.balances() == {None: Decimal("0.00"), **{c: Decimal("0.00") for c in FUND_RESTRICTED}}
    _grant("1234.56", FUND_UNRESTRICTED)
    _grant("500.00", FUND_RESTRICTED["naloxone"])
    balances = fund.balances()
    assert balances[None] == Decimal("1234.56")
    assert balances["naloxone"] == Decimal("500.00")
    assert balances["pipes"] == Decimal("0.00")


def test_taking_more_than_the_fund_holds_is_refused(session):
    _grant("100.00", FUND_RESTRICTED["pipes"])
    fund.lock_fund()
    fund.require_available("pipes", Decimal("100.00"))
    with pytest.raises(RuleRefused, match=r"restricted to pipes money is \$100.00"):
        fund.require_available("pipes", Decimal("100.01"))
    with pytest.raises(RuleRefused, match="unrestricted"):
        fund.require_available(None, Decimal("0.01"))


def test_an_unknown_restriction_is_refused():
    with pytest.raises(RuleRefused) as refused:
        fund.account_for("syringes")
    assert refused.value.field == "restricted_to"


def test_the_first_policy_version_is_seeded_by_the_migration(session):
    policy = session.scalars(select(SubsidyPolicy).order_by(SubsidyPolicy.version)).first()
    assert policy.version == 1
    assert policy.priority[0] == "naloxone"
    assert policy.max_share["pipes"] == "0.75"
    assert policy.weights == DEFAULT_WEIGHTS


def test_need_weight_adds_up_points_and_explains_them():
    weight = need_weight(DEFAULT_WEIGHTS, budget_band="under_50k", people_reached_band="100_500",
                         receives_public_funding=False, deprivation_decile=2)
    assert weight.value == Fraction(1 + 4 + 1 + 2 + 3)
    assert weight.explain() == (
        "need weight 11 = 1 (base) + 4 (annual budget under 50,000) + "
        "1 (100 to 500 people reached a month) + 2 (no public funding) + 3 (deprivation decile 2)"
    )
    well_funded = need_weight(DEFAULT_WEIGHTS, budget_band="over_1m", people_reached_band="under_100",
                              receives_public_funding=True, deprivation_decile=9)
    assert well_funded.value == 2
    assert well_funded.inputs["deprivation_decile"] == 9


def test_a_policy_without_points_cannot_make_a_zero_weight():
    with pytest.raises(ValueError, match="positive"):
        need_weight({"base": "0"}, budget_band="over_1m", people_reached_band="under_100",
                    receives_public_funding=True, deprivation_decile=None)


def test_tests_that_commit_leave_the_seeded_policy_in_place(committing_db):
    """After a committing test the harness empties tables but restores what migrations seed."""
    from buyersclub.db import db
    from tests.conftest import empty_all_tables

    db.session.add(SubsidyPolicy(version=2, weights={}, max_share={}, priority=[]))
    db.session.commit()
    db.session.remove()
    empty_all_tables()
    versions = db.session.scalars(select(SubsidyPolicy.version)).all()
    assert versions == [1]
    db.session.add(SubsidyPolicy(version=3, weights={}, max_share={}, priority=[]))
    db.session.commit()  # the id sequence continues after the restored row


def test_an_empty_fund_reads_zero_not_minus_zero(session):
    assert all(str(amount) == "0.00" for amount in fund.balances().values())
