"""CSRF, cookie flags, secret key handling, and the command line."""

from __future__ import annotations

import re
import stat

import pytest
from sqlalchemy import select

from buyersclub import config as settings
from buyersclub.accounts.models import ApiToken, Role, User
from buyersclub.config import ConfigurationError
from tests import factories
from tests.conftest import make_app

PRODUCTION = {"BUYERSCLUB_ENV": "production", "BUYERSCLUB_SECRET_KEY": "s" * 64}


def _csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_forms_refuse_a_post_without_the_csrf_token(session, database_url, tmp_path, member):
    app = make_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()

    response = client.post("/sign-in", data={"email": member.email, "password": factories.PASSWORD})
    assert response.status_code == 400
    assert "The form expired or was sent from elsewhere" in response.get_data(as_text=True)

    token = _csrf_token(client.get("/sign-in").get_data(as_text=True))
    response = client.post("/sign-in", data={"email": member.email, "password": factories.PASSWORD,
                                             "csrf_token": token})
    assert response.status_code == 302

    # Signed in, sign-out too needs the token: a forged cross-site POST cannot sign people out.
    assert client.post("/sign-out").status_code == 400
    assert client.get("/account").status_code == 200


def test_the_api_needs_no_csrf_token(session, database_url, tmp_path, member, auth):
    app = make_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    response = app.test_client().post("/api/v1/tokens", json={"name": "sync"}, headers=auth(member))
    assert response.status_code == 201


def test_production_cookies_are_secure_httponly_and_lax(session, database_url, tmp_path, member):
    app = make_app(database_url, tmp_path, ENVIRON=dict(PRODUCTION))
    assert app.config["BUYERSCLUB_ENV"] == "production"
    client = app.test_client()
    response = client.post("/sign-in", data={"email": member.email, "password": factories.PASSWORD})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax"} <= flags


def test_development_cookies_work_over_plain_http(tmp_path):
    config = settings.load(str(tmp_path), {"BUYERSCLUB_ENV": "development"})
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["SESSION_COOKIE_HTTPONLY"] is True


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigurationError, match="BUYERSCLUB_SECRET_KEY is not set"):
        settings.load(str(tmp_path), {"BUYERSCLUB_ENV": "production"})
    with pytest.raises(ConfigurationError, match="BUYERSCLUB_SECRET_KEY"):
        settings.load(str(tmp_path), {})  # production is the default
    assert not (tmp_path / "secret_key").exists()


def test_the_factory_refuses_production_without_a_secret_key(database_url, tmp_path):
    with pytest.raises(ConfigurationError):
        make_app(database_url, tmp_path, ENVIRON={"BUYERSCLUB_ENV": "production"})


def test_development_keeps_a_generated_key_in_the_instance_folder(tmp_path):
    first = settings.load(str(tmp_path), {"BUYERSCLUB_ENV": "development"})
    second = settings.load(str(tmp_path), {"BUYERSCLUB_ENV": "development"})
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first["SECRET_KEY"] == second["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other = settings.load(str(tmp_path / "elsewhere"), {"BUYERSCLUB_ENV": "development"})
    assert other["SECRET_KEY"] != first["SECRET_KEY"]


def test_security_headers_on_pages(client):
    response = client.get("/sign-in")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert 'style="' not in response.get_data(as_text=True)  # the CSP forbids inline styles


# --- The command line -------------------------------------------------------


def test_create_admin_then_create_token(app_ctx, session, client):
    runner = app_ctx.test_cli_runner()
    result = runner.invoke(args=["create-admin", "Boss@Club.test", "--name", "Bo Boss",
                                 "--password", "a long enough password"])
    assert result.exit_code == 0, result.output
    assert "Created admin account boss@club.test." in result.output
    boss = session.scalar(select(User).where(User.email == "boss@club.test"))
    assert boss.roles == {Role.ADMIN}

    result = runner.invoke(args=["create-token", "boss@club.test", "--name", "nightly export"])
    assert result.exit_code == 0, result.output
    plain = result.output.strip()
    assert plain.startswith("bc_")

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert me.status_code == 200
    assert me.get_json()["email"] == "boss@club.test"
    assert me.get_json()["roles"] == ["admin"]
    token = session.scalar(select(ApiToken).where(ApiToken.user_id == boss.id))
    assert token.name == "nightly export"


def test_create_admin_reads_the_password_from_standard_input(app_ctx, session, client):
    result = app_ctx.test_cli_runner().invoke(
        args=["create-admin", "fin@club.test", "--finance"], input="piped in long password\n")
    assert result.exit_code == 0, result.output
    assert "Created admin, finance account fin@club.test." in result.output
    response = client.post("/sign-in", data={"email": "fin@club.test",
                                             "password": "piped in long password"})
    assert response.status_code == 302


def test_create_admin_refuses_bad_input_and_saves_nothing(app_ctx, session, admin):
    runner = app_ctx.test_cli_runner()
    result = runner.invoke(args=["create-admin", "admin@club.test", "--password", "long password x"])
    assert result.exit_code != 0
    assert "An account with this e-mail address already exists. (email)" in result.output

    result = runner.invoke(args=["create-admin", "new@club.test", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert session.scalar(select(User).where(User.email == "new@club.test")) is None


def test_create_token_for_an_unknown_account(app_ctx, session):
    result = app_ctx.test_cli_runner().invoke(args=["create-token", "nobody@club.test"])
    assert result.exit_code != 0
    assert "No account with the e-mail address nobody@club.test." in result.output


def test_processes_starting_together_share_one_whole_development_key(tmp_path):
    """Several workers starting on a fresh instance folder all get the same key."""
    from concurrent.futures import ProcessPoolExecutor

    from buyersclub.config import load

    environ = {"BUYERSCLUB_ENV": "development"}
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(load, [str(tmp_path)] * 8, [environ] * 8))
    secrets_seen = {config["SECRET_KEY"] for config in keys}
    assert len(secrets_seen) == 1
    assert len(secrets_seen.pop()) >= 64
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]


def test_behind_a_trusted_proxy_throttling_sees_the_client_address(database_url, tmp_path):
    from buyersclub.accounts.models import LoginAttempt
    from buyersclub.db import db
    from tests.conftest import make_app

    app = make_app(database_url, tmp_path, TRUSTED_PROXIES=1)
    with app.app_context():
        client = app.test_client()
        client.post("/sign-in", data={"email": "nobody@example.test", "password": "wrong"},
                    headers={"X-Forwarded-For": "203.0.113.7"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
        attempt = db.session.scalars(
            select(LoginAttempt).where(LoginAttempt.email == "nobody@example.test")).one()
        assert attempt.address == "203.0.113.7"
        db.session.delete(attempt)
        db.session.commit()
        db.engine.dispose()


def test_without_trusted_proxies_forwarded_headers_are_ignored(client):
    from buyersclub.accounts.models import LoginAttempt
    from buyersclub.db import db

    client.post("/sign-in", data={"email": "spoof@example.test", "password": "wrong"},
                headers={"X-Forwarded-For": "203.0.113.9"})
    attempt = db.session.scalars(select(LoginAttempt).where(LoginAttempt.email == "spoof@example.test")).one()
    assert attempt.address != "203.0.113.9"


def test_trusted_proxies_must_be_a_number(tmp_path):
    with pytest.raises(settings.ConfigurationError, match="BUYERSCLUB_TRUSTED_PROXIES"):
        settings.load(str(tmp_path), {"BUYERSCLUB_ENV": "development", "BUYERSCLUB_TRUSTED_PROXIES": "yes"})


def test_paper_size_is_a4_or_letter(tmp_path):
    environ = {"BUYERSCLUB_ENV": "development"}
    assert settings.load(str(tmp_path), environ)["PAPER_SIZE"] == "A4"
    letter = settings.load(str(tmp_path), {**environ, "BUYERSCLUB_PAPER_SIZE": "letter"})
    assert letter["PAPER_SIZE"] == "Letter"
    with pytest.raises(settings.ConfigurationError, match="BUYERSCLUB_PAPER_SIZE"):
        settings.load(str(tmp_path), {**environ, "BUYERSCLUB_PAPER_SIZE": "A5"})


def test_invoice_settings_from_the_environment(tmp_path):
    from decimal import Decimal

    environ = {"BUYERSCLUB_ENV": "development", "BUYERSCLUB_TAX_RATES": "us-ma=0.0625, US=0",
               "BUYERSCLUB_INVOICE_NET_DAYS": "14", "BUYERSCLUB_INVOICE_PREFIX": "BC"}
    config = settings.load(str(tmp_path), environ)
    assert config["INVOICE_TAX_RATES"] == {"US-MA": Decimal("0.0625"), "US": Decimal("0")}
    numbering = (config["INVOICE_NET_DAYS"], config["INVOICE_PREFIX"], config["CREDIT_NOTE_PREFIX"])
    assert numbering == (14, "BC", "CN")
    for bad in ("US-MA=6.25", "US-MA", "=0.1", "US-MA=abc"):
        with pytest.raises(settings.ConfigurationError, match="BUYERSCLUB_TAX_RATES"):
            settings.load(str(tmp_path), {**environ, "BUYERSCLUB_TAX_RATES": bad})


def test_payment_and_document_settings_from_the_environment(tmp_path):
    environ = {"BUYERSCLUB_ENV": "development"}
    plain = settings.load(str(tmp_path), environ)
    assert plain["STRIPE_SECRET_KEY"] is None and plain["CLUB_BANK_DETAILS"] is None
    assert plain["REMINDER_INTERVAL_DAYS"] == 7 and plain["PDF_WORKERS"] == 2
    config = settings.load(str(tmp_path), {
        **environ, "BUYERSCLUB_CLUB_ADDRESS": " 1 Harbour Road \\n Portland ME 04101 ",
        "BUYERSCLUB_BANK_DETAILS": "Account 12345678\\nRouting 021000021",
        "BUYERSCLUB_STRIPE_SECRET_KEY": "sk_live_x", "BUYERSCLUB_STRIPE_WEBHOOK_SECRET": "whsec_x",
        "BUYERSCLUB_STRIPE_CHECKOUT_ORIGIN": "https://pay.example.org/",
        "BUYERSCLUB_REMINDER_INTERVAL_DAYS": "14", "BUYERSCLUB_PDF_WORKERS": "4"})
    assert config["CLUB_ADDRESS"] == "1 Harbour Road\nPortland ME 04101"
    assert config["CLUB_BANK_DETAILS"] == "Account 12345678\nRouting 021000021"
    assert (config["STRIPE_SECRET_KEY"], config["STRIPE_WEBHOOK_SECRET"]) == ("sk_live_x", "whsec_x")
    assert config["STRIPE_CHECKOUT_ORIGIN"] == "https://pay.example.org"
    assert (config["REMINDER_INTERVAL_DAYS"], config["PDF_WORKERS"]) == (14, 4)
    with pytest.raises(settings.ConfigurationError, match="BUYERSCLUB_REMINDER_INTERVAL_DAYS"):
        settings.load(str(tmp_path), {**environ, "BUYERSCLUB_REMINDER_INTERVAL_DAYS": "weekly"})
