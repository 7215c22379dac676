"""The database handle, the declarative base and the naming convention.

The engine is created by ``db.init_app`` inside the factory, never at import.
Services flush; the request (or CLI command) commits once, see
``buyersclub.app.BuyersClubFlask``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, MetaData, cast, event, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every database.

    SQLite has no time zones: values are stored naive in UTC and handed back
    aware, so comparisons never mix naive and aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a timezone-aware one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base, disable_autonaming=True)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """Foreign keys on, write-ahead logging, and a wait instead of 'locked'."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    # Let SQLAlchemy, not the driver, decide where transactions begin, so that
    # SAVEPOINTs work (see SQLAlchemy's notes on pysqlite transactions).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection):
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")


def sql_cents(amount):
    """A money column as whole cents in SQL, so sums are exact even where NUMERIC is a float (SQLite)."""
    return cast(func.round(amount * 100), BigInteger)


def sql_cents_sum(amount):
    """The sum of a money column in whole cents (0 when there are no rows)."""
    return func.coalesce(func.sum(sql_cents(amount)), 0)


def after_commit(callback) -> None:
    """Run ``callback()`` once the current transaction commits; drop it on rollback.

    E-mail and other side effects that cannot be rolled back wait for this, so a
    failed request never sends a message about something that did not happen.
    """
    db.session.info.setdefault("after_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session):
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop("after_commit", None)
