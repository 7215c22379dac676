"""The fund's free stock: whole units to eligible members by need weight, at cost in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, account_balance, post_entry
from orders.models import LotShipment, Receipt, ReceiptLine, RoundStatus
from subsidies import fund
from subsidies.models import FreeStockAward
from subsidies.services import free_stock, runs
from tests import factories
from tests.subsidies.test_runs import (
    SYSTEM,
    allocate,
    closed_round,
    give,
    large_programme,
    product_in,
    small_programme,
)

D = Decimal


def bought_free(amount: str) -> None:
    """What the close posts for a jump's free units: Dr 1200 free stock, Cr 3000 the fund."""
    post_entry(SYSTEM, entry_date=datetime.now(UTC).date(), memo="Close", kind="round_close",
               lines=[Line(chart.FREE_STOCK, D(amount)), Line(chart.FUND_UNRESTRICTED, -D(amount))])


@pytest.fixture
def jump(session, admin):
    """The worked example's jump: 24 free boxes at $31; A (weight 8) and B (weight 3) eligible, C not."""
    found = closed_round()
    naloxone = product_in(found, free_units=24, unit_cost="31.00")
    a, b = small_programme("Alder Outreach"), large_programme("Birch Health")
    c = factories.OrganisationFactory(name="Cedar Union", low_resource=False)
    for organisation, units in ((a, 24), (b, 48), (c, 24)):
        allocate(naloxone, organisation, units)
    bought_free("744.00")
    give("500.00")
    return type("Jump", (), dict(round=found, naloxone=naloxone, a=a, b=b, c=c, actor=Actor.for_user(admin)))


def test_free_units_go_to_eligible_members_by_weight_in_whole_units(jump):
    run = runs.start_run(jump.actor, jump.round.id)
    # The free stock's cost is set aside: the awards share the other $500.
    assert run.inputs["funds"]["free_stock_reserved"] == 74400
    assert run.total_awarded == D("500.00")

    runs.approve_run(jump.actor, run.id)

    given = {row.organisation_id: row for row in db.session.scalars(select(FreeStockAward))}
    # 24 x 8/11 = 17.45, 24 x 3/11 = 6.55: 17 and 6, the last unit to B's larger remainder.
    assert {key: row.units for key, row in given.items()} == {jump.a.id: 17, jump.b.id: 7}
    assert {row.unit_value for row in given.values()} == {D("31.00")}
    assert {row.run_id for row in given.values()} == {run.id}
    assert {row.journal_entry_id for row in given.values()} == {run.journal_entry_id}


def test_giving_free_stock_moves_its_cost_out_of_the_fund_in_the_runs_entry(jump):
    run = runs.start_run(jump.actor, jump.round.id)
    runs.approve_run(jump.actor, run.id)

    entry = db.session.get(JournalEntry, run.journal_entry_id)
    by_account = {}
    for posting in entry.postings:
        by_account[posting.account.code] = by_account.get(posting.account.code, D("0")) + posting.amount
    assert by_account[chart.FREE_STOCK] == D("-744.00")
    assert by_account[chart.FUND_UNRESTRICTED] == D("1244.00")  # $500 of awards + $744 of free stock
    assert sum(by_account.values()) == 0
    assert account_balance(chart.FREE_STOCK) == 0
    assert fund.balances()[None] == 0


def test_free_stock_for_lists_a_members_units_at_zero_with_their_value(jump):
    runs.approve_run(jump.actor, runs.start_run(jump.actor, jump.round.id).id)

    lines = free_stock.free_stock_for(jump.round.id, jump.a.id)

    assert [(line.product_id, line.units, line.unit_value, line.value) for line in lines] == [
        (jump.naloxone.product_id, 17, D("31.00"), D("527.00"))]
    assert lines[0].note == "supplied free by the club fund"
    assert free_stock.free_stock_for(jump.round.id, jump.c.id) == []


def test_the_preview_shows_the_free_units_planned(jump, client, auth):
    response = client.post(f"/api/v1/rounds/{jump.round.id}/subsidy-runs",
                           headers=auth(jump.actor.user))
    planned = {line["organisation_id"]: line["units"] for line in response.get_json()["free_stock"]}
    assert planned == {jump.a.id: 17, jump.b.id: 7}
    assert db.session.scalars(select(FreeStockAward)).all() == []  # nothing given before approval


def test_ties_are_broken_by_organisation_id_not_by_order():
    assert free_stock.split_units(2, {9: Fraction(1), 5: Fraction(1), 2: Fraction(1)}) == {2: 1, 5: 1}
    assert free_stock.split_units(2, {2: Fraction(1), 9: Fraction(1), 5: Fraction(1)}) == {2: 1, 5: 1}
    assert free_stock.split_units(0, {1: Fraction(1)}) == {}
    assert sum(free_stock.split_units(1001, {key: Fraction(key, 7) for key in range(1, 40)}).values()) == 1001


def test_only_members_allocated_that_product_receive_it(session, admin):
    found = closed_round()
    naloxone = product_in(found, free_units=24, unit_cost="31.00")
    pipes = product_in(found, category="pipes", club_price="2.00")
    a, b = small_programme("Alder Outreach"), small_programme("Birch Health")
    allocate(naloxone, a, 24)
    allocate(pipes, b, 100)
    bought_free("744.00")
    actor = Actor.for_user(admin)
    runs.approve_run(actor, runs.start_run(actor, found.id).id)
    assert {(row.organisation_id, row.units) for row in db.session.scalars(select(FreeStockAward))} == {
        (a.id, 24)}


def test_without_an_eligible_recipient_the_stock_stays_with_the_fund(session, admin):
    found = closed_round()
    naloxone = product_in(found, free_units=24, unit_cost="31.00")
    allocate(naloxone, factories.OrganisationFactory(low_resource=False), 24)
    bought_free("744.00")
    actor = Actor.for_user(admin)
    run = runs.start_run(actor, found.id)
    assert run.inputs["funds"]["free_stock_reserved"] == 0
    runs.approve_run(actor, run.id)
    assert db.session.scalars(select(FreeStockAward)).all() == []
    assert account_balance(chart.FREE_STOCK) == D("744.00")


def test_after_delivery_what_was_packed_for_the_fund_is_given_and_a_surplus_costs_the_fund_nothing(
        session, admin):
    found = closed_round(RoundStatus.RECEIVED)
    naloxone = product_in(found, free_units=0, unit_cost="31.00")
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    receipt = Receipt(round_id=found.id, received_on=datetime.now(UTC).date())
    line = ReceiptLine(receipt=receipt, product_id=naloxone.product_id, quantity=29, lot="L1")
    db.session.add_all([receipt, line])
    db.session.flush()
    db.session.add_all([
        LotShipment(round_id=found.id, product_id=naloxone.product_id, receipt_line_id=line.id,
                    organisation_id=a.id, lot="L1", units=24),
        LotShipment(round_id=found.id, product_id=naloxone.product_id, receipt_line_id=line.id,
                    organisation_id=None, lot="L1", units=5),
    ])
    give("10.00")
    actor = Actor.for_user(admin)
    run = runs.start_run(actor, found.id)
    runs.approve_run(actor, run.id)

    assert [(row.units, row.unit_value) for row in db.session.scalars(select(FreeStockAward))] == [
        (5, D("31.00"))]
    entry = db.session.get(JournalEntry, run.journal_entry_id)
    assert chart.FREE_STOCK not in {posting.account.code for posting in entry.postings}
