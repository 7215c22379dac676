"""Ledger pages for finance and administrators: the trial balance, the journal,
one entry with its postings, and reversing an entry (finance only).

Reversal is two steps: the reason, then a confirmation page showing the lines
that will be posted. Nothing is ever edited: the reversal is a new entry.
"""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from buyersclub.accounts.models import Role, User
from buyersclub.accounts.views import current_actor
from buyersclub.db import db
from buyersclub.errors import InvalidInput, NotFound
from buyersclub.ledger import services
from buyersclub.ledger.models import JournalEntry, Posting
from buyersclub.money import ZERO
from buyersclub.organisations.services import organisation_names
from buyersclub.web.forms import attempt

bp = Blueprint("ledger", __name__, template_folder="templates")

PER_PAGE = 25
STAFF = (Role.FINANCE, Role.ADMIN)


class ReverseEntryForm(FlaskForm):
    reason = TextAreaField(
        "Why is this entry being reversed?",
        validators=[
            DataRequired(message="Give the reason: it is kept with the reversal."),
            Length(max=200, message="Keep the reason to 200 characters."),
        ],
        description="For example: 'Invoice issued to the wrong organisation'. Kept in the memo "
        "and the audit log.",
    )
    confirmed = HiddenField()


# --- Trial balance -------------------------------------------------------------


@bp.get("/ledger")
@login_required
def trial_balance():
    """Debit and credit totals per account, as of today or a chosen day."""
    current_actor().require(*STAFF)
    raw = request.args.get("as_of", "").strip()
    try:
        as_of = services.parse_as_of(raw)
    except InvalidInput as error:
        return render_template("ledger/trial_balance.html", report=None, as_of=raw,
                               as_of_error=error.message), 400
    return render_template("ledger/trial_balance.html", report=services.trial_balance(as_of),
                           as_of=raw, as_of_error=None)


# --- Journal ---------------------------------------------------------------------


@bp.get("/ledger/journal")
@login_required
def journal():
    """Entries newest first, optionally of one kind."""
    current_actor().require(*STAFF)
    kind = request.args.get("kind", "").strip()[:40]
    statement = (
        select(JournalEntry)
        .options(selectinload(JournalEntry.postings))
        .order_by(JournalEntry.entry_date.desc(), JournalEntry.id.desc())
    )
    if kind:
        statement = statement.where(JournalEntry.kind == kind)
    pagination = db.paginate(statement, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False)
    ids = [entry.id for entry in pagination.items]
    reversed_by = dict(
        db.session.execute(
            select(JournalEntry.reverses_id, JournalEntry.id).where(
                JournalEntry.reverses_id.in_(ids)
            )
        ).all()
    ) if ids else {}
    kinds = db.session.scalars(
        select(JournalEntry.kind).distinct().order_by(JournalEntry.kind)
    ).all()
    return render_template("ledger/journal.html", pagination=pagination, kind=kind, kinds=kinds,
                           reversed_by=reversed_by, total=_debit_total)


def _debit_total(entry: JournalEntry) -> Decimal:
    """What the entry moves: the sum of its debits (equal to the sum of its credits)."""
    return sum((posting.amount for posting in entry.postings if posting.amount > 0), ZERO)


# --- One entry, and reversing it -----------------------------------------------------


def _entry(entry_id: int) -> JournalEntry:
    """The entry with its postings and their accounts, or 404."""
    entry = db.session.scalar(
        select(JournalEntry)
        .where(JournalEntry.id == entry_id)
        .options(selectinload(JournalEntry.postings).selectinload(Posting.account))
    )
    if entry is None:
        raise NotFound("There is no journal entry with that number.")
    return entry


def _entry_page(entry_id: int, form: ReverseEntryForm, status: int = 200):
    actor = current_actor()
    entry = _entry(entry_id)
    organisations = organisation_names(p.organisation_id for p in entry.postings)
    author = db.session.get(User, entry.created_by_id) if entry.created_by_id else None
    return render_template(
        "ledger/entry.html",
        entry=entry,
        total=_debit_total(entry),
        organisations=organisations,
        author=author,
        reversal=services.reversal_of(entry.id),
        can_reverse=actor.has_role(Role.FINANCE) and not actor.is_system,
        form=form,
    ), status


@bp.get("/ledger/entries/<int:entry_id>")
@login_required
def entry(entry_id: int):
    current_actor().require(*STAFF)
    return _entry_page(entry_id, ReverseEntryForm())


@bp.post("/ledger/entries/<int:entry_id>/reverse")
@login_required
def reverse(entry_id: int):
    """First the reason, then a confirmation page, then the reversal is posted."""
    actor = current_actor()
    actor.require(Role.FINANCE)
    form = ReverseEntryForm()
    if not form.validate_on_submit():
        return _entry_page(entry_id, form, 400)
    if form.confirmed.data != "yes":
        original = _entry(entry_id)
        existing = services.reversal_of(entry_id)
        if existing is not None:
            form.form_errors.append(f"This entry was already reversed by entry #{existing.id}.")
            return _entry_page(entry_id, form, 409)
        return render_template("ledger/reverse_confirm.html", entry=original, form=form)
    reversal, status = attempt(form, lambda: services.reverse_entry(actor, entry_id, form.reason.data))
    if reversal is None:
        return _entry_page(entry_id, form, status)
    flash(f"Entry #{entry_id} is reversed by entry #{reversal.id}.", "info")
    return redirect(url_for("ledger.entry", entry_id=reversal.id))
