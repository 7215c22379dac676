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


def test_a_large_round_pages_the_allocations_instead_of_listing_them(client, admin, auth, naloxone, example,
                                                                     monkeypatch):
    found, staff = example
    monkeypatch.setattr("orders.close_api.INLINE_ALLOCATIONS", 3)  # the example has 4 commitments
    data = client.get(f"/api/v1/rounds/{found.id}/close-preview", headers=auth(admin)).get_json()
    assert data["allocations_inline"] is False and data["commitments"] == 4
    [product] = data["products"]
    assert product["members"] == 4
    base, jump = product["options"]
    assert base["allocations"] is None and jump["allocations"] is None
    assert (base["firm_units"], base["tolerance_units"], base["short"]) == (924, 12, 0)

    first = client.get(jump["allocations_url"] + "&per_page=3", headers=auth(admin)).get_json()
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 4)
    rest = client.get(jump["allocations_url"] + "&per_page=3&page=2", headers=auth(admin)).get_json()
    lines = {line["organisation_id"]: line for line in first["items"] + rest["items"]}
    c = lines[staff["C"].organisation_id]
    fields = ("quantity", "tolerance", "firm_units", "tolerance_units", "units")
    assert [c[name] for name in fields] == [96, 24, 96, 12, 108]
    assert sum(line["units"] for line in lines.values()) == jump["member_units"] == 936
    assert sorted(lines) == [line["organisation_id"] for line in first["items"] + rest["items"]]

    url = f"/api/v1/rounds/{found.id}/close-preview/products/{naloxone.id}/allocations"
    base_page = client.get(url, headers=auth(admin)).get_json()  # no units: the base option
    assert {line["organisation_id"]: line["units"] for line in base_page["items"]} == {
        organisation_id: line["units"] for organisation_id, line in lines.items()}
    wrong = client.get(url + "?units=950", headers=auth(admin))
    assert wrong.status_code == 400 and wrong.get_json()["error"]["field"] == "units"
    assert client.get(url.replace(f"/{naloxone.id}/", f"/{naloxone.id + 999}/"),
                      headers=auth(admin)).status_code == 404
    assert client.get(url, headers=auth(staff["A"])).status_code == 403


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
