"""The fund in the JSON API: balances, grants, reversal, and who may do what."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from buyersclub.actor import Actor
from buyersclub.ledger.chart import SUBSIDIES_GIVEN
from buyersclub.ledger.services import Line, post_entry
from subsidies import fund
from tests.factories import UserFactory

GRANT = {"source": "County opioid settlement", "amount": "1500.00", "received_on": "2026-03-02",
         "restricted_to": "naloxone", "note": "Ref COS-7"}


def test_finance_records_a_grant_and_sees_it_in_the_balances(client, finance, auth):
    headers = auth(finance)

    created = client.post("/api/v1/fund/grants", json=GRANT, headers=headers)

    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["amount"] == "1500.00"
    assert body["restricted_to"] == "naloxone"
    assert body["received_on"] == "2026-03-02"
    assert body["reversed"] is False and body["reversal_entry_id"] is None
    assert body["journal_entry_id"]

    balances = client.get("/api/v1/fund", headers=headers).get_json()
    assert balances["currency"] == "USD"
    assert balances["total"] == "1500.00"
    assert balances["balances"][0] == {"restricted_to": None, "available": "0.00"}
    by_restriction = {row["restricted_to"]: row["available"] for row in balances["balances"]}
    assert by_restriction == {None: "0.00", "pipes": "0.00", "naloxone": "1500.00",
                              "oxygen": "0.00", "other": "0.00"}


def test_the_same_idempotency_key_records_the_grant_once(client, finance, auth):
    headers = {**auth(finance), "Idempotency-Key": "grant-cos-7"}
    first = client.post("/api/v1/fund/grants", json=GRANT, headers=headers)
    again = client.post("/api/v1/fund/grants", json=GRANT, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert fund.available("naloxone") == Decimal("1500.00")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 1500.5}, "amount"),  # a JSON number is refused: money is a string
        ({"amount": "1500.505"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"source": ""}, "source"),
        ({"received_on": "2999-01-01"}, "received_on"),
        ({"received_on": "yesterday"}, "received_on"),
        ({"restricted_to": "syringes"}, "restricted_to"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_grants_are_refused_naming_the_field(client, finance, auth, changes, field):
    response = client.post("/api/v1/fund/grants", json={**GRANT, **changes}, headers=auth(finance))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert fund.balances()["naloxone"] == Decimal("0.00")


def test_a_missing_field_is_named(client, finance, auth):
    body = {key: value for key, value in GRANT.items() if key != "amount"}
    response = client.post("/api/v1/fund/grants", json=body, headers=auth(finance))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "amount"


def test_who_may_read_and_record(client, admin, finance, member, auth):
    # Finance records grants (API.md); admins read the fund but do not record money received.
    assert client.post("/api/v1/fund/grants", json=GRANT, headers=auth(admin)).status_code == 403
    assert client.post("/api/v1/fund/grants", json=GRANT, headers=auth(member)).status_code == 403
    assert client.get("/api/v1/fund", headers=auth(member)).status_code == 403
    assert client.get("/api/v1/fund/grants", headers=auth(member)).status_code == 403
    assert client.get("/api/v1/fund").status_code == 401
    assert client.get("/api/v1/fund", headers=auth(admin)).status_code == 200
    assert client.get("/api/v1/fund/grants", headers=auth(admin)).status_code == 200
    grant = client.post("/api/v1/fund/grants", json=GRANT, headers=auth(finance)).get_json()
    reverse = f"/api/v1/fund/grants/{grant['id']}/reverse"
    assert client.post(reverse, json={"reason": "x"}, headers=auth(admin)).status_code == 403
    assert client.post(reverse, json={"reason": "x"}, headers=auth(member)).status_code == 403
    assert fund.available("naloxone") == Decimal("1500.00")


def test_grants_list_newest_first_paginated_and_filtered(client, finance, auth):
    headers = auth(finance)
    for day, restriction in ((1, None), (2, "pipes"), (3, "naloxone"), (4, None)):
        body = {**GRANT, "received_on": f"2026-03-0{day}", "restricted_to": restriction,
                "source": f"Donor {day}"}
        assert client.post("/api/v1/fund/grants", json=body, headers=headers).status_code == 201

    page = client.get("/api/v1/fund/grants?per_page=3", headers=headers).get_json()
    assert (page["total"], page["pages"], page["page"]) == (4, 2, 1)
    assert [item["source"] for item in page["items"]] == ["Donor 4", "Donor 3", "Donor 2"]

    unrestricted = client.get("/api/v1/fund/grants?restricted_to=none", headers=headers).get_json()
    assert [item["source"] for item in unrestricted["items"]] == ["Donor 4", "Donor 1"]
    pipes = client.get("/api/v1/fund/grants?restricted_to=pipes", headers=headers).get_json()
    assert [item["source"] for item in pipes["items"]] == ["Donor 2"]
    bad = client.get("/api/v1/fund/grants?restricted_to=syringes", headers=headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "restricted_to"


def test_reversing_a_grant_through_the_api(client, finance, auth):
    headers = auth(finance)
    grant = client.post("/api/v1/fund/grants", json=GRANT, headers=headers).get_json()
    path = f"/api/v1/fund/grants/{grant['id']}/reverse"

    assert client.post(path, json={}, headers=headers).get_json()["error"]["field"] == "reason"
    reversed_ = client.post(path, json={"reason": "Recorded twice"}, headers=headers)

    assert reversed_.status_code == 200
    body = reversed_.get_json()
    assert body["reversed"] is True and body["reversal_entry_id"]
    assert client.get("/api/v1/fund", headers=headers).get_json()["total"] == "0.00"
    listed = client.get("/api/v1/fund/grants", headers=headers).get_json()["items"][0]
    assert listed["reversed"] is True
    again = client.post(path, json={"reason": "Recorded twice"}, headers=headers)
    assert again.status_code == 409
    assert client.post("/api/v1/fund/grants/999/reverse", json={"reason": "x"},
                       headers=headers).status_code == 404


def test_a_reversal_the_fund_cannot_cover_is_refused_with_422(client, finance, auth):
    headers = auth(finance)
    grant = client.post("/api/v1/fund/grants", json=GRANT, headers=headers).get_json()
    post_entry(Actor.system("test"), entry_date=date(2026, 3, 5), memo="awards", kind="subsidy_awards",
               lines=[Line(fund.account_for("naloxone"), Decimal("1000.00")),
                      Line(SUBSIDIES_GIVEN, Decimal("-1000.00"))])

    refused = client.post(f"/api/v1/fund/grants/{grant['id']}/reverse",
                          json={"reason": "Wrong amount"}, headers=headers)

    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "fund_insufficient"
    assert "$500.00" in refused.get_json()["error"]["message"]
    assert fund.available("naloxone") == Decimal("500.00")


def test_a_person_with_both_roles_may_record(client, auth):
    both = UserFactory(roles=["admin", "finance"])
    assert client.post("/api/v1/fund/grants", json=GRANT, headers=auth(both)).status_code == 201
