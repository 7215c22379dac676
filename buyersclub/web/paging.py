"""Pages of a list that ``db.paginate`` cannot page (a list built in Python, a count of distinct rows).

:func:`page_of` reads ``?page=`` (from 1; anything else is page 1; past the end is the last page) and
gives a :class:`Page`, which the ``pager`` macro in ``_forms.html`` reads as it reads Flask-SQLAlchemy's
``Pagination``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from flask import request

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    page: int
    pages: int
    per_page: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None

    def of(self, rows: Sequence[T]) -> Sequence[T]:
        """This page's rows of the whole list."""
        return rows[self.offset:self.offset + self.per_page]


def requested_page() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


def page_of(total: int, per_page: int) -> Page:
    """The page the query string asks for, of ``total`` rows ``per_page`` at a time."""
    pages = max(1, -(-total // per_page))
    return Page(page=min(requested_page(), pages), pages=pages, per_page=per_page, total=total)
