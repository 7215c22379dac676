"""Gapless yearly document numbers: ``INV-2026-00001``, ``CN-2026-00001``.

A number is taken by locking the series row (``kind``, ``year``) ``FOR
UPDATE``, adding one, and writing the document in the same transaction. The
lock is held until that transaction ends, so two documents never get the same
number, and a transaction that rolls back gives its number back (its increment
is rolled back with it): the series has no gaps. The price is that documents
of one kind are numbered one at a time; issuing is a batch step, so that is
fine.

The first number of a year creates the series row. Two transactions may both
find it missing: each inserts inside a savepoint, the loser of the unique
``(kind, year)`` race rolls its savepoint back and locks the winner's row.

Prefixes come from configuration: ``INVOICE_PREFIX`` (default ``INV``) and
``CREDIT_NOTE_PREFIX`` (default ``CN``).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from buyersclub.db import db
from invoices.models import DocumentSeries, SeriesKind

DIGITS = 5
DEFAULT_PREFIXES = {SeriesKind.INVOICE: "INV", SeriesKind.CREDIT_NOTE: "CN"}
CONFIG_KEYS = {SeriesKind.INVOICE: "INVOICE_PREFIX", SeriesKind.CREDIT_NOTE: "CREDIT_NOTE_PREFIX"}


def prefix(kind: SeriesKind) -> str:
    return str(current_app.config.get(CONFIG_KEYS[kind], DEFAULT_PREFIXES[kind]))


def format_number(kind: SeriesKind, year: int, sequence: int) -> str:
    return f"{prefix(kind)}-{year:04d}-{sequence:0{DIGITS}d}"


def _locked_series(kind: SeriesKind, year: int) -> DocumentSeries | None:
    return db.session.scalar(
        select(DocumentSeries)
        .where(DocumentSeries.kind == kind, DocumentSeries.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _series(kind: SeriesKind, year: int) -> DocumentSeries:
    """The series row, locked until the transaction ends; created if this is the year's first."""
    series = _locked_series(kind, year)
    if series is not None:
        return series
    try:
        with db.session.begin_nested():
            db.session.add(DocumentSeries(kind=kind, year=year, last_number=0))
    except IntegrityError:
        pass  # another transaction created it first: lock theirs (waits until it commits)
    series = _locked_series(kind, year)
    if series is None:  # pragma: no cover - the row exists by now, ours or theirs
        raise RuntimeError(f"document series {kind} {year} could not be created")
    return series


def next_number(kind: SeriesKind | str, year: int) -> tuple[str, int]:
    """The next number of the series and its sequence, e.g. ``("INV-2026-00001", 1)``.

    Call it in the transaction that writes the document: the series stays
    locked until that transaction commits or rolls back.
    """
    kind = SeriesKind(kind)
    series = _series(kind, year)
    series.last_number += 1
    db.session.flush()
    return format_number(kind, year, series.last_number), series.last_number
