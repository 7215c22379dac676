"""The JSON API's conventions (API.md), on real endpoints and on a test-only one."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from buyersclub.accounts.services import issue_token, revoke_token
from buyersclub.actor import Actor
from buyersclub.api.models import IdempotencyRecord
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from tests import factories
from tests.api import conftest as api_conftest

PARCEL = {"name": "naloxone kits", "quantity": 3}


def assert_error(response, status: int, code: str | None = None, field: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    return body["error"]


def _parcels_packed(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "test.parcel_packed"))


# --- Authentication ---------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "Basic dXNlcjpwYXNz",
                                    "bc_abc"])
def test_no_or_malformed_authorization_is_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/api/v1/me", headers=headers)
    error = assert_error(response, 401, "unauthenticated")
    assert "Bearer" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401(client, session):
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer bc_made-up"})
    assert_error(response, 401, "unauthenticated")


def test_revoked_token_is_401(client, session, member):
    token, plain = issue_token(Actor.for_user(member), member, "old")
    revoke_token(Actor.for_user(member), token.id)
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    error = assert_error(response, 401, "unauthenticated")
    assert "revoked" in error["message"]


def test_the_bearer_scheme_is_case_insensitive(client, member):
    _, plain = issue_token(Actor.for_user(member), member, "x")
    assert client.get("/api/v1/me", headers={"Authorization": f"bearer {plain}"}).status_code == 200


def test_a_signed_in_browser_session_is_not_an_api_token(client, member, sign_in):
    sign_in(member)
    assert_error(client.get("/api/v1/me"), 401, "unauthenticated")


# --- Roles, unknown paths, methods -------------------------------------------


def test_a_missing_role_is_403(api, session, member, finance, auth):
    for user in (member, finance):
        response = api.post("/api/v1/test/parcels", json=PARCEL, headers=auth(user))
        error = assert_error(response, 403, "forbidden")
        assert "admin" in error["message"]
    assert _parcels_packed(session) == 0


def test_the_role_is_checked_before_the_body(api, member, auth):
    response = api.post("/api/v1/test/parcels", data="{not json", headers=auth(member))
    assert_error(response, 403, "forbidden")


def test_unknown_api_path_is_404_json(client, session, member, auth):
    headers = auth(member)
    session.commit()  # as a finished request would: a refused request rolls back to here
    assert_error(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error(client.get("/api/v1/no-such-thing", headers=headers), 404, "not_found")
    assert_error(client.get("/api/v1/tokens/1/revoke/more"), 404, "not_found")


def test_wrong_method_is_405_json(client, member, auth):
    assert_error(client.delete("/api/v1/me", headers=auth(member)), 405, "method_not_allowed")


def test_pages_outside_the_api_keep_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


# --- Bodies -----------------------------------------------------------------


def test_malformed_json_is_400(api, session, admin, auth):
    response = api.post("/api/v1/test/parcels", data='{"name": "kits",',
                        content_type="application/json", headers=auth(admin))
    error = assert_error(response, 400, "malformed_json")
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("body", ["[1, 2]", '"parcel"', "42", "null", ""])
def test_a_body_that_is_not_an_object_is_400(api, session, admin, auth, body):
    response = api.post("/api/v1/test/parcels", data=body, content_type="application/json",
                        headers=auth(admin))
    error = assert_error(response, 400, "malformed_json")
    assert "JSON object" in error["message"]


def test_malformed_json_on_a_real_endpoint(client, session, member, auth):
    headers = auth(member)
    session.commit()
    response = client.post("/api/v1/tokens", data="{oops", content_type="application/json",
                           headers=headers)
    assert_error(response, 400, "malformed_json")
    response = client.post("/api/v1/tokens", json=["laptop"], headers=headers)
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"quantity": 3}, "name", "name is required"),
        ({"name": "kits", "quantity": 0}, "quantity", "greater than or equal to 1"),
        ({"name": "kits", "quantity": "three"}, "quantity", "valid integer"),
        ({"name": "kits", "quantity": 3, "colour": "red"}, "colour", "not a field"),
    ],
)
def test_validation_errors_name_the_field(api, session, admin, auth, body, field, words):
    response = api.post("/api/v1/test/parcels", json=body, headers=auth(admin))
    error = assert_error(response, 400, "invalid", field=field)
    assert words in error["message"]
    assert _parcels_packed(session) == 0


def test_a_good_request_does_the_work(api, session, admin, auth):
    response = api.post("/api/v1/test/parcels", json=PARCEL, headers=auth(admin))
    assert response.status_code == 201
    assert response.get_json()["name"] == "naloxone kits"
    assert "Idempotent-Replayed" not in response.headers
    assert _parcels_packed(session) == 1


# --- Idempotency-Key ----------------------------------------------------------


def test_same_key_and_body_replays_the_first_response(api, session, admin, auth):
    headers = {**auth(admin), "Idempotency-Key": "parcel-1"}
    first = api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    second = api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _parcels_packed(session) == 1


def test_same_key_with_another_body_is_409(api, session, admin, auth):
    headers = {**auth(admin), "Idempotency-Key": "parcel-2"}
    api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    response = api.post("/api/v1/test/parcels", json={**PARCEL, "quantity": 4}, headers=headers)
    error = assert_error(response, 409, "idempotency_key_reused", field="Idempotency-Key")
    assert "different request" in error["message"]
    assert _parcels_packed(session) == 1


def test_without_a_key_each_post_does_the_work(api, session, admin, auth):
    headers = auth(admin)
    api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    assert _parcels_packed(session) == 2


def test_keys_belong_to_their_user(api, session, admin, auth):
    other_admin = factories.UserFactory(roles=["admin"])
    api.post("/api/v1/test/parcels", json=PARCEL, headers={**auth(admin), "Idempotency-Key": "k"})
    response = api.post("/api/v1/test/parcels", json=PARCEL,
                        headers={**auth(other_admin), "Idempotency-Key": "k"})
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert _parcels_packed(session) == 2


def test_a_refused_request_is_not_remembered(api, session, admin, auth):
    headers = {**auth(admin), "Idempotency-Key": "try-again"}
    session.commit()  # as a finished request would: a refused request rolls back to here
    refused = api.post("/api/v1/test/parcels", json={"name": "kits", "quantity": 0}, headers=headers)
    assert refused.status_code == 400
    accepted = api.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
    assert accepted.status_code == 201
    assert "Idempotent-Replayed" not in accepted.headers


def test_an_overlong_key_is_400(client, session, member, auth):
    response = client.post("/api/v1/tokens", json={"name": "x"},
                           headers={**auth(member), "Idempotency-Key": "k" * 256})
    assert_error(response, 400, "invalid", field="Idempotency-Key")


def test_replay_on_a_real_endpoint(client, session, member, auth):
    headers = {**auth(member), "Idempotency-Key": "revoke-old"}
    session.commit()
    created = client.post("/api/v1/tokens", json={"name": "old"}, headers=auth(member)).get_json()
    first = client.post(f"/api/v1/tokens/{created['id']}/revoke", headers=headers)
    second = client.post(f"/api/v1/tokens/{created['id']}/revoke", headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert (second.status_code, second.get_data()) == (first.status_code, first.get_data())
    # The same key on another path is a different request.
    other = client.post("/api/v1/tokens", json={"name": "new"}, headers=headers)
    assert_error(other, 409, "idempotency_key_reused", field="Idempotency-Key")


@pytest.mark.postgres_only
def test_concurrent_replays_do_the_work_once(committing_db, conventions_app):
    admin = factories.UserFactory(roles=["admin"])
    _, plain = issue_token(Actor.system("test"), admin, "race")
    db.session.commit()
    headers = {"Authorization": f"Bearer {plain}", "Idempotency-Key": "double-click"}
    api_conftest.meeting_point.append(threading.Barrier(2))
    responses = []

    def post():
        client = conventions_app.test_client()
        response = client.post("/api/v1/test/parcels", json=PARCEL, headers=headers)
        responses.append((response.status_code, response.get_data(), response.headers))

    try:
        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        api_conftest.meeting_point.clear()

    assert len(responses) == 2
    (status_a, body_a, headers_a), (status_b, body_b, headers_b) = responses
    assert status_a == status_b == 201
    assert body_a == body_b
    replayed = [headers.get("Idempotent-Replayed") for headers in (headers_a, headers_b)]
    assert sorted(replayed, key=str) == sorted([None, "true"], key=str)
    # The replay that replaced a failed commit is finalised like any response.
    assert all("Content-Security-Policy" in headers for headers in (headers_a, headers_b))
    assert _parcels_packed(db.session) == 1
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


# --- Pagination ---------------------------------------------------------------


def _many_tokens(member, count):
    for number in range(count):
        issue_token(Actor.for_user(member), member, f"token {number}")


def test_pagination(client, session, member, auth):
    headers = auth(member)
    _many_tokens(member, 4)  # five with the one behind ``headers``
    body = client.get("/api/v1/tokens?per_page=2", headers=headers).get_json()
    assert (body["page"], body["pages"], body["total"], len(body["items"])) == (1, 3, 5, 2)
    last = client.get("/api/v1/tokens?per_page=2&page=3", headers=headers).get_json()
    assert (last["page"], len(last["items"])) == (3, 1)
    seen = {item["id"] for page in (1, 2, 3) for item in client.get(
        f"/api/v1/tokens?per_page=2&page={page}", headers=headers).get_json()["items"]}
    assert len(seen) == 5
    beyond = client.get("/api/v1/tokens?page=9", headers=headers).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 5)
    assert client.get("/api/v1/tokens?per_page=200", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [("per_page=201", "per_page"), ("per_page=0", "per_page"), ("per_page=ten", "per_page"),
     ("page=0", "page"), ("page=-1", "page"), ("page=1.5", "page"), ("page=two", "page")],
)
def test_bad_pagination_is_400_naming_the_field(client, member, auth, query, field):
    response = client.get(f"/api/v1/tokens?{query}", headers=auth(member))
    assert_error(response, 400, "invalid", field=field)
