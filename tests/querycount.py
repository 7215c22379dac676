"""``count_queries``: how many SQL statements a block runs (catches N+1 queries)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from buyersclub.db import db


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            self.statements.append(statement)


@pytest.fixture
def count_queries(app_ctx):
    """``with count_queries() as counter: ...`` then assert on ``counter.count``."""

    @contextmanager
    def _count():
        counter = QueryCounter()
        engine = db.engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", counter)

    return _count
