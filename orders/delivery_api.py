"""After the close, in the JSON API: purchase order, receipts, delivery and recall (see API.md).

Handlers translate JSON to one service call (``orders.services.delivery``),
which validates naming the field, scopes and audits.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint
from orders import pdf
from orders.models import RoundStatus
from orders.services import delivery

bp = ApiBlueprint("orders_delivery_api", __name__, tag="rounds")

ADMIN = (Role.ADMIN,)
ROUND = "/rounds/<int:round_id>"


class ReceiptLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: StrictInt
    quantity: StrictInt = Field(description="Units of this lot delivered, 1 or more")
    lot: str | None = Field(None, description="The lot number; required for lot-tracked products")
    expiry: str | None = Field(None, description="YYYY-MM-DD; required for lot-tracked products")


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received_on: str = Field(description="The day the delivery arrived, YYYY-MM-DD")
    lines: list[ReceiptLineIn] = Field(description="One line per product and lot")
    note: str | None = None
    last_delivery: StrictBool = Field(
        True, description="true (default): this completes receiving -- shortfalls and surpluses are "
        "re-allocated, lots are packed and the round becomes received. false: more deliveries "
        "are expected; complete later with POST /rounds/{id}/received.")


class RoundStateOut(BaseModel):
    id: int
    status: RoundStatus


class ReceiptLineOut(BaseModel):
    id: int
    product_id: int
    lot: str | None
    expiry: date | None
    quantity: int


class MemberChangeOut(BaseModel):
    organisation_id: int
    before: int
    after: int


class ProductOutcomeOut(BaseModel):
    product_id: int
    bought: int
    delivered: int
    kind: str = Field(description='"short", "surplus" or "as ordered"')
    members_before: int = Field(description="Units allocated to members before this delivery")
    members_after: int
    free_stock: int = Field(description="Units kept by the fund as free stock")
    changes: list[MemberChangeOut] = Field(description="Members whose units changed")


class ReceivingOut(BaseModel):
    round_id: int
    round_status: RoundStatus
    receipt_id: int | None
    received_on: date | None
    note: str | None
    lines: list[ReceiptLineOut]
    completed: bool = Field(description="Receiving completed: units re-allocated and lots packed")
    products: list[ProductOutcomeOut]


class MemberDeliveryOut(BaseModel):
    organisation_id: int
    organisation_name: str
    units_at_close: int
    units_now: int


class ProductDeliveryOut(BaseModel):
    product_id: int
    sku: str
    name: str
    bought: int
    free_units_bought: int
    delivered: int
    free_stock: int | None = Field(description="Packed as fund free stock; null until receiving is completed")
    members: list[MemberDeliveryOut]


class DeliveryOut(BaseModel):
    round_id: int
    round_status: RoundStatus
    products: list[ProductDeliveryOut]


class RecipientOut(BaseModel):
    organisation_id: int | None = Field(description="null: kept by the fund as free stock")
    organisation_name: str | None
    round_id: int
    round_name: str
    product_id: int
    sku: str
    product_name: str
    expiry: date | None
    units: int


class RecallOut(BaseModel):
    lot: str
    units: int = Field(description="All units of the lot shipped or kept")
    recipients: list[RecipientOut]


def _receiving_out(result: delivery.ReceivingResult) -> ReceivingOut:
    receipt = result.receipt
    return ReceivingOut(
        round_id=result.round.id, round_status=result.round.status,
        receipt_id=receipt.id if receipt else None,
        received_on=receipt.received_on if receipt else None,
        note=receipt.note if receipt else None,
        lines=[ReceiptLineOut(id=line.id, product_id=line.product_id, lot=line.lot, expiry=line.expiry,
                              quantity=line.quantity) for line in (receipt.lines if receipt else [])],
        completed=result.completed,
        products=[ProductOutcomeOut(
            product_id=o.product_id, bought=o.bought, delivered=o.delivered, kind=o.kind,
            members_before=o.members_before, members_after=o.members_after, free_stock=o.free_stock,
            changes=[MemberChangeOut(organisation_id=c.organisation_id, before=c.before, after=c.after)
                     for c in o.changes],
        ) for o in result.outcomes],
    )


def purchase_order_pdf(order: delivery.PurchaseOrder) -> bytes:
    """Shared with the HTML view: the purchase order as PDF bytes."""
    return pdf.render_pdf("orders/pdf/purchase_order.html", order=order,
                          delivery_address=current_app.config.get("CLUB_DELIVERY_ADDRESS"))


@bp.endpoint(ROUND + "/purchase-order", "GET", summary="The purchase order for the supplier (PDF)",
             roles=ADMIN)
def purchase_order(actor: Actor, round_id: int):
    """`application/pdf`. The round must be closed (or later): per product the cases, units, the unit
    cost at the break reached and the line total; the grand total."""
    order = delivery.purchase_order(actor, round_id)
    return pdf.pdf_response(purchase_order_pdf(order), f"{order.number}.pdf")


@bp.endpoint(ROUND + "/order", "POST", summary="Mark a closed round ordered", roles=ADMIN,
             response=RoundStateOut)
def mark_ordered(actor: Actor, round_id: int):
    """The purchase order has been sent to the supplier: closed -> ordered (409 otherwise)."""
    found = delivery.mark_ordered(actor, round_id)
    return RoundStateOut(id=found.id, status=found.status)


@bp.endpoint(ROUND + "/receipts", "POST", summary="Record a delivery, with lots and expiry dates",
             roles=ADMIN, body=ReceiptIn, response=ReceivingOut, status=201)
def record_receipt(actor: Actor, round_id: int, body: ReceiptIn):
    """The round must be ordered. Several receipts are allowed (`last_delivery: false`) until one
    completes receiving. Lot and expiry are required for lot-tracked products. On completion a
    shortfall is re-allocated with the round's policy (the fund's free units are given up first);
    a surplus goes to unfilled commitments and tolerance, then to the fund's free stock; lots are
    packed earliest expiry first, short-dated stock to members that accept it."""
    payload: dict[str, Any] = body.model_dump()
    lines = [{name: value for name, value in line.items()
              if not (name in ("lot", "expiry") and value is None)} for line in payload["lines"]]
    result = delivery.record_receipt(actor, round_id, received_on=body.received_on, lines=lines,
                                     note=body.note, last_delivery=body.last_delivery)
    return _receiving_out(result)


@bp.endpoint(ROUND + "/received", "POST", summary="Complete receiving a round", roles=ADMIN,
             response=ReceivingOut)
def complete_receiving(actor: Actor, round_id: int):
    """Every delivery is recorded: re-allocate, pack lots, ordered -> received."""
    return _receiving_out(delivery.complete_receiving(actor, round_id))


@bp.endpoint(ROUND + "/delivery", "GET", summary="Bought against delivered, per product and member",
             roles=ADMIN, response=DeliveryOut)
def delivery_summary(actor: Actor, round_id: int):
    summary = delivery.delivery_summary(actor, round_id)
    return DeliveryOut(
        round_id=summary.round.id, round_status=summary.round.status,
        products=[ProductDeliveryOut(
            product_id=p.product.id, sku=p.product.sku, name=p.product.name, bought=p.bought,
            free_units_bought=p.free_units_bought, delivered=p.delivered, free_stock=p.free_stock,
            members=[MemberDeliveryOut(organisation_id=m.organisation.id,
                                       organisation_name=m.organisation.name,
                                       units_at_close=m.at_close, units_now=m.now) for m in p.members],
        ) for p in summary.products],
    )


@bp.endpoint("/lots/<path:lot>/recipients", "GET", summary="Recall: who received a lot",
             roles=ADMIN, response=RecallOut)
def lot_recipients(actor: Actor, lot: str):
    """Every member that received units of the lot (and the fund's free stock, with a null
    organisation), per round and product, with the expiry date. Not paginated: one row per
    recipient of one lot."""
    found = delivery.lot_recipients(actor, lot)
    return RecallOut(lot=lot.strip(), units=sum(r.units for r in found),
                     recipients=[RecipientOut(**vars(r)) for r in found])
