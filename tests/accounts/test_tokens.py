"""API tokens: made on the account page or through the API, stored only as digests."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from buyersclub.accounts.models import ApiToken
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from tests import factories


def _bearer(plain: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plain}"}


def _everything_stored(session) -> str:
    """Every value of every row of every table, as one string."""
    parts = []
    for table in db.metadata.sorted_tables:
        for row in session.execute(select(table)):
            parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_create_a_token_through_the_api(client, session, member, auth):
    response = client.post("/api/v1/tokens", json={"name": "  stock sheet "}, headers=auth(member))
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "stock sheet"
    assert body["token"].startswith(body["prefix"])
    assert body["revoked_at"] is None
    assert body["last_used_at"] is None
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", body["created_at"])

    me = client.get("/api/v1/me", headers=_bearer(body["token"]))
    assert me.get_json()["email"] == member.email

    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.create",
                                                    AuditEvent.entity_id == body["id"]))
    assert event.actor_label == member.email
    assert body["token"] not in str(event.after)


def test_a_token_name_is_required(client, session, member, auth):
    headers = auth(member)
    session.commit()  # as a finished request would: a refused request rolls back to here
    response = client.post("/api/v1/tokens", json={"name": "   "}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "name"
    response = client.post("/api/v1/tokens", json={"name": "x" * 81}, headers=headers)
    assert response.get_json()["error"]["field"] == "name"
    assert client.get("/api/v1/tokens", headers=headers).get_json()["total"] == 1


def test_list_shows_only_my_tokens_and_never_a_secret(client, session, member, admin, auth):
    headers = auth(member)
    created = client.post("/api/v1/tokens", json={"name": "laptop"}, headers=headers).get_json()
    client.post("/api/v1/tokens", json={"name": "admin's"}, headers=auth(admin))

    listing = client.get("/api/v1/tokens", headers=headers)
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["total"] == 2  # the fixture's token and "laptop"
    assert [item["name"] for item in body["items"]] == ["laptop", "test"]
    assert all("token" not in item for item in body["items"])
    assert created["token"] not in listing.get_data(as_text=True)
    assert (body["page"], body["pages"]) == (1, 1)


def test_revoke_my_token(client, session, member, auth):
    headers = auth(member)
    created = client.post("/api/v1/tokens", json={"name": "old"}, headers=headers).get_json()

    response = client.post(f"/api/v1/tokens/{created['id']}/revoke", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["revoked_at"] is not None

    refused = client.get("/api/v1/me", headers=_bearer(created["token"]))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # the others still work

    # Revoking twice is harmless and audited once.
    again = client.post(f"/api/v1/tokens/{created['id']}/revoke", headers=headers)
    assert again.status_code == 200
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.revoke"))
    assert len(events.all()) == 1


def test_another_users_token_is_not_found(client, session, member, admin, auth):
    theirs = client.post("/api/v1/tokens", json={"name": "admin"}, headers=auth(admin)).get_json()
    headers = auth(member)
    session.commit()
    response = client.post(f"/api/v1/tokens/{theirs['id']}/revoke", headers=headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/me", headers=_bearer(theirs["token"])).status_code == 200
    assert client.post("/api/v1/tokens/999999/revoke", headers=headers).status_code == 404


def test_tokens_are_stored_only_as_sha256_digests(client, session, member, auth):
    headers = {**auth(member), "Idempotency-Key": "make-one"}
    plain = client.post("/api/v1/tokens", json={"name": "ci"}, headers=headers).get_json()["token"]
    client.get("/api/v1/me", headers=_bearer(plain))

    token = session.scalar(select(ApiToken).where(ApiToken.name == "ci"))
    assert token.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    stored = _everything_stored(session)
    assert plain not in stored
    assert plain[len(token.prefix):] not in stored
    assert token.prefix in stored  # only the short prefix, to tell tokens apart


def test_a_replayed_token_creation_does_not_repeat_the_secret(client, session, member, auth):
    headers = {**auth(member), "Idempotency-Key": "retry-me"}
    first = client.post("/api/v1/tokens", json={"name": "ci"}, headers=headers)
    replay = client.post("/api/v1/tokens", json={"name": "ci"}, headers=headers)
    assert replay.status_code == first.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == {**first.get_json(), "token": None}
    count = session.scalar(select(sa.func.count()).select_from(ApiToken).where(ApiToken.name == "ci"))
    assert count == 1


def test_last_used_is_noted_at_most_once_a_minute(client, session, member):
    from buyersclub.accounts.services import issue_token
    from buyersclub.actor import Actor

    token, plain = issue_token(Actor.for_user(member), member, "sync")
    assert token.last_used_at is None
    client.get("/api/v1/me", headers=_bearer(plain))
    session.refresh(token)
    first_use = token.last_used_at
    assert first_use is not None

    client.get("/api/v1/me", headers=_bearer(plain))
    session.refresh(token)
    assert token.last_used_at == first_use

    token.last_used_at = first_use - timedelta(minutes=2)
    session.flush()
    client.get("/api/v1/me", headers=_bearer(plain))
    session.refresh(token)
    assert token.last_used_at > first_use - timedelta(minutes=2)


def test_a_disabled_account_cannot_use_its_tokens(client, session, member, auth):
    headers = auth(member)
    member.is_active = False
    session.flush()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_account_page_shows_a_new_token_once(client, session, member, sign_in):
    sign_in(member)
    assert "You have no API tokens." in client.get("/account").get_data(as_text=True)

    response = client.post("/account/tokens", data={"name": "spreadsheet"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    plain = re.search(r'<code class="token" id="new-token">([^<]+)</code>', page).group(1)
    assert "It is shown only once." in page
    assert client.get("/api/v1/me", headers=_bearer(plain)).status_code == 200

    later = client.get("/account").get_data(as_text=True)
    assert plain not in later
    assert "spreadsheet" in later
    assert plain[:10] in later  # the prefix, to recognise it


def test_account_page_revokes_a_token(client, session, member, sign_in):
    sign_in(member)
    page = client.post("/account/tokens", data={"name": "old"}).get_data(as_text=True)
    plain = re.search(r'id="new-token">([^<]+)<', page).group(1)
    token = session.scalar(select(ApiToken).where(ApiToken.name == "old"))

    response = client.post(f"/account/tokens/{token.id}/revoke", follow_redirects=True)
    assert "is revoked" in response.get_data(as_text=True)
    assert "revoked</span>" in response.get_data(as_text=True)
    assert client.get("/api/v1/me", headers=_bearer(plain)).status_code == 401


def test_account_page_cannot_revoke_someone_elses_token(client, session, member, sign_in):
    other = factories.UserFactory(roles=["member"])
    from buyersclub.accounts.services import issue_token
    from buyersclub.actor import Actor

    token, _ = issue_token(Actor.for_user(other), other, "theirs")
    sign_in(member)
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 404
    session.refresh(token)
    assert token.revoked_at is None


def test_an_empty_token_name_is_refused_beside_the_field(client, member, sign_in):
    sign_in(member)
    response = client.post("/account/tokens", data={"name": ""})
    assert response.status_code == 400
    assert 'id="name-error"' in response.get_data(as_text=True)
