"""Command-line entry points: ``flask --app buyersclub …`` or the ``buyersclub`` script.

Each command is one transaction: ``transactional`` commits when the command
finishes and rolls back if it fails, so a command never leaves half its work.
"""

from __future__ import annotations

import functools
import getpass
import logging
import sys
from collections.abc import Callable

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.errors import DomainError

CLI_ACTOR = Actor.system("cli")


def transactional(command: Callable) -> Callable:
    """Run a command in one transaction; a domain error becomes a clear message."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            result = command(*args, **kwargs)
            db.session.commit()
            return result
        except DomainError as error:
            db.session.rollback()
            where = f" ({error.field})" if error.field else ""
            raise click.ClickException(f"{error.message}{where}") from error
        except BaseException:
            db.session.rollback()
            raise

    return wrapper


def _password_from(option: str | None, prompt: str) -> str:
    if option:
        return option
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if line:
            return line
        raise click.ClickException("Give --password or pipe a password on standard input.")
    first = getpass.getpass(prompt)
    if first != getpass.getpass("Repeat it: "):
        raise click.ClickException("The passwords do not match.")
    return first


@click.command("create-admin")
@click.argument("email")
@click.option("--name", default="Club administrator", show_default=True)
@click.option("--password", help="Read from standard input, or asked for, when not given.")
@click.option("--finance", is_flag=True, help="Also give the finance role.")
@with_appcontext
@transactional
def create_admin(email: str, name: str, password: str | None, finance: bool) -> None:
    """Create a club administrator account."""
    from buyersclub.accounts.services import create_user

    roles = (Role.ADMIN, Role.FINANCE) if finance else (Role.ADMIN,)
    user = create_user(CLI_ACTOR, email=email, name=name,
                       password=_password_from(password, "Password: "), roles=roles)
    click.echo(f"Created {', '.join(sorted(user.roles))} account {user.email}.")


@click.command("create-token")
@click.argument("email")
@click.option("--name", default="command line", show_default=True, help="A label for the token.")
@with_appcontext
@transactional
def create_token(email: str, name: str) -> None:
    """Print a new API token for the account with this e-mail address."""
    from buyersclub.accounts.services import issue_token, user_by_email

    user = user_by_email(email)
    if user is None:
        raise click.ClickException(f"No account with the e-mail address {email}.")
    _, plain = issue_token(CLI_ACTOR, user, name)
    click.echo(plain)


@click.command("demo")
@click.option("--if-empty", is_flag=True,
              help="Load only into an empty database (no accounts, no organisations).")
@click.option("--force", is_flag=True, help="Load even in production mode.")
@with_appcontext
@transactional
def demo(if_empty: bool, force: bool) -> None:
    """Load fictional demo data (safe to run twice: existing data is left alone).

    Every demo account has the same published password, so production mode
    refuses unless --force is given.
    """
    from flask import current_app

    from buyersclub import demo as demo_data

    if current_app.config["BUYERSCLUB_ENV"] == "production" and not force:
        raise click.ClickException(
            "Refusing to load demo data in production mode: its accounts share a published "
            "password. Set BUYERSCLUB_ENV=development, or give --force if you really mean it."
        )
    if if_empty and not demo_data.database_is_empty():
        if not demo_data.demo_is_loaded():
            click.echo("The database already holds accounts or organisations: "
                       "demo data not loaded.")
            return
        click.echo("Demo data is already loaded.")
    else:
        # The progress lines say what is loaded; one log line per audit event would drown them.
        business_log = logging.getLogger("buyersclub.business")
        level = business_log.level
        business_log.setLevel(logging.WARNING)
        try:
            for line in demo_data.load_demo(CLI_ACTOR):
                click.echo(line)
        finally:
            business_log.setLevel(level)
    for line in demo_data.sign_in_lines():
        click.echo(line)


def register(app: Flask) -> None:
    from invoices.cli import issue_invoices, render_invoice_pdfs
    from invoices.export_cli import export
    from invoices.reminder_cli import send_reminders
    from orders.cli import rounds

    for command in (create_admin, create_token, demo, rounds, issue_invoices, render_invoice_pdfs, export,
                    send_reminders):
        app.cli.add_command(command)


def main() -> None:
    """The ``buyersclub`` script: the same commands as ``flask --app buyersclub``."""
    from buyersclub import create_app

    FlaskGroup(create_app=create_app, help="Buyers' club administration.")(prog_name="buyersclub")
