"""A period of days (``from`` and ``to``, both included) typed by a person or a program.

Statements and exports read the same two query parameters, ``from`` and
``to``, written YYYY-MM-DD. Left out, the period is the last twelve months to
today: ``to`` is today and ``from`` the same day a year earlier. A bad value
is a 400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from buyersclub.db import utcnow
from buyersclub.errors import InvalidInput

# A period longer than this is almost certainly a typing mistake (a year like 20256).
MAX_DAYS = 366 * 100


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def day_before(self) -> date:
        return self.start - timedelta(days=1)

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end

    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def slug(self) -> str:
        return f"{self.start.isoformat()}_{self.end.isoformat()}"


def year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def default_period(today: date | None = None) -> Period:
    """The last twelve months to today."""
    today = today or utcnow().date()
    return Period(year_before(today), today)


def _day(raw: str | None, field: str) -> date | None:
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput(f"“{field}” must be a date written YYYY-MM-DD, e.g. 2026-03-31.",
                           field=field) from exc


def parse_period(raw_from: str | None, raw_to: str | None, *, today: date | None = None) -> Period:
    """The period asked for; a missing end defaults as in :func:`default_period`."""
    end = _day(raw_to, "to") or (today or utcnow().date())
    start = _day(raw_from, "from") or year_before(end)
    if start > end:
        raise InvalidInput(f"“from” ({start.isoformat()}) must be on or before “to” ({end.isoformat()}).",
                           field="from")
    if (end - start).days > MAX_DAYS:
        raise InvalidInput("The period is longer than a hundred years: check the dates.", field="from")
    return Period(start, end)


def read_period(raw_from: str | None, raw_to: str | None, *,
                today: date | None = None) -> tuple[Period | None, dict[str, str]]:
    """For a form: the period, or every field's error at once (``{"from": message, "to": message}``)."""
    errors: dict[str, str] = {}
    for raw, name in ((raw_from, "from"), (raw_to, "to")):
        try:
            _day(raw, name)
        except InvalidInput as error:
            errors[name] = error.message
    if errors:
        return None, errors
    try:
        return parse_period(raw_from, raw_to, today=today), {}
    except InvalidInput as error:
        return None, {error.field or "from": error.message}
