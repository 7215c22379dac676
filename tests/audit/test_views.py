"""The audit log page: administrators see who did what, and can narrow it down."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from buyersclub.actor import Actor
from buyersclub.audit.services import record
from tests import factories


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr id="event-(\d+)">', page)


def _page(client, **filters):
    response = client.get("/audit", query_string=filters)
    return response, response.get_data(as_text=True)


@pytest.fixture
def two_tokens(client, session, admin, member, auth):
    """A token made by the admin and one by the member, through the API."""
    made = {}
    for user, name in ((admin, "admin's export"), (member, "stock sheet")):
        response = client.post("/api/v1/tokens", json={"name": name}, headers=auth(user))
        assert response.status_code == 201
        made[user.email] = response.get_json()
    return made


def test_an_admin_sees_who_did_what_to_which_record(client, admin, member, two_tokens, sign_in):
    sign_in(admin)
    response, page = _page(client)
    assert response.status_code == 200
    token = two_tokens[member.email]
    assert "api_token.create" in page
    assert f"api_token #{token['id']}" in page
    assert member.email in page and admin.email in page
    assert "Harbour Outreach" in page  # the member's organisation, by name
    # The before/after table of the creation lists the new values.
    assert "<th scope=\"row\">name</th><td>—</td><td>stock sheet</td>" in page
    assert token["token"] not in page  # the secret never reaches the log


def test_newest_first(client, admin, member, two_tokens, sign_in):
    sign_in(admin)
    _, page = _page(client, action="api_token.create")
    assert page.index("stock sheet") < page.index("admin&#39;s export")


@pytest.mark.parametrize(
    ("filters", "expected", "count"),
    [
        ({"actor": "staff@harbour"}, ["stock sheet"], 1),
        ({"actor": "ADMIN@club.test"}, ["admin&#39;s export"], 1),
        # With the two tokens the test harness made (by the "test" actor) for the API calls.
        ({"action": "api_token.create"}, ["stock sheet", "admin&#39;s export"], 4),
        ({"entity_type": "api_token"}, ["stock sheet", "admin&#39;s export"], 4),
        ({"actor": "admin@club.test", "entity_type": "api_token"}, ["admin&#39;s export"], 1),
    ],
)
def test_filters_narrow_the_log(client, admin, two_tokens, sign_in, filters, expected, count):
    sign_in(admin)
    response, page = _page(client, **filters)
    assert response.status_code == 200
    for name in ("stock sheet", "admin&#39;s export"):
        assert (name in page) == (name in expected), (filters, name)
    assert len(_rows(page)) == count


def test_filter_by_record(client, admin, member, two_tokens, sign_in):
    sign_in(admin)
    token = two_tokens[admin.email]
    _, page = _page(client, entity_type="api_token", entity_id=token["id"])
    assert "admin&#39;s export" in page
    assert "stock sheet" not in page
    assert len(_rows(page)) == 1


def test_filter_by_organisation(client, admin, member, two_tokens, sign_in):
    sign_in(admin)
    _, page = _page(client, organisation=member.organisation_id)
    assert "stock sheet" in page
    assert "admin&#39;s export" not in page
    assert f'<option selected value="{member.organisation_id}">Harbour Outreach</option>' in page


def test_filter_by_dates(client, admin, two_tokens, sign_in):
    sign_in(admin)
    today = datetime.now(UTC).date()
    _, page = _page(client, date_from=today.isoformat(), date_to=today.isoformat())
    assert len(_rows(page)) == 4  # two tokens, and the harness's two for the API calls
    _, page = _page(client, date_from=(today + timedelta(days=1)).isoformat())
    assert _rows(page) == []
    assert "No events match these filters." in page
    _, page = _page(client, date_to=(today - timedelta(days=1)).isoformat())
    assert _rows(page) == []


def test_bad_filters_are_explained_beside_the_field(client, admin, two_tokens, sign_in):
    sign_in(admin)
    response, page = _page(client, date_from="31/03/2026", entity_id="abc")
    assert response.status_code == 400
    assert re.search(r'id="date_from-error">Enter a date as YYYY-MM-DD', page)
    assert re.search(r'id="entity_id-error">Enter a record number', page)
    assert _rows(page) == []

    _, page = _page(client, date_from="2026-03-31", date_to="2026-03-01")
    assert 'id="date_to-error">The end date is before the start date.' in page

    _, page = _page(client, action="no.such_action")
    assert 'id="action-error"' in page


def test_the_empty_log(client, admin, sign_in):
    sign_in(admin)
    response, page = _page(client)
    assert response.status_code == 200
    assert "Nothing has been recorded yet." in page


def test_only_changed_fields_are_shown(client, session, admin, sign_in):
    organisation = factories.OrganisationFactory(name="Bayside Mutual Aid")
    record(Actor.for_user(admin), "organisation.approve", "organisation", organisation.id,
           before={"status": "applied", "name": "Bayside Mutual Aid", "low_resource": False},
           after={"status": "approved", "name": "Bayside Mutual Aid", "low_resource": True},
           organisation_id=organisation.id)
    record(Actor.system("cli"), "user.set_password", "user", 7)
    sign_in(admin)
    _, page = _page(client)
    assert '<th scope="row">status</th><td>applied</td><td>approved</td>' in page
    assert '<th scope="row">low_resource</th><td>no</td><td>yes</td>' in page
    assert '<th scope="row">name</th>' not in page
    assert "No field changes recorded." in page
    assert "cli" in page


def test_the_log_is_paginated(client, session, admin, sign_in):
    for number in range(55):
        record(Actor.system("cli"), "test.step", "step", number + 1)
    sign_in(admin)
    _, first = _page(client)
    assert len(_rows(first)) == 50
    assert "step #55" in first and "step #5<" not in first
    assert "Page 1 of 2" in first
    _, second = _page(client, page=2)
    assert len(_rows(second)) == 5
    assert "step #1<" in second
    assert set(_rows(first)).isdisjoint(_rows(second))


def test_a_page_of_events_costs_the_same_queries_for_more_organisations(
    client, session, admin, sign_in, count_queries
):
    sign_in(admin)
    organisation = factories.OrganisationFactory()
    record(Actor.system("cli"), "test.step", "step", 1, organisation_id=organisation.id)
    with count_queries() as few:
        client.get("/audit")
    for number in range(10):
        other = factories.OrganisationFactory()
        record(Actor.system("cli"), "test.step", "step", number + 2, organisation_id=other.id)
    with count_queries() as many:
        client.get("/audit")
    assert many.count == few.count


@pytest.mark.parametrize("who", ["member", "finance"])
def test_only_admins_may_read_the_log(client, request, sign_in, who):
    sign_in(request.getfixturevalue(who))
    response = client.get("/audit")
    assert response.status_code == 403
    assert "This needs the admin role." in response.get_data(as_text=True)


def test_visitors_are_asked_to_sign_in(client):
    response = client.get("/audit")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")
