"""A round closing while members commit, on PostgreSQL with real commits.

Commitments hold the round row ``FOR SHARE``, the close takes it ``FOR UPDATE``:
every commitment answered 200 must be in the close's allocation, and every one
after the close must be refused with 409.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line, post_entry, trial_balance
from orders import engine
from orders.models import Allocation, Commitment, ProductClosing, RoundStatus
from orders.services import commitments, rounds
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.postgres_only

MEMBERS = 20


def test_nothing_is_lost_and_nothing_slips_in_while_a_round_closes(committing_db):
    app = committing_db
    admin = factories.UserFactory(roles=["admin"])
    product = factories.ProductFactory()
    actor = Actor.for_user(admin)
    found = rounds.create_round(actor, supplier_id=product.supplier_id, name="Closing rush",
                                deadline=datetime.now(UTC) + timedelta(days=1),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    rounds.open_round(actor, found.id)
    # Money in the fund, so a close that lands early (a loss below the 240 break) is not refused.
    post_entry(actor, entry_date=datetime.now(UTC).date(), memo="Donation", kind="grant",
               lines=[Line(chart.CASH, Decimal("10000.00")),
                      Line(chart.FUND_UNRESTRICTED, Decimal("-10000.00"))])
    early = factories.UserFactory(roles=["member"], organisation=factories.OrganisationFactory())
    commitments.set_commitment(Actor.for_user(early), found.id, product.id, quantity=100, tolerance=10)
    staff = [factories.UserFactory(roles=["member"], organisation=factories.OrganisationFactory())
             for _ in range(MEMBERS)]
    headers = [bearer(user) for user in staff]
    admin_headers = bearer(admin)
    round_id, product_id = found.id, product.id
    organisations = [user.organisation_id for user in staff]
    db.session.commit()

    barrier = threading.Barrier(MEMBERS + 1)
    answers: list[list[tuple[int, int, dict]]] = [[] for _ in range(MEMBERS)]
    close_result: dict = {}
    under_way = threading.Event()  # every member has had two commitments accepted

    def commit(index):
        """Keep raising the commitment until the round refuses: before, during and after the close."""
        client = app.test_client()
        barrier.wait()
        for step in range(200):
            quantity = 7 + index + step
            response = client.put(f"/api/v1/rounds/{round_id}/commitments/{product_id}",
                                  json={"quantity": quantity, "tolerance": (index + step) % 4},
                                  headers=headers[index])
            answers[index].append((response.status_code, quantity, response.get_json()))
            if response.status_code != 200:
                return
            if all(len(answered) >= 2 for answered in answers):
                under_way.set()
            # A breath between requests: 21 threads share a pool of 15 connections.
            time.sleep(0.02)

    def close():
        client = app.test_client()
        barrier.wait()
        under_way.wait(60)
        try:
            response = client.post(f"/api/v1/rounds/{round_id}/close", json={}, headers=admin_headers)
        except Exception as exc:  # reported by the assertion below, not lost in the thread
            close_result.update(status=None, body=repr(exc))
        else:
            close_result.update(status=response.status_code, body=response.get_json())

    threads = [threading.Thread(target=commit, args=(index,)) for index in range(MEMBERS)]
    threads.append(threading.Thread(target=close))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert close_result["status"] == 200, close_result
    last_accepted: dict[int, int] = {}
    for index, answered in enumerate(answers):
        *before, last = answered
        assert all(status == 200 for status, _, _ in before)
        # Every member's last request came after the close, and was refused as such.
        assert last[0] == 409 and last[2]["error"]["code"] == "round_not_open", last
        if before:
            last_accepted[organisations[index]] = before[-1][1]
    accepted = set(last_accepted)

    db.session.expire_all()
    stored = db.session.scalars(select(Commitment).where(Commitment.round_id == round_id)).all()
    # Nothing slipped in after the close, nothing accepted was lost: the stored quantities are
    # the last ones answered 200.
    assert {row.organisation_id: row.quantity for row in stored if row.organisation_id in accepted} == (
        last_accepted)
    assert {row.organisation_id for row in stored} == accepted | {early.organisation_id}
    allocated = {row.organisation_id: (row.firm_units, row.tolerance_units)
                 for row in db.session.scalars(select(Allocation).where(Allocation.round_id == round_id))}
    # Nothing lost: every accepted commitment is in the close's input.
    assert set(allocated) == accepted | {early.organisation_id}

    # The stored allocation is the engine's over exactly what was accepted.
    terms = engine.ProductTerms(
        pack_size=24, club_price=Decimal("40.00"),
        price_breaks=tuple(engine.PriceBreak(units, Decimal(cost))
                           for units, cost in factories.NALOXONE_BREAKS))
    expected = engine.close_product(terms, [
        engine.Commitment(member=row.organisation_id, quantity=row.quantity, tolerance=row.tolerance,
                          placed_at=(row.first_committed_at, row.id)) for row in stored])
    assert allocated == {line.member: (line.firm_units, line.tolerance_units)
                         for line in expected.base.allocation.members}
    [closing] = db.session.scalars(select(ProductClosing).where(ProductClosing.round_id == round_id)).all()
    assert (closing.units, closing.supplier_cost) == (expected.base.units, expected.base.supplier_cost)
    assert db.session.get(type(found), round_id).status == RoundStatus.CLOSED
    assert trial_balance().balanced
    # The close landed while every member was committing.
    assert len(accepted) == MEMBERS


def test_a_round_being_closed_holds_up_nothing_of_another_round(committing_db):
    """The gate is per round: a close in progress makes its own round's commitments wait, no other."""
    admin = factories.UserFactory(roles=["admin"])
    actor = Actor.for_user(admin)
    member = factories.UserFactory(roles=["member"], organisation=factories.OrganisationFactory())
    opened = []
    for name in ("Closing now", "Still open"):
        product = factories.ProductFactory()
        found = rounds.create_round(actor, supplier_id=product.supplier_id, name=name,
                                    deadline=datetime.now(UTC) + timedelta(days=1),
                                    items=[{"product_id": product.id, "club_price": "40.00"}])
        rounds.open_round(actor, found.id)
        opened.append((found.id, product.id))
    db.session.commit()
    (closing_id, closing_product), (other_id, other_product) = opened

    with db.engine.connect() as closer:
        closer_transaction = closer.begin()
        closer.execute(sa.text("SELECT pg_advisory_xact_lock(:gate, :id)"),
                       {"gate": rounds.ROUND_GATE, "id": closing_id})
        try:
            # A commitment to the other round goes straight through…
            db.session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            commitments.set_commitment(Actor.for_user(member), other_id, other_product, quantity=24)
            db.session.commit()
            # …while one to the round being closed waits for the gate.
            db.session.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                commitments.set_commitment(Actor.for_user(member), closing_id, closing_product, quantity=24)
            db.session.rollback()
        finally:
            closer_transaction.rollback()
    assert db.session.scalars(select(Commitment.round_id)).all() == [other_id]
