"""``flask --app buyersclub send-reminders [--dry-run]``: notices of new invoices, then overdue reminders.

One transaction per invoice: each invoice's message is committed on its own, its mail sent right after
that commit (see ``invoices.services.reminders``), so a run that stops
half-way can simply be run again. Prints one line per invoice and a summary;
exits with status 1 when a notice could not be delivered.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from buyersclub.cli import CLI_ACTOR, transactional
from buyersclub.db import db
from buyersclub.money import format_money
from invoices.services import reminders


def line(reminder: reminders.Reminder) -> str:
    """One message's line: the invoice, its member, what it asks for, and what happened."""
    currency = current_app.config.get("CLUB_CURRENCY", "USD")
    people = len(reminder.recipients)
    days = reminder.days_overdue
    why = "new invoice" if reminder.kind == reminders.NEW_INVOICE else \
        f"{days} day{'' if days == 1 else 's'} overdue"
    text = (f"{reminder.number}\t{reminder.organisation}\t{format_money(reminder.balance_due, currency)} "
            f"due {reminder.due_on.isoformat()} ({why})\t{reminder.outcome}")
    if reminder.outcome in (reminders.SENT, reminders.DRY_RUN):
        text += f" to {people} {'person' if people == 1 else 'people'}"
    if reminder.problem:
        text += f": {reminder.problem}"
    return text


@click.command("send-reminders")
@click.option("--dry-run", is_flag=True, help="List the reminders that would go out; send and mark nothing.")
@with_appcontext
@transactional
def send_reminders(dry_run: bool) -> None:
    """Mail members' staff a notice of each new invoice, and an overdue reminder at most once every
    REMINDER_INTERVAL_DAYS per invoice."""
    warn_without_public_url()
    summary = reminders.send_reminders(CLI_ACTOR, commit=db.session.commit, dry_run=dry_run,
                                       on_reminder=lambda reminder: click.echo(line(reminder)))
    report(summary, dry_run=dry_run)


def warn_without_public_url() -> None:
    if not current_app.config.get("PUBLIC_URL") and not current_app.config.get("SERVER_NAME"):
        click.echo("Warning: BUYERSCLUB_PUBLIC_URL is not set, so the messages link to the invoice's "
                   "path only.", err=True)


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def report(summary: reminders.Summary, *, dry_run: bool,
           kinds: tuple[str, ...] = (reminders.NEW_INVOICE, reminders.OVERDUE)) -> None:
    """The run's summary line; exits with status 1 when a message could not be delivered."""
    done = reminders.DRY_RUN if dry_run else reminders.SENT
    names = {reminders.NEW_INVOICE: ("notice of new invoices", "notices of new invoices"),
             reminders.OVERDUE: ("reminder", "reminders")}
    scope = {reminders.NEW_INVOICE: ("new invoice", "new invoices", ""),
             reminders.OVERDUE: ("invoice", "invoices", " overdue and due a reminder")}
    what, seen = [], []
    for kind in kinds:
        mine = [each for each in summary.reminders if each.kind == kind]
        what.append(_count(sum(1 for each in mine if each.outcome == done), *names[kind]))
        one, many, why = scope[kind]
        seen.append(_count(len(mine), one, many) + why)
    if dry_run:
        click.echo(f"Dry run: {' and '.join(what)} would be sent; nothing was sent or marked.")
    else:
        others = "".join(f"; {count} {outcome}" for outcome in
                         (reminders.NOT_DUE, reminders.NO_RECIPIENTS, reminders.FAILED)
                         if (count := summary.count(outcome)))
        click.echo(f"Sent {' and '.join(what)} ({', '.join(seen)}{others}).")
    if summary.failed:
        raise click.ClickException(f"{summary.failed} message(s) could not be delivered: run "
                                   "`flask --app buyersclub send-reminders` again later to retry them.")
