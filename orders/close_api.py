"""Closing a round in the JSON API: the preview, the confirmed close, the allocations (API.md).

Money is a string with two decimals; quantities are integers. The preview's
figures come from each product's totals; the allocation per member under an
option is inline for a round of at most ``INLINE_ALLOCATIONS`` commitments and
paged (``.../close-preview/products/{product_id}/allocations``) for any round.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask import request, url_for
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import DEFAULT_PER_PAGE, MAX_PER_PAGE, ApiBlueprint, paginate
from buyersclub.db import db
from buyersclub.errors import InvalidInput
from orders import engine
from orders.models import Allocation, AllocationSource, OptionKind, RoundItem, RoundStatus
from orders.services import closing

bp = ApiBlueprint("orders_close_api", __name__, tag="rounds")

ADMIN = (Role.ADMIN,)
ROUND = "/rounds/<int:round_id>"
# Up to this many commitments (members x products) the preview lists every allocation inline.
INLINE_ALLOCATIONS = 1_000  # the preview's description says so: change both


# --- Input ---------------------------------------------------------------------------


class ChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: StrictInt
    units: StrictInt = Field(description="The units of the chosen option (see the preview's options)")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choices: list[ChoiceIn] = Field(
        default_factory=list,
        description="One per product at most; a product left out is bought by its base option")


# --- Output --------------------------------------------------------------------------


class MemberAllocationOut(BaseModel):
    organisation_id: int
    quantity: int
    tolerance: int
    firm_units: int
    tolerance_units: int
    units: int
    short: int = Field(description="Firm units asked for and not received")


class OptionOut(BaseModel):
    kind: OptionKind
    units: int
    cases: int
    unit_cost: Decimal
    price_break_min_units: int
    below_lowest_break: bool
    member_units: int
    free_units: int
    supplier_cost: Decimal
    revenue: Decimal
    operating_recovery: Decimal
    margin: Decimal = Field(description="Revenue - supplier cost - recovery: the fund's inflow")
    free_units_cost: Decimal
    cost_difference: Decimal = Field(description="Supplier cost minus the base option's")
    cheaper: bool
    little_more: bool
    recommended: bool
    explanation: str
    firm_units: int = Field(description="Of member_units, those against members' firm quantities")
    tolerance_units: int = Field(description="Of member_units, those against members' tolerance")
    short: int = Field(description="Firm units members asked for and do not receive")
    allocations: list[MemberAllocationOut] | None = Field(
        description=f"The allocation per member, by organisation id, when the round has at most "
                    f"{INLINE_ALLOCATIONS:,} commitments (`allocations_inline`); null above that: "
                    f"read them a page at a time from `allocations_url`")
    allocations_url: str = Field(description="The paged allocation per member under this option")


class ProductPreviewOut(BaseModel):
    product_id: int
    name: str
    unit: str
    pack_size: int
    club_price: Decimal
    firm: int
    tolerance: int
    cases: int = Field(description="Whole cases without a jump")
    members: int = Field(description="Members with a commitment that counts")
    summary: str
    options: list[OptionOut] = Field(description="The base option first, then each price-break jump")


class TotalsOut(BaseModel):
    units: int
    revenue: Decimal
    supplier_cost: Decimal
    operating_recovery: Decimal
    margin: Decimal
    fund_inflow: Decimal = Field(description="The margin; negative when the fund pays")
    free_units: int
    free_units_cost: Decimal


class PreviewOut(BaseModel):
    round_id: int
    status: RoundStatus
    minimum_order: Decimal
    minimum_met: bool = Field(description="For the default choice (every product's base option)")
    fingerprint: str = Field(description="Changes whenever the commitments behind the preview change")
    commitments: int = Field(description="Commitments that count, over every product")
    allocations_inline: bool = Field(
        description=f"Whether each option lists its allocation per member (rounds of at most "
                    f"{INLINE_ALLOCATIONS:,} commitments)")
    products: list[ProductPreviewOut]
    totals: TotalsOut = Field(description="For the default choice (every product's base option)")


class ProductClosingOut(BaseModel):
    product_id: int
    option_kind: OptionKind
    firm_total: int
    tolerance_total: int
    cases: int
    units: int
    unit_cost: Decimal
    supplier_cost: Decimal
    revenue: Decimal
    operating_recovery: Decimal
    margin: Decimal
    free_units: int
    free_units_cost: Decimal
    explanation: str | None


class CloseOut(BaseModel):
    round_id: int
    status: RoundStatus
    closed_at: datetime | None
    journal_entry_id: int | None
    allocations: int = Field(description="Allocation rows written")
    totals: TotalsOut
    products: list[ProductClosingOut]


class AllocationOut(BaseModel):
    id: int
    round_id: int
    product_id: int
    organisation_id: int
    firm_units: int
    tolerance_units: int
    units: int
    club_price: Decimal
    amount: Decimal = Field(description="Club price x units")
    source: AllocationSource
    created_at: datetime


# --- Serialising ------------------------------------------------------------------------


def _member_out(line: engine.MemberAllocation) -> MemberAllocationOut:
    return MemberAllocationOut(
        organisation_id=line.member, quantity=line.quantity, tolerance=line.tolerance,
        firm_units=line.firm_units, tolerance_units=line.tolerance_units, units=line.units, short=line.short)


def _allocations_url(round_id: int, product_id: int, units: int) -> str:
    return url_for(".close_preview_allocations", round_id=round_id, product_id=product_id, units=units)


def _option_out(round_id: int, product_id: int, option: engine.Option,
                allocation: engine.Allocation | None) -> OptionOut:
    return OptionOut(
        kind=OptionKind(option.kind.value), units=option.units, cases=option.cases,
        unit_cost=option.unit_cost, price_break_min_units=option.price_break.min_units,
        below_lowest_break=option.below_lowest_break, member_units=option.member_units,
        free_units=option.free_units, supplier_cost=option.supplier_cost, revenue=option.revenue,
        operating_recovery=option.operating_recovery, margin=option.margin,
        free_units_cost=option.free_units_cost, cost_difference=option.cost_difference,
        cheaper=option.cheaper, little_more=option.little_more, recommended=option.recommended,
        explanation=option.explanation, firm_units=option.firm_units,
        tolerance_units=option.tolerance_units, short=option.short,
        allocations=None if allocation is None else [_member_out(line) for line in allocation.members],
        allocations_url=_allocations_url(round_id, product_id, option.units),
    )


def _totals_out(totals: closing.Totals) -> TotalsOut:
    return TotalsOut(units=totals.units, revenue=totals.revenue, supplier_cost=totals.supplier_cost,
                     operating_recovery=totals.operating_recovery, margin=totals.margin,
                     fund_inflow=totals.fund_inflow, free_units=totals.free_units,
                     free_units_cost=totals.free_units_cost)


def _product_out(each: closing.ProductPreview,
                 allocations: dict[int, engine.Allocation] | None) -> ProductPreviewOut:
    result = each.closing
    round_id = each.item.round_id
    return ProductPreviewOut(
        product_id=each.product_id, name=each.product.name, unit=each.product.unit,
        pack_size=result.terms.pack_size, club_price=each.item.club_price, firm=result.firm_total,
        tolerance=result.tolerance_total, cases=result.cases, members=result.members, summary=result.summary,
        options=[_option_out(round_id, each.product_id, option,
                             None if allocations is None else allocations[option.units])
                 for option in result.options],
    )


# --- Endpoints -------------------------------------------------------------------------


@bp.endpoint(ROUND + "/close-preview", "GET", summary="Preview closing a round", roles=ADMIN,
             response=PreviewOut)
def close_preview(actor: Actor, round_id: int):
    """Per product: firm and tolerance totals, whole cases, and the options -- the base and each
    price-break jump -- with supplier cost, revenue, recovery, margin, free units, flags and the
    allocation per member. Only for an open round (409 otherwise), before or after its deadline.

    The figures come from each product's totals, whatever the number of members. The allocation
    per member is inline (`allocations`) for a round of at most 1,000
    commitments (`allocations_inline` true); above that `allocations` is null and each option's
    `allocations_url` pages through it (the same figures, computed for that product only)."""
    preview = closing.preview_close(actor, round_id)
    inline = preview.members <= INLINE_ALLOCATIONS
    allocations = closing.preview_allocations(preview) if inline else {}
    return PreviewOut(
        round_id=preview.round.id, status=preview.round.status, minimum_order=preview.round.minimum_order,
        minimum_met=preview.minimum_met(), fingerprint=preview.fingerprint, commitments=preview.members,
        allocations_inline=inline,
        products=[_product_out(each, allocations.get(each.product_id, {}) if inline else None)
                  for each in preview.products],
        totals=_totals_out(preview.default_totals),
    )


@bp.endpoint(ROUND + "/close-preview/products/<int:product_id>/allocations", "GET",
             summary="The allocation per member under one option of the close preview", roles=ADMIN,
             response=MemberAllocationOut, paginated=True,
             query={"units": "The option, by its units (see the preview's options); the base when left out"})
def close_preview_allocations(actor: Actor, round_id: int, product_id: int):
    """Every member's share of one product under one option, by organisation id, a page at a time:
    computed by the close engine from that product's commitments as they are now (largest
    remainder or first come, first served, as the round says). 404 for a product not in the round,
    400 (field `units`) for units that are not one of its options, 409 when the round is not open."""
    shown = closing.product_allocations(actor, round_id, product_id)
    raw = request.args.get("units")
    try:
        units = int(raw) if raw not in (None, "") else None
    except ValueError as exc:
        raise InvalidInput("units must be a whole number.", field="units") from exc
    page, per_page = _page_arguments()
    option = shown.option(units)
    if option is None and units is not None:
        offered = ", ".join(str(each.units) for each in shown.closing.options) or "none: nothing committed"
        raise InvalidInput(f"{units} units is not one of the options ({offered}).", field="units")
    members = option.allocation.members if option is not None and option.allocation is not None else ()
    start = (page - 1) * per_page
    return {
        "items": [_member_out(line).model_dump(mode="json") for line in members[start:start + per_page]],
        "page": page,
        "pages": max(1, -(-len(members) // per_page)),
        "total": len(members),
    }


def _page_arguments() -> tuple[int, int]:
    """``page`` and ``per_page`` as the API's other lists read them."""
    values = []
    for name, default in (("page", 1), ("per_page", DEFAULT_PER_PAGE)):
        raw = request.args.get(name)
        try:
            value = int(raw) if raw not in (None, "") else default
        except ValueError as exc:
            raise InvalidInput(f"{name} must be a whole number.", field=name) from exc
        if value < 1:
            raise InvalidInput(f"{name} must be 1 or more.", field=name)
        values.append(value)
    if values[1] > MAX_PER_PAGE:
        raise InvalidInput(f"per_page must be at most {MAX_PER_PAGE}.", field="per_page")
    return values[0], values[1]


@bp.endpoint(ROUND + "/close", "POST", summary="Close a round with the chosen options", roles=ADMIN,
             body=CloseIn, response=CloseOut)
def close_round(actor: Actor, round_id: int, body: CloseIn):
    """Choose each product's option by its `units`; a product left out gets its base option.
    Recomputed from the commitments as they are when the round is locked. Posts one journal entry
    (kind `round_close`). 409 when the round is not open; 422 when the supplier's minimum order is
    not met or the fund would go below zero; 400 (field `choices.<product_id>`) for units that are
    not an option."""
    choices: dict[int, int] = {}
    for index, choice in enumerate(body.choices):
        if choice.product_id in choices:
            raise InvalidInput("Choose each product once.", field=f"choices.{index}.product_id")
        choices[choice.product_id] = choice.units
    result = closing.commit_close(actor, round_id, choices)
    return CloseOut(
        round_id=result.round.id, status=result.round.status, closed_at=result.round.closed_at,
        journal_entry_id=result.journal_entry.id if result.journal_entry else None,
        allocations=result.allocations, totals=_totals_out(result.totals),
        products=[ProductClosingOut.model_validate(each, from_attributes=True) for each in result.closings],
    )


@bp.endpoint(ROUND + "/allocations", "GET", summary="Allocations (member staff: their own)",
             response=AllocationOut, paginated=True,
             query={"organisation_id": "admin: only this organisation's"})
def list_allocations(actor: Actor, round_id: int):
    """The current units per member per product (rows superseded by a delivery are left out)."""
    raw = request.args.get("organisation_id")
    try:
        organisation_id = int(raw) if raw not in (None, "") else None
    except ValueError as exc:
        raise InvalidInput("organisation_id must be a whole number.", field="organisation_id") from exc
    statement = closing.allocations_for(actor, round_id, organisation_id=organisation_id)
    prices = dict(db.session.execute(
        select(RoundItem.product_id, RoundItem.club_price).where(RoundItem.round_id == round_id)).all())

    def serialise(row: Allocation) -> AllocationOut:
        price = prices[row.product_id]
        return AllocationOut(
            id=row.id, round_id=row.round_id, product_id=row.product_id,
            organisation_id=row.organisation_id, firm_units=row.firm_units,
            tolerance_units=row.tolerance_units, units=row.units, club_price=price,
            amount=price * row.units, source=row.source, created_at=row.created_at)

    return paginate(statement, serialise)
