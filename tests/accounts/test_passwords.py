"""Password reset and invitations: signed links that work once."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from buyersclub import mail
from buyersclub.accounts import services
from buyersclub.accounts.models import Role, User
from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.errors import NotFound
from tests import factories

NEW_PASSWORD = "a fresh and rather long passphrase"
SAME_ANSWER = "If an account uses that address, a link to reset the password is on its way."


def _link(message, prefix: str) -> str:
    body = message.get_content()
    match = re.search(r"https?://\S+", body)
    assert match, body
    path = urlsplit(match.group(0)).path
    assert path.startswith(prefix)
    return path


def _set_password(client, path, password=NEW_PASSWORD, confirm=None):
    return client.post(path, data={"password": password, "confirm": confirm or password})


def test_reset_link_sets_the_password_once(client, session, member):
    response = client.post("/forgot-password", data={"email": member.email}, follow_redirects=True)
    assert SAME_ANSWER in response.get_data(as_text=True)
    [message] = mail.outbox()
    assert message["To"] == member.email
    assert message["Subject"] == "Reset your password"
    path = _link(message, "/reset-password/")

    form = client.get(path)
    assert form.status_code == 200
    assert member.email in form.get_data(as_text=True)

    response = _set_password(client, path)
    assert response.status_code == 302
    client.post("/sign-out")
    assert client.post("/sign-in", data={"email": member.email,
                                          "password": NEW_PASSWORD}).status_code == 302
    client.post("/sign-out")
    assert client.post("/sign-in", data={"email": member.email,
                                          "password": factories.PASSWORD}).status_code == 401

    # The link is spent: the page says so and the password cannot be changed again.
    again = client.get(path)
    assert again.status_code == 400
    assert "This link no longer works" in again.get_data(as_text=True)
    assert _set_password(client, path, "yet another long passphrase").status_code == 400


def test_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client, session):
    response = client.post("/forgot-password", data={"email": "nobody@example.test"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in"
    page = client.get("/sign-in").get_data(as_text=True)
    assert SAME_ANSWER in page
    assert mail.outbox() == []


def test_known_and_unknown_addresses_get_identical_responses(client, member):
    known = client.post("/forgot-password", data={"email": member.email})
    unknown = client.post("/forgot-password", data={"email": "nobody@example.test"})
    assert (known.status_code, known.headers["Location"]) == (
        unknown.status_code, unknown.headers["Location"])


def test_a_tampered_reset_link_does_not_work(client, member):
    token = services.make_password_token(member)
    response = client.get(f"/reset-password/{token[:-2]}xx")
    assert response.status_code == 400
    # An invitation link is not a reset link, and the other way round.
    assert client.get(f"/invitation/{token}").status_code == 400


def test_a_short_password_is_refused_beside_the_field(client, member):
    token = services.make_password_token(member)
    response = _set_password(client, f"/reset-password/{token}", "short")
    assert response.status_code == 200
    assert "Choose a password of 12 to 200 characters." in response.get_data(as_text=True)
    response = _set_password(client, f"/reset-password/{token}", NEW_PASSWORD, "different words here")
    assert "The two passwords differ." in response.get_data(as_text=True)


def test_invitation_lets_a_colleague_choose_a_password(client, session, member):
    colleague = services.invite_colleague(
        Actor.for_user(member), member.organisation_id, email="Robin@Harbour.test",
        name="Robin Colleague",
        invite_url=lambda token: f"http://club.test/invitation/{token}",
    )
    session.commit()  # the invitation goes out once the request's work is committed
    assert colleague.email == "robin@harbour.test"
    assert colleague.password_hash is None
    assert colleague.has_role(Role.MEMBER)
    assert colleague.organisation_id == member.organisation_id

    [message] = mail.outbox()
    assert message["To"] == "robin@harbour.test"
    assert "Sam Staff invited you" in message.get_content()
    path = _link(message, "/invitation/")

    assert "Welcome: choose your password" in client.get(path).get_data(as_text=True)
    assert _set_password(client, path).status_code == 302
    assert "Robin Colleague" in client.get("/account").get_data(as_text=True)
    assert client.get(path).status_code == 400  # used once


def test_nothing_is_mailed_when_the_invitation_is_rolled_back(session, member):
    services.invite_colleague(
        Actor.for_user(member), member.organisation_id, email="x@example.test",
        name="X", invite_url=lambda token: token,
    )
    session.rollback()
    assert mail.outbox() == []


def test_a_member_cannot_invite_into_another_organisation(session, member):
    other = factories.OrganisationFactory()
    with pytest.raises(NotFound):
        services.invite_colleague(Actor.for_user(member), other.id, email="x@example.test",
                                  name="X", invite_url=lambda token: token)
    assert session.scalar(select(User).where(User.email == "x@example.test")) is None


def test_an_admin_can_invite_into_any_organisation(session, admin):
    organisation = factories.OrganisationFactory()
    user = services.invite_colleague(Actor.for_user(admin), organisation.id,
                                     email="new@example.test", name="New Person",
                                     invite_url=lambda token: token)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create",
                                                    AuditEvent.entity_id == user.id))
    assert event.actor_label == admin.email
    assert event.organisation_id == organisation.id
