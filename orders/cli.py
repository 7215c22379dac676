"""Round commands: ``flask --app buyersclub rounds …``.

Each command is one transaction (``buyersclub.cli.transactional``). Closing
due rounds needs the close engine and comes with it.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from buyersclub.cli import CLI_ACTOR, transactional
from buyersclub.db import db
from orders.services import rounds as round_services

rounds = AppGroup("rounds", help="Buying rounds: list, open and cancel.")


@rounds.command("list")
@click.option("--status", help="Only rounds in this state (draft, open, closed, ...).")
@transactional
def list_rounds(status: str | None) -> None:
    """Print every round with its status and deadline."""
    found = db.session.scalars(round_services.rounds_for(CLI_ACTOR, status=status)).all()
    if not found:
        click.echo("No rounds.")
    for each in found:
        click.echo(f"{each.id}\t{each.status.value}\t{each.deadline:%Y-%m-%d %H:%M} UTC\t{each.name}")


@rounds.command("open")
@click.argument("round_id", type=int)
@transactional
def open_round(round_id: int) -> None:
    """Open a draft round."""
    found = round_services.open_round(CLI_ACTOR, round_id)
    click.echo(f"Round {found.id} is open until {found.deadline:%Y-%m-%d %H:%M} UTC.")


@rounds.command("cancel")
@click.argument("round_id", type=int)
@click.option("--reason", required=True, help="Why; e-mailed to the members that committed.")
@transactional
def cancel_round(round_id: int, reason: str) -> None:
    """Cancel a draft or open round."""
    found = round_services.cancel_round(CLI_ACTOR, round_id, reason)
    click.echo(f"Round {found.id} is cancelled.")
