"""The subsidy fund and the allocation policy in the JSON API (API.md: fund, subsidy policies).

Money is a string with two decimals; policy points and shares are decimal
strings. Recording and reversing grants is finance's (admins read the fund);
the policy is the administrators'.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, Field

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, paginate
from buyersclub.ledger.services import reversal_of
from subsidies.models import Grant, SubsidyPolicy
from subsidies.services import grants as grant_services
from subsidies.services import policies

bp = ApiBlueprint("subsidies_fund_api", __name__, tag="fund")

READERS = (Role.ADMIN, Role.FINANCE)
FINANCE = (Role.FINANCE,)
ADMIN = (Role.ADMIN,)


# --- Input ---------------------------------------------------------------------------


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Who the money came from: the funder or donor", max_length=500)
    amount: str = Field(description="Money as a string with at most two decimals", examples=["2500.00"])
    received_on: str = Field(description="The day the money arrived (YYYY-MM-DD), not in the future",
                             json_schema_extra={"format": "date"})
    restricted_to: str | None = Field(
        default=None,
        description="A product category the money may only pay for (pipes, naloxone, oxygen, "
                    "other), or null for unrestricted money")
    note: str | None = None


class ReverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why the grant is reversed; kept with the reversal entry")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Any] = Field(
        description="Need-weight points as decimal strings: base (positive), budget_band and "
                    "people_reached_band (points for every band), no_public_funding, and "
                    "deprivation_decile (points per decile \"1\"..\"10\"; missing deciles score 0)")
    max_share: dict[str, str] = Field(
        description="For every category, the largest share of a bill the fund may pay, 0 to 1")
    priority: list[str] = Field(description="Every category once, funded first to last")
    floor_amount: str | None = Field(default=None, description="Minimum award (money); null is 0.00")
    member_cap: str | None = Field(default=None, description="Largest award per member (money), or null")
    note: str | None = Field(default=None, description="Why this version: shown in the history")
    based_on_version: int | None = Field(
        default=None,
        description="The version these values were edited from; refused (409) if a newer one exists")


# --- Output --------------------------------------------------------------------------


class BalanceOut(BaseModel):
    restricted_to: str | None
    available: Decimal


class FundOut(BaseModel):
    balances: list[BalanceOut]
    total: Decimal
    currency: str


class GrantOut(BaseModel):
    id: int
    source: str
    amount: Decimal
    received_on: date
    restricted_to: str | None
    note: str | None
    journal_entry_id: int
    recorded_at: datetime
    recorded_by_id: int | None
    reversed: bool
    reversal_entry_id: int | None


class PolicyOut(BaseModel):
    id: int
    version: int
    current: bool
    weights: dict[str, Any]
    max_share: dict[str, str]
    priority: list[str]
    floor_amount: Decimal
    member_cap: Decimal | None
    note: str | None
    created_at: datetime
    created_by_id: int | None


def _grant_out(grant: Grant, reversal_entry_id: int | None) -> GrantOut:
    return GrantOut(
        id=grant.id, source=grant.source, amount=grant.amount, received_on=grant.received_on,
        restricted_to=grant.restricted_to, note=grant.note, journal_entry_id=grant.journal_entry_id,
        recorded_at=grant.recorded_at, recorded_by_id=grant.recorded_by_id,
        reversed=reversal_entry_id is not None, reversal_entry_id=reversal_entry_id,
    )


def _policy_out(policy: SubsidyPolicy, current_version: int) -> PolicyOut:
    return PolicyOut(
        id=policy.id, version=policy.version, current=policy.version == current_version,
        weights=policy.weights, max_share=policy.max_share, priority=policy.priority,
        floor_amount=policy.floor_amount, member_cap=policy.member_cap, note=policy.note,
        created_at=policy.created_at, created_by_id=policy.created_by_id,
    )


# --- The fund ------------------------------------------------------------------------


@bp.endpoint("/fund", "GET", summary="Money available in the fund, by restriction",
             roles=READERS, response=FundOut)
def get_fund(actor: Actor) -> FundOut:
    """One row for unrestricted money (``restricted_to: null``) and one per category.
    Restricted money only ever pays for its category. Read from the ledger."""
    balances = grant_services.fund_balances()
    return FundOut(
        balances=[BalanceOut(restricted_to=row.restricted_to, available=row.available)
                  for row in balances],
        total=sum((row.available for row in balances), Decimal("0.00")),
        currency=current_app.config["CLUB_CURRENCY"],
    )


@bp.endpoint("/fund/grants", "GET", summary="Grants and donations received, newest first",
             roles=READERS, response=GrantOut, paginated=True,
             query={"restricted_to": "Only grants restricted to this category; 'none' for unrestricted"})
def list_grants(actor: Actor) -> dict:
    statement = grant_services.grants_statement(request.args.get("restricted_to"))
    page = paginate(statement, lambda grant: grant)
    grants: list[Grant] = page["items"]
    reversed_by = grant_services.reversals_for(grants)
    page["items"] = [_grant_out(grant, reversed_by.get(grant.id)).model_dump(mode="json")
                     for grant in grants]
    return page


@bp.endpoint("/fund/grants", "POST", summary="Record a grant or donation into the fund",
             roles=FINANCE, body=GrantIn, response=GrantOut, status=201)
def create_grant(actor: Actor, body: GrantIn) -> GrantOut:
    """Posts Dr bank, Cr the fund's account for the restriction. Finance only:
    administrators read the fund but do not record money received."""
    grant = grant_services.record_grant(
        actor, body.source, body.amount, body.received_on,
        restricted_to=body.restricted_to, note=body.note,
    )
    return _grant_out(grant, None)


@bp.endpoint("/fund/grants/<int:grant_id>", "GET", summary="One grant", roles=READERS,
             response=GrantOut)
def get_grant(actor: Actor, grant_id: int) -> GrantOut:
    grant = grant_services.get_grant(actor, grant_id)
    reversal = reversal_of(grant.journal_entry_id)
    return _grant_out(grant, reversal.id if reversal else None)


@bp.endpoint("/fund/grants/<int:grant_id>/reverse", "POST",
             summary="Reverse a mistaken grant with a ledger reversal", roles=FINANCE,
             body=ReverseIn, response=GrantOut)
def reverse_grant(actor: Actor, grant_id: int, body: ReverseIn) -> GrantOut:
    """The grant and its entry stay; a reversal entry takes the money back out.
    Refused (422) when that part of the fund no longer holds the amount; 409 when
    already reversed."""
    reversal = grant_services.reverse_grant(actor, grant_id, body.reason,
                                            currency=current_app.config["CLUB_CURRENCY"])
    return _grant_out(grant_services.get_grant(actor, grant_id), reversal.id)


# --- The policy ------------------------------------------------------------------------


@bp.endpoint("/subsidy-policies", "GET", summary="Allocation policy versions, newest first",
             roles=ADMIN, response=PolicyOut, paginated=True)
def list_policies(actor: Actor) -> dict:
    current_version = policies.current_policy().version
    return paginate(policies.history_statement(),
                    lambda policy: _policy_out(policy, current_version))


@bp.endpoint("/subsidy-policies/current", "GET", summary="The allocation policy in force",
             roles=ADMIN, response=PolicyOut)
def get_current_policy(actor: Actor) -> PolicyOut:
    policy = policies.current_policy()
    return _policy_out(policy, policy.version)


@bp.endpoint("/subsidy-policies/<int:version>", "GET", summary="One version of the allocation policy",
             roles=ADMIN, response=PolicyOut)
def get_policy_version(actor: Actor, version: int) -> PolicyOut:
    return _policy_out(policies.get_version(version), policies.current_policy().version)


@bp.endpoint("/subsidy-policies", "POST", summary="Save a new version of the allocation policy",
             roles=ADMIN, body=PolicyIn, response=PolicyOut, status=201)
def create_policy(actor: Actor, body: PolicyIn) -> PolicyOut:
    """Creates version N+1; older versions never change. A save racing another,
    or based on an older version than the current one, is refused with 409."""
    policy = policies.new_policy_version(
        actor, weights=body.weights, max_share=body.max_share, priority=body.priority,
        floor_amount=body.floor_amount, member_cap=body.member_cap, note=body.note,
        based_on=body.based_on_version,
    )
    return _policy_out(policy, policy.version)
