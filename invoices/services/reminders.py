"""Mail to members about their invoices: a notice of each new invoice, and overdue reminders.

A **notice** goes once for each invoice issued (``notified_at`` is still empty):
its number, total, balance due and due date, the link to its page (PDF and
card payment) and how to pay by transfer. ``issue-invoices`` sends a round's
right after issuing it; ``send-reminders`` sends any still unsent (invoices
issued from the web pages), before its reminders.

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
from functools import partial

from flask import current_app, render_template
from sqlalchemy import or_, select

from buyersclub import mail
from buyersclub.accounts.models import Role, User
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import after_commit, db, utcnow
from buyersclub.errors import InvalidInput
from buyersclub.money import format_money
from buyersclub.organisations.models import Organisation
from invoices.links import invoice_page_url, invoice_path
from invoices.models import Invoice, InvoiceStatus
from invoices.services import payments
from invoices.services.queries import balance_due_cents
from orders.models import Round

DEFAULT_INTERVAL_DAYS = 7
# What a message is about.
NEW_INVOICE = "new invoice"
OVERDUE = "overdue"
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
    kind: str = OVERDUE
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
    """The invoice's page (``invoices.links``); its path alone when no host is known."""
    return invoice_page_url(invoice.id) or invoice_path(invoice.id)


def _reminder(invoice: Invoice, name: str, now: datetime, outcome: str, problem: str | None = None,
              balance: Decimal | None = None, kind: str = OVERDUE) -> Reminder:
    return Reminder(invoice_id=invoice.id, number=invoice.number, organisation=name,
                    balance_due=balance if balance is not None else payments.balance_due(invoice),
                    due_on=invoice.due_on, days_overdue=(now.date() - invoice.due_on).days,
                    recipients=recipients(invoice.organisation_id), outcome=outcome, problem=problem,
                    kind=kind)


def _locked(invoice_id: int, *, dry_run: bool) -> tuple[Invoice, str]:
    """The invoice (its row locked unless ``dry_run``) and its member's name."""
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if not dry_run:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    invoice = db.session.scalar(statement)
    if invoice is None:
        raise InvalidInput(f"There is no invoice {invoice_id}.", field="invoice_id")
    name = db.session.scalar(select(Organisation.name).where(Organisation.id == invoice.organisation_id)) \
        or invoice.bill_to.get("name", "")
    return invoice, name


# --- Notices of new invoices ---------------------------------------------------------------------


def due_for_notice(round_id: int | None = None) -> list[int]:
    """Ids of the live invoices whose members have not been told of them yet (of one round, or all)."""
    statement = select(Invoice.id).where(Invoice.status == InvoiceStatus.ISSUED,
                                         Invoice.notified_at.is_(None))
    if round_id is not None:
        statement = statement.where(Invoice.round_id == round_id)
    return list(db.session.scalars(statement.order_by(Invoice.id)))


def notify(actor: Actor, invoice_id: int, *, now: datetime | None = None, dry_run: bool = False) -> Reminder:
    """Mark the invoice notified and queue its notice (sent when the transaction commits); like
    :func:`remind`, it checks again under the row's lock and leaves alone an invoice already told."""
    actor.require(Role.FINANCE)
    now = _now(now)
    invoice, name = _locked(invoice_id, dry_run=dry_run)
    if invoice.status != InvoiceStatus.ISSUED or invoice.notified_at is not None:
        return _reminder(invoice, name, now, NOT_DUE, kind=NEW_INVOICE)
    notice = _reminder(invoice, name, now, DRY_RUN if dry_run else SENT, kind=NEW_INVOICE)
    if not notice.recipients:
        return replace(notice, outcome=NO_RECIPIENTS,
                       problem="the organisation has no active member staff to send it to")
    if dry_run:
        return notice
    invoice.notified_at = now
    db.session.flush()
    subject, body = _notice_message(invoice, notice)
    _deliver_after_commit(notice, subject, body)
    record(actor, "invoice.notice_sent", "invoice", invoice.id, organisation_id=invoice.organisation_id,
           after={"notified_at": now, "balance_due": notice.balance_due, "due_on": invoice.due_on,
                  "recipients": list(notice.recipients)})
    return notice


def _notice_message(invoice: Invoice, notice: Reminder) -> tuple[str, str]:
    mail_context = _mail_context(invoice, notice.balance_due)
    balance, club_name = mail_context["balance"], mail_context["club_name"]
    owed = f"{balance} due by {invoice.due_on.isoformat()}" if notice.balance_due > 0 else "nothing to pay"
    subject = f"Invoice {invoice.number} from {club_name}: {owed}"
    round_name = db.session.scalar(select(Round.name).where(Round.id == invoice.round_id))
    body = render_template("invoices/mail/issued.txt", notice=notice, round_name=round_name,
                           total=format_money(invoice.total, mail_context["currency"]), **mail_context)
    return subject, body


def send_notices(
    actor: Actor,
    *,
    commit: Callable[[], None],
    now: datetime | None = None,
    dry_run: bool = False,
    round_id: int | None = None,
    on_reminder: Callable[[Reminder], None] | None = None,
) -> Summary:
    """Tell members of every invoice not yet notified (of one round, or all), one transaction each."""
    actor.require(Role.FINANCE)
    summary = Summary()
    _send_each(actor, due_for_notice(round_id), notify, summary, commit=commit, now=_now(now),
               dry_run=dry_run, on_reminder=on_reminder)
    return summary


# --- Overdue reminders ---------------------------------------------------------------------------


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
    invoice, name = _locked(invoice_id, dry_run=dry_run)
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


def _mail_context(invoice: Invoice, balance_due: Decimal) -> dict:
    """What every message about an invoice shows: the balance, the link, how to pay, the club."""
    currency = invoice.currency or current_app.config.get("CLUB_CURRENCY", "USD")
    return {"invoice": invoice, "currency": currency, "balance": format_money(balance_due, currency),
            "link": invoice_link(invoice), "bank_details": current_app.config.get("CLUB_BANK_DETAILS"),
            "club_name": current_app.config.get("CLUB_NAME", "The buyers' club"),
            "card": bool(current_app.config.get("STRIPE_SECRET_KEY"))}


def _message(invoice: Invoice, reminder: Reminder) -> tuple[str, str]:
    mail_context = _mail_context(invoice, reminder.balance_due)
    subject = (f"Overdue: invoice {invoice.number}, {mail_context['balance']} due since "
               f"{invoice.due_on.isoformat()}")
    return subject, render_template("invoices/mail/reminder.txt", reminder=reminder, **mail_context)


def send_reminders(
    actor: Actor,
    *,
    commit: Callable[[], None],
    now: datetime | None = None,
    dry_run: bool = False,
    on_reminder: Callable[[Reminder], None] | None = None,
) -> Summary:
    """Send the notices of new invoices not sent yet, then remind about every invoice due a reminder;
    one transaction per invoice (``commit`` ends each).

    With ``dry_run`` nothing is marked or sent and nothing is committed.
    """
    actor.require(Role.FINANCE)
    now = _now(now)
    summary = send_notices(actor, commit=commit, now=now, dry_run=dry_run, on_reminder=on_reminder)
    _send_each(actor, due_for_reminder(now), remind, summary, commit=commit, now=now, dry_run=dry_run,
               on_reminder=on_reminder)
    return summary


def _send_each(actor: Actor, invoice_ids: list[int], message: Callable[..., Reminder], summary: Summary, *,
               commit: Callable[[], None], now: datetime, dry_run: bool,
               on_reminder: Callable[[Reminder], None] | None) -> None:
    """``message`` (:func:`notify` or :func:`remind`) for each invoice, each committed on its own."""
    for invoice_id in invoice_ids:
        if dry_run:
            reminder = message(actor, invoice_id, now=now, dry_run=True)
        else:
            reminder = _send_one(actor, partial(message, actor, invoice_id, now=now), now, commit)
        summary.reminders.append(reminder)
        if on_reminder is not None:
            on_reminder(reminder)


def _send_one(actor: Actor, mark: Callable[[], Reminder], now: datetime,
              commit: Callable[[], None]) -> Reminder:
    """``mark()`` marks one invoice and queues its message; commit, then see whether it was delivered."""
    reminder = mark()
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
    """After a failed delivery: forget the message that did not go out, so the next run sends it."""
    invoice = db.session.scalar(select(Invoice).where(Invoice.id == reminder.invoice_id).with_for_update()
                                .execution_options(populate_existing=True))
    mark, action, previous = ("notified_at", "invoice.notice_failed", None) if reminder.kind == NEW_INVOICE \
        else ("last_reminder_at", "invoice.reminder_failed", reminder.previous_reminder_at)
    if invoice is None or getattr(invoice, mark) != now:
        return  # the commit itself failed: nothing was marked
    setattr(invoice, mark, previous)
    db.session.flush()
    record(actor, action, "invoice", invoice.id, organisation_id=invoice.organisation_id,
           before={mark: now}, after={mark: previous, "problem": problem[:500]})
