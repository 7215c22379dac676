"""The allocation policy's versions: reading the current one, saving a new one, weighing members.

A policy is never edited: saving makes version N+1 and every older version
stays as it was, because each subsidy run records the version it used. Two
administrators saving at the same time both aim at N+1; the ``version``
column is unique, so the second gets a clear conflict (409), not an error page.

Points, shares and amounts are exact decimals written as strings; a float is
refused. What each number means is in ``subsidies.policy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db
from buyersclub.errors import Conflict, InvalidInput, NotFound
from buyersclub.money import MoneyError, to_money
from buyersclub.organisations.models import (
    BudgetBand,
    MembershipStatus,
    Organisation,
    PeopleReachedBand,
)
from subsidies.fund import CATEGORIES
from subsidies.models import SubsidyPolicy
from subsidies.policy import NeedWeight, need_weight
from subsidies.services.grants import clean_note

MAX_POINTS = Decimal("1000")
POINT_PLACES = 4
DECILES = tuple(str(decile) for decile in range(1, 11))
BUDGET_BANDS = tuple(band.value for band in BudgetBand)
PEOPLE_BANDS = tuple(band.value for band in PeopleReachedBand)
MAX_MONEY = Decimal("9999999999.99")


# --- Reading ---------------------------------------------------------------------------


def current_policy() -> SubsidyPolicy:
    """The policy in force: the highest version (version 1 is seeded by the migrations)."""
    policy = db.session.scalars(
        select(SubsidyPolicy).order_by(SubsidyPolicy.version.desc()).limit(1)
    ).first()
    if policy is None:
        raise NotFound("There is no subsidy policy yet: run the database migrations.")
    return policy


def policy_history() -> list[SubsidyPolicy]:
    """Every version, newest first."""
    return list(db.session.scalars(select(SubsidyPolicy).order_by(SubsidyPolicy.version.desc())))


def history_statement():
    return select(SubsidyPolicy).order_by(SubsidyPolicy.version.desc())


def get_version(version: int) -> SubsidyPolicy:
    policy = db.session.scalar(select(SubsidyPolicy).where(SubsidyPolicy.version == version))
    if policy is None:
        raise NotFound(f"There is no policy version {version}.")
    return policy


# --- Validation --------------------------------------------------------------------------


def _decimal(value: Any, field: str, what: str) -> Decimal:
    if isinstance(value, float | bool) or value is None:
        raise InvalidInput(f"Write {what} as a decimal number in a string, e.g. \"1.5\".", field=field)
    if isinstance(value, str) and not value.strip():
        raise InvalidInput(f"{what.capitalize()} is required.", field=field)
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise InvalidInput(f"{what.capitalize()} must be a number, e.g. \"1.5\".", field=field) from exc
    if not number.is_finite():
        raise InvalidInput(f"{what.capitalize()} must be a number, e.g. \"1.5\".", field=field)
    return number


def _plain(number: Decimal) -> str:
    """A decimal as a short plain string: 4, 0.75, 2.5 (no exponent, no trailing zeros)."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _points(value: Any, field: str, *, positive: bool = False) -> str:
    number = _decimal(value, field, "the points")
    if number < 0 or (positive and number == 0):
        need = "more than zero" if positive else "zero or more"
        raise InvalidInput(f"The points must be {need}.", field=field)
    if number > MAX_POINTS:
        raise InvalidInput(f"The points must be at most {MAX_POINTS}.", field=field)
    if -number.normalize().as_tuple().exponent > POINT_PLACES:
        raise InvalidInput(f"Use at most {POINT_PLACES} decimal places.", field=field)
    return _plain(number)


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be an object.", field=field)
    return value


def _no_strangers(given: Mapping[str, Any], allowed: Sequence[str], field: str) -> None:
    for key in given:
        if key not in allowed:
            raise InvalidInput(
                f"{key!r} is not one of {', '.join(allowed)}.", field=f"{field}.{key}"
            )


def _band_points(value: Any, bands: Sequence[str], field: str, *, complete: bool) -> dict[str, str]:
    given = _mapping(value, field)
    _no_strangers(given, bands, field)
    if complete:
        for band in bands:
            if band not in given:
                raise InvalidInput(f"Give the points for {band}.", field=f"{field}.{band}")
    return {band: _points(given[band], f"{field}.{band}") for band in bands if band in given}


def clean_weights(value: Any) -> dict[str, Any]:
    """The need-weight points: a positive base, and non-negative points for each input."""
    given = _mapping(value, "weights")
    parts = ("base", "budget_band", "people_reached_band", "no_public_funding", "deprivation_decile")
    _no_strangers(given, parts, "weights")
    for part in ("base", "budget_band", "people_reached_band", "no_public_funding"):
        if part not in given:
            raise InvalidInput(f"weights.{part} is required.", field=f"weights.{part}")
    deciles = _band_points(given.get("deprivation_decile", {}), DECILES,
                           "weights.deprivation_decile", complete=False)
    return {
        "base": _points(given["base"], "weights.base", positive=True),
        "budget_band": _band_points(given["budget_band"], BUDGET_BANDS, "weights.budget_band",
                                    complete=True),
        "people_reached_band": _band_points(given["people_reached_band"], PEOPLE_BANDS,
                                            "weights.people_reached_band", complete=True),
        "no_public_funding": _points(given["no_public_funding"], "weights.no_public_funding"),
        # Deciles without points score nothing; keep only those that score.
        "deprivation_decile": {decile: points for decile, points in deciles.items() if points != "0"},
    }


def clean_max_share(value: Any) -> dict[str, str]:
    """For every category, the largest share of a bill the fund may pay: 0 to 1."""
    given = _mapping(value, "max_share")
    _no_strangers(given, CATEGORIES, "max_share")
    shares = {}
    for category in CATEGORIES:
        field = f"max_share.{category}"
        if category not in given:
            raise InvalidInput(f"Give the largest share for {category}.", field=field)
        share = _decimal(given[category], field, "the share")
        if not 0 <= share <= 1:
            raise InvalidInput("A share is between 0 and 1 (0.75 is 75%).", field=field)
        if -share.normalize().as_tuple().exponent > POINT_PLACES:
            raise InvalidInput(f"Use at most {POINT_PLACES} decimal places.", field=field)
        shares[category] = _plain(share)
    return shares


def clean_priority(value: Any) -> list[str]:
    """Every category exactly once, first funded first."""
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise InvalidInput("The priority is a list of categories.", field="priority")
    if sorted(value) != sorted(CATEGORIES):
        raise InvalidInput(
            f"The priority must list each of {', '.join(CATEGORIES)} exactly once.",
            field="priority",
        )
    return list(value)


def _money_or_none(value: Any, field: str, what: str, *, positive: bool) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float | bool):
        raise InvalidInput(f"Write {what} as money in a string, e.g. \"25.00\".", field=field)
    try:
        amount = to_money(value)
    except MoneyError as exc:
        raise InvalidInput(f"Write {what} as money with at most two decimals, e.g. 25.00.",
                           field=field) from exc
    if amount < 0 or (positive and amount == 0):
        raise InvalidInput(f"{what.capitalize()} must be more than zero, or left empty."
                           if positive else f"{what.capitalize()} cannot be negative.", field=field)
    if amount > MAX_MONEY:
        raise InvalidInput(f"{what.capitalize()} is too large.", field=field)
    return amount


# --- Saving a new version --------------------------------------------------------------


def new_policy_version(
    actor: Actor,
    *,
    weights: Any,
    max_share: Any,
    priority: Any,
    floor_amount: Any = None,
    member_cap: Any = None,
    note: Any = None,
    based_on: int | None = None,
) -> SubsidyPolicy:
    """Save version N+1 of the policy; older versions are never changed.

    ``based_on`` is the version the administrator was looking at: when another
    version was saved since, the save is refused (409) rather than silently
    replacing changes they have not seen. A save racing another for the same
    number is refused the same way.
    """
    actor.require(Role.ADMIN)
    cleaned = {
        "weights": clean_weights(weights),
        "max_share": clean_max_share(max_share),
        "priority": clean_priority(priority),
        "floor_amount": _money_or_none(floor_amount, "floor_amount", "the floor", positive=False)
        or Decimal("0.00"),
        "member_cap": _money_or_none(member_cap, "member_cap", "the cap", positive=True),
        "note": clean_note(note),
    }
    current = current_policy()
    if based_on is not None and based_on != current.version:
        raise Conflict(
            f"Version {current.version} was saved while you were editing version {based_on}. "
            "Review it, then save your changes again.",
            field="based_on",
            code="policy_changed",
        )
    policy = SubsidyPolicy(version=current.version + 1, created_by_id=actor.user_id, **cleaned)
    try:
        # A savepoint: losing the race for the version number leaves the session usable.
        with db.session.begin_nested():
            db.session.add(policy)
    except IntegrityError as exc:
        raise Conflict(
            f"Another administrator saved version {current.version + 1} at the same time. "
            "Review it, then save your changes again.",
            code="policy_changed",
        ) from exc
    record(actor, "subsidy_policy.created", "subsidy_policy", policy.id, after=snapshot(policy))
    return policy


# --- Need weights -------------------------------------------------------------------------


def organisation_weight(policy: SubsidyPolicy, organisation: Organisation) -> NeedWeight:
    """The organisation's need weight under this policy, from its bands, funding and decile.

    Reads only ``budget_band``, ``people_reached_band`` (enum or its string
    value), ``receives_public_funding`` and ``deprivation_decile``, so anything
    carrying those four (a row read without loading the organisation) will do.
    """
    return need_weight(
        policy.weights,
        budget_band=_value(organisation.budget_band),
        people_reached_band=_value(organisation.people_reached_band),
        receives_public_funding=bool(organisation.receives_public_funding),
        deprivation_decile=organisation.deprivation_decile,
    )


def _value(band: Any) -> str:
    return band.value if hasattr(band, "value") else str(band)


@dataclass(frozen=True)
class WeighedOrganisation:
    organisation: Organisation
    weight: NeedWeight


def low_resource_weights(policy: SubsidyPolicy) -> list[WeighedOrganisation]:
    """Each approved organisation assessed low-resource with its weight, by name (one query)."""
    organisations = db.session.scalars(
        select(Organisation)
        .where(Organisation.status == MembershipStatus.APPROVED, Organisation.low_resource.is_(True))
        .order_by(Organisation.name, Organisation.id)
    ).all()
    return [WeighedOrganisation(each, organisation_weight(policy, each)) for each in organisations]
