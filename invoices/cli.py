"""Invoice commands: ``issue-invoices ROUND`` and ``render-invoice-pdfs ROUND``.

Issuing is one transaction (``buyersclub.cli.transactional``): the round's
missing invoices are all issued, or none is. Their PDFs are rendered after it
committed (``invoices.batch``): a PDF that fails never takes an issued invoice
back; the command names it and says how to render what is missing, which
``render-invoice-pdfs`` does (existing files are kept unless ``--force``).
Then each member's staff are e-mailed a notice of the new invoice, one
transaction per invoice (``invoices.services.reminders.send_notices``); a
notice not delivered is sent by the next ``send-reminders``.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from buyersclub.cli import CLI_ACTOR, transactional
from buyersclub.db import db
from invoices import batch, reminder_cli
from invoices.models import Invoice
from invoices.services import issuing, reminders
from orders.services.rounds import get_round


@transactional
def _issue(round_id: int, without_subsidy_run: bool) -> list[Invoice]:
    def progress(invoice: Invoice) -> None:
        click.echo(f"{invoice.number}\t{invoice.bill_to.get('name', '')}\t{invoice.total:,.2f} "
                   f"{invoice.currency}\tdue {invoice.due_on.isoformat()}")

    return issuing.issue_round_invoices(CLI_ACTOR, round_id, without_subsidy_run=without_subsidy_run,
                                        on_issued=progress)


@click.command("issue-invoices")
@click.argument("round_id", type=int)
@click.option("--without-subsidy-run", is_flag=True,
              help="Issue even though the round's subsidy run is not approved (no subsidy credits).")
@click.option("--no-pdfs", is_flag=True, help="Do not render the PDFs now (render-invoice-pdfs does later).")
@click.option("--no-notices", is_flag=True,
              help="Do not e-mail the members now (the next send-reminders does).")
@with_appcontext
def issue_invoices(round_id: int, without_subsidy_run: bool, no_pdfs: bool, no_notices: bool) -> None:
    """Issue a round's invoices: one per member allocated units that has none yet; then their PDFs, and a
    notice to each member's staff."""
    issued = _issue(round_id, without_subsidy_run)
    if not issued:
        click.echo("No invoices to issue: every member allocated units has one.")
    else:
        click.echo(f"Issued {len(issued)} invoice{'s' if len(issued) != 1 else ''}.")
    pdfs_failed = None
    if not no_pdfs:
        try:
            _render(round_id, force=False, after_issue=True)
        except click.ClickException as failed:  # the members are told all the same: their page renders it
            pdfs_failed = failed
    if not no_notices:
        _notify(round_id)
    if pdfs_failed is not None:
        raise pdfs_failed


@transactional
def _notify(round_id: int) -> None:
    reminder_cli.warn_without_public_url()
    summary = reminders.send_notices(CLI_ACTOR, commit=db.session.commit, round_id=round_id,
                                     on_reminder=lambda notice: click.echo(reminder_cli.line(notice)))
    reminder_cli.report(summary, dry_run=False, kinds=(reminders.NEW_INVOICE,))


@click.command("render-invoice-pdfs")
@click.argument("round_id", type=int)
@click.option("--force", is_flag=True, help="Render every invoice again, replacing the files.")
@with_appcontext
def render_invoice_pdfs(round_id: int, force: bool) -> None:
    """Render a round's invoice PDFs into the instance folder (files already there are kept)."""
    _render(round_id, force=force, after_issue=False)


@transactional  # read-only; turns an unknown round into a clear message
def _render(round_id: int, *, force: bool, after_issue: bool) -> None:
    get_round(CLI_ACTOR, round_id)
    count = len(batch.round_invoices(round_id))
    with click.progressbar(length=count, label=f"Rendering {count} invoice PDFs",
                           show_pos=True, show_eta=True) as bar:
        result = batch.render_round(CLI_ACTOR, round_id, force=force, on_progress=lambda _: bar.update(1))
    click.echo(f"PDFs in {result.folder}: {len(result.written)} written, "
               f"{len(result.skipped)} already there, {len(result.failed)} failed.")
    if result.failed:
        for number, reason in result.failed.items():
            click.echo(f"FAILED {number}: {reason}", err=True)
        issued = "The invoices are issued; only their PDFs are missing. " if after_issue else ""
        raise click.ClickException(
            f"{len(result.failed)} PDF{'s' if len(result.failed) != 1 else ''} not rendered "
            f"({', '.join(result.failed)}). {issued}Render the missing ones with: "
            f"flask --app buyersclub render-invoice-pdfs {round_id}")
