"""Test harness.

One pytest run targets one database, chosen by ``BUYERSCLUB_TEST_DB``:
``sqlite`` (default: a fresh file in a temporary folder) or ``postgres``
(``BUYERSCLUB_TEST_DATABASE_URL``; the schema is dropped and rebuilt). The
schema is always built by running the migrations, never ``create_all``.

Each test runs inside an outer transaction that is rolled back at the end;
the application may commit (``join_transaction_mode="create_savepoint"``).
Tests that need real commits seen by other connections (threads, a live
server) use ``committing_db`` instead, which empties the tables afterwards.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_migrate import upgrade
from flask_sqlalchemy.session import Session as FlaskSession

from buyersclub import create_app
from buyersclub.db import db
from tests import factories

pytest_plugins = ["tests.querycount"]

TARGET = os.environ.get("BUYERSCLUB_TEST_DB", "sqlite").strip().lower()
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_report_header(config):
    return f"buyersclub test database: {TARGET}"


def pytest_collection_modifyitems(config, items):
    skip_pg_only = pytest.mark.skip(reason="needs PostgreSQL (run with BUYERSCLUB_TEST_DB=postgres)")
    skip_sqlite_only = pytest.mark.skip(reason="runs in the SQLite pass only")
    for item in items:
        if TARGET != "postgres" and "postgres_only" in item.keywords:
            item.add_marker(skip_pg_only)
        if TARGET == "postgres" and ("browser" in item.keywords or "server" in item.keywords):
            item.add_marker(skip_sqlite_only)


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TARGET == "postgres":
        from buyersclub.config import normalise_database_url

        raw = os.environ.get("BUYERSCLUB_TEST_DATABASE_URL", "").strip()
        if not raw:
            pytest.fail("BUYERSCLUB_TEST_DB=postgres needs BUYERSCLUB_TEST_DATABASE_URL")
        url = normalise_database_url(raw)
        try:
            _reset_postgres(url)
        except sa.exc.OperationalError as exc:
            pytest.fail(f"PostgreSQL is not reachable at {raw}: {exc}")
        return url
    if TARGET != "sqlite":
        pytest.fail(f"BUYERSCLUB_TEST_DB must be sqlite or postgres, not {TARGET!r}")
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")


def make_app(database_url: str, instance_path: Path, **overrides):
    environ = {"BUYERSCLUB_ENV": "testing", "BUYERSCLUB_SECRET_KEY": "test-secret-not-for-production"}
    config = {
        "ENVIRON": environ,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_BACKEND": "memory",
        "WTF_CSRF_ENABLED": False,
        "SERVER_NAME": "club.test",
        **overrides,
    }
    app = create_app(config)
    app.instance_path = str(instance_path)
    return app


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    app = make_app(database_url, tmp_path_factory.mktemp("instance"))
    with app.app_context():
        upgrade()
        _remember_seeded_rows()
        db.engine.dispose()
    yield app
    with app.app_context():
        # Close pooled connections now, not when the interpreter collects them.
        db.engine.dispose()


class _OuterTransactionSession(FlaskSession):
    """Flask-SQLAlchemy's session, but bound to the test's open connection."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and self.bind is not None:
            return self.bind
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


@pytest.fixture
def app_ctx(app):
    """An app context whose session runs inside a transaction rolled back afterwards."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        db.session = db._make_scoped_session(
            {
                "class_": _OuterTransactionSession,
                "bind": connection,
                "join_transaction_mode": "create_savepoint",
            }
        )
        try:
            yield app
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()
            app.extensions["mail_outbox"] = []


@pytest.fixture
def session(app_ctx):
    return db.session


class CommittingClient(FlaskClient):
    """A test client that commits the test's own set-up before each request.

    In production a request never sees another's uncommitted work; here the
    test and the request share one session, so without this a request that
    rolls back (any 4xx) would also throw away the data the test arranged.
    """

    def open(self, *args, **kwargs):
        db.session.commit()
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app_ctx):
    app_ctx.test_client_class = CommittingClient
    try:
        return app_ctx.test_client()
    finally:
        app_ctx.test_client_class = None


@pytest.fixture
def committing_db(app):
    """Real commits, visible to other connections and threads; tables emptied afterwards."""
    with app.app_context():
        yield app
        db.session.remove()
        empty_all_tables()
        app.extensions["mail_outbox"] = []


# Rows the migrations seed (the chart of accounts, the first policy): kept, or put back.
SEEDED_BY_MIGRATIONS = ("ledger_accounts", "subsidy_policies")
_seeded_rows: dict[str, list[dict]] = {}


def _remember_seeded_rows() -> None:
    with db.engine.connect() as connection:
        for name in SEEDED_BY_MIGRATIONS:
            table = db.metadata.tables[name]
            _seeded_rows[name] = [dict(row._mapping) for row in connection.execute(sa.select(table))]


def empty_all_tables() -> None:
    """Empty every table, then restore what the migrations seeded (ids and sequences too)."""
    # Nothing references the chart's accounts but postings, so it can stay as it is.
    tables = [table for table in db.metadata.sorted_tables if table.name != "ledger_accounts"]
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(table.name for table in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            # Break the users <-> organisations cycle, then empty children first.
            connection.execute(sa.text("UPDATE organisations SET decided_by_id = NULL, "
                                       "assessed_by_id = NULL, applied_by_id = NULL"))
            connection.execute(sa.text("UPDATE organisation_documents SET recorded_by_id = NULL"))
            for table in reversed(tables):
                connection.execute(table.delete())
        for name, rows in _seeded_rows.items():
            if name == "ledger_accounts" or not rows:
                continue
            table = db.metadata.tables[name]
            connection.execute(table.insert(), rows)
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))


# --- People and tokens ------------------------------------------------------


@pytest.fixture
def admin(session):
    return factories.UserFactory(roles=["admin"], email="admin@club.test", name="Ada Admin")


@pytest.fixture
def finance(session):
    return factories.UserFactory(roles=["finance"], email="finance@club.test", name="Fin Ance")


@pytest.fixture
def member(session):
    """Staff of an approved member organisation."""
    organisation = factories.OrganisationFactory(name="Harbour Outreach")
    return factories.UserFactory(roles=["member"], organisation=organisation,
                                 email="staff@harbour.test", name="Sam Staff")


def bearer(user) -> dict[str, str]:
    from buyersclub.accounts.services import issue_token
    from buyersclub.actor import Actor

    _, plain = issue_token(Actor.system("test"), user, "test")
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
def auth():
    """``auth(user)`` gives the headers of a fresh API token for that user."""
    return bearer


@pytest.fixture
def sign_in(client):
    """``sign_in(user)`` signs the test client in as that user (password: factories.PASSWORD)."""

    def _sign_in(user):
        response = client.post(
            "/sign-in", data={"email": user.email, "password": factories.PASSWORD}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return _sign_in


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to open a network connection."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="session", autouse=True)
def _close_pooled_connections():
    """Close the connections left in every application's pool when the run ends.

    Threads in ``committing_db`` tests check connections into the pools; without
    this, pytest's final garbage collection finds them open and (warnings being
    errors) fails the run after all tests passed.
    """
    yield
    for engines in list(db._app_engines.values()):
        for engine in engines.values():
            engine.dispose()
