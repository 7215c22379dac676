"""The fund's free units on members' packing lists and in the recall, given before or after receipt."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from buyersclub.organisations.models import Organisation
from orders import hooks, pdf
from orders.models import LotShipment, Round, RoundStatus
from orders.services import delivery
from subsidies.models import FreeStockAward
from subsidies.services import free_stock, runs
from tests import factories
from tests.subsidies.test_free_stock import bought_free
from tests.subsidies.test_runs import give, large_programme, small_programme

TODAY = datetime.now(UTC).date()
FREE = "supplied free by the club fund"


@dataclass
class Club:
    round: Round
    product_id: int
    a: Organisation  # weight 8
    b: Organisation  # weight 3
    actor: Actor


@pytest.fixture
def club(session, admin) -> Club:
    """An ordered round of naloxone: A and B take 24 each, a jump bought 24 more for the fund."""
    now = datetime.now(UTC)
    found = factories.RoundFactory(status=RoundStatus.ORDERED, opened_at=now - timedelta(days=20),
                                   closed_at=now - timedelta(days=5))
    product = factories.ProductFactory(supplier=found.supplier, lot_tracked=True, name="Naloxone 4mg")
    item = factories.RoundItemFactory(round=found, product=product, pack_size=24)
    closing = factories.ProductClosingFactory(round_item=item, units=72, free_units=24, cases=3,
                                              unit_cost=Decimal("31.00"), firm_total=48)
    a, b = small_programme("Alder Outreach"), large_programme("Birch Health")
    for organisation in (a, b):
        factories.CommitmentFactory(round_id=found.id, product_id=product.id, organisation_id=organisation.id,
                                    quantity=24)
        factories.AllocationFactory(closing=closing, organisation_id=organisation.id, firm_units=24)
    bought_free("744.00")
    give("100.00")
    return Club(found, product.id, a, b, Actor.for_user(admin))


def receive(club: Club, short: int = 10, early: int = 40, late: int = 22) -> None:
    """Three lots: SHORT is short-dated (so the fund takes it first), then EARLY, then LATE."""
    lines = [{"product_id": club.product_id, "quantity": quantity, "lot": lot,
              "expiry": (TODAY + timedelta(days=days)).isoformat()}
             for lot, quantity, days in (("SHORT", short, 100), ("EARLY", early, 300), ("LATE", late, 500))
             if quantity]
    delivery.record_receipt(club.actor, club.round.id, received_on=TODAY.isoformat(), lines=lines)


def approve(club: Club) -> None:
    runs.approve_run(club.actor, runs.start_run(club.actor, club.round.id).id)


def packed(club: Club, organisation: Organisation) -> list[tuple[str | None, int, bool]]:
    """(lot, units, free) on the member's packing list, in its order."""
    packing = delivery.packing_list(club.actor, club.round.id, organisation.id)
    return [(line.lot, line.units, line.free) for line in packing.lines]


def fund_rows(club: Club) -> list[tuple[str | None, int]]:
    return [(row.lot, row.units) for row in db.session.scalars(
        select(LotShipment)
        .where(LotShipment.round_id == club.round.id, LotShipment.organisation_id.is_(None))
        .order_by(LotShipment.id))]


def recall(club: Club, lot: str) -> dict[str | None, int]:
    return {row.organisation_name: row.units for row in delivery.lot_recipients(club.actor, lot)}


def test_free_units_given_after_receipt_leave_the_funds_lots_for_the_members_packing_lists(club):
    receive(club)
    # Packed: A 24 EARLY; B 16 EARLY + 8 LATE; the fund 10 SHORT (short-dated first) + 14 LATE.
    assert fund_rows(club) == [("SHORT", 10), ("LATE", 14)]

    approve(club)

    # 24 free units by weight 8:3 -> A 17, B 7; the fund's lots earliest expiry first, A (lower id) first.
    assert {row.organisation_id: row.units for row in db.session.scalars(select(FreeStockAward))} == {
        club.a.id: 17, club.b.id: 7}
    assert fund_rows(club) == []
    assert packed(club, club.a) == [("EARLY", 24, False), ("SHORT", 10, True), ("LATE", 7, True)]
    assert packed(club, club.b) == [("EARLY", 16, False), ("LATE", 8, False), ("LATE", 7, True)]
    packing = delivery.packing_list(club.actor, club.round.id, club.a.id)
    assert (packing.units, packing.free_units) == (41, 17)
    assert [line.note for line in packing.lines] == ["", FREE, FREE]

    # The recall names both members, and the fund keeps nothing of these lots.
    assert recall(club, "LATE") == {"Alder Outreach": 7, "Birch Health": 15}
    assert recall(club, "SHORT") == {"Alder Outreach": 10}

    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "lots.free_stock_given")).one()
    assert [row["units"] for row in event.before["fund_shipments"]] == [10, 14]
    assert [row["units"] for row in event.after["fund_shipments"]] == [0, 0]


def test_the_recall_api_names_the_members_who_received_free_units(club, client, auth):
    receive(club)
    approve(club)
    response = client.get("/api/v1/lots/LATE/recipients", headers=auth(club.actor.user))
    assert response.status_code == 200
    names = {row["organisation_name"]: row["units"] for row in response.get_json()["recipients"]}
    assert names == {"Alder Outreach": 7, "Birch Health": 15}


def test_the_packing_list_pdf_prints_the_free_lines_with_lot_and_expiry(club, app_ctx, tmp_path):
    receive(club)
    approve(club)
    with app_ctx.test_request_context():
        packing = delivery.packing_list(club.actor, club.round.id, club.b.id)
        data = pdf.render_pdf("orders/pdf/packing_list.html", packing=packing)
    source = tmp_path / "packing.pdf"
    source.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True, capture_output=True,
                          text=True).stdout
    late = (TODAY + timedelta(days=500)).isoformat()
    free_line = next(row for row in text.splitlines() if "LATE" in row and row.rstrip().endswith(" 7"))
    assert late in free_line
    assert "Supplied free by the club fund" in text
    assert "Of which supplied free by the club fund" in text


def test_free_units_given_before_receipt_are_packed_for_the_members_at_receipt(club):
    approve(club)  # planned from the jump's 24 free units: A 17, B 7
    assert db.session.scalars(select(LotShipment)).all() == []

    receive(club)

    assert fund_rows(club) == []
    assert packed(club, club.a) == [("EARLY", 24, False), ("SHORT", 10, True), ("LATE", 7, True)]
    assert packed(club, club.b) == [("EARLY", 16, False), ("LATE", 8, False), ("LATE", 7, True)]
    assert recall(club, "LATE") == {"Alder Outreach": 7, "Birch Health": 15}
    assert db.session.get(Round, club.round.id).status == RoundStatus.RECEIVED


def test_a_shortfall_after_the_awards_shares_the_free_units_that_arrived(club):
    approve(club)
    receive(club, late=12)  # 62 of 72: the fund's units are given up first, 14 free units arrive

    # 14 shared as given (17:7): 9.92 and 4.08 -> A 10, B 4; the members' own units are untouched.
    assert packed(club, club.a) == [("EARLY", 24, False), ("SHORT", 10, True)]
    assert packed(club, club.b) == [("EARLY", 16, False), ("LATE", 8, False), ("LATE", 4, True)]
    assert fund_rows(club) == []


def test_with_nobody_given_free_units_the_fund_keeps_its_packed_stock(club):
    receive(club)
    assert packed(club, club.a) == [("EARLY", 24, False)]
    assert recall(club, "LATE") == {"Birch Health": 8, None: 14}


def test_the_subsidies_provider_is_registered_with_orders():
    assert free_stock.awarded_units in hooks._free_units_providers
