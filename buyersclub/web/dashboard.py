"""What each role sees first. Member data is read only for the user's own organisation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.db import db
from buyersclub.organisations.models import MembershipStatus, Organisation


def for_user(user: User) -> dict[str, Any]:
    context: dict[str, Any] = {"organisation": None, "pending_applications": None, "member_count": None}
    if user.organisation_id is not None:
        context["organisation"] = db.session.get(Organisation, user.organisation_id)
    if user.is_admin:
        counts = dict(
            db.session.execute(
                select(Organisation.status, func.count()).group_by(Organisation.status)
            ).all()
        )
        context["pending_applications"] = counts.get(MembershipStatus.APPLIED, 0)
        context["member_count"] = counts.get(MembershipStatus.APPROVED, 0)
    return context
