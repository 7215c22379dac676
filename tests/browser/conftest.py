"""Browser tests: Playwright driving Debian's chromium against a live server.

Fixtures, for every test in this folder:

- ``live_server`` (session): the application served by werkzeug in a thread on
  a free 127.0.0.1 port; a fresh, migrated SQLite file; development-like
  configuration with CSRF protection on, as people get it. ``.url``, ``.app``.
- ``live_db``: an application context on that server's database, for seeding
  with ``tests.factories`` and ``db.session.commit()``. The server sees the
  data; every table is emptied after the test.
- ``live_member`` / ``live_admin``: a committed, signed-up person (a ``Person``
  with the e-mail address and password to type).
- ``browser`` (session) and ``page``: a fresh browser context per test, its
  base URL the live server; a screenshot lands in ``test-artifacts/`` when the
  test fails.
- ``browser_sign_in(page, person)``: signs in through the form.

Chromium comes from Debian (``/usr/bin/chromium``, or ``BUYERSCLUB_CHROMIUM``):
Playwright cannot download its own here. Without it these tests skip, except
under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from buyersclub import create_app
from buyersclub.db import db
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("BUYERSCLUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
# Tables whose rows a migration put there: kept between tests.
SEEDED_TABLES = {"ledger_accounts", "subsidy_policies"}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so ``page`` knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# --- The live server ----------------------------------------------------------


@dataclass
class LiveServer:
    app: Flask
    url: str


def live_app(database_url: str) -> Flask:
    """The application as `make run` configures it, but with its own database."""
    environ = {"BUYERSCLUB_ENV": "development", "BUYERSCLUB_SECRET_KEY": secrets.token_urlsafe(32)}
    return create_app(
        {
            "ENVIRON": environ,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "MAIL_BACKEND": "memory",  # read with buyersclub.mail.outbox() in live_db
        }
    )


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("live") / "live.sqlite3"
    app = live_app(f"sqlite:///{database}")
    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


def empty_tables(app: Flask) -> None:
    """Delete every row the tests made (foreign keys checked only at commit, when all is gone)."""
    with app.app_context(), db.engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        for table in reversed(db.metadata.sorted_tables):
            if table.name == "subsidy_policies":
                # Keep the first version, which the migration seeds; drop the tests' own.
                connection.execute(table.delete().where(table.c.version > 1))
            elif table.name not in SEEDED_TABLES:
                connection.execute(table.delete())
    app.extensions["mail_outbox"] = []


@pytest.fixture
def live_db(live_server) -> Iterator[Flask]:
    """Seed the live server's database: real commits, emptied afterwards."""
    with live_server.app.app_context():
        try:
            yield live_server.app
        finally:
            db.session.rollback()
            db.session.remove()
            empty_tables(live_server.app)


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    name: str
    organisation: str | None = None


@pytest.fixture
def live_member(live_db) -> Person:
    """Staff of an approved member organisation, committed for the live server."""
    organisation = factories.OrganisationFactory(name="Harbour Outreach")
    user = factories.UserFactory(roles=["member"], organisation=organisation,
                                 email="staff@harbour.test", name="Sam Staff")
    person = Person(user.email, factories.PASSWORD, user.name, organisation.name)
    db.session.commit()
    return person


@pytest.fixture
def live_admin(live_db) -> Person:
    user = factories.UserFactory(roles=["admin"], email="admin@club.test", name="Ada Admin")
    person = Person(user.email, factories.PASSWORD, user.name)
    db.session.commit()
    return person


# --- The browser --------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (install it: sudo apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI runs the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        context.close()


@pytest.fixture
def browser_sign_in():
    """``browser_sign_in(page, person)``: sign in through the form, as a person would."""

    def sign_in(page, person: Person):
        page.goto("/sign-in")
        page.get_by_label("E-mail address").fill(person.email)
        page.get_by_label("Password").fill(person.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        return page

    return sign_in
