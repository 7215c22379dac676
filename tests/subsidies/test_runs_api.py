"""Subsidy runs in the JSON API: start, read, override, approve, discard."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.db import db
from buyersclub.ledger.models import JournalEntry
from tests.subsidies.test_runs import make_club, take


@pytest.fixture
def club(session, admin):
    return make_club(admin)


def start(client, club, headers):
    response = client.post(f"/api/v1/rounds/{club.round.id}/subsidy-runs", headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_admin_previews_overrides_and_approves(client, club, admin, auth):
    headers = auth(admin)
    run = start(client, club, headers)
    assert run["status"] == "preview"
    assert run["total_awarded"] == "500.00"
    assert run["levels"]["naloxone"] == "25/672"
    assert run["unrestricted_available"] == "500.00"
    assert run["restricted_available"]["pipes"] == "0.00"
    mine = next(award for award in run["awards"] if award["organisation_id"] == club.a.id)
    assert (mine["amount"], mine["bill"], mine["percent_of_bill"]) == ("285.71", "960.00", "29.76")
    assert mine["organisation_name"] == "Alder Outreach"
    assert mine["explanation"]["weight"] == "8/1"

    response = client.post(f"/api/v1/subsidy-runs/{run['id']}/overrides", headers=headers,
                           json={"organisation_id": club.a.id, "amount": "100.00", "reason": "Emergency"})
    assert response.status_code == 200, response.get_json()
    amounts = {award["organisation_id"]: award["amount"] for award in response.get_json()["awards"]}
    assert amounts[club.a.id] == "100.00" and amounts[club.b.id] == "400.00"
    assert response.get_json()["overrides"][0]["reason"] == "Emergency"

    read = client.get(f"/api/v1/subsidy-runs/{run['id']}", headers=headers).get_json()
    assert read["total_awarded"] == "500.00"

    approved = client.post(f"/api/v1/subsidy-runs/{run['id']}/approve", headers=headers)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved"
    assert approved.get_json()["journal_entry_id"] is not None

    again = client.post(f"/api/v1/subsidy-runs/{run['id']}/approve", headers=headers)
    assert again.status_code == 409
    late = client.post(f"/api/v1/subsidy-runs/{run['id']}/overrides", headers=headers,
                       json={"organisation_id": club.a.id, "amount": "1.00", "reason": "Late"})
    assert late.status_code == 409


def test_override_refusals(client, club, admin, auth):
    headers = auth(admin)
    run = start(client, club, headers)
    path = f"/api/v1/subsidy-runs/{run['id']}/overrides"
    missing = client.post(path, headers=headers, json={"organisation_id": club.a.id, "amount": "1.00"})
    assert missing.status_code == 400 and missing.get_json()["error"]["field"] == "reason"
    blank = client.post(path, headers=headers, json={"organisation_id": club.a.id, "amount": "1.00",
                                                      "reason": " "})
    assert blank.status_code == 400 and blank.get_json()["error"]["field"] == "reason"
    above = client.post(path, headers=headers, json={"organisation_id": club.a.id, "amount": "960.01",
                                                      "reason": "Generous"})
    assert above.status_code == 422 and above.get_json()["error"]["field"] == "amount"
    assert "960.00" in above.get_json()["error"]["message"]


def test_a_second_run_approved_for_the_round_is_409_and_one_entry_is_posted(client, club, admin, auth):
    headers = auth(admin)
    first, second = start(client, club, headers), start(client, club, headers)
    assert client.post(f"/api/v1/subsidy-runs/{first['id']}/approve", headers=headers).status_code == 200
    assert client.post(f"/api/v1/subsidy-runs/{second['id']}/approve", headers=headers).status_code == 409
    assert client.post(f"/api/v1/subsidy-runs/{second['id']}/discard", headers=headers).status_code == 200
    assert client.post(f"/api/v1/subsidy-runs/{second['id']}/discard", headers=headers).status_code == 409
    assert client.post(f"/api/v1/rounds/{club.round.id}/subsidy-runs", headers=headers).status_code == 409
    count = select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == "subsidy_award")
    assert db.session.scalar(count) == 1


def test_a_stale_preview_is_422_with_a_hint(client, club, admin, auth):
    headers = auth(admin)
    run = start(client, club, headers)
    take("100.00")
    response = client.post(f"/api/v1/subsidy-runs/{run['id']}/approve", headers=headers)
    assert response.status_code == 422
    assert "start a new run" in response.get_json()["error"]["message"]
    assert client.get(f"/api/v1/subsidy-runs/{run['id']}", headers=headers).get_json()["status"] == "preview"


def test_members_get_403_and_unknown_runs_404(client, club, admin, member, auth):
    run = start(client, club, auth(admin))
    assert client.get(f"/api/v1/subsidy-runs/{run['id']}", headers=auth(member)).status_code == 403
    started = client.post(f"/api/v1/rounds/{club.round.id}/subsidy-runs", headers=auth(member))
    assert started.status_code == 403
    assert client.get("/api/v1/subsidy-runs/999999", headers=auth(admin)).status_code == 404
    assert Decimal(run["total_awarded"]) == Decimal("500.00")
