"""The ledger's JSON API: trial balance and journal, for finance and admins only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from buyersclub.actor import Actor
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line, post_entry, reverse_entry

D = Decimal


@pytest.fixture
def books(session, member):
    """A grant in January and an invoice to the member's organisation in February."""
    system = Actor.system("test")
    grant = post_entry(system, entry_date=date(2026, 1, 10), memo="City grant", kind="grant",
                       lines=[Line(chart.CASH, D("1000.00")),
                              Line(chart.FUND_UNRESTRICTED, D("-1000.00"))])
    invoice = post_entry(system, entry_date=date(2026, 2, 3), memo="Invoice 2026-0001",
                         kind="invoice", source=("invoice", 1), lines=[
        Line(chart.RECEIVABLES, D("960.00"), organisation_id=member.organisation_id),
        Line(chart.SALES, D("-960.00"), memo="24 boxes naloxone"),
    ])
    return grant, invoice


def test_trial_balance_for_finance(client, finance, auth, books):
    response = client.get("/api/v1/ledger/trial-balance", headers=auth(finance))

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"as_of", "accounts", "total_debit", "total_credit", "balanced"}
    assert body["as_of"] is None
    assert body["balanced"] is True
    assert body["total_debit"] == body["total_credit"] == "1960.00"
    accounts = {row["code"]: row for row in body["accounts"]}
    assert len(accounts) == len(chart.CHART)
    assert accounts[chart.CASH] == {"code": "1000", "name": "Bank", "type": "asset",
                                    "debit": "1000.00", "credit": "0.00", "balance": "1000.00"}
    assert accounts[chart.SALES]["balance"] == "-960.00"
    assert accounts[chart.SHIPPING_COSTS]["debit"] == "0.00"
    for row in body["accounts"]:
        for key in ("debit", "credit", "balance"):
            assert isinstance(row[key], str)
            assert row[key] == f"{D(row[key]):.2f}"


def test_trial_balance_as_of_a_date(client, admin, auth, books):
    response = client.get("/api/v1/ledger/trial-balance?as_of=2026-01-31", headers=auth(admin))
    assert response.status_code == 200
    body = response.get_json()
    assert body["as_of"] == "2026-01-31"
    assert body["total_debit"] == "1000.00"
    assert {row["code"]: row["balance"] for row in body["accounts"]}[chart.RECEIVABLES] == "0.00"


@pytest.mark.parametrize("as_of", ["31/01/2026", "2026-02-30", "yesterday"])
def test_a_bad_as_of_is_refused_naming_the_field(client, finance, auth, as_of):
    response = client.get(f"/api/v1/ledger/trial-balance?as_of={as_of}", headers=auth(finance))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "as_of"
    assert "YYYY-MM-DD" in error["message"]


@pytest.mark.parametrize(
    "path", ["/api/v1/ledger/trial-balance", "/api/v1/ledger/entries", "/api/v1/ledger/entries/1"]
)
def test_members_may_not_read_the_ledger(client, member, auth, books, path):
    response = client.get(path, headers=auth(member))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_the_ledger_needs_a_token(client):
    assert client.get("/api/v1/ledger/trial-balance").status_code == 401


def test_entries_newest_first_with_postings(client, finance, auth, books):
    grant, invoice = books
    response = client.get("/api/v1/ledger/entries", headers=auth(finance))

    assert response.status_code == 200
    body = response.get_json()
    assert (body["page"], body["pages"], body["total"]) == (1, 1, 2)
    assert [item["id"] for item in body["items"]] == [invoice.id, grant.id]
    first = body["items"][0]
    assert first["memo"] == "Invoice 2026-0001"
    assert (first["source_type"], first["source_id"]) == ("invoice", 1)
    assert first["total"] == "960.00"
    assert first["postings"][0]["account_code"] == chart.RECEIVABLES
    assert first["postings"][0]["debit"] == "960.00"
    assert first["postings"][1] | {"id": None} == {
        "id": None, "account_code": chart.SALES, "account_name": "Sales to members at club price",
        "organisation_id": None, "amount": "-960.00", "debit": "0.00", "credit": "960.00",
        "memo": "24 boxes naloxone"}


def test_entries_filtered_by_kind_and_paginated(client, finance, auth, books):
    grant, _ = books
    body = client.get("/api/v1/ledger/entries?kind=grant", headers=auth(finance)).get_json()
    assert [item["id"] for item in body["items"]] == [grant.id]
    page = client.get("/api/v1/ledger/entries?per_page=1&page=2", headers=auth(finance)).get_json()
    assert (page["pages"], page["total"], [i["id"] for i in page["items"]]) == (2, 2, [grant.id])


def test_one_entry_and_its_reversal(client, finance, auth, books):
    grant, _ = books
    reversal = reverse_entry(Actor.for_user(finance), grant.id, "Grant withdrawn")

    original = client.get(f"/api/v1/ledger/entries/{grant.id}", headers=auth(finance)).get_json()
    assert original["reversed_by_id"] == reversal.id
    assert original["reverses_id"] is None
    undo = client.get(f"/api/v1/ledger/entries/{reversal.id}", headers=auth(finance)).get_json()
    assert undo["kind"] == "reversal"
    assert undo["reverses_id"] == grant.id
    assert [p["amount"] for p in undo["postings"]] == ["-1000.00", "1000.00"]


def test_an_unknown_entry_is_404(client, finance, auth):
    response = client.get("/api/v1/ledger/entries/424242", headers=auth(finance))
    assert response.status_code == 404


def test_the_endpoints_are_in_the_openapi_document(client, finance, auth):
    paths = client.get("/api/v1/openapi.json", headers=auth(finance)).get_json()["paths"]
    assert "/api/v1/ledger/trial-balance" in paths
    assert "/api/v1/ledger/entries/{entry_id}" in paths
