"""The dashboard panel of open rounds, for members and admins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.organisations.models import MembershipStatus, Organisation
from buyersclub.web.dashboard import panel
from orders.models import Commitment, Round, RoundStatus
from orders.services.rounds import rounds_for


@panel(order=10)
def open_rounds(user: User) -> tuple[str, dict[str, Any]] | None:
    if not (user.is_admin or user.is_member):
        return None
    statement = rounds_for(Actor.for_user(user), status=RoundStatus.OPEN.value).order_by(None).order_by(
        Round.deadline
    )
    found = db.session.scalars(statement.limit(5)).all()
    committed: dict[int, int] = {}
    can_commit = False
    if user.organisation_id is not None and found:
        organisation = db.session.get(Organisation, user.organisation_id)
        can_commit = organisation is not None and organisation.status == MembershipStatus.APPROVED
        committed = dict(
            db.session.execute(
                select(Commitment.round_id, func.count())
                .where(
                    Commitment.organisation_id == user.organisation_id,
                    Commitment.round_id.in_([each.id for each in found]),
                    Commitment.quantity > 0,
                )
                .group_by(Commitment.round_id)
            ).all()
        )
    return "orders/_dashboard_rounds.html", {
        "rounds": found,
        "committed": committed,
        "can_commit": can_commit,
    }
