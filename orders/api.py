"""Catalogue, round and commitment endpoints of the JSON API (see API.md).

Handlers translate JSON to one service call; the services validate (naming
the field), scope and audit. Money is a string with two decimals.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from flask import current_app, request, url_for
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, json_response, paginate
from buyersclub.db import db
from buyersclub.errors import InvalidInput
from buyersclub.organisations.models import DocumentKind
from orders.models import (
    AllocationPolicy,
    Commitment,
    Product,
    ProductCategory,
    Round,
    RoundItem,
    RoundStatus,
)
from orders.services import catalogue, commitments, progress, rounds

bp = ApiBlueprint("orders_api", __name__, tag="orders")

ADMIN = (Role.ADMIN,)
ROUND = "/rounds/<int:round_id>"
Money = Annotated[str, Field(description='An amount as a string with two decimals, e.g. "40.00"',
                             examples=["40.00"])]


# --- Input ------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupplierIn(Strict):
    name: Annotated[str, Field(max_length=160)]
    contact_name: str | None = None
    contact_email: str | None = None
    address: str | None = None
    is_active: StrictBool = True


class SupplierPatch(Strict):
    name: Annotated[str, Field(max_length=160)] | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    address: str | None = None
    is_active: StrictBool | None = None


class PriceBreakIn(Strict):
    min_units: StrictInt = Field(description="From this many units in one purchase order")
    unit_cost: Money


class JurisdictionIn(Strict):
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. US")
    region: str | None = Field(None, description="A state or province; null for the whole country")


class ProductIn(Strict):
    supplier_id: StrictInt
    sku: str
    name: str
    category: ProductCategory
    unit: str = Field(description='What one unit is, e.g. "box of 2 nasal doses", "vial"')
    pack_size: StrictInt = Field(description="Units per case: the supplier sells whole cases only")
    price_breaks: list[PriceBreakIn] = Field(
        description="First at 1 unit, thresholds ascending, unit costs positive and not rising")
    restricted_jurisdictions: list[JurisdictionIn] = Field(
        default_factory=list, description="Where the product may not be shipped")
    required_document: DocumentKind | None = Field(
        None, description="A document the member must have on file, unexpired")
    lot_tracked: StrictBool = False
    description: str | None = None
    is_active: StrictBool = True


class ProductPatch(Strict):
    sku: str | None = None
    name: str | None = None
    category: ProductCategory | None = None
    unit: str | None = None
    pack_size: StrictInt | None = None
    price_breaks: list[PriceBreakIn] | None = Field(None, description="Replaces the breaks")
    restricted_jurisdictions: list[JurisdictionIn] | None = Field(None, description="Replaces the list")
    required_document: DocumentKind | None = None
    lot_tracked: StrictBool | None = None
    description: str | None = None
    is_active: StrictBool | None = None


class RoundItemIn(Strict):
    product_id: StrictInt
    club_price: Money
    member_cap: StrictInt | None = Field(None, description="Most units one member may commit to")


class RoundIn(Strict):
    supplier_id: StrictInt
    name: str
    deadline: AwareDatetime = Field(description="ISO 8601 with offset, in the future")
    minimum_order: Money = "0.00"
    allocation_policy: AllocationPolicy = AllocationPolicy.PROPORTIONAL
    operating_share: str = Field("0", description='Share of revenue kept for operating costs, e.g. "0.05"')
    shipping_cost: Money | None = None
    notes: str | None = None
    items: list[RoundItemIn] = Field(default_factory=list)


class RoundPatch(Strict):
    name: str | None = None
    deadline: AwareDatetime | None = None
    minimum_order: Money | None = None
    allocation_policy: AllocationPolicy | None = None
    operating_share: str | None = None
    shipping_cost: Money | None = None
    notes: str | None = None


class ItemIn(Strict):
    club_price: Money
    member_cap: StrictInt | None = None


class ExtendIn(Strict):
    deadline: AwareDatetime = Field(description="Later than the current deadline, in the future")


class CancelIn(Strict):
    reason: str | None = Field(None, description="Required: why the round is cancelled")


class CommitmentIn(Strict):
    quantity: StrictInt | None = Field(None, description="Units wanted; 0 withdraws")
    tolerance: StrictInt | None = Field(None, description="Extra units accepted so cases fill (default 0)")
    organisation_id: StrictInt | None = Field(None, description="Admin only: the organisation committing")


# --- Output --------------------------------------------------------------------------


class SupplierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    contact_name: str | None
    contact_email: str | None
    address: str | None
    is_active: bool
    created_at: datetime


class PriceBreakOut(BaseModel):
    min_units: int
    unit_cost: Decimal


class JurisdictionOut(BaseModel):
    country: str
    region: str | None


class ProductOut(BaseModel):
    id: int
    supplier_id: int
    supplier_name: str
    sku: str
    name: str
    category: ProductCategory
    unit: str
    pack_size: int
    price_breaks: list[PriceBreakOut]
    restricted_jurisdictions: list[JurisdictionOut]
    required_document: DocumentKind | None
    lot_tracked: bool
    description: str | None
    is_active: bool


class RoundItemOut(BaseModel):
    product_id: int
    sku: str
    name: str
    unit: str
    club_price: Decimal
    member_cap: int | None
    pack_size: int
    price_breaks: list[PriceBreakOut] = Field(description="Copied at opening; the catalogue's for a draft")


class RoundOut(BaseModel):
    id: int
    name: str
    supplier_id: int
    supplier_name: str
    status: RoundStatus
    deadline: datetime
    accepting_commitments: bool = Field(description="Open and before its deadline (server time)")
    minimum_order: Decimal
    allocation_policy: AllocationPolicy
    operating_share: Decimal
    shipping_cost: Decimal
    notes: str | None
    cancel_reason: str | None
    created_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None
    items: list[RoundItemOut]


class ChangeOut(BaseModel):
    quantity: int
    tolerance: int
    changed_at: datetime
    changed_by_id: int | None


class CommitmentOut(BaseModel):
    id: int | None = Field(description="null when nothing was ever committed")
    round_id: int
    product_id: int
    organisation_id: int
    quantity: int
    tolerance: int
    first_committed_at: datetime | None = Field(description="Place in line for first-come-first-served")
    updated_at: datetime | None
    history: list[ChangeOut]


class NextBreakOut(BaseModel):
    unit_cost: Decimal
    min_units: int
    more_units: int = Field(description="More firm units (tolerance counted) that reach this break")
    cases: int = Field(description="Whole cases the club would then buy")


class ProductProgressOut(BaseModel):
    product_id: int
    name: str
    unit: str
    pack_size: int
    club_price: Decimal
    member_cap: int | None
    firm: int
    tolerance: int
    cases: int = Field(description="Whole cases the club would buy if the round closed now")
    units: int
    price_reached: Decimal | None
    next_break: NextBreakOut | None
    hint: str
    my_quantity: int | None = Field(description="Member staff: their organisation's quantity")
    my_tolerance: int | None


class RoundProgressOut(BaseModel):
    round_id: int
    status: RoundStatus
    deadline: datetime
    accepting_commitments: bool
    products: list[ProductProgressOut]


def _breaks(items) -> list[PriceBreakOut]:
    return [PriceBreakOut(min_units=each.min_units, unit_cost=each.unit_cost) for each in items]


def product_out(product: Product) -> ProductOut:
    return ProductOut(
        id=product.id, supplier_id=product.supplier_id, supplier_name=product.supplier.name,
        sku=product.sku, name=product.name, category=product.category, unit=product.unit,
        pack_size=product.pack_size, price_breaks=_breaks(product.price_breaks),
        restricted_jurisdictions=[JurisdictionOut(country=r.country, region=r.region)
                                  for r in product.restrictions],
        required_document=product.required_document, lot_tracked=product.lot_tracked,
        description=product.description, is_active=product.is_active,
    )


def accepting(found: Round) -> bool:
    from buyersclub.db import utcnow

    return found.status == RoundStatus.OPEN and utcnow() < found.deadline


def item_out(item: RoundItem) -> RoundItemOut:
    pack_size, breaks = progress.item_breaks(item)
    product = item.product
    return RoundItemOut(product_id=item.product_id, sku=product.sku, name=product.name, unit=product.unit,
                        club_price=item.club_price, member_cap=item.member_cap, pack_size=pack_size,
                        price_breaks=_breaks(breaks))


def round_out(found: Round) -> RoundOut:
    return RoundOut(
        id=found.id, name=found.name, supplier_id=found.supplier_id, supplier_name=found.supplier.name,
        status=found.status, deadline=found.deadline, accepting_commitments=accepting(found),
        minimum_order=found.minimum_order, allocation_policy=found.allocation_policy,
        operating_share=found.operating_share, shipping_cost=found.shipping_cost, notes=found.notes,
        cancel_reason=found.cancel_reason, created_at=found.created_at, opened_at=found.opened_at,
        closed_at=found.closed_at, items=[item_out(item) for item in found.items],
    )


def commitment_out(commitment: Commitment) -> CommitmentOut:
    return CommitmentOut(
        id=commitment.id, round_id=commitment.round_id, product_id=commitment.product_id,
        organisation_id=commitment.organisation_id, quantity=commitment.quantity,
        tolerance=commitment.tolerance, first_committed_at=commitment.first_committed_at,
        updated_at=commitment.updated_at,
        history=[ChangeOut(quantity=change.quantity, tolerance=change.tolerance,
                           changed_at=change.changed_at, changed_by_id=change.changed_by_id)
                 for change in commitment.changes],
    )


def _created(data: BaseModel, location: str):
    response = json_response(data, 201)
    response.headers["Location"] = location
    return response


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number.", field=name) from exc


# --- Suppliers ------------------------------------------------------------------------------


@bp.endpoint("/suppliers", "GET", summary="Suppliers", roles=ADMIN, response=SupplierOut, paginated=True)
def list_suppliers(actor: Actor):
    return paginate(catalogue.suppliers(actor), SupplierOut.model_validate)


@bp.endpoint("/suppliers", "POST", summary="Add a supplier", roles=ADMIN, body=SupplierIn,
             response=SupplierOut, status=201)
def create_supplier(actor: Actor, body: SupplierIn):
    supplier = catalogue.create_supplier(actor, **body.model_dump())
    return _created(SupplierOut.model_validate(supplier),
                    url_for(".get_supplier", supplier_id=supplier.id))


@bp.endpoint("/suppliers/<int:supplier_id>", "GET", summary="One supplier", roles=ADMIN,
             response=SupplierOut)
def get_supplier(actor: Actor, supplier_id: int):
    return SupplierOut.model_validate(catalogue.get_supplier(actor, supplier_id))


@bp.endpoint("/suppliers/<int:supplier_id>", "PATCH", summary="Change a supplier", roles=ADMIN,
             body=SupplierPatch, response=SupplierOut)
def update_supplier(actor: Actor, supplier_id: int, body: SupplierPatch):
    supplier = catalogue.update_supplier(actor, supplier_id, body.model_dump(exclude_unset=True))
    return SupplierOut.model_validate(supplier)


# --- Products --------------------------------------------------------------------------------


@bp.endpoint("/products", "GET", summary="The catalogue", response=ProductOut, paginated=True,
             query={"supplier_id": "only this supplier's products", "category": "pipes, naloxone, "
                    "oxygen or other", "include_inactive": "admin: 1 to list inactive products too"})
def list_products(actor: Actor):
    """Any signed-in user. Members see active products only."""
    statement = catalogue.products(
        actor, supplier_id=_int_arg("supplier_id"), category=request.args.get("category") or None,
        include_inactive=request.args.get("include_inactive") in ("1", "true"),
    )
    return paginate(statement, product_out)


@bp.endpoint("/products", "POST", summary="Add a product", roles=ADMIN, body=ProductIn,
             response=ProductOut, status=201)
def create_product(actor: Actor, body: ProductIn):
    product = catalogue.create_product(actor, **body.model_dump())
    return _created(product_out(product), url_for(".get_product", product_id=product.id))


@bp.endpoint("/products/<int:product_id>", "GET", summary="One product", response=ProductOut)
def get_product(actor: Actor, product_id: int):
    return product_out(catalogue.get_product(actor, product_id))


@bp.endpoint("/products/<int:product_id>", "PATCH", summary="Change a product", roles=ADMIN,
             body=ProductPatch, response=ProductOut)
def update_product(actor: Actor, product_id: int, body: ProductPatch):
    """Rounds already open keep the pack size and price breaks they opened with."""
    return product_out(catalogue.update_product(actor, product_id, body.model_dump(exclude_unset=True)))


# --- Rounds ------------------------------------------------------------------------------------


@bp.endpoint("/rounds", "GET", summary="Rounds", response=RoundOut, paginated=True,
             query={"status": "draft, open, closed, ... (members never see drafts)"})
def list_rounds(actor: Actor):
    statement = rounds.rounds_for(actor, status=request.args.get("status") or None, with_items=True)
    return paginate(statement, round_out)


@bp.endpoint("/rounds", "POST", summary="Create a draft round", roles=ADMIN, body=RoundIn,
             response=RoundOut, status=201)
def create_round(actor: Actor, body: RoundIn):
    values = body.model_dump()
    found = rounds.create_round(actor, **values)
    return _created(round_out(found), url_for(".get_round", round_id=found.id))


@bp.endpoint(ROUND, "GET", summary="One round", response=RoundOut)
def get_round(actor: Actor, round_id: int):
    return round_out(rounds.get_round(actor, round_id))


@bp.endpoint(ROUND, "PATCH", summary="Change a draft round", roles=ADMIN, body=RoundPatch,
             response=RoundOut)
def update_round(actor: Actor, round_id: int, body: RoundPatch):
    return round_out(rounds.update_draft(actor, round_id, body.model_dump(exclude_unset=True)))


@bp.endpoint(ROUND + "/items/<int:product_id>", "PUT", summary="Offer a product in a draft round",
             roles=ADMIN, body=ItemIn, response=RoundOut)
def put_item(actor: Actor, round_id: int, product_id: int, body: ItemIn):
    item = rounds.set_item(actor, round_id, product_id=product_id, club_price=body.club_price,
                           member_cap=body.member_cap)
    return round_out(item.round)


@bp.endpoint(ROUND + "/items/<int:product_id>", "DELETE", summary="Take a product out of a draft round",
             roles=ADMIN, response=RoundOut)
def delete_item(actor: Actor, round_id: int, product_id: int):
    return round_out(rounds.remove_item(actor, round_id, product_id))


@bp.endpoint(ROUND + "/open", "POST", summary="Open a draft round", roles=ADMIN, response=RoundOut)
def open_round(actor: Actor, round_id: int):
    """Publishes the club prices and copies each product's pack size and price breaks."""
    return round_out(rounds.open_round(actor, round_id))


@bp.endpoint(ROUND + "/extend", "POST", summary="Extend an open round's deadline", roles=ADMIN,
             body=ExtendIn, response=RoundOut)
def extend_round(actor: Actor, round_id: int, body: ExtendIn):
    return round_out(rounds.extend_deadline(actor, round_id, body.deadline))


@bp.endpoint(ROUND + "/cancel", "POST", summary="Cancel a draft or open round", roles=ADMIN,
             body=CancelIn, response=RoundOut)
def cancel_round(actor: Actor, round_id: int, body: CancelIn):
    """`reason` is required. Commitments stay on record; committed members' staff are e-mailed."""
    return round_out(rounds.cancel_round(actor, round_id, body.reason))


@bp.endpoint(ROUND + "/progress", "GET", summary="Running totals and the next price break",
             response=RoundProgressOut)
def round_progress(actor: Actor, round_id: int):
    """Per product: firm and tolerance totals, whole cases and the break they reach, and how many
    more firm units reach the next break."""
    found, rows = progress.round_progress(actor, round_id)
    return RoundProgressOut(
        round_id=found.id, status=found.status, deadline=found.deadline,
        accepting_commitments=accepting(found),
        products=[_progress_out(row) for row in rows],
    )


def _progress_out(row: progress.ProductProgress) -> ProductProgressOut:
    step = row.next_break
    return ProductProgressOut(
        product_id=row.item.product_id, name=row.product.name, unit=row.product.unit,
        pack_size=row.pack_size, club_price=row.item.club_price, member_cap=row.item.member_cap,
        firm=row.firm, tolerance=row.tolerance, cases=row.cases, units=row.units,
        price_reached=row.reached.unit_cost if row.reached else None,
        next_break=None if step is None else NextBreakOut(
            unit_cost=step.unit_cost, min_units=step.min_units, more_units=step.more_units,
            cases=step.cases),
        hint=row.hint(current_app.config["CLUB_CURRENCY"]),
        my_quantity=row.mine.quantity if row.mine else None,
        my_tolerance=row.mine.tolerance if row.mine else None,
    )


# --- Commitments -----------------------------------------------------------------------------------


@bp.endpoint(ROUND + "/commitments", "GET", summary="Commitments (member staff: their own)",
             response=CommitmentOut, paginated=True,
             query={"organisation_id": "admin: only this organisation's"})
def list_commitments(actor: Actor, round_id: int):
    statement = commitments.commitments_for(actor, round_id, organisation_id=_int_arg("organisation_id"))
    return paginate(statement, commitment_out)


@bp.endpoint(ROUND + "/commitments/<int:product_id>", "PUT", summary="Commit to a product",
             body=CommitmentIn, response=CommitmentOut)
def put_commitment(actor: Actor, round_id: int, product_id: int, body: CommitmentIn):
    """Member staff for their own organisation; an admin names `organisation_id`. Quantity 0
    withdraws. Refused with 422 when the product may not go to the member's jurisdiction, a required
    document is missing or expires before the deadline, or the quantity is over the member cap;
    409 once the round is not open or its deadline has passed."""
    commitment = commitments.set_commitment(
        actor, round_id, product_id, quantity=body.quantity, tolerance=body.tolerance,
        organisation_id=body.organisation_id,
    )
    if commitment is None:
        organisation_id = body.organisation_id or actor.organisation_id
        return CommitmentOut(id=None, round_id=round_id, product_id=product_id,
                             organisation_id=organisation_id, quantity=0, tolerance=0,
                             first_committed_at=None, updated_at=None, history=[])
    db.session.refresh(commitment, ["changes"])
    return commitment_out(commitment)

