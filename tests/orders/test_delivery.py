"""Receiving a round: validation, shortfall and surplus re-allocation, packing lots, recall.

Closed rounds are built directly (closing and allocation rows), as the close
would leave them. The numbers follow the SPEC's worked example: A 480, B 300,
C 96 with tolerance 24 (12 of it used), D 48 -> 936 boxes bought.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.errors import Conflict, InvalidInput, NotFound
from orders.models import (
    Allocation,
    AllocationPolicy,
    AllocationSource,
    LotShipment,
    ProductClosing,
    Receipt,
    ReceiptLine,
    Round,
    RoundStatus,
)
from orders.services import delivery
from tests import factories

TODAY = datetime.now(UTC).date()


@dataclass
class Member:
    name: str
    quantity: int
    tolerance: int = 0
    firm_units: int | None = None
    tolerance_units: int = 0
    accepts_short_dated: bool = False


@dataclass
class Setup:
    round: Round
    product_id: int
    closing: ProductClosing
    orgs: dict[str, int]


def closed_round(members: list[Member], *, units: int, free_units: int = 0,
                 policy: AllocationPolicy = AllocationPolicy.PROPORTIONAL,
                 status: RoundStatus = RoundStatus.ORDERED, lot_tracked: bool = True,
                 round_: Round | None = None, product_name: str | None = None,
                 unit_cost: str = "38.00") -> Setup:
    """A round as the close leaves it: commitments (in list order), a closing, allocations."""
    if round_ is None:
        round_ = factories.RoundFactory(status=status, allocation_policy=policy,
                                        opened_at=datetime.now(UTC) - timedelta(days=20),
                                        closed_at=datetime.now(UTC) - timedelta(days=5))
    product = factories.ProductFactory(supplier=round_.supplier, lot_tracked=lot_tracked,
                                       **({"name": product_name} if product_name else {}))
    item = factories.RoundItemFactory(round=round_, product=product, pack_size=24)
    closing = factories.ProductClosingFactory(
        round_item=item, units=units, free_units=free_units, cases=units // 24,
        unit_cost=Decimal(unit_cost), firm_total=sum(m.quantity for m in members),
        tolerance_total=sum(m.tolerance for m in members))
    orgs = {}
    start = datetime.now(UTC) - timedelta(days=15)
    for index, member in enumerate(members):
        org = factories.OrganisationFactory(name=f"{member.name} {round_.name} {product.id}",
                                            accepts_short_dated=member.accepts_short_dated)
        orgs[member.name] = org.id
        factories.CommitmentFactory(round_id=round_.id, product_id=product.id, organisation_id=org.id,
                                    quantity=member.quantity, tolerance=member.tolerance,
                                    first_committed_at=start + timedelta(hours=index))
        firm = member.quantity if member.firm_units is None else member.firm_units
        factories.AllocationFactory(closing=closing, organisation_id=org.id, firm_units=firm,
                                    tolerance_units=member.tolerance_units)
    return Setup(round_, product.id, closing, orgs)


def worked_example(**kwargs) -> Setup:
    return closed_round([Member("A", 480), Member("B", 300), Member("C", 96, 24, tolerance_units=12),
                         Member("D", 48)], units=936, **kwargs)


def current_units(setup: Setup) -> dict[str, int]:
    rows = delivery.db.session.scalars(
        select(Allocation).where(Allocation.round_id == setup.round.id,
                                 Allocation.product_id == setup.product_id,
                                 Allocation.superseded_at.is_(None))).all()
    names = {org_id: name for name, org_id in setup.orgs.items()}
    return {names[row.organisation_id]: row.units for row in rows}


def line(setup: Setup, quantity: int, lot: str = "LOT-1", days: int = 400) -> dict:
    return {"product_id": setup.product_id, "quantity": quantity, "lot": lot,
            "expiry": (TODAY + timedelta(days=days)).isoformat()}


def receive(admin, setup: Setup, *lines: dict, **kwargs):
    return delivery.record_receipt(Actor.for_user(admin), setup.round.id, received_on=TODAY.isoformat(),
                                   lines=list(lines), **kwargs)


def shipments(setup: Setup) -> list[tuple[str, str | None, int]]:
    """(member, lot, units) packed, sorted; the fund's free stock is "fund"."""
    names = {org_id: name for name, org_id in setup.orgs.items()}
    rows = delivery.db.session.scalars(
        select(LotShipment).where(LotShipment.round_id == setup.round.id,
                                  LotShipment.product_id == setup.product_id)
        .order_by(LotShipment.id)).all()
    return sorted(((names[row.organisation_id] if row.organisation_id else "fund"), row.lot, row.units)
                  for row in rows)


# --- Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "field"), [
    ({"lot": None}, "lines.0.lot"),
    ({"lot": "   "}, "lines.0.lot"),
    ({"expiry": None}, "lines.0.expiry"),
    ({"expiry": "31/12/2030"}, "lines.0.expiry"),
    ({"quantity": 0}, "lines.0.quantity"),
    ({"quantity": -5}, "lines.0.quantity"),
    ({"quantity": 2.5}, "lines.0.quantity"),
    ({"quantity": True}, "lines.0.quantity"),
    ({"product_id": 999999}, "lines.0.product_id"),
    ({"colour": "red"}, "lines.0.colour"),
])
def test_a_bad_line_is_refused_naming_the_field_and_nothing_is_written(session, admin, bad, field):
    setup = worked_example()
    good = line(setup, 900)
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup, {**good, **bad}, {**good, "lot": "LOT-2"})
    assert refused.value.field == field
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0
    assert session.scalar(select(func.count()).select_from(LotShipment)) == 0
    assert setup.round.status == RoundStatus.ORDERED


def test_the_second_line_is_named_by_its_index(session, admin):
    setup = worked_example()
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup, line(setup, 500), {**line(setup, 400, lot="LOT-2"), "quantity": 0})
    assert refused.value.field == "lines.1.quantity"


def test_a_product_of_another_round_is_refused(session, admin):
    setup = worked_example()
    other = factories.ProductFactory(supplier=setup.round.supplier)
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup, {**line(setup, 10), "product_id": other.id})
    assert refused.value.field == "lines.0.product_id"
    assert "not in the round" in refused.value.message


def test_products_without_lot_tracking_need_no_lot(session, admin):
    setup = closed_round([Member("A", 24)], units=24, lot_tracked=False)
    result = receive(admin, setup, {"product_id": setup.product_id, "quantity": 24})
    assert result.completed
    assert shipments(setup) == [("A", None, 24)]


@pytest.mark.parametrize(("received_on", "field"), [(None, "received_on"), ("yesterday", "received_on"),
                                                    ((TODAY + timedelta(days=5)).isoformat(), "received_on")])
def test_the_delivery_date_is_required_and_not_in_the_future(session, admin, received_on, field):
    setup = worked_example()
    with pytest.raises(InvalidInput) as refused:
        delivery.record_receipt(Actor.for_user(admin), setup.round.id, received_on=received_on,
                                lines=[line(setup, 936)])
    assert refused.value.field == field


def test_expired_stock_and_empty_receipts_are_refused(session, admin):
    setup = worked_example()
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup, line(setup, 936, days=0))
    assert refused.value.field == "lines.0.expiry"
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup)
    assert refused.value.field == "lines"


@pytest.mark.parametrize("status", [RoundStatus.OPEN, RoundStatus.CLOSED, RoundStatus.RECEIVED,
                                    RoundStatus.CANCELLED])
def test_only_an_ordered_round_takes_receipts(session, admin, status):
    setup = worked_example(status=status)
    with pytest.raises(Conflict):
        receive(admin, setup, line(setup, 936))
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_members_cannot_record_receipts(session, member):
    setup = worked_example()
    with pytest.raises(Exception) as refused:
        receive(member, setup, line(setup, 936))
    assert refused.value.status == 403


# --- Exactly as ordered ---------------------------------------------------------------------------


def test_a_delivery_as_ordered_changes_no_allocation_and_marks_the_round_received(session, admin):
    setup = worked_example()
    result = receive(admin, setup, line(setup, 600, "LOT-1"), line(setup, 336, "LOT-2", days=500))
    assert setup.round.status == RoundStatus.RECEIVED
    assert result.outcomes[0].kind == "as ordered"
    assert current_units(setup) == {"A": 480, "B": 300, "C": 108, "D": 48}
    assert session.scalar(select(func.count()).select_from(Allocation)
                          .where(Allocation.source == AllocationSource.RECEIPT)) == 0
    assert sum(units for _, _, units in shipments(setup)) == 936
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"receipt.recorded", "lots.packed", "round.received"} <= actions


# --- Shortfall ---------------------------------------------------------------------------------------


def test_a_shortfall_is_shared_proportionally_and_supersedes_the_old_rows(session, admin):
    setup = worked_example()
    old_ids = set(session.scalars(select(Allocation.id).where(Allocation.round_id == setup.round.id)))

    result = receive(admin, setup, line(setup, 900))

    # Firm 924 > 900: firm shares 467.5 / 292.2 / 93.5 / 46.8; the two units left go to the largest
    # remainders (D, then A). C's tolerance is given up entirely.
    assert current_units(setup) == {"A": 468, "B": 292, "C": 93, "D": 47}
    assert sum(current_units(setup).values()) == 900
    outcome = result.outcomes[0]
    assert (outcome.kind, outcome.bought, outcome.delivered, outcome.free_stock) == ("short", 936, 900, 0)
    superseded = session.scalars(select(Allocation).where(Allocation.id.in_(old_ids))).all()
    assert all(row.superseded_at is not None for row in superseded)
    fresh = session.scalars(select(Allocation).where(Allocation.superseded_at.is_(None),
                                                     Allocation.round_id == setup.round.id)).all()
    assert {row.source for row in fresh} == {AllocationSource.RECEIPT}
    assert all(row.product_closing_id == setup.closing.id for row in fresh)
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "allocation.superseded")) == 4


def test_a_shortfall_first_come_first_served_fills_the_earliest_commitments(session, admin):
    # Committed in the order D, C, B, A: A, the last in line, bears the shortfall.
    setup = closed_round([Member("D", 48), Member("C", 96, 24, tolerance_units=12), Member("B", 300),
                          Member("A", 480)], units=936, policy=AllocationPolicy.FIRST_COME_FIRST_SERVED)
    receive(admin, setup, line(setup, 900))
    assert current_units(setup) == {"D": 48, "C": 96, "B": 300, "A": 456}


def test_a_shortfall_takes_the_funds_free_units_first(session, admin):
    # A price-break jump bought 960: 936 for members, 24 free for the fund. 14 short.
    setup = closed_round([Member("A", 480), Member("B", 300), Member("C", 96, 24, tolerance_units=12),
                          Member("D", 48)], units=960, free_units=24)
    result = receive(admin, setup, line(setup, 946))
    assert current_units(setup) == {"A": 480, "B": 300, "C": 108, "D": 48}
    assert result.outcomes[0].free_stock == 10
    assert result.outcomes[0].changes == []
    assert session.scalar(select(func.count()).select_from(Allocation)
                          .where(Allocation.superseded_at.is_not(None))) == 0
    assert ("fund", "LOT-1", 10) in shipments(setup)


def test_a_product_that_never_arrives_goes_to_nobody(session, admin):
    setup = worked_example()
    other = closed_round([Member("E", 24)], units=24, round_=setup.round, product_name="Pipe")
    receive(admin, setup, line(setup, 936))
    assert current_units(other) == {"E": 0}
    assert shipments(other) == []


@pytest.mark.parametrize("delivered", [1, 23, 47, 500, 923, 935])
@pytest.mark.parametrize("policy", list(AllocationPolicy))
def test_a_shortfall_never_gives_anyone_more_or_the_members_more_than_arrived(session, admin, delivered,
                                                                              policy):
    setup = closed_round([Member("A", 480), Member("B", 300), Member("C", 96, 24, tolerance_units=12),
                          Member("D", 48)], units=936, policy=policy)
    before = current_units(setup)
    receive(admin, setup, line(setup, delivered))
    after = current_units(setup)
    assert sum(after.values()) == delivered
    assert all(after[name] <= before[name] for name in before)
    assert sum(units for _, _, units in shipments(setup)) == delivered


# --- Surplus ------------------------------------------------------------------------------------------


def test_a_surplus_fills_unfilled_tolerance_then_the_funds_free_stock(session, admin):
    setup = worked_example()
    result = receive(admin, setup, line(setup, 960))
    # C committed 24 tolerance and got 12: it takes 12 more; the other 12 are free stock.
    assert current_units(setup) == {"A": 480, "B": 300, "C": 120, "D": 48}
    assert result.outcomes[0].kind == "surplus"
    assert result.outcomes[0].free_stock == 12
    assert [(c.before, c.after) for c in result.outcomes[0].changes] == [(108, 120)]
    c_rows = session.scalars(select(Allocation).where(Allocation.organisation_id == setup.orgs["C"])
                             .order_by(Allocation.id)).all()
    assert [(r.source, r.firm_units, r.tolerance_units, r.superseded_at is None) for r in c_rows] == [
        (AllocationSource.CLOSE, 96, 12, False), (AllocationSource.RECEIPT, 96, 24, True)]
    assert ("fund", "LOT-1", 12) in shipments(setup)


def test_a_surplus_is_shared_among_tolerances_by_the_policy(session, admin):
    setup = closed_round([Member("A", 24, 30), Member("B", 24, 10)], units=48)
    receive(admin, setup, line(setup, 60))
    # 12 extra units over tolerances 30 and 10: 9 and 3 proportionally.
    assert current_units(setup) == {"A": 33, "B": 27}


def test_a_surplus_first_fills_firm_units_cut_by_whole_cases(session, admin):
    # 30 firm: one case bought, so B got 6 of its 12 at close.
    setup = closed_round([Member("A", 18, 6), Member("B", 12, firm_units=6)], units=24)
    receive(admin, setup, line(setup, 36))
    assert current_units(setup) == {"A": 24, "B": 12}


# --- Several deliveries ----------------------------------------------------------------------------


def test_several_deliveries_until_the_last_one_completes_receiving(session, admin):
    setup = worked_example()
    first = receive(admin, setup, line(setup, 500, "LOT-1"), last_delivery=False)
    assert not first.completed
    assert setup.round.status == RoundStatus.ORDERED
    assert session.scalar(select(func.count()).select_from(LotShipment)) == 0

    receive(admin, setup, line(setup, 436, "LOT-2", days=300), last_delivery=False)
    with pytest.raises(InvalidInput) as refused:
        receive(admin, setup, line(setup, 1, "LOT-3"), last_delivery="yes")  # type: ignore[arg-type]
    assert refused.value.field == "last_delivery"
    result = delivery.complete_receiving(Actor.for_user(admin), setup.round.id)
    assert result.completed and setup.round.status == RoundStatus.RECEIVED
    assert current_units(setup) == {"A": 480, "B": 300, "C": 108, "D": 48}
    with pytest.raises(Conflict):
        receive(admin, setup, line(setup, 10, "LOT-9"))
    with pytest.raises(Conflict):
        delivery.complete_receiving(Actor.for_user(admin), setup.round.id)


def test_completing_needs_a_delivery(session, admin):
    setup = worked_example()
    with pytest.raises(Conflict) as refused:
        delivery.complete_receiving(Actor.for_user(admin), setup.round.id)
    assert refused.value.code == "no_receipt"


# --- Packing lots -----------------------------------------------------------------------------------


def test_lots_are_packed_earliest_expiry_first_and_short_dated_to_members_who_accept_it(session, admin):
    # A (lower id) does not accept short-dated stock; B does. 24 units are the fund's free stock.
    setup = closed_round([Member("A", 48), Member("B", 24, accepts_short_dated=True)], units=96,
                         free_units=24)
    receive(admin, setup, line(setup, 26, "LATE", days=600), line(setup, 40, "EARLY", days=300),
            line(setup, 30, "SHORT", days=90))
    assert shipments(setup) == sorted([
        ("B", "SHORT", 24),                     # short-dated: first to a member that accepts it
        ("fund", "SHORT", 6),                   # then to the fund's free stock
        ("A", "EARLY", 40), ("A", "LATE", 8),   # earliest expiry first
        ("fund", "LATE", 18),
    ])
    assert all(row.expiry is not None for row in session.scalars(select(LotShipment)))


def test_short_dated_stock_goes_to_other_members_only_when_nothing_else_is_left(session, admin):
    setup = closed_round([Member("A", 24), Member("B", 24)], units=48)
    receive(admin, setup, line(setup, 30, "SHORT", days=100), line(setup, 18, "LONG", days=700))
    assert shipments(setup) == [("A", "SHORT", 24), ("B", "LONG", 18), ("B", "SHORT", 6)]


def test_short_dated_is_counted_from_the_day_the_delivery_arrived(session):
    arrived = date(2026, 1, 1)
    assert delivery.is_short_dated(arrived + timedelta(days=delivery.SHORT_DATED_DAYS), arrived)
    assert not delivery.is_short_dated(arrived + timedelta(days=delivery.SHORT_DATED_DAYS + 1), arrived)
    assert not delivery.is_short_dated(None, arrived)


def test_packing_order_does_not_depend_on_line_order(session, admin):
    setup = closed_round([Member("A", 30), Member("B", 18)], units=48)
    receive(admin, setup, line(setup, 20, "L2", days=500), line(setup, 28, "L1", days=400))
    assert shipments(setup) == [("A", "L1", 28), ("A", "L2", 2), ("B", "L2", 18)]


# --- Packing lists and recall -----------------------------------------------------------------------


def test_a_packing_list_shows_the_members_lots_and_only_to_its_own_staff(session, admin):
    setup = closed_round([Member("A", 24), Member("B", 24)], units=48)
    receive(admin, setup, line(setup, 24, "L1", days=500), line(setup, 24, "L2", days=600))
    staff_a = factories.UserFactory(roles=["member"], organisation_id=setup.orgs["A"])
    own = delivery.packing_list(Actor.for_user(staff_a), setup.round.id, setup.orgs["A"])
    assert [(line.lot, line.units) for line in own.lines] == [("L1", 24)]
    assert own.units == 24
    with pytest.raises(NotFound):
        delivery.packing_list(Actor.for_user(staff_a), setup.round.id, setup.orgs["B"])
    theirs = delivery.packing_list(Actor.for_user(admin), setup.round.id, setup.orgs["B"])
    assert [(line.lot, line.units) for line in theirs.lines] == [("L2", 24)]


def test_recall_returns_exactly_the_recipients_of_a_lot(session, admin):
    spring = closed_round([Member("A", 24), Member("B", 24), Member("C", 24)], units=72)
    receive(admin, spring, line(spring, 30, "RECALLED", days=500), line(spring, 42, "FINE", days=400))
    autumn = closed_round([Member("D", 10), Member("E", 14)], units=24, free_units=0)
    receive(admin, autumn, line(autumn, 26, "RECALLED", days=500))

    found = delivery.lot_recipients(Actor.for_user(admin), " RECALLED ")

    names = {org_id: name for setup in (spring, autumn) for name, org_id in setup.orgs.items()}
    got = [(names.get(r.organisation_id), r.round_id, r.units) for r in found]
    # spring: FINE (earlier expiry) fills A and 18 of B; RECALLED gives B 6 and C 24. autumn: D 10,
    # E 14, and 2 surplus units kept as free stock.
    assert sorted(got, key=str) == sorted([
        ("B", spring.round.id, 6), ("C", spring.round.id, 24),
        ("D", autumn.round.id, 10), ("E", autumn.round.id, 14), (None, autumn.round.id, 2),
    ], key=str)
    assert found[-1].organisation_id is None  # the fund's free stock is listed last
    assert delivery.lot_recipients(Actor.for_user(admin), "NO-SUCH-LOT") == []
    with pytest.raises(InvalidInput):
        delivery.lot_recipients(Actor.for_user(admin), "  ")


def test_recall_is_one_query(session, admin, count_queries):
    setup = closed_round([Member("A", 24), Member("B", 24)], units=48)
    receive(admin, setup, line(setup, 48, "ONE"))
    actor = Actor.for_user(admin)
    with count_queries() as counted:
        assert len(delivery.lot_recipients(actor, "ONE")) == 2
    assert counted.count == 1


# --- The purchase order and ordering --------------------------------------------------------------


def test_the_purchase_order_prices_each_product_at_the_break_reached(session, admin):
    setup = worked_example(status=RoundStatus.CLOSED)
    closed_round([Member("E", 48)], units=48, round_=setup.round, product_name="Safer-smoking pipe",
                 unit_cost="1.25")
    order = delivery.purchase_order(Actor.for_user(admin), setup.round.id)
    assert [(line.units, line.cases, line.unit_cost, line.line_total) for line in order.lines] == [
        (936, 39, Decimal("38.00"), Decimal("35568.00")), (48, 2, Decimal("1.25"), Decimal("60.00"))]
    assert order.total == Decimal("35628.00")
    assert order.units == 984
    assert sum(site.members for site in order.sites) == 5


def test_marking_ordered_moves_closed_to_ordered_once_and_is_audited(session, admin):
    setup = worked_example(status=RoundStatus.CLOSED)
    delivery.mark_ordered(Actor.for_user(admin), setup.round.id)
    assert setup.round.status == RoundStatus.ORDERED
    with pytest.raises(Conflict):
        delivery.mark_ordered(Actor.for_user(admin), setup.round.id)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "round.ordered"))
    assert event.before == {"status": "closed"} and event.after == {"status": "ordered"}


def test_an_open_round_has_no_purchase_order(session, admin):
    setup = worked_example(status=RoundStatus.OPEN)
    with pytest.raises(Conflict):
        delivery.purchase_order(Actor.for_user(admin), setup.round.id)


# --- The pure re-allocation -------------------------------------------------------------------------


def test_reallocate_on_its_own():
    current = {1: (10, 0), 2: (10, 0)}
    committed = {1: (10, 0, (datetime(2026, 1, 1, tzinfo=UTC), 1)),
                 2: (10, 0, (datetime(2026, 1, 2, tzinfo=UTC), 2))}
    policy = delivery.engine.AllocationPolicy
    assert delivery.reallocate(15, 20, current, committed, policy.FIRST_COME_FIRST_SERVED) == (
        {1: (10, 0), 2: (5, 0)}, 0)
    assert delivery.reallocate(25, 20, current, committed, policy.PROPORTIONAL) == (
        {1: (10, 0), 2: (10, 0)}, 5)


def test_lines_of_a_receipt_keep_their_lots(session, admin):
    setup = worked_example()
    receive(admin, setup, line(setup, 900, "L-A"), line(setup, 36, "L-B", days=800))
    assert sorted(session.scalars(select(ReceiptLine.lot))) == ["L-A", "L-B"]
