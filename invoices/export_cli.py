"""``flask --app buyersclub export KIND [--from DAY] [--to DAY] [--output FILE]``.

KIND is ``invoices``, ``payments``, ``journal`` (CSV) or ``ledger`` (the
journal for hledger or ledger). The file goes to standard output, or to FILE:
written beside it first and moved into place once complete, so a failed
export never leaves half a file where a whole one was expected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from flask.cli import with_appcontext

from buyersclub.cli import CLI_ACTOR, transactional
from invoices.services.exports import EXPORTS
from invoices.services.periods import parse_period


@click.command("export")
@click.argument("kind", type=click.Choice(sorted(EXPORTS)))
@click.option("--from", "from_", metavar="YYYY-MM-DD", help="The first day; default a year before --to.")
@click.option("--to", "to", metavar="YYYY-MM-DD", help="The last day, included; default today.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of standard output.")
@with_appcontext
@transactional
def export(kind: str, from_: str | None, to: str | None, output: Path | None) -> None:
    """Export invoices, payments or journal lines (CSV), or the journal as an hledger/ledger file."""
    period = parse_period(from_, to)
    chunks = EXPORTS[kind].produce(CLI_ACTOR, period)
    if output is None:
        for chunk in chunks:
            click.echo(chunk, nl=False)
        return
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            for chunk in chunks:
                file.write(chunk)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    click.echo(f"Wrote the {kind} export for {period.label()} to {output}.", err=True)
