"""Finding invoices: the list with its filters, scoped to what the actor may see.

The balance due is derived from the documents (see ``payments``); here it is
also written as one SQL expression, so the list can filter by status, and a
round be found settled, without loading every invoice. Amounts are compared in whole cents, so SQLite (which
keeps NUMERIC as floating point) filters exactly too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, case, func, select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.db import db, sql_cents, utcnow
from buyersclub.errors import InvalidInput, NotFound
from invoices.models import REFUND_STANDS, CreditNote, Invoice, InvoiceStatus, Payment, Refund


class Status:
    """What an invoice's page and list call it: derived from its documents (``payments.status_label``)."""

    OPEN = "open"
    PARTLY_PAID = "partly paid"
    PAID = "paid"
    OVERDUE = "overdue"
    VOID = "void"


STATUSES = (Status.OPEN, Status.PARTLY_PAID, Status.PAID, Status.OVERDUE, Status.VOID)


_cents = sql_cents


def balance_due_cents():
    """The invoice's balance due in cents, as a correlated SQL expression."""
    refunded = (select(func.coalesce(func.sum(_cents(Refund.amount)), 0))
                .where(Refund.payment_id == Payment.id, REFUND_STANDS).scalar_subquery())
    from_applied = refunded - (_cents(Payment.amount) - _cents(Payment.applied))
    paid = (select(func.coalesce(func.sum(
        _cents(Payment.applied) - case((from_applied > 0, from_applied), else_=0)), 0))
        .where(Payment.invoice_id == Invoice.id).scalar_subquery())
    credited = (select(func.coalesce(func.sum(_cents(CreditNote.amount)), 0))
                .where(CreditNote.invoice_id == Invoice.id).scalar_subquery())
    return _cents(Invoice.total) - paid - credited


@dataclass(frozen=True)
class RoundDue:
    """How many of a round's invoices are live, and how many of those still ask for money."""

    live: int
    with_money_due: int


def round_due(round_id: int) -> RoundDue:
    """:class:`RoundDue` in one query, by :func:`balance_due_cents`: settling a round reads this, not
    every invoice's settlement (a round has one invoice per member)."""
    owing = func.coalesce(func.sum(case((balance_due_cents() > 0, 1), else_=0)), 0)
    live, with_money_due = db.session.execute(
        select(func.count(Invoice.id), owing)
        .where(Invoice.round_id == round_id, Invoice.status == InvoiceStatus.ISSUED)).one()
    return RoundDue(int(live), int(with_money_due))


def _reduced():
    """Something paid or credited on the invoice."""
    return (select(Payment.id).where(Payment.invoice_id == Invoice.id, Payment.applied > 0).exists()
            | select(CreditNote.id).where(CreditNote.invoice_id == Invoice.id).exists())


def invoices_for(
    actor: Actor,
    *,
    status: str | None = None,
    round_id: int | None = None,
    organisation_id: int | None = None,
    overdue: bool = False,
    today: date | None = None,
) -> Select:
    """Invoices newest first: finance and admins every member's, member staff their own."""
    statement = select(Invoice)
    if actor.has_role(Role.FINANCE, Role.ADMIN):
        if organisation_id is not None:
            statement = statement.where(Invoice.organisation_id == organisation_id)
    else:
        if actor.organisation_id is None:
            raise NotFound("You have no invoices here.")
        if organisation_id is not None and organisation_id != actor.organisation_id:
            raise NotFound("No such organisation.", field="organisation_id")
        statement = statement.where(Invoice.organisation_id == actor.organisation_id)
    if round_id is not None:
        statement = statement.where(Invoice.round_id == round_id)
    today = today or utcnow().date()
    due = balance_due_cents()
    issued = Invoice.status == InvoiceStatus.ISSUED
    if status:
        wanted = status.strip().lower().replace("_", " ")
        if wanted not in STATUSES:
            raise InvalidInput(f"status must be one of: {', '.join(STATUSES)}.", field="status")
        conditions = {
            Status.VOID: [Invoice.status == InvoiceStatus.VOID],
            Status.PAID: [issued, due <= 0],
            Status.OVERDUE: [issued, due > 0, Invoice.due_on < today],
            Status.PARTLY_PAID: [issued, due > 0, Invoice.due_on >= today, _reduced()],
            Status.OPEN: [issued, due > 0, Invoice.due_on >= today, ~_reduced()],
        }[wanted]
        statement = statement.where(*conditions)
    if overdue:
        statement = statement.where(issued, due > 0, Invoice.due_on < today)
    return statement.order_by(Invoice.issued_on.desc(), Invoice.id.desc())
