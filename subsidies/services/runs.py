"""Subsidy allocation runs: a preview, overrides, then approval to the ledger (or discard).

The arithmetic is the pure engine's (``subsidies.engine``); this module reads a
round and the fund, feeds the engine, stores what it returns, and posts it.

* **Preview** (admin; a round closed or later, without an approved run):
  members are the organisations with current allocations (units > 0) in the
  round; eligible are those approved and assessed low-resource; a member's
  bill per category is its units times the club price, in cents (the fund's
  free units are not billed); its weight comes from the policy's points and
  its profile bands; caps are the bill times the policy's maximum share (and
  the policy's absolute ``member_cap``), the floor is ``floor_amount``;
  money is the fund's balance per restriction, less, in unrestricted money,
  the cost of the free stock this run would give away (see
  ``subsidies.services.free_stock``: giving it away takes its cost out of
  the fund). Everything the engine got is kept in ``SubsidyRun.inputs`` as
  JSON -- weights and shares as ``"p/q"`` strings, money as integer cents --
  so :func:`recompute` gives the same awards from the snapshot alone.
* **Override** (admin, preview runs only): one member's award in one
  category fixed, with a reason; a later override of the same member and
  category supersedes the earlier one. The overrides in force are part of the
  snapshot too, and every award is recomputed so the others re-balance.
* **Approve** (admin): the run row locked, the fund locked
  (``lock_fund``), every restriction checked to still hold what the run takes
  (422 otherwise: the preview is stale), the run marked approved (the
  database allows one approved run per round: a lost race is 409), and ONE
  balanced journal entry (kind ``subsidy_award``, source the run): Dr the
  fund's account of each restriction used, Cr 1100 receivables per member
  (its award reduces what it owes), and, for free stock the fund paid for, Dr
  3000 / Cr 1200 at cost. The free units are recorded as ``FreeStockAward``.
* **Discard** (admin, preview runs only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import db, sql_cents_sum, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, RuleRefused
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line, post_entry
from buyersclub.money import MoneyError, format_money, from_cents, to_cents, to_money
from buyersclub.organisations.models import MembershipStatus, Organisation
from orders.models import Allocation, Product, Round, RoundItem, RoundStatus
from orders.services.rounds import get_round
from subsidies import fund
from subsidies.engine import (
    Allocation as EngineAllocation,
)
from subsidies.engine import (
    AllocationError,
    CategoryPolicy,
    Funds,
    Limit,
    Member,
    Override,
    Policy,
    allocate_subsidies,
)
from subsidies.models import Award, AwardOverride, RunStatus, SubsidyPolicy, SubsidyRun
from subsidies.policy import NeedWeight
from subsidies.services import free_stock
from subsidies.services.policies import current_policy, organisation_weight

ADMIN = (Role.ADMIN,)
# Awards are credits on the invoices: once those are issued, a run approved later would move
# members' receivables away from what their invoices say.
ALLOCATABLE = (RoundStatus.CLOSED, RoundStatus.ORDERED, RoundStatus.RECEIVED)
INVOICED = (RoundStatus.INVOICED, RoundStatus.SETTLED)
ENTRY_KIND = "subsidy_award"
SNAPSHOT_VERSION = 1
REASON_LENGTH = 500
STALE_HINT = "The preview may be out of date: start a new run for this round and approve that one."


def ratio(value: Fraction | int) -> str:
    """An exact number as a ``"p/q"`` string (``"11/1"``), for the snapshot."""
    value = Fraction(value)
    return f"{value.numerator}/{value.denominator}"


# --- The policy ----------------------------------------------------------------------


def _policy_snapshot(policy: SubsidyPolicy, billed: set[str]) -> dict[str, Any]:
    categories = {}
    cap_cents = to_cents(policy.member_cap) if policy.member_cap is not None else None
    floor_cents = to_cents(policy.floor_amount or Decimal("0.00"))
    # A category billed in the round but absent from the policy gets no share of the fund.
    for category in sorted(set(policy.max_share) | billed):
        share = Fraction(Decimal(str(policy.max_share.get(category, "0"))))
        categories[category] = {"max_share": ratio(share), "cap_cents": cap_cents, "floor_cents": floor_cents}
    priority = [category for category in policy.priority if category in categories]
    return {"version": policy.version, "categories": categories, "priority": priority}


# --- Building the engine's inputs -----------------------------------------------------


@dataclass(frozen=True)
class _Profile:
    organisation_id: int
    eligible: bool
    budget_band: str
    people_reached_band: str
    receives_public_funding: bool
    deprivation_decile: int | None


def _bills(round_id: int) -> tuple[dict[int, dict[str, int]], dict[int, set[int]]]:
    """Per member, cents billed per category; per product, who was allocated units. Two queries."""
    prices = {
        product_id: (to_cents(price), str(category))
        for product_id, price, category in db.session.execute(
            select(RoundItem.product_id, RoundItem.club_price, Product.category)
            .join(Product, Product.id == RoundItem.product_id)
            .where(RoundItem.round_id == round_id)
        )
    }
    units = func.sum(Allocation.firm_units + Allocation.tolerance_units)
    rows = db.session.execute(
        select(Allocation.organisation_id, Allocation.product_id, units)
        .where(Allocation.round_id == round_id, Allocation.superseded_at.is_(None))
        .group_by(Allocation.organisation_id, Allocation.product_id)
    )
    bills: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    allocated: dict[int, set[int]] = defaultdict(set)
    for organisation_id, product_id, count in rows:
        count = int(count or 0)
        if count <= 0 or product_id not in prices:
            continue
        cents, category = prices[product_id]
        bills[organisation_id][category] += count * cents
        allocated[product_id].add(organisation_id)
    return {key: dict(value) for key, value in bills.items()}, dict(allocated)


def _profiles(round_id: int) -> list[_Profile]:
    """The profile bands of every organisation with a current allocation in the round: one query."""
    members = (
        select(Allocation.organisation_id)
        .where(Allocation.round_id == round_id, Allocation.superseded_at.is_(None))
        .distinct()
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Organisation.id, Organisation.status, Organisation.low_resource, Organisation.budget_band,
               Organisation.people_reached_band, Organisation.receives_public_funding,
               Organisation.deprivation_decile)
        .where(Organisation.id.in_(members))
        .order_by(Organisation.id)
    )
    return [
        _Profile(
            organisation_id=organisation_id,
            eligible=status == MembershipStatus.APPROVED and bool(low_resource),
            budget_band=str(budget), people_reached_band=str(people),
            receives_public_funding=bool(public), deprivation_decile=decile,
        )
        for organisation_id, status, low_resource, budget, people, public, decile in rows
    ]


def _weights_for(policy: SubsidyPolicy, profiles: Sequence[_Profile]) -> dict[int, NeedWeight]:
    """Each member's need weight under the policy (computed once per distinct profile)."""
    cache: dict[tuple, NeedWeight] = {}
    weights = {}
    for profile in profiles:
        bands = (profile.budget_band, profile.people_reached_band, profile.receives_public_funding,
                 profile.deprivation_decile)
        if bands not in cache:
            # The profile carries the four fields the weight reads, without loading the organisation.
            cache[bands] = organisation_weight(policy, profile)  # type: ignore[arg-type]
        weights[profile.organisation_id] = cache[bands]
    return weights


def build_inputs(found: Round, policy: SubsidyPolicy) -> dict[str, Any]:
    """Everything the engine needs for the round, as the JSON the run keeps."""
    bills, allocated = _bills(found.id)
    profiles = [profile for profile in _profiles(found.id) if profile.organisation_id in bills]
    weights = _weights_for(policy, profiles)
    eligible = {profile.organisation_id for profile in profiles if profile.eligible}
    stock = free_stock.plan(found, eligible, allocated)
    reserved = sum(line.posted_cents for line in stock)

    balances = {restriction: to_cents(amount) for restriction, amount in fund.balances().items()}
    billed = {category for member_bills in bills.values() for category in member_bills}
    members = []
    texts: dict[int, tuple[str, list[list[str]]]] = {}  # by id(NeedWeight): shared by equal profiles
    for profile in profiles:
        weight = weights[profile.organisation_id]
        if id(weight) not in texts:
            parts = [[what, ratio(points)] for what, points in weight.parts]
            texts[id(weight)] = (ratio(weight.value), parts)
        weight_text, parts = texts[id(weight)]
        members.append({
            "key": profile.organisation_id,
            "weight": weight_text,
            "weight_parts": parts,
            "eligible": profile.eligible,
            "bills": dict(sorted(bills[profile.organisation_id].items())),
            "inputs": weight.inputs,
        })
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "round_id": found.id,
        "policy": _policy_snapshot(policy, billed),
        "funds": {
            "unrestricted": max(balances[None] - reserved, 0),
            "restricted": {category: max(cents, 0) for category, cents in balances.items()
                           if category is not None},
            "unrestricted_balance": balances[None],
            "free_stock_reserved": reserved,
        },
        "members": members,
        "free_stock": [line.as_json() for line in stock],
        "overrides": [],
    }


def engine_inputs(inputs: Mapping[str, Any]) -> tuple[list[Member], Funds, Policy, list[Override]]:
    """The engine's arguments rebuilt from a run's snapshot alone."""
    policy = Policy(
        categories={
            category: CategoryPolicy(max_share=Fraction(each["max_share"]), cap_cents=each["cap_cents"],
                                     floor_cents=each["floor_cents"])
            for category, each in inputs["policy"]["categories"].items()
        },
        priority=list(inputs["policy"]["priority"]),
    )
    money = inputs["funds"]
    funds = Funds(unrestricted=money["unrestricted"], restricted=dict(money["restricted"]))
    # Few distinct weights among many members: read each text once.
    weights = {text: Fraction(text) for text in {each["weight"] for each in inputs["members"]}}
    members = [
        Member(key=each["key"], weight=weights[each["weight"]], bills=each["bills"],
               eligible=each["eligible"], inputs=each["inputs"])
        for each in inputs["members"]
    ]
    overrides = [
        Override(member=each["member"], category=each["category"], cents=each["cents"], reason=each["reason"])
        for each in inputs.get("overrides", [])
    ]
    return members, funds, policy, overrides


def recompute(run: SubsidyRun) -> EngineAllocation:
    """The run's allocation computed again from its snapshot (and the overrides in it)."""
    return allocate_subsidies(*engine_inputs(run.inputs))


# --- Storing awards --------------------------------------------------------------------


def _percent_text(numerator: int, denominator: int, places: int) -> str:
    """``numerator / denominator`` as a percentage to ``places`` decimals, half up, in integers."""
    if denominator == 0:
        return f"{0:.{places}f}"
    scale = 10**places
    whole, rest = divmod(numerator * 100 * scale, denominator)
    if 2 * rest >= denominator:
        whole += 1
    return f"{whole // scale}.{whole % scale:0{places}d}"


def _four_places(value: Fraction) -> Decimal:
    """A rate to four places, rounded down, for reading (never money)."""
    return Decimal(value.numerator * 10_000 // value.denominator) / 10_000


def _write_awards(run: SubsidyRun, allocation: EngineAllocation) -> None:
    """Replace the run's awards with the allocation's (one bulk insert), and its totals.

    Each award's explanation: the member's weight with its parts and inputs, λ
    (``level``, p/q) and the percentage of the bill it pays per point of weight,
    the percentage of the bill awarded, the binding limit, the cap and floor, the
    exact award before rounding (p/q), and an override's reason.
    """
    by_key = {member["key"]: member for member in run.inputs["members"]}
    levels = {category: (ratio(outcome.level), f"{_four_places(outcome.level * 100)}")
              for category, outcome in allocation.categories.items()}
    rows = []
    for key, award in allocation.members.items():
        member = by_key[key]
        for category, line in award.lines.items():
            level, per_point = levels[category]
            rows.append({
                "run_id": run.id, "organisation_id": key, "category": category,
                "bill": from_cents(line.bill), "cap": from_cents(line.cap), "amount": from_cents(line.cents),
                "binding_limit": line.limit.value,
                "explanation": {
                    "weight": member["weight"], "weight_parts": member["weight_parts"],
                    "inputs": member["inputs"], "eligible": member["eligible"],
                    "level": level, "percent_per_point": per_point,
                    "percent_of_bill": _percent_text(line.cents, line.bill, 2),
                    "limit": line.limit.value, "bill_cents": line.bill, "cap_cents": line.cap,
                    "floor_cents": line.floor, "exact": f"{line.exact_numerator}/{line.exact_denominator}",
                    "reason": line.reason,
                },
            })
    db.session.execute(delete(Award).where(Award.run_id == run.id))
    if rows:
        # Core executemany: the ORM's bulk path costs more than the rows for a large club.
        db.session.execute(Award.__table__.insert(), rows)
    run.level = {category: level for category, (level, _) in levels.items()}
    run.total_awarded = from_cents(allocation.paid)
    db.session.flush()
    db.session.expire(run, ["awards"])


def _summary(run: SubsidyRun, allocation: EngineAllocation) -> dict[str, Any]:
    return {
        "round_id": run.round_id,
        "policy_version": run.inputs["policy"]["version"],
        "status": run.status,
        "members": len(run.inputs["members"]),
        "eligible": sum(1 for member in run.inputs["members"] if member["eligible"]),
        "total_awarded": run.total_awarded,
        "levels": run.level,
        "paid_by_category": {category: from_cents(outcome.paid)
                             for category, outcome in allocation.categories.items()},
    }


# --- Start a preview ---------------------------------------------------------------------


def _require_allocatable(found: Round) -> None:
    if found.status in INVOICED:
        raise Conflict(f"The round is {found.status.value}: its invoices were issued without subsidy "
                       "credits. Void them first to allocate the fund for this round.", code="round_invoiced")
    if found.status not in ALLOCATABLE:
        raise Conflict(f"The round is {found.status.value}: the fund is allocated once a round has closed.",
                       code="round_not_closed")


def start_run(actor: Actor, round_id: int) -> SubsidyRun:
    """A new preview run for a closed (or later) round."""
    actor.require(*ADMIN)
    found = get_round(actor, round_id)
    _require_allocatable(found)
    if approved_run(round_id) is not None:
        raise Conflict("This round's subsidy allocation was already approved.", code="already_approved")
    policy = current_policy()
    inputs = build_inputs(found, policy)
    run = SubsidyRun(round_id=found.id, policy_id=policy.id, status=RunStatus.PREVIEW, inputs=inputs,
                     created_by_id=actor.user_id)
    db.session.add(run)
    db.session.flush()
    try:
        allocation = recompute(run)
    except AllocationError as exc:
        raise RuleRefused(f"The fund cannot be allocated for this round: {exc}.") from exc
    _write_awards(run, allocation)
    record(actor, "subsidy_run.previewed", "subsidy_run", run.id, after=_summary(run, allocation))
    return run


# --- Reading -----------------------------------------------------------------------------


def get_run(actor: Actor, run_id: int, *, lock: bool = False) -> SubsidyRun:
    """A run (admin), or 404. ``lock`` holds the row until the transaction ends, re-read."""
    actor.require(*ADMIN)
    statement = select(SubsidyRun).where(SubsidyRun.id == run_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    run = db.session.scalar(statement)
    if run is None:
        raise NotFound("No such subsidy run.")
    return run


def approved_run(round_id: int) -> SubsidyRun | None:
    return db.session.scalar(
        select(SubsidyRun).where(SubsidyRun.round_id == round_id, SubsidyRun.status == RunStatus.APPROVED)
    )


def runs_for_round(actor: Actor, round_id: int) -> list[SubsidyRun]:
    """Every run of a round, newest first (admin)."""
    actor.require(*ADMIN)
    get_round(actor, round_id)
    return list(db.session.scalars(
        select(SubsidyRun).where(SubsidyRun.round_id == round_id).order_by(SubsidyRun.id.desc())))


def current_overrides(run_id: int) -> list[AwardOverride]:
    return list(db.session.scalars(
        select(AwardOverride).where(AwardOverride.run_id == run_id, AwardOverride.superseded_at.is_(None))
        .order_by(AwardOverride.id)))


def _require_preview(run: SubsidyRun, doing: str) -> None:
    if run.status != RunStatus.PREVIEW:
        raise Conflict(f"This run is {run.status.value}: only a preview can be {doing}.",
                       code="run_not_preview")


# --- Override ------------------------------------------------------------------------------


def override_award(actor: Actor, run_id: int, *, organisation_id: Any, amount: Any, reason: Any,
                   category: Any = None) -> SubsidyRun:
    """Fix one member's award in one category, with a reason; everyone else re-balances."""
    actor.require(*ADMIN)
    run = get_run(actor, run_id, lock=True)
    _require_preview(run, "overridden")
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise InvalidInput("Say why this award is overridden: the reason is required.", field="reason")
    if len(text) > REASON_LENGTH:
        raise InvalidInput(f"The reason must be at most {REASON_LENGTH} characters.", field="reason")
    if isinstance(amount, bool | float):
        raise InvalidInput('Give the amount as a string with two decimals, e.g. "40.00".', field="amount")
    try:
        wanted = to_money(amount)
    except MoneyError as exc:
        raise InvalidInput('Give the amount with at most two decimals, e.g. "40.00".',
                           field="amount") from exc
    if wanted < 0:
        raise InvalidInput("The amount must not be negative.", field="amount")

    member = next((each for each in run.inputs["members"] if each["key"] == organisation_id), None)
    if member is None:
        raise RuleRefused("That organisation has no bill in this round's allocation.",
                          field="organisation_id")
    if not member["eligible"]:
        raise RuleRefused("That organisation is not eligible for a subsidy (approved and low-resource).",
                          field="organisation_id")
    billed = sorted(member["bills"])
    if category in (None, ""):
        if len(billed) != 1:
            raise InvalidInput(f"This member has bills in {', '.join(billed)}: say which category.",
                               field="category")
        category = billed[0]
    if category not in member["bills"]:
        raise RuleRefused(f"This member has no {category} bill in this round.", field="category")
    bill = member["bills"][category]
    cents = to_cents(wanted)
    if cents > bill:
        raise RuleRefused(
            f"An override cannot exceed the member's {category} bill of {format_money(from_cents(bill))}.",
            field="amount")

    before = db.session.scalar(select(Award.amount).where(
        Award.run_id == run.id, Award.organisation_id == organisation_id, Award.category == category))
    now = utcnow()
    for old in db.session.scalars(select(AwardOverride).where(
            AwardOverride.run_id == run.id, AwardOverride.organisation_id == organisation_id,
            AwardOverride.category == category, AwardOverride.superseded_at.is_(None))):
        old.superseded_at = now
    kept = [each for each in run.inputs.get("overrides", [])
            if (each["member"], each["category"]) != (organisation_id, category)]
    kept.append({"member": organisation_id, "category": category, "cents": cents, "reason": text})
    run.inputs = {**run.inputs, "overrides": kept}  # a new dict, so the JSON column is written
    try:
        allocation = recompute(run)
    except AllocationError as exc:
        raise RuleRefused(f"The fund cannot pay this override: {exc}.", field="amount") from exc
    db.session.add(AwardOverride(run_id=run.id, organisation_id=organisation_id, category=category,
                                 amount=wanted, reason=text, created_at=now, created_by_id=actor.user_id))
    _write_awards(run, allocation)
    record(actor, "subsidy_run.award_overridden", "subsidy_run", run.id,
           before={"organisation_id": organisation_id, "category": category, "amount": before},
           after={"organisation_id": organisation_id, "category": category, "amount": wanted,
                  "reason": text, "total_awarded": run.total_awarded},
           organisation_id=organisation_id)
    return run


# --- Approve and discard ---------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    run: SubsidyRun
    journal_entry_id: int | None
    free_units: int


def _fund_lines(allocation: EngineAllocation) -> tuple[dict[str | None, int], list[Line]]:
    """What the run takes from each restriction, and the entry's lines for it."""
    taken: dict[str | None, int] = defaultdict(int)
    for category, outcome in allocation.categories.items():
        if outcome.from_restricted:
            taken[category] += outcome.from_restricted
        if outcome.from_unrestricted:
            taken[None] += outcome.from_unrestricted
    lines = [
        Line(fund.account_for(restriction), from_cents(cents),
             memo=f"Awards from money restricted to {restriction}" if restriction
             else "Awards from unrestricted money")
        for restriction, cents in sorted(taken.items(), key=lambda item: (item[0] is not None, item[0] or ""))
        if cents
    ]
    totals: dict[int, int] = defaultdict(int)
    for key, award in allocation.members.items():
        totals[key] += award.cents
    lines += [Line(chart.RECEIVABLES, -from_cents(cents), organisation_id=key, memo="Subsidy award")
              for key, cents in sorted(totals.items()) if cents]
    return dict(taken), lines


def approve_run(actor: Actor, run_id: int) -> Approval:
    """Post the run to the ledger; at most one approved run per round."""
    actor.require(*ADMIN)
    run = get_run(actor, run_id, lock=True)
    _require_preview(run, "approved")
    fund.lock_fund()
    # Locked as issuing invoices locks it: a run is approved before the invoices or not at all.
    _require_allocatable(get_round(actor, run.round_id, lock="update"))
    other = approved_run(run.round_id)
    if other is not None and other.id != run.id:
        raise Conflict(f"Run #{other.id} was already approved for this round.", code="already_approved")
    allocation = recompute(run)
    if from_cents(allocation.paid) != run.total_awarded:
        raise Conflict("This run's awards no longer match its inputs. " + STALE_HINT, code="run_stale")
    stock = [free_stock.StockLine.from_json(each) for each in run.inputs.get("free_stock", [])]
    taken, lines = _fund_lines(allocation)
    taken[None] = taken.get(None, 0) + sum(line.posted_cents for line in stock)
    for restriction, cents in sorted(taken.items(), key=lambda item: (item[0] is not None, item[0] or "")):
        try:
            fund.require_available(restriction, from_cents(cents))
        except RuleRefused as exc:
            raise RuleRefused(f"{exc.message} {STALE_HINT}", code="fund_insufficient") from exc

    before = {"status": run.status}
    run.status = RunStatus.APPROVED
    run.decided_at = utcnow()
    run.decided_by_id = actor.user_id
    try:
        with db.session.begin_nested():  # the one-approved-run index: a lost race is a conflict
            db.session.flush()
    except IntegrityError as exc:
        raise Conflict("Another run was approved for this round at the same time.",
                       code="already_approved") from exc

    weights = {member["key"]: Fraction(member["weight"]) for member in run.inputs["members"]}
    given, stock_lines = free_stock.distribute(run.round_id, run.id, stock, weights, actor=actor)
    lines += stock_lines
    entry_id = None
    if lines:
        found = db.session.get(Round, run.round_id)
        entry = post_entry(actor, entry_date=utcnow().date(),
                           memo=f"Subsidy awards, {found.name if found else 'round'} (run #{run.id})",
                           kind=ENTRY_KIND, lines=lines, source=("subsidy_run", run.id))
        entry_id = entry.id
        run.journal_entry_id = entry.id
        for award in given:
            award.journal_entry_id = entry.id
    db.session.flush()
    record(actor, "subsidy_run.approved", "subsidy_run", run.id, before=before,
           after={**_summary(run, allocation), "journal_entry_id": entry_id,
                  "taken_from_fund": {restriction or "unrestricted": from_cents(cents)
                                      for restriction, cents in taken.items()},
                  "free_units": sum(award.units for award in given)})
    return Approval(run=run, journal_entry_id=entry_id, free_units=sum(award.units for award in given))


def discard_run(actor: Actor, run_id: int) -> SubsidyRun:
    actor.require(*ADMIN)
    run = get_run(actor, run_id, lock=True)
    _require_preview(run, "discarded")
    run.status = RunStatus.DISCARDED
    run.decided_at = utcnow()
    run.decided_by_id = actor.user_id
    db.session.flush()
    record(actor, "subsidy_run.discarded", "subsidy_run", run.id, before={"status": RunStatus.PREVIEW},
           after={"status": run.status})
    return run


# --- Free stock in a preview ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFreeUnits:
    product_id: int
    organisation_id: int
    units: int
    unit_value: Decimal


def planned_free_stock(run: SubsidyRun) -> list[PlannedFreeUnits]:
    """The free units this run gives (or gave) each member, from its snapshot."""
    weights = {member["key"]: Fraction(member["weight"]) for member in run.inputs["members"]}
    planned = []
    for data in run.inputs.get("free_stock", []):
        line = free_stock.StockLine.from_json(data)
        shares = free_stock.split_units(line.units, {key: weights[key] for key in line.recipients})
        planned += [PlannedFreeUnits(line.product_id, key, units, from_cents(line.unit_cost_cents))
                    for key, units in sorted(shares.items())]
    return planned


# --- What members see, and the awards report ---------------------------------------------------------


@dataclass(frozen=True)
class MemberRound:
    """One round's approved awards and free units for one member."""

    round: Round
    run: SubsidyRun
    awards: list[Award]
    free_units: list[free_stock.FreeUnits]

    @property
    def total(self) -> Decimal:
        return sum((award.amount for award in self.awards), Decimal("0.00"))


def awards_for_member(actor: Actor, organisation_id: int | None = None) -> list[MemberRound]:
    """A member's awards from approved runs, newest round first: its own organisation only."""
    organisation_id = actor.organisation_id if organisation_id is None else organisation_id
    if organisation_id is None:
        raise NotFound("Subsidy awards belong to a member organisation.")
    actor.require_own_organisation(organisation_id, *ADMIN)
    rows = db.session.execute(
        select(Award, SubsidyRun, Round)
        .join(SubsidyRun, SubsidyRun.id == Award.run_id)
        .join(Round, Round.id == SubsidyRun.round_id)
        .where(Award.organisation_id == organisation_id, SubsidyRun.status == RunStatus.APPROVED)
        .order_by(SubsidyRun.decided_at.desc(), SubsidyRun.id.desc(), Award.category)
    ).all()
    free = free_stock.free_stock_by_round(organisation_id)
    found: dict[int, MemberRound] = {}
    for award, run, each_round in rows:
        if run.id not in found:
            found[run.id] = MemberRound(each_round, run, [], free.get(each_round.id, []))
        found[run.id].awards.append(award)
    return list(found.values())


SMALL_CELL = 3
BAND_ORDER = ("under_50k", "50k_250k", "250k_1m", "over_1m")


@dataclass
class ReportCell:
    category: str
    band: str
    organisations: int
    bill: Decimal
    awarded: Decimal
    suppressed: bool = False

    @property
    def percent_of_bill(self) -> Decimal:
        return (self.awarded * 100 / self.bill).quantize(Decimal("0.1")) if self.bill else Decimal("0.0")


@dataclass(frozen=True)
class AwardsReport:
    round: Round
    run: SubsidyRun | None
    full: bool
    """True for admins: every cell and every member shown."""
    cells: dict[str, list[ReportCell]]
    totals: dict[str, ReportCell]
    members: list[tuple[str, Award]]
    free_units: list[tuple[str, int, int]]


def _suppress(cells: list[ReportCell]) -> None:
    """Hide cells of fewer than 3 organisations.

    When only one cell is hidden, the smallest other one is hidden too: else the
    total less the cells shown would give it away.
    """
    for cell in cells:
        cell.suppressed = 0 < cell.organisations < SMALL_CELL
    hidden = [cell for cell in cells if cell.suppressed]
    shown = sorted((cell for cell in cells if not cell.suppressed and cell.organisations),
                   key=lambda cell: (cell.organisations, cell.awarded))
    if len(hidden) == 1 and shown:
        shown[0].suppressed = True


def awards_report(actor: Actor, round_id: int) -> AwardsReport:
    """A round's approved awards by budget band and category; small cells hidden from all but admins."""
    found = get_round(actor, round_id)
    full = actor.has_role(Role.ADMIN)
    run = approved_run(round_id)
    cells: dict[str, list[ReportCell]] = {}
    totals: dict[str, ReportCell] = {}
    members: list[tuple[str, Award]] = []
    if run is not None:
        rows = db.session.execute(
            select(Award.category, Organisation.budget_band, func.count(Award.id),
                   sql_cents_sum(Award.bill), sql_cents_sum(Award.amount))
            .join(Organisation, Organisation.id == Award.organisation_id)
            .where(Award.run_id == run.id, Award.amount > 0)
            .group_by(Award.category, Organisation.budget_band)
        ).all()
        for category, band, count, bill, awarded in rows:
            cells.setdefault(category, []).append(ReportCell(
                category, str(band), int(count), from_cents(int(bill or 0)), from_cents(int(awarded or 0))))
        for category, group in cells.items():
            group.sort(key=lambda cell: BAND_ORDER.index(cell.band) if cell.band in BAND_ORDER else 99)
            total = ReportCell(category, "all", sum(cell.organisations for cell in group),
                               sum((cell.bill for cell in group), Decimal("0.00")),
                               sum((cell.awarded for cell in group), Decimal("0.00")))
            if not full:
                _suppress(group)
                total.suppressed = 0 < total.organisations < SMALL_CELL
                for cell in [*group, total]:
                    if cell.suppressed:  # hidden here, not only in the page
                        cell.organisations, cell.bill, cell.awarded = 0, Decimal("0.00"), Decimal("0.00")
            totals[category] = total
        if full:
            members = list(db.session.execute(
                select(Organisation.name, Award).join(Organisation, Organisation.id == Award.organisation_id)
                .where(Award.run_id == run.id, Award.amount > 0).order_by(Organisation.name, Award.category)
            ).tuples())
    return AwardsReport(found, run, full, dict(sorted(cells.items())), totals, members,
                        free_stock.free_stock_totals(round_id) if run is not None else [])


__all__ = [
    "Approval",
    "Limit",
    "approve_run",
    "approved_run",
    "awards_for_member",
    "awards_report",
    "build_inputs",
    "current_overrides",
    "discard_run",
    "engine_inputs",
    "get_run",
    "override_award",
    "planned_free_stock",
    "ratio",
    "recompute",
    "runs_for_round",
    "start_run",
]
