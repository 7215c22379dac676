"""Versions of the allocation policy, and need weights under them."""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.errors import Conflict, InvalidInput, PermissionDenied
from buyersclub.organisations.models import BudgetBand, MembershipStatus, PeopleReachedBand
from subsidies.models import SubsidyPolicy
from subsidies.policy import DEFAULT_MAX_SHARE, DEFAULT_PRIORITY, DEFAULT_WEIGHTS
from subsidies.services import policies
from subsidies.services.policies import (
    current_policy,
    low_resource_weights,
    new_policy_version,
    organisation_weight,
    policy_history,
)
from tests.factories import OrganisationFactory


def _settings(**changes):
    values = {
        "weights": copy.deepcopy(DEFAULT_WEIGHTS),
        "max_share": dict(DEFAULT_MAX_SHARE),
        "priority": list(DEFAULT_PRIORITY),
        "floor_amount": "0.00",
        "member_cap": None,
        "note": "Oxygen down to 90%",
    }
    values.update(changes)
    return values


@pytest.fixture
def administrator(admin):
    return Actor.for_user(admin)


def _versions(session) -> int:
    return session.scalar(select(func.count()).select_from(SubsidyPolicy))


def test_the_current_policy_is_the_seeded_first_version(session):
    policy = current_policy()
    assert policy.version == 1
    assert policy.weights == DEFAULT_WEIGHTS
    assert [each.version for each in policy_history()] == [1]


def test_saving_makes_the_next_version_and_leaves_the_old_one_as_it_was(session, administrator):
    weights = copy.deepcopy(DEFAULT_WEIGHTS)
    weights["budget_band"]["under_50k"] = "5.50"
    weights["deprivation_decile"] = {"1": "4", "2": "0", "10": "0.25"}
    saved = new_policy_version(
        administrator, **_settings(weights=weights, max_share={**DEFAULT_MAX_SHARE, "oxygen": "0.90"},
                                   priority=["oxygen", "naloxone", "pipes", "other"],
                                   floor_amount="25", member_cap="1500.00"),
        based_on=1)

    assert saved.version == 2
    assert current_policy().id == saved.id
    # Stored as plain decimal strings; deciles that score nothing are left out.
    assert saved.weights["budget_band"]["under_50k"] == "5.5"
    assert saved.weights["deprivation_decile"] == {"1": "4", "10": "0.25"}
    assert saved.max_share["oxygen"] == "0.9"
    assert saved.priority == ["oxygen", "naloxone", "pipes", "other"]
    assert (saved.floor_amount, saved.member_cap) == (Decimal("25.00"), Decimal("1500.00"))
    assert saved.created_by_id == administrator.user_id
    session.expire_all()
    first = policies.get_version(1)
    assert first.weights == DEFAULT_WEIGHTS
    assert first.max_share == DEFAULT_MAX_SHARE
    assert first.member_cap is None
    assert [each.version for each in policy_history()] == [2, 1]
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "subsidy_policy.created")).one()
    assert event.entity_id == saved.id and event.after["version"] == 2

    third = new_policy_version(administrator, **_settings(note="Back to the defaults"))
    assert third.version == 3
    assert policies.get_version(2).max_share["oxygen"] == "0.9"


def _with(path: str, value):
    """Settings with one value replaced, ``path`` like 'weights.budget_band.under_50k'."""
    values = _settings()
    keys = path.split(".")
    target = values
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return values


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("weights.base", "0", "weights.base"),
        ("weights.base", "-1", "weights.base"),
        ("weights.base", 1.5, "weights.base"),
        ("weights.base", _DELETE, "weights.base"),
        ("weights.budget_band.under_50k", "-0.5", "weights.budget_band.under_50k"),
        ("weights.budget_band.under_50k", "four", "weights.budget_band.under_50k"),
        ("weights.budget_band.under_50k", "", "weights.budget_band.under_50k"),
        ("weights.budget_band.under_50k", _DELETE, "weights.budget_band.under_50k"),
        ("weights.budget_band.huge", "1", "weights.budget_band.huge"),
        ("weights.people_reached_band.over_2000", "Infinity", "weights.people_reached_band.over_2000"),
        ("weights.people_reached_band.over_2000", "1.00001", "weights.people_reached_band.over_2000"),
        ("weights.no_public_funding", "-2", "weights.no_public_funding"),
        ("weights.deprivation_decile.11", "1", "weights.deprivation_decile.11"),
        ("weights.deprivation_decile.1", "-3", "weights.deprivation_decile.1"),
        ("weights.budget_band", "4", "weights.budget_band"),
        ("weights.people", {}, "weights.people"),
        ("max_share.pipes", "1.01", "max_share.pipes"),
        ("max_share.pipes", "-0.1", "max_share.pipes"),
        ("max_share.pipes", 0.75, "max_share.pipes"),
        ("max_share.pipes", "75%", "max_share.pipes"),
        ("max_share.pipes", _DELETE, "max_share.pipes"),
        ("max_share.syringes", "1", "max_share.syringes"),
        ("priority", ["naloxone", "naloxone", "pipes", "other"], "priority"),
        ("priority", ["naloxone", "oxygen", "pipes"], "priority"),
        ("priority", ["naloxone", "oxygen", "pipes", "other", "syringes"], "priority"),
        ("priority", "naloxone,oxygen,pipes,other", "priority"),
        ("floor_amount", "-1.00", "floor_amount"),
        ("floor_amount", "10.001", "floor_amount"),
        ("floor_amount", 10.5, "floor_amount"),
        ("member_cap", "0", "member_cap"),
        ("member_cap", "lots", "member_cap"),
        ("note", "n" * 2001, "note"),
    ],
)
def test_a_bad_policy_names_the_field_and_saves_nothing(session, administrator, path, value, field):
    with pytest.raises(InvalidInput) as refused:
        new_policy_version(administrator, **_with(path, value))
    assert refused.value.field == field
    assert _versions(session) == 1


def test_only_administrators_save_policies(session, finance):
    with pytest.raises(PermissionDenied):
        new_policy_version(Actor.for_user(finance), **_settings())
    assert _versions(session) == 1


def test_a_save_based_on_an_older_version_is_a_conflict(session, administrator):
    new_policy_version(administrator, **_settings(), based_on=1)
    with pytest.raises(Conflict, match="Version 2 was saved while you were editing version 1"):
        new_policy_version(administrator, **_settings(note="mine"), based_on=1)
    assert _versions(session) == 2


def test_losing_the_race_for_the_version_number_is_a_conflict(session, administrator, monkeypatch):
    """Two saves that both read version 1 both aim at version 2: the unique key decides."""
    first = current_policy()
    new_policy_version(administrator, **_settings())
    monkeypatch.setattr(policies, "current_policy", lambda: first)

    with pytest.raises(Conflict, match="saved version 2 at the same time"):
        new_policy_version(administrator, **_settings(note="the slower save"))

    # The session is still usable: the losing insert was rolled back to its savepoint.
    monkeypatch.undo()
    assert current_policy().version == 2
    assert _versions(session) == 2


def _organisation(**profile):
    values = {"budget_band": BudgetBand.UNDER_50K, "people_reached_band": PeopleReachedBand.FROM_100_TO_500,
              "receives_public_funding": False, "deprivation_decile": 2, "low_resource": True}
    values.update(profile)
    return OrganisationFactory(**values)


def test_an_organisations_weight_comes_from_its_bands_funding_and_decile(session, administrator):
    organisation = _organisation()
    weight = organisation_weight(current_policy(), organisation)
    assert weight.value == Fraction(11)
    assert weight.explain() == (
        "need weight 11 = 1 (base) + 4 (annual budget under 50,000) + "
        "1 (100 to 500 people reached a month) + 2 (no public funding) + 3 (deprivation decile 2)"
    )
    assert weight.inputs == {"budget_band": "under_50k", "people_reached_band": "100_500",
                             "receives_public_funding": False, "deprivation_decile": 2}

    publicly_funded = _organisation(receives_public_funding=True, deprivation_decile=None,
                                    budget_band=BudgetBand.OVER_1M)
    assert organisation_weight(current_policy(), publicly_funded).value == Fraction(1 + 1 + 1)

    weights = copy.deepcopy(DEFAULT_WEIGHTS)
    weights["no_public_funding"] = "0.5"
    newer = new_policy_version(administrator, **_settings(weights=weights))
    assert organisation_weight(newer, organisation).value == Fraction(19, 2)
    # The older version still gives the weight it gave.
    assert organisation_weight(policies.get_version(1), organisation).value == Fraction(11)


def test_low_resource_weights_lists_approved_low_resource_members_in_one_query(session, count_queries):
    _organisation(name="Bay Outreach")
    _organisation(name="Anchor Union", deprivation_decile=None)
    _organisation(name="Not assessed", low_resource=False)
    _organisation(name="Applied only", status=MembershipStatus.APPLIED)
    policy = current_policy()

    with count_queries() as counter:
        weighed = low_resource_weights(policy)

    assert counter.count == 1
    assert [(each.organisation.name, each.weight.value) for each in weighed] == [
        ("Anchor Union", Fraction(8)), ("Bay Outreach", Fraction(11))]
    for _ in range(5):
        _organisation()
    with count_queries() as counter:
        assert len(low_resource_weights(policy)) == 7
    assert counter.count == 1
