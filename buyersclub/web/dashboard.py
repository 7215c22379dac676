"""What each role sees first. Member data is read only for the user's own organisation.

Other domains add panels without this package importing them: a domain
registers a function with ``@panel(order)`` and the factory imports that
module. The function takes the user and returns ``(template, context)``, or
None when it has nothing to show that user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.db import db
from buyersclub.organisations.models import MembershipStatus, Organisation

PanelFunction = Callable[[User], tuple[str, dict[str, Any]] | None]
_PANELS: dict[str, tuple[int, PanelFunction]] = {}


def panel(order: int) -> Callable[[PanelFunction], PanelFunction]:
    """Register a dashboard panel; lower ``order`` comes first."""

    def register(function: PanelFunction) -> PanelFunction:
        _PANELS[f"{function.__module__}.{function.__qualname__}"] = (order, function)
        return function

    return register


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
    shown = (function(user) for _, function in sorted(_PANELS.values(), key=lambda item: item[0]))
    context["panels"] = [result for result in shown if result is not None]
    return context
