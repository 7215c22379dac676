"""Signing in and out, wrong passwords, and throttling by account and by address."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from buyersclub.accounts.models import LoginAttempt
from tests import factories

WRONG = "not the right password"


def _sign_in(client, email, password, address="127.0.0.1"):
    return client.post(
        "/sign-in",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _attempts(session, **where):
    statement = select(LoginAttempt).order_by(LoginAttempt.id)
    for name, value in where.items():
        statement = statement.where(getattr(LoginAttempt, name) == value)
    return session.scalars(statement).all()


def test_sign_in_and_out(client, member):
    response = _sign_in(client, member.email, factories.PASSWORD)
    assert response.status_code == 302
    assert "Sam Staff" in client.get("/account").get_data(as_text=True)

    response = client.post("/sign-out", follow_redirects=True)
    assert "You are signed out." in response.get_data(as_text=True)
    assert client.get("/account").status_code == 302  # back to the sign-in page


def test_sign_in_is_case_insensitive_about_the_address(client, member):
    assert _sign_in(client, member.email.upper(), factories.PASSWORD).status_code == 302


def test_sign_in_goes_back_to_the_page_asked_for_but_not_elsewhere(client, member):
    response = client.post("/sign-in?next=/account",
                           data={"email": member.email, "password": factories.PASSWORD})
    assert response.headers["Location"] == "/account"
    client.post("/sign-out")
    response = client.post("/sign-in?next=//evil.test/x",
                           data={"email": member.email, "password": factories.PASSWORD})
    assert response.headers["Location"] == "/"


def test_wrong_password_is_refused_clearly_and_recorded(client, session, member):
    response = _sign_in(client, member.email, WRONG)
    assert response.status_code == 401
    assert "That e-mail address and password do not match an account." in response.get_data(
        as_text=True
    )
    attempts = _attempts(session, email=member.email)
    assert [attempt.succeeded for attempt in attempts] == [False]
    assert client.get("/account").status_code == 302  # still signed out


def test_unknown_address_gets_the_same_message(client):
    response = _sign_in(client, "nobody@example.test", WRONG)
    assert response.status_code == 401
    assert "do not match an account" in response.get_data(as_text=True)


def test_an_invited_account_without_a_password_cannot_sign_in(client, session):
    user = factories.UserFactory(password_hash=None, roles=["member"])
    assert _sign_in(client, user.email, "").status_code == 200  # the form asks for a password
    assert _sign_in(client, user.email, WRONG).status_code == 401


def test_five_failures_for_an_account_pause_it_even_from_other_addresses(client, session, member):
    for number in range(5):
        assert _sign_in(client, member.email, WRONG, address=f"10.0.0.{number}").status_code == 401

    response = _sign_in(client, member.email, factories.PASSWORD, address="10.9.9.9")
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "Too many failed sign-ins" in page
    assert "15 minutes" in page
    assert client.get("/account").status_code == 302

    # Another account from a fresh address is not affected.
    other = factories.UserFactory(roles=["member"])
    assert _sign_in(client, other.email, factories.PASSWORD, address="10.8.8.8").status_code == 302


def test_the_pause_ends_when_the_window_passes(client, session, member):
    for _ in range(5):
        _sign_in(client, member.email, WRONG)
    assert _sign_in(client, member.email, factories.PASSWORD).status_code == 429

    for attempt in _attempts(session, email=member.email):
        attempt.attempted_at -= timedelta(minutes=16)
    session.flush()
    assert _sign_in(client, member.email, factories.PASSWORD).status_code == 302


def test_four_failures_do_not_pause(client, member):
    for _ in range(4):
        _sign_in(client, member.email, WRONG)
    assert _sign_in(client, member.email, factories.PASSWORD).status_code == 302


def test_five_failures_from_one_address_pause_that_address(client, session, member):
    for number in range(5):
        response = _sign_in(client, f"guess{number}@example.test", WRONG, address="192.0.2.7")
        assert response.status_code == 401

    response = _sign_in(client, member.email, factories.PASSWORD, address="192.0.2.7")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    # The account itself is fine from another address.
    assert _sign_in(client, member.email, factories.PASSWORD, address="192.0.2.8").status_code == 302


def test_a_successful_sign_in_is_recorded(client, session, member):
    _sign_in(client, member.email, factories.PASSWORD)
    assert [attempt.succeeded for attempt in _attempts(session, email=member.email)] == [True]
    assert member.last_sign_in_at is not None
