"""Showing a service's refusal on the form that asked for it.

Services raise :class:`~buyersclub.errors.DomainError` naming the field at
fault (``amount``, ``lines.2.quantity``). A page shows the message next to that
field, or above the form when no field of the form has that name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from flask_wtf import FlaskForm

from buyersclub.errors import DomainError, NotFound

T = TypeVar("T")


def show_on_form(form: FlaskForm, error: DomainError, names: Mapping[str, str] | None = None) -> None:
    """Put the error next to the field it names (``names`` maps a service's field to the form's; a
    dotted name falls back to its first part, mapped too), or at the top of the form."""
    names = names or {}
    wanted = error.field or ""
    wanted = names.get(wanted, wanted)
    first = wanted.split(".")[0]
    for name in (wanted, names.get(first, first)):
        if name and name != "csrf_token" and name in form:
            form[name].errors = [*form[name].errors, error.message]
            return
    form.form_errors.append(error.message)


def attempt(form: FlaskForm, action: Callable[[], T]) -> tuple[T | None, int]:
    """Run a form's service call: ``(its result, 200)``, or ``(None, the error's status)`` with the
    refusal shown on the form. Not found propagates: that is a page of its own, not a form error."""
    try:
        return action(), 200
    except NotFound:
        raise
    except DomainError as error:
        show_on_form(form, error)
        return None, error.status
