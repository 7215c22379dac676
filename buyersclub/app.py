"""The Flask application class: one commit point per request.

Views and services only flush. After the view has produced its response,
``full_dispatch_request`` commits when the response is a success (status
below 400) and rolls back otherwise, or on any exception. A view may ask for a
commit despite an error status with ``commit_despite_error()`` (a failed
sign-in still records the attempt, for throttling).
"""

from __future__ import annotations

import logging

from flask import Flask, g
from sqlalchemy.exc import DBAPIError, IntegrityError

from buyersclub.db import db

log = logging.getLogger("buyersclub")


# PostgreSQL's serialization failure and deadlock: another transaction won.
RACE_SQLSTATES = frozenset({"40001", "40P01"})


def _lost_a_race(exc: DBAPIError) -> bool:
    """A unique key, a lock or a serialization check lost to a concurrent request."""
    return isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


def commit_despite_error() -> None:
    g.commit_despite_error = True


class BuyersClubFlask(Flask):
    def full_dispatch_request(self):
        try:
            response = super().full_dispatch_request()
        except BaseException:
            db.session.rollback()
            raise
        if response.status_code >= 400 and not g.get("commit_despite_error"):
            db.session.rollback()
            return response
        try:
            db.session.commit()
        except DBAPIError as exc:
            db.session.rollback()
            if not _lost_a_race(exc):
                raise
            # The first response was already finalised; this one needs the same
            # treatment (security headers, session cookie).
            return self.finalize_request(self._after_failed_commit(exc), from_error_handler=True)
        return response

    def _after_failed_commit(self, exc: Exception):
        """A concurrent request won a race: replay it, or say there was a conflict."""
        from buyersclub.api.core import stored_replay

        idempotency = g.get("idempotency")
        if idempotency is not None:
            replay = stored_replay(*idempotency)
            db.session.rollback()
            if replay is not None:
                return replay
        log.warning("commit failed: %s", exc)
        return self._conflict_response()

    def _conflict_response(self):
        from flask import request

        from buyersclub.api.core import error_response

        message = "Another change to the same record happened at the same time. Please try again."
        if request.path.startswith("/api/"):
            return error_response(409, "concurrent_update", message)
        from flask import render_template

        return render_template("errors/error.html", code=409, message=message), 409
