"""Policy versions in the JSON API (admin only)."""

from __future__ import annotations

import copy

from subsidies.policy import DEFAULT_MAX_SHARE, DEFAULT_PRIORITY, DEFAULT_WEIGHTS

BODY = {
    "weights": DEFAULT_WEIGHTS,
    "max_share": {**DEFAULT_MAX_SHARE, "pipes": "0.80"},
    "priority": DEFAULT_PRIORITY,
    "floor_amount": "10.00",
    "member_cap": None,
    "note": "Pipes up to 80%",
}


def test_admins_read_the_current_policy_and_save_a_new_version(client, admin, auth):
    headers = auth(admin)
    current = client.get("/api/v1/subsidy-policies/current", headers=headers).get_json()
    assert current["version"] == 1 and current["current"] is True
    assert current["max_share"]["pipes"] == "0.75"
    assert current["floor_amount"] == "0.00" and current["member_cap"] is None

    created = client.post("/api/v1/subsidy-policies", json={**BODY, "based_on_version": 1},
                          headers=headers)

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["version"], body["current"]) == (2, True)
    assert body["max_share"]["pipes"] == "0.8"
    assert body["floor_amount"] == "10.00"
    listed = client.get("/api/v1/subsidy-policies", headers=headers).get_json()
    assert listed["total"] == 2
    assert [(item["version"], item["current"]) for item in listed["items"]] == [(2, True), (1, False)]
    assert listed["items"][1]["max_share"]["pipes"] == "0.75"  # unchanged
    old = client.get("/api/v1/subsidy-policies/1", headers=headers).get_json()
    assert old["version"] == 1 and old["current"] is False
    assert client.get("/api/v1/subsidy-policies/9", headers=headers).status_code == 404


def test_bad_policies_are_refused_naming_the_field(client, admin, auth):
    headers = auth(admin)
    weights = copy.deepcopy(DEFAULT_WEIGHTS)
    weights["base"] = "0"
    cases = [
        ({"max_share": {**DEFAULT_MAX_SHARE, "pipes": "1.5"}}, "max_share.pipes"),
        ({"max_share": {**DEFAULT_MAX_SHARE, "pipes": 0.5}}, "max_share.pipes"),
        ({"weights": weights}, "weights.base"),
        ({"priority": ["pipes", "pipes", "naloxone", "other"]}, "priority"),
        ({"member_cap": "0.00"}, "member_cap"),
        ({"floor_amount": 5}, "floor_amount"),
    ]
    for changes, field in cases:
        response = client.post("/api/v1/subsidy-policies", json={**BODY, **changes}, headers=headers)
        assert response.status_code == 400, (changes, response.get_json())
        assert response.get_json()["error"]["field"] == field
    assert client.get("/api/v1/subsidy-policies", headers=headers).get_json()["total"] == 1


def test_a_save_based_on_an_old_version_is_409(client, admin, auth):
    headers = auth(admin)
    assert client.post("/api/v1/subsidy-policies", json=BODY, headers=headers).status_code == 201
    stale = client.post("/api/v1/subsidy-policies", json={**BODY, "based_on_version": 1},
                        headers=headers)
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "policy_changed"


def test_only_admins_see_and_change_the_policy(client, finance, member, auth):
    for user in (finance, member):
        headers = auth(user)
        assert client.get("/api/v1/subsidy-policies", headers=headers).status_code == 403
        assert client.get("/api/v1/subsidy-policies/current", headers=headers).status_code == 403
        assert client.post("/api/v1/subsidy-policies", json=BODY, headers=headers).status_code == 403
