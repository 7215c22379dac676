"""``flask --app buyersclub close-due-rounds``: close what is due, cancel what is below minimum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from buyersclub import mail
from buyersclub.actor import Actor
from buyersclub.db import db
from orders.models import Allocation, Round, RoundStatus
from orders.services import commitments, rounds
from tests import factories


def _round(admin, product, name, *, minimum="0.00"):
    actor = Actor.for_user(admin)
    found = rounds.create_round(actor, supplier_id=product.supplier_id, name=name, minimum_order=minimum,
                                deadline=datetime.now(UTC) + timedelta(days=1),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    return rounds.open_round(actor, found.id)


def test_due_rounds_close_or_cancel_and_the_others_wait(committing_db):
    app = committing_db
    admin = factories.UserFactory(roles=["admin"])
    product = factories.ProductFactory()
    staff = factories.UserFactory(roles=["member"], organisation=factories.OrganisationFactory(),
                                  email="staff@small.test")
    due = _round(admin, product, "Due")
    small = _round(admin, product, "Small", minimum="50000.00")
    later = _round(admin, product, "Later")
    for found in (due, small, later):
        commitments.set_commitment(Actor.for_user(staff), found.id, product.id, quantity=240)
    past = datetime.now(UTC) - timedelta(minutes=5)
    due.deadline = small.deadline = past
    ids = due.id, small.id, later.id
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["close-due-rounds"])

    assert result.exit_code == 0, result.output
    assert f"Round {ids[0]} (Due): closed, 240 units" in result.output
    assert f"Round {ids[1]} (Small): cancelled" in result.output
    assert "Later" not in result.output
    db.session.expire_all()
    statuses = {found.id: found for found in db.session.scalars(select(Round).where(Round.id.in_(ids)))}
    assert statuses[ids[0]].status == RoundStatus.CLOSED
    assert statuses[ids[1]].status == RoundStatus.CANCELLED
    assert "minimum order" in statuses[ids[1]].cancel_reason
    assert statuses[ids[2]].status == RoundStatus.OPEN
    assert db.session.scalar(select(func.count()).select_from(Allocation)) == 1
    assert [message["To"] for message in mail.outbox()] == ["staff@small.test"]

    again = app.test_cli_runner().invoke(args=["close-due-rounds"])
    assert again.exit_code == 0 and "No open round is past its deadline." in again.output
