"""Domain errors. Services raise these; the web and API layers translate them.

Each maps to one HTTP status in the API (see API.md): a person sees the same
message, next to the named field where there is one.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """Bad input: a value is missing, malformed or out of range (400)."""

    status = 400
    code = "invalid"


class NotAuthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class PermissionDenied(DomainError):
    """The acting user lacks the role for this (403)."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    """Unknown, or not the acting user's to see (404: never reveal which)."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The record's state does not allow this now (409)."""

    status = 409
    code = "conflict"


class RuleRefused(DomainError):
    """A business rule refuses the request (422)."""

    status = 422
    code = "rule_refused"
