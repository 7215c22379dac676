"""The close endpoints of the JSON API: preview, close, allocations; roles and states."""

from __future__ import annotations

import pytest

from buyersclub.actor import Actor
from orders.services import commitments
from tests import factories
from tests.orders.test_closing import member_of, open_round


@pytest.fixture
def auth(auth, session):
    """Headers for a user, with the set-up committed so a refused request keeps it."""

    def _headers(user):
        headers = auth(user)
        session.commit()
        return headers

    return _headers


@pytest.fixture
def naloxone(session):
    return factories.ProductFactory(supplier=factories.SupplierFactory(), name="Naloxone nasal spray")


@pytest.fixture
def example(session, admin, naloxone):
    found = open_round(admin, naloxone)
    staff = {}
    for name, quantity, tolerance in (("A", 480, 0), ("B", 300, 0), ("C", 96, 24), ("D", 48, 0)):
        user = member_of(f"Programme {name}")
        commitments.set_commitment(Actor.for_user(user), found.id, naloxone.id, quantity=quantity,
                                   tolerance=tolerance)
        staff[name] = user
    return found, staff


def test_the_preview_lists_the_options_with_money_as_strings(client, admin, auth, naloxone, example):
    found, staff = example
    response = client.get(f"/api/v1/rounds/{found.id}/close-preview", headers=auth(admin))
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    [product] = data["products"]
    assert (product["firm"], product["tolerance"], product["cases"]) == (924, 24, 39)
    base, jump = product["options"]
    fields = ("kind", "units", "unit_cost", "margin")
    assert [base[name] for name in fields] == ["base", 936, "38.00", "1872.00"]
    assert [jump[name] for name in fields] == ["jump", 960, "31.00", "7680.00"]
    assert jump["cheaper"] and jump["recommended"] and jump["free_units"] == 24
    assert jump["cost_difference"] == "-5808.00"
    c = next(line for line in base["allocations"] if line["organisation_id"] == staff["C"].organisation_id)
    assert (c["firm_units"], c["tolerance_units"], c["units"]) == (96, 12, 108)
    assert data["totals"]["revenue"] == "37440.00" and data["minimum_met"] is True


def test_closing_with_a_choice_then_reading_allocations(client, admin, auth, naloxone, example):
    found, staff = example
    response = client.post(f"/api/v1/rounds/{found.id}/close", headers=auth(admin),
                           json={"choices": [{"product_id": naloxone.id, "units": 960}]})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["status"] == "closed" and data["journal_entry_id"]
    assert data["totals"]["margin"] == "7680.00" and data["totals"]["free_units"] == 24
    assert data["products"][0]["option_kind"] == "jump" and data["products"][0]["units"] == 960

    everyone = client.get(f"/api/v1/rounds/{found.id}/allocations", headers=auth(admin)).get_json()
    assert everyone["total"] == 4
    mine = client.get(f"/api/v1/rounds/{found.id}/allocations", headers=auth(staff["C"])).get_json()
    [row] = mine["items"]
    fields = ("units", "firm_units", "tolerance_units", "amount")
    assert [row[name] for name in fields] == [108, 96, 12, "4320.00"]
    other = client.get(f"/api/v1/rounds/{found.id}/allocations?organisation_id={staff['A'].organisation_id}",
                       headers=auth(staff["C"]))
    assert other.status_code == 404

    again = client.post(f"/api/v1/rounds/{found.id}/close", headers=auth(admin), json={})
    assert again.status_code == 409
    assert client.get(f"/api/v1/rounds/{found.id}/close-preview", headers=auth(admin)).status_code == 409


def test_members_get_403_for_the_preview_and_the_close(client, member, auth, naloxone, example):
    found, _ = example
    headers = auth(member)
    assert client.get(f"/api/v1/rounds/{found.id}/close-preview", headers=headers).status_code == 403
    assert client.post(f"/api/v1/rounds/{found.id}/close", headers=headers, json={}).status_code == 403


def test_below_the_minimum_the_close_is_422(client, admin, auth, naloxone):
    found = open_round(admin, naloxone, minimum="5000.00")
    commitments.set_commitment(Actor.for_user(member_of("Small")), found.id, naloxone.id, quantity=48)
    response = client.post(f"/api/v1/rounds/{found.id}/close", headers=auth(admin), json={})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "minimum_not_met"
    assert client.get(f"/api/v1/rounds/{found.id}", headers=auth(admin)).get_json()["status"] == "open"


def test_a_bad_choice_is_400_naming_the_product(client, admin, auth, naloxone, example):
    found, _ = example
    response = client.post(f"/api/v1/rounds/{found.id}/close", headers=auth(admin),
                           json={"choices": [{"product_id": naloxone.id, "units": 950}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == f"choices.{naloxone.id}"
    response = client.post(f"/api/v1/rounds/{found.id}/close", headers=auth(admin),
                           json={"choices": [{"product_id": naloxone.id, "units": "many"}]})
    assert response.status_code == 400
