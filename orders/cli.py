"""Round commands: ``flask --app buyersclub rounds …``.

Each command is one transaction (``buyersclub.cli.transactional``), except
``close-due-rounds`` (for cron), which commits once per round.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from buyersclub.cli import CLI_ACTOR, transactional
from buyersclub.db import db
from buyersclub.errors import DomainError, RuleRefused
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


@click.command("close-due-rounds")
@with_appcontext
def close_due_rounds() -> None:
    """Close every open round whose deadline has passed (for cron).

    Each round is closed with every product's base option (no price-break
    jump: that choice is an admin's, on the close page). A round whose supplier
    minimum order is not met is cancelled instead, with the reason recorded and
    mailed to the members that committed. One transaction per round: a round
    that fails is reported and rolled back, and the others still close.
    """
    from orders.services import closing

    failed = 0
    due = closing.due_round_ids()
    db.session.rollback()  # end the read; each round gets its own transaction
    if not due:
        click.echo("No open round is past its deadline.")
    for round_id in due:
        try:
            line = _close_or_cancel(round_id)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            failed += 1
            line = f"Round {round_id}: not closed: {error.message}"
        except Exception:
            db.session.rollback()
            raise
        click.echo(line)
    if failed:
        raise click.ClickException(f"{failed} of {len(due)} rounds could not be closed.")


def _close_or_cancel(round_id: int) -> str:
    from orders.services import closing

    try:
        result = closing.commit_close(CLI_ACTOR, round_id)
    except RuleRefused as refused:
        if refused.code != closing.MINIMUM_NOT_MET:
            raise
        db.session.rollback()
        found = round_services.cancel_round(
            CLI_ACTOR, round_id, f"Closed at the deadline without reaching the supplier's minimum order. "
            f"{refused.message.split('. ')[0]}.")
        return f"Round {found.id} ({found.name}): cancelled, the supplier's minimum order was not met."
    totals = result.totals
    return (f"Round {result.round.id} ({result.round.name}): closed, {totals.units} units, "
            f"supplier cost {totals.supplier_cost:,.2f}, margin {totals.margin:,.2f}, "
            f"{result.allocations} allocations.")
