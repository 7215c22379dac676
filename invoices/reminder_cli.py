"""``flask --app buyersclub send-reminders [--dry-run]``: overdue notices, one transaction per invoice.

Each invoice's reminder is committed on its own, its mail sent right after
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


def _line(reminder: reminders.Reminder) -> str:
    currency = current_app.config.get("CLUB_CURRENCY", "USD")
    people = len(reminder.recipients)
    days = reminder.days_overdue
    text = (f"{reminder.number}\t{reminder.organisation}\t{format_money(reminder.balance_due, currency)} "
            f"due {reminder.due_on.isoformat()} ({days} day{'' if days == 1 else 's'} overdue)"
            f"\t{reminder.outcome}")
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
    """Mail overdue notices to members' staff, at most once every REMINDER_INTERVAL_DAYS per invoice."""
    if not current_app.config.get("PUBLIC_URL") and not current_app.config.get("SERVER_NAME"):
        click.echo("Warning: BUYERSCLUB_PUBLIC_URL is not set, so the notices link to the invoice's "
                   "path only.", err=True)
    summary = reminders.send_reminders(CLI_ACTOR, commit=db.session.commit, dry_run=dry_run,
                                       on_reminder=lambda reminder: click.echo(_line(reminder)))
    total = len(summary.reminders)
    if dry_run:
        would = summary.count(reminders.DRY_RUN)
        click.echo(f"Dry run: {would} reminder{'s' if would != 1 else ''} would be sent; nothing was sent "
                   "or marked.")
    else:
        click.echo(f"Sent {summary.sent} reminder{'s' if summary.sent != 1 else ''} "
                   f"({total} invoice{'s' if total != 1 else ''} overdue and due a reminder"
                   + "".join(f"; {count} {outcome}" for outcome in
                             (reminders.NOT_DUE, reminders.NO_RECIPIENTS, reminders.FAILED)
                             if (count := summary.count(outcome)))
                   + ").")
    if summary.failed:
        raise click.ClickException(f"{summary.failed} notice(s) could not be delivered: run the command "
                                   "again later to retry them.")
