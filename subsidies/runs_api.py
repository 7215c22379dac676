"""Subsidy allocation runs in the JSON API (API.md: subsidy-runs rows).

Money is a string with two decimals; λ and weights are exact fractions as ``"p/q"`` strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint
from buyersclub.db import db
from buyersclub.money import from_cents
from buyersclub.organisations.models import Organisation
from subsidies.models import Award, RunStatus, SubsidyRun
from subsidies.services import runs

bp = ApiBlueprint("subsidies_runs_api", __name__, tag="subsidies")

ADMIN = (Role.ADMIN,)
RUN = "/subsidy-runs/<int:run_id>"
Money = Annotated[str, Field(description='An amount as a string with two decimals, e.g. "40.00"',
                             examples=["40.00"])]


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation_id: StrictInt
    amount: Money
    reason: str = Field(description="Why the award is fixed at this amount (required)")
    category: str | None = Field(
        default=None, description="Needed only when the member has bills in more than one category")


class AwardOut(BaseModel):
    organisation_id: int
    organisation_name: str
    category: str
    bill: Decimal
    cap: Decimal
    amount: Decimal
    percent_of_bill: Decimal
    binding_limit: str = Field(description="level, level+leftover cent, cap, floor, override, not eligible…")
    explanation: dict[str, Any] = Field(
        description="weight and its inputs, λ (level) as p/q, % of bill, the binding limit, "
                    "an override's reason")


class OverrideOut(BaseModel):
    id: int
    organisation_id: int
    category: str
    amount: Decimal
    reason: str
    created_at: datetime


class FreeUnitsOut(BaseModel):
    product_id: int
    organisation_id: int
    units: int
    unit_value: Decimal


class RunOut(BaseModel):
    id: int
    round_id: int
    status: RunStatus
    policy_version: int
    levels: dict[str, str] = Field(description="λ per category as an exact fraction p/q")
    total_awarded: Decimal
    unrestricted_available: Decimal = Field(description="Unrestricted money the run could use")
    restricted_available: dict[str, Decimal]
    created_at: datetime
    decided_at: datetime | None
    journal_entry_id: int | None
    awards: list[AwardOut]
    overrides: list[OverrideOut] = Field(description="Overrides in force")
    free_stock: list[FreeUnitsOut] = Field(description="Free units each eligible member gets (or got)")


def run_out(run: SubsidyRun) -> RunOut:
    awards = list(db.session.scalars(select(Award).where(Award.run_id == run.id)
                                     .order_by(Award.organisation_id, Award.category)))
    names = dict(db.session.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.id.in_(select(Award.organisation_id).where(Award.run_id == run.id)))).all())
    funds = run.inputs["funds"]
    return RunOut(
        id=run.id, round_id=run.round_id, status=run.status, policy_version=run.inputs["policy"]["version"],
        levels=run.level or {}, total_awarded=run.total_awarded,
        unrestricted_available=from_cents(funds["unrestricted"]),
        restricted_available={category: from_cents(cents) for category, cents in funds["restricted"].items()},
        created_at=run.created_at, decided_at=run.decided_at, journal_entry_id=run.journal_entry_id,
        awards=[AwardOut(organisation_id=award.organisation_id,
                         organisation_name=names.get(award.organisation_id, ""),
                         category=award.category, bill=award.bill, cap=award.cap, amount=award.amount,
                         percent_of_bill=Decimal(award.explanation.get("percent_of_bill", "0")),
                         binding_limit=award.binding_limit, explanation=award.explanation)
                for award in awards],
        overrides=[OverrideOut(id=each.id, organisation_id=each.organisation_id, category=each.category,
                               amount=each.amount, reason=each.reason, created_at=each.created_at)
                   for each in runs.current_overrides(run.id)],
        free_stock=[FreeUnitsOut(product_id=each.product_id, organisation_id=each.organisation_id,
                                 units=each.units, unit_value=each.unit_value)
                    for each in runs.planned_free_stock(run)],
    )


@bp.endpoint("/rounds/<int:round_id>/subsidy-runs", "POST", summary="Start a preview allocation of the fund",
             roles=ADMIN, response=RunOut, status=201)
def start_run(actor: Actor, round_id: int):
    """Allocate the fund for a closed (or later) round: a preview, with every award explained."""
    return run_out(runs.start_run(actor, round_id))


@bp.endpoint(RUN, "GET", summary="A subsidy run with its awards and explanations", roles=ADMIN,
             response=RunOut)
def get_run(actor: Actor, run_id: int):
    return run_out(runs.get_run(actor, run_id))


@bp.endpoint(RUN + "/overrides", "POST", summary="Fix one member's award, with a reason", roles=ADMIN,
             body=OverrideIn, response=RunOut)
def override(actor: Actor, run_id: int, body: OverrideIn):
    """Only on a preview run. The other awards are re-balanced; an amount above the bill is refused (422)."""
    run = runs.override_award(actor, run_id, organisation_id=body.organisation_id, amount=body.amount,
                              reason=body.reason, category=body.category)
    return run_out(run)


@bp.endpoint(RUN + "/approve", "POST", summary="Approve a preview run and post it to the ledger", roles=ADMIN,
             response=RunOut)
def approve(actor: Actor, run_id: int):
    """One approved run per round (409 for the second).

    422 when the fund no longer holds what the run takes: start a new run.
    """
    return run_out(runs.approve_run(actor, run_id).run)


@bp.endpoint(RUN + "/discard", "POST", summary="Discard a preview run", roles=ADMIN, response=RunOut)
def discard(actor: Actor, run_id: int):
    return run_out(runs.discard_run(actor, run_id))
