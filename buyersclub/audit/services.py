"""Writing the audit log. Every state change and money movement calls ``record``."""

from __future__ import annotations

import enum
import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db

log = logging.getLogger("buyersclub.business")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


SECRET_COLUMNS = frozenset({"password_hash", "token_hash"})


def snapshot(record: Any, fields: list[str] | None = None) -> dict[str, Any]:
    """The record's column values as JSON-safe data, secrets left out."""
    mapper = inspect(record).mapper
    names = fields or [column.key for column in mapper.column_attrs]
    return {name: _plain(getattr(record, name)) for name in names if name not in SECRET_COLUMNS}


def record(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: int | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    organisation_id: int | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        organisation_id=organisation_id,
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
        address=actor.address,
    )
    db.session.add(event)
    db.session.flush()
    log.info("%s by %s on %s %s", action, actor.label, entity_type, entity_id)
    return event
