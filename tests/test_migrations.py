"""The schema comes only from the migrations, and they stay honest.

On a database of its own (a temporary SQLite file, or a separate PostgreSQL
schema): one head; upgrade from empty to head; no difference between the
models and the migrations (what ``alembic check`` does); downgrade step by step
to base and upgrade again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from flask import current_app

from buyersclub.db import db
from buyersclub.ledger.chart import CHART
from tests.conftest import make_app

SCHEMA = "migration_check"


@pytest.fixture
def empty_database(database_url, tmp_path):
    """A URL for an empty database that no other test uses."""
    if database_url.startswith("sqlite"):
        yield "sqlite:///" + str(tmp_path / "migrations.sqlite3")
        return
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    separator = "&" if "?" in database_url else "?"
    yield f"{database_url}{separator}options=-csearch_path%3D{SCHEMA}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    engine.dispose()


@pytest.fixture
def migration_app(empty_database, tmp_path):
    app = make_app(empty_database, tmp_path)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def alembic_config():
    return current_app.extensions["migrate"].migrate.get_config()


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_there_is_exactly_one_head(migration_app):
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several heads: {heads}; merge them"


def test_upgrade_from_empty_matches_the_models(migration_app):
    assert table_names() == set()
    command.upgrade(alembic_config(), "head")
    assert set(db.metadata.tables) <= table_names()
    # Raises if autogenerate would produce any operation.
    command.check(alembic_config())
    with db.engine.connect() as connection:
        codes = set(connection.scalars(sa.text("SELECT code FROM ledger_accounts")))
    assert codes == {account.code for account in CHART}


def test_every_migration_downgrades_and_upgrades_again(migration_app):
    config = alembic_config()
    command.upgrade(config, "head")
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())
    for _ in revisions:
        command.downgrade(config, "-1")
    assert table_names() <= {"alembic_version"}
    command.upgrade(config, "head")
    command.check(config)
    assert set(db.metadata.tables) <= table_names()


def test_invoices_issued_before_notices_existed_count_as_told(migration_app):
    """0011 marks existing invoices notified, so the first send-reminders does not mail them all."""
    from invoices.models import Invoice
    from tests.invoices.stripe_helpers import one_issued_invoice

    config = alembic_config()
    command.upgrade(config, "head")
    invoice_id, _ = one_issued_invoice()
    db.session.commit()
    assert db.session.get(Invoice, invoice_id).notified_at is None
    db.session.remove()
    command.downgrade(config, "0010")
    command.upgrade(config, "0011")
    assert db.session.get(Invoice, invoice_id).notified_at is not None
