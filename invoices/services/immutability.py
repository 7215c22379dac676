"""An issued invoice never changes: the session refuses it.

A ``before_flush`` listener refuses, on every database:

* any change to an ``Invoice`` once written, except ``last_reminder_at`` and
  ``notified_at`` (notices and reminders) and the changes a service declares with :func:`allow_change`
  just before making them -- voiding (``status``, ``voided_at``,
  ``void_reason``) and linking the issuing entry (``journal_entry_id``, once);
  likewise a refund Stripe could not make is marked failed (``failed_at``,
  ``failure_reason``, ``failure_entry_id``) by ``payments.record_refund_failure``;
* any change to or deletion of an ``InvoiceLine`` once written, and a new
  line for an invoice already written;
* any change to or deletion of a ``CreditNote``, and of the money fields of
  a ``Payment`` or ``Refund``;
* deleting an invoice, a payment or a refund;

and bulk ``UPDATE``/``DELETE`` statements on those tables. Corrections are
credit notes; a mistaken invoice is voided (it keeps its number).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session

from buyersclub.errors import Conflict
from invoices.models import CreditNote, Invoice, InvoiceLine, Payment, Refund

ALWAYS_CHANGEABLE = {Invoice: frozenset({"last_reminder_at", "notified_at"}),
                     Payment: frozenset({"stripe_checkout_session"}),
                     Refund: frozenset({"stripe_refund"})}
GUARDED = (Invoice, InvoiceLine, CreditNote, Payment, Refund)
_ALLOWED = "invoices.allowed_changes"


class InvoiceIsImmutable(Conflict):
    code = "invoice_immutable"

    def __init__(self, what: str):
        super().__init__(f"An issued invoice never changes: {what} is refused. "
                         "Issue a credit note, or void the invoice if nothing was paid on it.")


def allow_change(session: Session, obj: Any, *fields: str) -> None:
    """Let the next flush write these fields of this one record (the services' own changes)."""
    session.info.setdefault(_ALLOWED, set()).update((id(obj), name) for name in fields)


def _changed_fields(obj: Any) -> set[str]:
    state = inspect(obj)
    return {attr.key for attr in state.attrs if attr.history.has_changes()
            and attr.key in state.mapper.column_attrs}


def _refuse_changes(session: Session, flush_context: Any, instances: Any) -> None:
    allowed: set[tuple[int, str]] = session.info.pop(_ALLOWED, set())
    for obj in session.deleted:
        if isinstance(obj, GUARDED):
            raise InvoiceIsImmutable(f"deleting {_describe(obj)}")
    for obj in session.dirty:
        if not isinstance(obj, GUARDED) or not session.is_modified(obj, include_collections=False):
            continue
        free = ALWAYS_CHANGEABLE.get(type(obj), frozenset())
        refused = {name for name in _changed_fields(obj)
                   if name not in free and (id(obj), name) not in allowed}
        if refused:
            raise InvoiceIsImmutable(f"changing {', '.join(sorted(refused))} of {_describe(obj)}")
    for obj in session.new:
        if isinstance(obj, InvoiceLine) and obj.invoice is not None and obj.invoice not in session.new:
            raise InvoiceIsImmutable(f"adding a line to {_describe(obj.invoice)}")


def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ in GUARDED:
        verb = "updating" if state.is_update else "deleting"
        raise InvoiceIsImmutable(f"{verb} {mapper.class_.__tablename__} in bulk")


def _describe(obj: Any) -> str:
    if isinstance(obj, Invoice):
        return f"invoice {obj.number}"
    if isinstance(obj, InvoiceLine):
        return f"a line of invoice #{obj.invoice_id}"
    if isinstance(obj, CreditNote):
        return f"credit note {obj.number}"
    return f"{type(obj).__name__.lower()} #{obj.id}"


if not event.contains(Session, "before_flush", _refuse_changes):
    event.listen(Session, "before_flush", _refuse_changes)
if not event.contains(Session, "do_orm_execute", _refuse_bulk_changes):
    event.listen(Session, "do_orm_execute", _refuse_bulk_changes)
