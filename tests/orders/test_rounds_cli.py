"""The rounds command group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db
from orders.models import Round, RoundStatus
from orders.services import rounds
from tests import factories


def test_open_list_and_cancel_from_the_command_line(committing_db):
    app = committing_db
    admin = factories.UserFactory(roles=["admin"])
    product = factories.ProductFactory()
    found = rounds.create_round(Actor.for_user(admin), supplier_id=product.supplier_id, name="Spring",
                                deadline=datetime.now(UTC) + timedelta(days=3),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    round_id = found.id
    db.session.commit()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["rounds", "open", str(round_id)])
    assert result.exit_code == 0, result.output
    assert "is open until" in result.output
    assert f"{round_id}\topen" in runner.invoke(args=["rounds", "list"]).output
    result = runner.invoke(args=["rounds", "open", str(round_id)])
    assert result.exit_code != 0 and "cannot be opened" in result.output
    result = runner.invoke(args=["rounds", "cancel", str(round_id), "--reason", "Supplier recall"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.scalar(select(Round.status).where(Round.id == round_id)) == RoundStatus.CANCELLED
