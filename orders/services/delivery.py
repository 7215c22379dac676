"""After the close: the purchase order, receiving with lots, re-allocation, packing and recall.

The rules, where the SPEC leaves the choice to us:

* **Purchase order.** A closed round (or any later state) has one: per
  product the cases, units and unit cost of the break reached (from the
  option the admin chose at close, ``ProductClosing``), and the total.
  Sending it is marked by moving the round from *closed* to *ordered*.
* **Receipts.** Only an *ordered* round takes receipts, and it takes several:
  a supplier may deliver in parts. Each receipt has lines of one product and
  (for lot-tracked products, required) one lot with its expiry date; a
  product may arrive in several lots. Receiving is **completed** by the last
  receipt (``last_delivery``, the default) or on its own
  (:func:`complete_receiving`): only then, with every delivery counted, are
  units re-allocated and lots packed, and the round becomes *received*.
  After that no receipt is taken (a later correction is a new step, not an
  edit).
* **Shortfall** (fewer units delivered than bought). The fund's free units
  (bought by a price-break jump) are given up first: members keep their
  allocation while the delivery covers it. Below that, members' current
  allocations are the demand -- their firm units as quantity, the tolerance
  units they were given as tolerance -- and the delivered units are shared
  with the round's policy (proportional, largest remainder; or first come,
  first served by the commitment's place in line) through
  :func:`orders.engine.allocate_units`. Nobody gets more than before.
* **Surplus** (more delivered than bought). Members keep what they had; the
  extra units go first to firm units a member committed to and did not get
  (possible when cases rounded down at close), then to unfilled tolerance (the
  tolerance in its commitment, less the tolerance units it was given), each
  shared with the round's policy; what is left joins the fund's free stock.
* Allocations are never edited: a changed member gets a new row (source
  *receipt*) and its old row is marked superseded. A member whose allocation
  drops to nothing gets a row of zero units, so the change reads in the
  history.
* **Packing.** Each product's delivered lots are assigned to the final units:
  earliest expiry first, members in order of organisation id, the fund's free
  stock last. Stock expiring within :data:`SHORT_DATED_DAYS` days of the day
  it arrived is *short-dated*: it goes first to members that accept
  short-dated stock, then to free stock, and only what is still left to
  other members. Each assignment is a ``LotShipment`` row: the recall record.
* **Free stock given to members.** The fund's free units a member receives
  (decided by an approved subsidy run, read through :mod:`orders.hooks`) are
  handed out of the fund's packed rows by :func:`hand_over_free_stock`: the
  fund's rows of the product, earliest expiry first, then by row id, become
  new rows for the members, members in order of organisation id. The fund's
  rows are reduced in place (deleted when emptied) -- ``LotShipment`` has no
  room for a negative row -- and the audit event ``lots.free_stock_given``
  keeps every row's units before and after. A run approved after receipt
  hands over at approval; one approved before it, when receiving completes.
  If fewer free units arrived than were given, the units that did arrive are
  shared in proportion to what each member was given (largest remainder).
  On a member's packing list, units beyond the member's allocation are the
  free ones (the member's newest rows): they are listed on their own lines,
  "supplied free by the club fund".
* **Recall.** Which members received lot X is one query over the shipments.

Every change is audited; all input is validated before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound
from buyersclub.money import ZERO, allocate_cents, round_money
from buyersclub.organisations.models import Organisation
from orders import engine, hooks
from orders.models import (
    Allocation,
    AllocationSource,
    Commitment,
    LotShipment,
    Product,
    ProductClosing,
    Receipt,
    ReceiptLine,
    Round,
    RoundStatus,
    Supplier,
)
from orders.services.catalogue import clean_text
from orders.services.rounds import get_round

FREE_STOCK_NOTE = "supplied free by the club fund"
# Stock expiring within this many days of the day it arrived is short-dated.
SHORT_DATED_DAYS = 180
MAX_LINES = 500
MAX_NOTE_LENGTH = 2000
MAX_LOT_LENGTH = 60

AFTER_CLOSE = (RoundStatus.CLOSED, RoundStatus.ORDERED, RoundStatus.RECEIVED,
               RoundStatus.INVOICED, RoundStatus.SETTLED)
PACKED = (RoundStatus.RECEIVED, RoundStatus.INVOICED, RoundStatus.SETTLED)
# Members without a commitment row (never expected) queue after everyone.
_END_OF_QUEUE = datetime.max.replace(tzinfo=UTC)


def _require_status(found: Round, *allowed: RoundStatus, doing: str, hint: str = "") -> None:
    if found.status not in allowed:
        raise Conflict(f"This round is {found.status.value}: it cannot be {doing} now.{hint}",
                       code="wrong_state")


# --- Purchase order ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLine:
    product: Product
    cases: int
    pack_size: int
    units: int
    free_units: int
    unit_cost: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class DeliverySite:
    city: str
    region: str
    country: str
    members: int


@dataclass(frozen=True)
class PurchaseOrder:
    round: Round
    supplier: Supplier
    lines: list[OrderLine]
    total: Decimal
    units: int
    sites: list[DeliverySite]

    @property
    def number(self) -> str:
        return f"PO-{self.round.id:05d}"


def _closings(round_id: int) -> list[ProductClosing]:
    return list(db.session.scalars(
        select(ProductClosing).where(ProductClosing.round_id == round_id)
        .options(selectinload(ProductClosing.product), selectinload(ProductClosing.round_item))
        .order_by(ProductClosing.id)
    ))


def purchase_order(actor: Actor, round_id: int) -> PurchaseOrder:
    """What the club buys from the supplier for a closed round, at the breaks reached."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id)
    _require_status(found, *AFTER_CLOSE, doing="ordered from",
                    hint=" A purchase order exists once the round is closed.")
    lines = []
    for closing in _closings(found.id):
        if closing.units == 0:
            continue
        pack_size = closing.round_item.pack_size or closing.product.pack_size
        lines.append(OrderLine(
            product=closing.product, cases=closing.cases, pack_size=pack_size, units=closing.units,
            free_units=closing.free_units, unit_cost=closing.unit_cost,
            line_total=round_money(closing.unit_cost * closing.units),
        ))
    lines.sort(key=lambda line: (line.product.sku, line.product.id))
    sites = db.session.execute(
        select(Organisation.site_city, Organisation.region, Organisation.country,
               func.count(func.distinct(Organisation.id)))
        .join(Allocation, Allocation.organisation_id == Organisation.id)
        .where(Allocation.round_id == found.id, Allocation.superseded_at.is_(None),
               Allocation.firm_units + Allocation.tolerance_units > 0)
        .group_by(Organisation.country, Organisation.region, Organisation.site_city)
        .order_by(Organisation.country, Organisation.region, Organisation.site_city)
    ).all()
    return PurchaseOrder(
        round=found, supplier=found.supplier, lines=lines,
        total=sum((line.line_total for line in lines), ZERO),
        units=sum(line.units for line in lines),
        sites=[DeliverySite(city, region, country, count) for city, region, country, count in sites],
    )


def mark_ordered(actor: Actor, round_id: int) -> Round:
    """The purchase order has gone to the supplier: closed -> ordered."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.CLOSED, doing="marked ordered")
    before = snapshot(found, ["status"])
    found.status = RoundStatus.ORDERED
    db.session.flush()
    record(actor, "round.ordered", "round", found.id, before=before, after=snapshot(found, ["status"]))
    return found


# --- Receiving: validation -----------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    product: Product
    quantity: int
    lot: str | None
    expiry: date | None


def _clean_date(value: Any, field: str, label: str, *, required: bool) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"Give {label} as a date, YYYY-MM-DD.", field=field)
        return None
    if isinstance(value, datetime):
        raise InvalidInput(f"Give {label} as a date without a time, YYYY-MM-DD.", field=field)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"Give {label} as a date, YYYY-MM-DD.", field=field)


def clean_receipt(found: Round, received_on: Any, lines: Any) -> tuple[date, list[LineInput]]:
    """The delivery's date and lines, checked against the round; InvalidInput naming the field."""
    day = _clean_date(received_on, "received_on", "the day the delivery arrived", required=True)
    assert day is not None
    if day > utcnow().date() + timedelta(days=1):
        raise InvalidInput("The delivery cannot have arrived in the future.", field="received_on")
    if not isinstance(lines, list | tuple) or not lines:
        raise InvalidInput("List at least one delivered line.", field="lines")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"A receipt has at most {MAX_LINES} lines.", field="lines")
    products = {item.product_id: item.product for item in found.items}
    cleaned: list[LineInput] = []
    seen: set[tuple[int, str | None]] = set()
    for index, line in enumerate(lines):
        where = f"lines.{index}"
        if not isinstance(line, Mapping):
            raise InvalidInput("Each line needs product_id, quantity, lot and expiry.", field=where)
        for name in line:
            if name not in ("product_id", "quantity", "lot", "expiry"):
                raise InvalidInput(f"{name} is not a field of a receipt line.", field=f"{where}.{name}")
        product_id = line.get("product_id")
        if isinstance(product_id, bool) or not isinstance(product_id, int):
            raise InvalidInput("Choose the product.", field=f"{where}.product_id")
        product = products.get(product_id)
        if product is None:
            raise InvalidInput("This product is not in the round.", field=f"{where}.product_id")
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput("Enter the units delivered as a whole number, 1 or more.",
                               field=f"{where}.quantity")
        lot = clean_text(line.get("lot"), f"{where}.lot", "the lot number", MAX_LOT_LENGTH,
                         required=product.lot_tracked)
        expiry = _clean_date(line.get("expiry"), f"{where}.expiry", "the expiry date",
                             required=product.lot_tracked)
        if expiry is not None and expiry <= day:
            raise InvalidInput("This stock had expired when it arrived: record it with the supplier, "
                               "not as delivered.", field=f"{where}.expiry")
        key = (product.id, lot)
        if lot is not None and key in seen:
            raise InvalidInput("This lot of the product is already on another line: add the "
                               "quantities up.", field=f"{where}.lot")
        seen.add(key)
        cleaned.append(LineInput(product, quantity, lot, expiry))
    return day, cleaned


# --- Receiving: recording and completing ---------------------------------------------------------


@dataclass(frozen=True)
class MemberChange:
    organisation_id: int
    before: int
    after: int


@dataclass(frozen=True)
class ProductOutcome:
    """What completing the receipt did to one product."""

    product_id: int
    bought: int
    delivered: int
    members_before: int
    members_after: int
    free_stock: int
    changes: list[MemberChange]

    @property
    def kind(self) -> str:
        if self.delivered < self.bought:
            return "short"
        if self.delivered > self.bought:
            return "surplus"
        return "as ordered"


@dataclass
class ReceivingResult:
    receipt: Receipt | None
    round: Round
    completed: bool
    outcomes: list[ProductOutcome] = field(default_factory=list)


def record_receipt(actor: Actor, round_id: int, *, received_on: Any, lines: Any, note: Any = None,
                   last_delivery: bool = True) -> ReceivingResult:
    """Record one delivery; with ``last_delivery`` also complete the receiving of the round."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.ORDERED, doing="received",
                    hint=" Receipts are taken once the round is ordered, until receiving is completed.")
    day, cleaned = clean_receipt(found, received_on, lines)
    text = clean_text(note, "note", "the note", MAX_NOTE_LENGTH, required=False)
    if not isinstance(last_delivery, bool):
        raise InvalidInput("Say true or false.", field="last_delivery")
    receipt = Receipt(round_id=found.id, received_on=day, note=text, recorded_by_id=actor.user_id)
    receipt.lines = [ReceiptLine(product_id=line.product.id, lot=line.lot, expiry=line.expiry,
                                 quantity=line.quantity) for line in cleaned]
    db.session.add(receipt)
    db.session.flush()
    record(actor, "receipt.recorded", "receipt", receipt.id, after={
        "round_id": found.id, "received_on": day, "note": text,
        "lines": [{"product_id": line.product_id, "lot": line.lot, "expiry": line.expiry,
                   "quantity": line.quantity} for line in receipt.lines],
    })
    result = ReceivingResult(receipt=receipt, round=found, completed=False)
    if last_delivery:
        result.outcomes = _complete(actor, found)
        result.completed = True
    return result


def complete_receiving(actor: Actor, round_id: int) -> ReceivingResult:
    """Every delivery is in: re-allocate shortfalls and surpluses, pack lots, mark received."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.ORDERED, doing="marked received")
    has_receipt = db.session.scalar(select(Receipt.id).where(Receipt.round_id == found.id).limit(1))
    if has_receipt is None:
        raise Conflict("Record at least one delivery before completing the receipt.", code="no_receipt")
    return ReceivingResult(receipt=None, round=found, completed=True, outcomes=_complete(actor, found))


def _current_allocations(round_id: int) -> dict[int, dict[int, list[Allocation]]]:
    """product -> organisation -> current (not superseded) rows."""
    rows = db.session.scalars(
        select(Allocation).where(Allocation.round_id == round_id, Allocation.superseded_at.is_(None))
        .order_by(Allocation.product_id, Allocation.organisation_id, Allocation.id)
    )
    found: dict[int, dict[int, list[Allocation]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        found[row.product_id][row.organisation_id].append(row)
    return found


def _commitments(round_id: int) -> dict[int, dict[int, Commitment]]:
    """product -> organisation -> commitment (live ones, quantity above zero)."""
    found: dict[int, dict[int, Commitment]] = defaultdict(dict)
    for row in db.session.scalars(select(Commitment).where(Commitment.round_id == round_id,
                                                           Commitment.quantity > 0)):
        found[row.product_id][row.organisation_id] = row
    return found


def _delivered_lines(round_id: int) -> dict[int, list[tuple[ReceiptLine, date]]]:
    rows = db.session.execute(
        select(ReceiptLine, Receipt.received_on).join(Receipt, ReceiptLine.receipt_id == Receipt.id)
        .where(Receipt.round_id == round_id).order_by(ReceiptLine.id)
    ).all()
    found: dict[int, list[tuple[ReceiptLine, date]]] = defaultdict(list)
    for line, received_on in rows:
        found[line.product_id].append((line, received_on))
    return found


Split = tuple[int, int]  # (firm units, tolerance units)


def reallocate(delivered: int, bought: int, current: Mapping[int, Split],
               committed: Mapping[int, tuple[int, int, Any]],
               policy: engine.AllocationPolicy) -> tuple[dict[int, Split], int]:
    """Members' units after a delivery of ``delivered`` units of ``bought``, and the free stock.

    ``current`` is each member's (firm, tolerance) units now; ``committed`` its
    commitment (quantity, tolerance, place in line). Pure: no database.
    """
    members_total = sum(firm + tolerance for firm, tolerance in current.values())
    after = dict(current)
    if delivered <= bought and delivered >= members_total:
        return after, delivered - members_total  # the fund's free units are given up first
    queue = {member: (committed[member][2] if member in committed else (_END_OF_QUEUE, member))
             for member in set(current) | set(committed)}
    if delivered < members_total:
        demand = []
        for member, (firm, tolerance) in current.items():
            if firm == 0 and tolerance:  # cannot happen (firm comes first); keep the units anyway
                firm, tolerance = tolerance, 0
            demand.append(engine.Commitment(member=member, quantity=firm, tolerance=tolerance,
                                            placed_at=queue[member]))
        shared = engine.allocate_units(delivered, demand, policy)
        after = {member: (0, 0) for member in current}
        for line in shared.members:
            after[line.member] = (line.firm_units, line.tolerance_units)
        return after, delivered - sum(a + b for a, b in after.values())
    # Surplus: nobody loses a unit; unfilled firm units first, then unfilled tolerance.
    extra = delivered - bought
    for stage in (0, 1):
        wanted = []
        for member, (quantity, tolerance, _) in committed.items():
            firm_now, tolerance_now = after.get(member, (0, 0))
            missing = quantity - firm_now if stage == 0 else tolerance - tolerance_now
            if missing > 0:
                wanted.append(engine.Commitment(member=member, quantity=missing, placed_at=queue[member]))
        if not wanted or extra == 0:
            continue
        shared = engine.allocate_units(extra, wanted, policy)
        for line in shared.members:
            if line.firm_units:
                firm_now, tolerance_now = after.get(line.member, (0, 0))
                after[line.member] = ((firm_now + line.firm_units, tolerance_now) if stage == 0
                                      else (firm_now, tolerance_now + line.firm_units))
        extra = shared.left_over
    return after, delivered - sum(a + b for a, b in after.values())


def _complete(actor: Actor, found: Round) -> list[ProductOutcome]:
    now = utcnow()
    closings = {closing.product_id: closing for closing in _closings(found.id)}
    allocations = _current_allocations(found.id)
    commitments = _commitments(found.id)
    delivered_lines = _delivered_lines(found.id)
    policy = engine.AllocationPolicy(found.allocation_policy.value)
    accepting = set(db.session.scalars(
        select(Organisation.id).where(Organisation.accepts_short_dated.is_(True))))
    given_free: dict[int, dict[int, int]] = defaultdict(dict)  # free units given before receipt
    for (organisation_id, product_id), units in hooks.free_units(found.id).items():
        given_free[product_id][organisation_id] = units
    outcomes = []
    for item in sorted(found.items, key=lambda each: each.product_id):
        product_id = item.product_id
        closing = closings.get(product_id)
        lines = delivered_lines.get(product_id, [])
        delivered = sum(line.quantity for line, _ in lines)
        bought = closing.units if closing else 0
        if closing is None and not lines:
            continue
        rows = allocations.get(product_id, {})
        current = {org: (sum(r.firm_units for r in group), sum(r.tolerance_units for r in group))
                   for org, group in rows.items()}
        committed = {org: (c.quantity, c.tolerance, (c.first_committed_at, c.id))
                     for org, c in commitments.get(product_id, {}).items()}
        if closing is None:  # delivered without being bought: all of it is free stock
            after, free = dict(current), delivered - sum(a + b for a, b in current.values())
        else:
            after, free = reallocate(delivered, bought, current, committed, policy)
        changes = _write_allocations(actor, found, closing, product_id, rows, current, after, now)
        outcome = ProductOutcome(
            product_id=product_id, bought=bought, delivered=delivered,
            members_before=sum(a + b for a, b in current.values()),
            members_after=sum(a + b for a, b in after.values()), free_stock=free, changes=changes)
        if changes or delivered != bought:
            record(actor, "allocation.delivery_adjusted", "round", found.id, after={
                "product_id": product_id, "bought": bought, "delivered": delivered, "kind": outcome.kind,
                "free_stock": free,
                "changes": [{"organisation_id": c.organisation_id, "before": c.before, "after": c.after}
                            for c in changes],
            })
        needs = {org: a + b for org, (a, b) in sorted(after.items()) if a + b > 0}
        _pack(actor, found, product_id, lines, needs, free, accepting)
        if given_free.get(product_id):
            hand_over_free_stock(actor, found.id, product_id, given_free[product_id])
        outcomes.append(outcome)
    before = snapshot(found, ["status"])
    found.status = RoundStatus.RECEIVED
    db.session.flush()
    record(actor, "round.received", "round", found.id, before=before, after={
        "status": found.status,
        "products": [{"product_id": o.product_id, "bought": o.bought, "delivered": o.delivered,
                      "free_stock": o.free_stock} for o in outcomes],
    })
    return outcomes


def _write_allocations(actor: Actor, found: Round, closing: ProductClosing | None, product_id: int,
                       rows: Mapping[int, list[Allocation]], current: Mapping[int, Split],
                       after: Mapping[int, Split], now: datetime) -> list[MemberChange]:
    changes = []
    for org in sorted(set(current) | set(after)):
        old = current.get(org, (0, 0))
        new = after.get(org, (0, 0))
        if old == new:
            continue
        assert closing is not None
        for row in rows.get(org, []):
            row.superseded_at = now
        replacement = Allocation(
            round_id=found.id, product_id=product_id, organisation_id=org,
            product_closing_id=closing.id, firm_units=new[0], tolerance_units=new[1],
            source=AllocationSource.RECEIPT, created_at=now)
        db.session.add(replacement)
        db.session.flush()
        record(actor, "allocation.superseded", "allocation", replacement.id, organisation_id=org,
               before={"allocation_ids": [row.id for row in rows.get(org, [])],
                       "firm_units": old[0], "tolerance_units": old[1]},
               after={"round_id": found.id, "product_id": product_id, "firm_units": new[0],
                      "tolerance_units": new[1], "source": AllocationSource.RECEIPT})
        changes.append(MemberChange(org, sum(old), sum(new)))
    return changes


@dataclass
class _Lot:
    line: ReceiptLine
    remaining: int
    short_dated: bool


def is_short_dated(expiry: date | None, received_on: date) -> bool:
    return expiry is not None and expiry <= received_on + timedelta(days=SHORT_DATED_DAYS)


def plan_packing(lots: Sequence[_Lot], needs: Mapping[int, int], free_stock: int,
                 accepting: Iterable[int]) -> list[tuple[_Lot, int | None, int]]:
    """Assign lot units to members (organisation ids) and free stock (``None``).

    Lots are taken earliest expiry first. Short-dated lots go first to members
    that accept them, then to free stock; then every lot left goes to the
    remaining needs, members by organisation id, free stock last.
    """
    wanted: dict[int | None, int] = {org: units for org, units in sorted(needs.items()) if units > 0}
    if free_stock > 0:
        wanted[None] = free_stock
    accepts = set(accepting)
    plan: list[tuple[_Lot, int | None, int]] = []

    def give(pool: Sequence[_Lot], recipients: Iterable[int | None]) -> None:
        for key in recipients:
            for lot in pool:
                if wanted[key] == 0:
                    break
                take = min(lot.remaining, wanted[key])
                if take:
                    lot.remaining -= take
                    wanted[key] -= take
                    plan.append((lot, key, take))

    short = [lot for lot in lots if lot.short_dated]
    members = [key for key in wanted if key is not None]
    give(short, [org for org in members if org in accepts])
    if None in wanted:
        give(short, [None])
    give(lots, [*members, *([None] if None in wanted else [])])
    merged: dict[tuple[int, int | None], int] = {}
    for lot, key, units in plan:
        merged[(lot.line.id, key)] = merged.get((lot.line.id, key), 0) + units
    by_id = {lot.line.id: lot for lot in lots}
    return [(by_id[line_id], key, units) for (line_id, key), units in merged.items()]


def _pack(actor: Actor, found: Round, product_id: int, lines: list[tuple[ReceiptLine, date]],
          needs: Mapping[int, int], free_stock: int, accepting: set[int]) -> None:
    lots = [_Lot(line, line.quantity, is_short_dated(line.expiry, received_on))
            for line, received_on in lines]
    lots.sort(key=lambda lot: (lot.line.expiry is None, lot.line.expiry or date.max, lot.line.id))
    plan = plan_packing(lots, needs, free_stock, accepting)
    shipments = [LotShipment(round_id=found.id, product_id=product_id, receipt_line_id=lot.line.id,
                             organisation_id=key, lot=lot.line.lot, expiry=lot.line.expiry, units=units)
                 for lot, key, units in plan]
    db.session.add_all(shipments)
    db.session.flush()
    if shipments:
        record(actor, "lots.packed", "round", found.id, after={
            "product_id": product_id,
            "shipments": [{"organisation_id": s.organisation_id, "lot": s.lot, "expiry": s.expiry,
                           "units": s.units, "receipt_line_id": s.receipt_line_id} for s in shipments],
        })


def hand_over_free_stock(actor: Actor, round_id: int, product_id: int,
                         given: Mapping[int, int]) -> dict[int, int]:
    """Move free units of a product from the fund's packed rows to members; the units moved.

    ``given``: organisation id -> free units. The fund's rows are taken
    earliest expiry first (then by id), members in order of organisation id;
    each member gets a new row per lot row it takes from. When the fund holds
    fewer units than given, what it holds is shared in proportion to
    ``given``. Audited with every fund row's units before and after.
    """
    wanted = {org: units for org, units in sorted(given.items()) if units > 0}
    fund_rows = list(db.session.scalars(
        select(LotShipment)
        .where(LotShipment.round_id == round_id, LotShipment.product_id == product_id,
               LotShipment.organisation_id.is_(None))
        .order_by(LotShipment.expiry.is_(None), LotShipment.expiry, LotShipment.id)
        .with_for_update()))
    held = sum(row.units for row in fund_rows)
    if not wanted or held == 0:
        return {}
    if sum(wanted.values()) > held:
        wanted = {org: units for org, units in sorted(allocate_cents(held, wanted).items()) if units}
    before = [{"id": row.id, "lot": row.lot, "expiry": row.expiry, "units": row.units} for row in fund_rows]
    shipments: list[LotShipment] = []
    for org, units in wanted.items():
        for row in fund_rows:
            if units == 0:
                break
            take = min(row.units, units)
            if take == 0:
                continue
            row.units -= take
            units -= take
            shipments.append(LotShipment(round_id=round_id, product_id=product_id,
                                         receipt_line_id=row.receipt_line_id, organisation_id=org,
                                         lot=row.lot, expiry=row.expiry, units=take))
    for row in fund_rows:
        if row.units == 0:
            db.session.delete(row)
    db.session.add_all(shipments)
    db.session.flush()
    record(actor, "lots.free_stock_given", "round", round_id, before={"fund_shipments": before}, after={
        "product_id": product_id,
        "fund_shipments": [{"id": row.id, "units": row.units, "deleted": row.units == 0}
                           for row in fund_rows],
        "shipments": [{"id": s.id, "organisation_id": s.organisation_id, "lot": s.lot, "expiry": s.expiry,
                       "units": s.units, "receipt_line_id": s.receipt_line_id} for s in shipments],
    })
    return dict(wanted)


# --- Reading: the delivery page, packing lists, recall --------------------------------------------


@dataclass(frozen=True)
class MemberDelivery:
    organisation: Organisation
    at_close: int
    now: int


@dataclass(frozen=True)
class ProductDelivery:
    product: Product
    closing: ProductClosing | None
    bought: int
    free_units_bought: int
    delivered: int
    members: list[MemberDelivery]
    free_stock: int | None  # packed as free stock; None until receiving is completed

    @property
    def difference(self) -> int:
        return self.delivered - self.bought


@dataclass(frozen=True)
class DeliverySummary:
    round: Round
    products: list[ProductDelivery]
    receipts: list[Receipt]
    packed_organisations: list[Organisation]


def delivery_summary(actor: Actor, round_id: int) -> DeliverySummary:
    """Bought against delivered, per product, and each member's units at close and now."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id)
    closings = {closing.product_id: closing for closing in _closings(found.id)}
    delivered = dict(db.session.execute(
        select(ReceiptLine.product_id, func.sum(ReceiptLine.quantity))
        .join(Receipt, ReceiptLine.receipt_id == Receipt.id).where(Receipt.round_id == found.id)
        .group_by(ReceiptLine.product_id)).all())
    free_packed = dict(db.session.execute(
        select(LotShipment.product_id, func.sum(LotShipment.units))
        .where(LotShipment.round_id == found.id, LotShipment.organisation_id.is_(None))
        .group_by(LotShipment.product_id)).all())
    rows = db.session.scalars(
        select(Allocation).where(Allocation.round_id == found.id).order_by(Allocation.id)).all()
    organisations = {org.id: org for org in db.session.scalars(
        select(Organisation).where(Organisation.id.in_({row.organisation_id for row in rows})))}
    at_close: dict[tuple[int, int], int] = defaultdict(int)
    now: dict[tuple[int, int], int] = defaultdict(int)
    for row in rows:
        key = (row.product_id, row.organisation_id)
        if row.source == AllocationSource.CLOSE:
            at_close[key] += row.units
        if row.superseded_at is None:
            now[key] += row.units
    packed = found.status in PACKED
    products = []
    for item in found.items:
        closing = closings.get(item.product_id)
        keys = sorted({key for key in (*at_close, *now) if key[0] == item.product_id},
                      key=lambda key: organisations[key[1]].name)
        products.append(ProductDelivery(
            product=item.product, closing=closing, bought=closing.units if closing else 0,
            free_units_bought=closing.free_units if closing else 0,
            delivered=int(delivered.get(item.product_id) or 0),
            members=[MemberDelivery(organisations[key[1]], at_close.get(key, 0), now.get(key, 0))
                     for key in keys],
            free_stock=int(free_packed.get(item.product_id) or 0) if packed else None,
        ))
    receipts = list(db.session.scalars(
        select(Receipt).where(Receipt.round_id == found.id)
        .options(selectinload(Receipt.lines)).order_by(Receipt.received_on, Receipt.id)))
    packed_ids = set(db.session.scalars(
        select(LotShipment.organisation_id).where(LotShipment.round_id == found.id,
                                                  LotShipment.organisation_id.is_not(None)).distinct()))
    packed_organisations = sorted((organisations[org] for org in packed_ids if org in organisations),
                                  key=lambda org: org.name)
    missing = packed_ids - set(organisations)
    if missing:
        packed_organisations += list(db.session.scalars(
            select(Organisation).where(Organisation.id.in_(missing)).order_by(Organisation.name)))
    return DeliverySummary(round=found, products=products, receipts=receipts,
                           packed_organisations=packed_organisations)


@dataclass(frozen=True)
class PackedLine:
    product: Product
    lot: str | None
    expiry: date | None
    units: int
    short_dated: bool
    free: bool = False
    """Supplied free by the club fund (not billed)."""

    @property
    def note(self) -> str:
        return FREE_STOCK_NOTE if self.free else ""


@dataclass(frozen=True)
class PackingList:
    round: Round
    organisation: Organisation
    lines: list[PackedLine]
    packed: bool

    @property
    def units(self) -> int:
        return sum(line.units for line in self.lines)

    @property
    def free_units(self) -> int:
        return sum(line.units for line in self.lines if line.free)


def packing_list(actor: Actor, round_id: int, organisation_id: int) -> PackingList:
    """What is packed for one member: products, lots, expiry dates. Staff see their own only."""
    actor.require_own_organisation(organisation_id, Role.ADMIN)
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.")
    found = get_round(actor, round_id)
    rows = db.session.execute(
        select(LotShipment.product_id, LotShipment.lot, LotShipment.expiry, LotShipment.units,
               Receipt.received_on)
        .join(ReceiptLine, LotShipment.receipt_line_id == ReceiptLine.id)
        .join(Receipt, ReceiptLine.receipt_id == Receipt.id)
        .where(LotShipment.round_id == found.id, LotShipment.organisation_id == organisation_id)
        .order_by(LotShipment.id)
    ).all()
    allocated = dict(db.session.execute(
        select(Allocation.product_id, func.sum(Allocation.firm_units + Allocation.tolerance_units))
        .where(Allocation.round_id == found.id, Allocation.organisation_id == organisation_id,
               Allocation.superseded_at.is_(None))
        .group_by(Allocation.product_id)).all())
    shipped: dict[int, int] = defaultdict(int)
    for row in rows:
        shipped[row.product_id] += row.units
    given = hooks.free_units(found.id)
    # Free units are those beyond the member's allocation, at most those given: its newest rows.
    free_left = {pid: min(given.get((organisation_id, pid), 0), max(0, units - int(allocated.get(pid) or 0)))
                 for pid, units in shipped.items()}
    grouped: dict[tuple[int, str | None, date | None, bool], list[Any]] = {}
    for pid, lot, expiry, units, received_on in reversed(rows):
        free = min(units, free_left[pid])
        free_left[pid] -= free
        for is_free, count in ((True, free), (False, units - free)):
            if count:
                entry = grouped.setdefault((pid, lot, expiry, is_free), [0, received_on])
                entry[0] += count
                entry[1] = min(entry[1], received_on)
    products = {item.product_id: item.product for item in found.items}
    lines = [PackedLine(products[pid], lot, expiry, units, is_short_dated(expiry, received_on), free)
             for (pid, lot, expiry, free), (units, received_on) in grouped.items()]
    lines.sort(key=lambda line: (line.product.name, line.product.id, line.free, line.expiry or date.max,
                                 line.lot or ""))
    return PackingList(round=found, organisation=organisation, lines=lines,
                       packed=found.status in PACKED)


@dataclass(frozen=True)
class Recipient:
    organisation_id: int | None  # None: the fund's free stock
    organisation_name: str | None
    round_id: int
    round_name: str
    product_id: int
    sku: str
    product_name: str
    expiry: date | None
    units: int


def clean_lot(lot: Any) -> str:
    return clean_text(lot, "lot", "the lot number", MAX_LOT_LENGTH, required=True) or ""


def lot_recipients(actor: Actor, lot: Any) -> list[Recipient]:
    """Every member (and the fund's free stock) that received units of a lot: one query."""
    actor.require(Role.ADMIN)
    wanted = clean_lot(lot)
    rows = db.session.execute(
        select(LotShipment.organisation_id, Organisation.name, LotShipment.round_id, Round.name,
               LotShipment.product_id, Product.sku, Product.name, LotShipment.expiry,
               func.sum(LotShipment.units))
        .outerjoin(Organisation, LotShipment.organisation_id == Organisation.id)
        .join(Round, LotShipment.round_id == Round.id)
        .join(Product, LotShipment.product_id == Product.id)
        .where(LotShipment.lot == wanted)
        .group_by(LotShipment.organisation_id, Organisation.name, LotShipment.round_id, Round.name,
                  LotShipment.product_id, Product.sku, Product.name, LotShipment.expiry)
        .order_by(Organisation.name.is_(None), Organisation.name, LotShipment.round_id,
                  Product.name, LotShipment.expiry)
    ).all()
    return [Recipient(org_id, org_name, round_id, round_name, product_id, sku, product_name, expiry,
                      int(units))
            for org_id, org_name, round_id, round_name, product_id, sku, product_name, expiry, units
            in rows]


__all__ = [
    "FREE_STOCK_NOTE",
    "SHORT_DATED_DAYS",
    "DeliverySummary",
    "PackingList",
    "PurchaseOrder",
    "ReceivingResult",
    "Recipient",
    "complete_receiving",
    "delivery_summary",
    "hand_over_free_stock",
    "is_short_dated",
    "lot_recipients",
    "mark_ordered",
    "packing_list",
    "purchase_order",
    "reallocate",
    "record_receipt",
]
