"""Invoice commands: ``flask --app buyersclub issue-invoices ROUND``.

One transaction (``buyersclub.cli.transactional``): the round's missing
invoices are all issued, or none is.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from buyersclub.cli import CLI_ACTOR, transactional
from invoices.models import Invoice
from invoices.services import issuing


@click.command("issue-invoices")
@click.argument("round_id", type=int)
@click.option("--without-subsidy-run", is_flag=True,
              help="Issue even though the round's subsidy run is not approved (no subsidy credits).")
@with_appcontext
@transactional
def issue_invoices(round_id: int, without_subsidy_run: bool) -> None:
    """Issue a round's invoices: one per member allocated units that has none yet."""

    def progress(invoice: Invoice) -> None:
        click.echo(f"{invoice.number}\t{invoice.bill_to.get('name', '')}\t{invoice.total:,.2f} "
                   f"{invoice.currency}\tdue {invoice.due_on.isoformat()}")

    issued = issuing.issue_round_invoices(CLI_ACTOR, round_id, without_subsidy_run=without_subsidy_run,
                                          on_issued=progress)
    if not issued:
        click.echo("No invoices to issue: every member allocated units has one.")
    else:
        click.echo(f"Issued {len(issued)} invoice{'s' if len(issued) != 1 else ''}.")
