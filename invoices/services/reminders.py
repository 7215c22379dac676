"""Overdue reminders: a notice to the member's staff for each invoice left unpaid after its due date.

An invoice is **due a reminder** when it is issued (not void), its due date
has passed, it still has a balance due, and no reminder went out for it in the
last ``REMINDER_INTERVAL_DAYS`` days (7 by default). The notice goes to every
active member-staff account of the organisation and names the invoice
number, the balance due, the due date, a link to the invoice's page (where a
member may pay by card) and the club's bank details for a transfer.

Once, never twice
-----------------
Each invoice is handled in its own transaction: its row is locked, the
conditions are checked again (another run may have just sent it), its
``last_reminder_at`` is set, and the notice is queued to be delivered with
``buyersclub.mail`` only once that transaction commits. :func:`send_reminders`
takes the caller's ``commit`` (the command line's) and commits after each
invoice, so a run that stops half-way has marked exactly the invoices whose
notices went out; running it again sends the rest and none twice. Should
delivering a notice fail after its commit, the mark is taken back in a new
transaction, so the next run tries again (when some of the staff got it and
others did not, the mark stays and the failures are reported: nobody gets it
twice). A crash between the commit and the delivery (the process killed at
that instant) loses that one notice until the next interval rather than ever
sending it twice.

Time is a parameter (``now``), so what is due is testable on any day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from flask import current_app, render_template, url_for
from sqlalchemy import or_, select

from buyersclub import mail
from buyersclub.accounts.models import Role, User
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import after_commit, db, utcnow
from buyersclub.errors import InvalidInput
from buyersclub.money import format_money
from buyersclub.organisations.models import Organisation
from invoices.models import Invoice, InvoiceStatus
from invoices.services import payments
from invoices.services.queries import balance_due_cents

DEFAULT_INTERVAL_DAYS = 7
# What happened to each invoice's reminder.
SENT = "sent"
DRY_RUN = "would send"
NOT_DUE = "no longer due"
NO_RECIPIENTS = "no recipients"
FAILED = "failed"


@dataclass(frozen=True)
class Reminder:
    """What one invoice's notice says, and to whom."""

    invoice_id: int
    number: str
    organisation: str
    balance_due: Decimal
    due_on: date
    days_overdue: int
    recipients: tuple[str, ...]
    outcome: str
    problem: str | None = None
    # When the invoice was reminded before this one (kept to take the mark back if delivery fails).
    previous_reminder_at: datetime | None = None
    # Filled in once the transaction commits: the addresses the notice could not be delivered to.
    undelivered: list[str] = field(default_factory=list, compare=False)


@dataclass
class Summary:
    reminders: list[Reminder] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for reminder in self.reminders if reminder.outcome == outcome)

    @property
    def sent(self) -> int:
        return self.count(SENT)

    @property
    def failed(self) -> int:
        return self.count(FAILED)


def interval_days() -> int:
    return int(current_app.config.get("REMINDER_INTERVAL_DAYS", DEFAULT_INTERVAL_DAYS))


def _now(now: datetime | None) -> datetime:
    now = now or utcnow()
    if now.tzinfo is None:
        raise InvalidInput("now must be a timezone-aware time.", field="now")
    return now.astimezone(UTC)


def _due_conditions(now: datetime) -> list:
    last_allowed = now - timedelta(days=interval_days())
    return [Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on < now.date(), balance_due_cents() > 0,
            or_(Invoice.last_reminder_at.is_(None), Invoice.last_reminder_at <= last_allowed)]


def due_for_reminder(now: datetime | None = None) -> list[int]:
    """Ids of the invoices due a reminder at ``now``, the longest overdue first."""
    now = _now(now)
    return list(db.session.scalars(select(Invoice.id).where(*_due_conditions(now))
                                   .order_by(Invoice.due_on, Invoice.id)))


def recipients(organisation_id: int) -> tuple[str, ...]:
    """The e-mail addresses of the organisation's active member staff."""
    staff = db.session.scalars(select(User).where(User.organisation_id == organisation_id,
                                                  User.is_active.is_(True)).order_by(User.id)).all()
    return tuple(person.email for person in staff if person.has_role(Role.MEMBER))


def invoice_link(invoice: Invoice) -> str:
    """The invoice's page: ``PUBLIC_URL`` and its path, else this request's or ``SERVER_NAME``'s host."""
    public = current_app.config.get("PUBLIC_URL")
    path = current_app.url_map.bind("localhost").build("invoices.detail", {"invoice_id": invoice.id})
    if public:
        return public.rstrip("/") + path
    try:
        return url_for("invoices.detail", invoice_id=invoice.id, _external=True)
    except RuntimeError:  # outside a request, with no SERVER_NAME: the path is all there is
        return path


def _reminder(invoice: Invoice, name: str, now: datetime, outcome: str, problem: str | None = None,
              balance: Decimal | None = None) -> Reminder:
    return Reminder(invoice_id=invoice.id, number=invoice.number, organisation=name,
                    balance_due=balance if balance is not None else payments.balance_due(invoice),
                    due_on=invoice.due_on, days_overdue=(now.date() - invoice.due_on).days,
                    recipients=recipients(invoice.organisation_id), outcome=outcome, problem=problem)


def _still_due(invoice: Invoice, now: datetime) -> bool:
    return db.session.scalar(select(Invoice.id).where(Invoice.id == invoice.id, *_due_conditions(now))) \
        is not None


def remind(actor: Actor, invoice_id: int, *, now: datetime | None = None, dry_run: bool = False) -> Reminder:
    """Mark the invoice reminded and queue its notice (sent when the transaction commits).

    The invoice's row is locked and the conditions checked again first; an
    invoice no longer due (paid meanwhile, or reminded by another run) is
    left alone. ``dry_run`` says what would be sent and changes nothing.
    """
    actor.require(Role.FINANCE)
    now = _now(now)
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if not dry_run:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    invoice = db.session.scalar(statement)
    if invoice is None:
        raise InvalidInput(f"There is no invoice {invoice_id}.", field="invoice_id")
    name = db.session.scalar(select(Organisation.name).where(Organisation.id == invoice.organisation_id)) \
        or invoice.bill_to.get("name", "")
    if not _still_due(invoice, now):
        return _reminder(invoice, name, now, NOT_DUE)
    reminder = _reminder(invoice, name, now, DRY_RUN if dry_run else SENT)
    if not reminder.recipients:
        return _reminder(invoice, name, now, NO_RECIPIENTS,
                         "the organisation has no active member staff to send it to",
                         balance=reminder.balance_due)
    if dry_run:
        return reminder
    previous = invoice.last_reminder_at
    reminder = replace(reminder, previous_reminder_at=previous)
    invoice.last_reminder_at = now
    db.session.flush()
    subject, body = _message(invoice, reminder)
    _deliver_after_commit(reminder, subject, body)
    record(actor, "invoice.reminder_sent", "invoice", invoice.id, organisation_id=invoice.organisation_id,
           before={"last_reminder_at": previous},
           after={"last_reminder_at": now, "balance_due": reminder.balance_due,
                  "due_on": invoice.due_on, "recipients": list(reminder.recipients)})
    return reminder


def _deliver_after_commit(reminder: Reminder, subject: str, body: str) -> None:
    """Send the notice to each recipient once the transaction commits; note who it did not reach.

    Like ``mail.send``, but a failed delivery is noted on the reminder instead of
    raised from inside the commit, where it would leave the session unusable.
    """
    app = current_app._get_current_object()

    def deliver() -> None:
        with app.app_context():
            for address in reminder.recipients:
                try:
                    mail.send_now(address, subject, body)
                except Exception as error:  # any transport error: reported, retried next run
                    reminder.undelivered.append(f"{address}: {error}")

    after_commit(deliver)


def _message(invoice: Invoice, reminder: Reminder) -> tuple[str, str]:
    currency = invoice.currency or current_app.config.get("CLUB_CURRENCY", "USD")
    balance = format_money(reminder.balance_due, currency)
    subject = f"Overdue: invoice {invoice.number}, {balance} due since {invoice.due_on.isoformat()}"
    body = render_template(
        "invoices/mail/reminder.txt", invoice=invoice, reminder=reminder, balance=balance,
        link=invoice_link(invoice), bank_details=current_app.config.get("CLUB_BANK_DETAILS"),
        club_name=current_app.config.get("CLUB_NAME", "The buyers' club"),
        card=bool(current_app.config.get("STRIPE_SECRET_KEY")))
    return subject, body


def send_reminders(
    actor: Actor,
    *,
    commit: Callable[[], None],
    now: datetime | None = None,
    dry_run: bool = False,
    on_reminder: Callable[[Reminder], None] | None = None,
) -> Summary:
    """Remind about every invoice due a reminder, one transaction per invoice (``commit`` ends each).

    With ``dry_run`` nothing is marked or sent and nothing is committed.
    """
    actor.require(Role.FINANCE)
    now = _now(now)
    summary = Summary()
    for invoice_id in due_for_reminder(now):
        if dry_run:
            reminder = remind(actor, invoice_id, now=now, dry_run=True)
        else:
            reminder = _send_one(actor, invoice_id, now, commit)
        summary.reminders.append(reminder)
        if on_reminder is not None:
            on_reminder(reminder)
    return summary


def _send_one(actor: Actor, invoice_id: int, now: datetime, commit: Callable[[], None]) -> Reminder:
    reminder = remind(actor, invoice_id, now=now)
    try:
        commit()
    except Exception as error:  # the database refused: nothing was marked or sent
        db.session.rollback()
        return replace(reminder, outcome=FAILED, problem=f"not recorded: {error}")
    if not reminder.undelivered:
        return reminder
    problem = "could not deliver to " + "; ".join(reminder.undelivered)
    if len(reminder.undelivered) == len(reminder.recipients):
        # Nobody got it: take the mark back, so the next run sends it.
        _take_back_mark(actor, reminder, now, problem)
        commit()
    # Somebody got it: the invoice stays marked, so nobody gets it twice; the failures are reported.
    return replace(reminder, outcome=FAILED, problem=problem)


def _take_back_mark(actor: Actor, reminder: Reminder, now: datetime, problem: str) -> None:
    """After a failed delivery: forget the reminder that did not go out, so the next run sends it."""
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == reminder.invoice_id).with_for_update()
                                .execution_options(populate_existing=True))
    if invoice is None or invoice.last_reminder_at != now:
        return  # the commit itself failed: nothing was marked
    invoice.last_reminder_at = reminder.previous_reminder_at
    db.session.flush()
    record(actor, "invoice.reminder_failed", "invoice", invoice.id, organisation_id=invoice.organisation_id,
           before={"last_reminder_at": now},
           after={"last_reminder_at": reminder.previous_reminder_at, "problem": problem[:500]})
