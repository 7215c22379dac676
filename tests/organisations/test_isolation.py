"""The isolation matrix: member staff reach only their own organisation.

Two approved organisations, A and B, each with staff and documents. For every
route of the application that addresses an organisation (every URL rule with
an ``organisation_id``, HTML and API alike), member A asking about B gets 404,
exactly as if B did not exist, and nothing changes. The same request about A's
own organisation does not get 404, so a mistyped row cannot pass unnoticed.

A new route with an ``organisation_id`` fails ``test_the_matrix_covers_every_
organisation_route`` until it is added here, with a body that would succeed.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from buyersclub import mail
from buyersclub.db import db, utcnow
from buyersclub.organisations.models import OrganisationDocument
from orders.models import RoundStatus
from tests import factories
from tests.organisations.conftest import profile, profile_form

NEXT_YEAR = (utcnow().date() + timedelta(days=365)).isoformat()
ORG = "/organisations/<int:organisation_id>"
API = "/api/v1" + ORG

# (URL rule, method) -> (how the request is sent, a body that would be accepted).
# "form" requests go to the HTML pages signed in; "json" to the API with a token.
MATRIX: dict[tuple[str, str], tuple[str, dict | None]] = {
    (ORG, "GET"): ("form", None),
    (ORG + "/edit", "GET"): ("form", None),
    (ORG + "/edit", "POST"): ("form", profile_form(name="Renamed by A")),
    (ORG + "/approve", "POST"): ("form", {}),
    (ORG + "/reject", "GET"): ("form", None),
    (ORG + "/reject", "POST"): ("form", {"reason": "Because A says so", "confirm": "y"}),
    (ORG + "/assessment", "GET"): ("form", None),
    (ORG + "/assessment", "POST"): ("form", {"low_resource": "y", "reason": "A says so",
                                             "deprivation_decile": "1"}),
    (ORG + "/documents/new", "GET"): ("form", None),
    (ORG + "/documents/new", "POST"): ("form", {"kind": "prescriber_order",
                                                "reference": "FROM-A", "expires_on": NEXT_YEAR}),
    (ORG + "/staff", "POST"): ("form", {"name": "Planted by A", "email": "planted@a.test"}),
    (API, "GET"): ("json", None),
    (API, "PATCH"): ("json", {"site_city": "Nowhere"}),
    (API + "/approve", "POST"): ("json", None),
    (API + "/reject", "POST"): ("json", {"reason": "Because A says so"}),
    (API + "/assessment", "PUT"): ("json", {"low_resource": True, "reason": "A says so",
                                            "deprivation_decile": 1}),
    (API + "/members", "GET"): ("json", None),
    (API + "/members", "POST"): ("json", {"email": "planted@a.test", "name": "Planted by A"}),
    (API + "/documents", "GET"): ("json", None),
    (API + "/documents", "POST"): ("json", {"kind": "prescriber_order", "reference": "FROM-A",
                                            "expires_on": NEXT_YEAR}),
    # The statement of account: the page, its PDF and the API.
    (ORG + "/statement", "GET"): ("form", None),
    (ORG + "/statement.pdf", "GET"): ("form", None),
    (API + "/statement", "GET"): ("json", None),
    # <int:round_id> is a received round of the fixture (A's own list is a PDF, empty or not).
    ("/rounds/<int:round_id>/packing-lists/<int:organisation_id>.pdf", "GET"): ("form", None),
}


def organisation_routes(app) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if "organisation_id" in rule.arguments
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_the_matrix_covers_every_organisation_route(app):
    routes = organisation_routes(app)
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"routes with an organisation_id missing from the isolation matrix: {missing}"
    assert not stale, f"rows of the isolation matrix for routes that no longer exist: {stale}"


@pytest.fixture
def two_members(session, client, auth):
    """Approved organisations A and B with staff and documents; A's staff signed in."""
    a = factories.OrganisationFactory(name="Alder Street Outreach")
    b = factories.OrganisationFactory(name="Birch Lane Syringe Services")
    staff_a = factories.UserFactory(roles=["member"], organisation=a, email="ann@alder.test")
    factories.UserFactory(roles=["member"], organisation=b, email="bea@birch.test",
                          name="Bea Birch")
    factories.DocumentFactory(organisation=a, reference="ALDER-DOC")
    factories.DocumentFactory(organisation=b, reference="BIRCH-DOC")
    received = factories.RoundFactory(status=RoundStatus.RECEIVED, opened_at=utcnow())
    headers = auth(staff_a)
    client.post("/sign-in", data={"email": staff_a.email, "password": factories.PASSWORD})
    session.commit()  # each refused request rolls back to here
    return SimpleNamespace(a=a, b=b, headers=headers, round_id=received.id)


def send(client, rule: str, method: str, how: str, body, organisation_id: int, headers,
         round_id: int | None = None):
    url = rule.replace("<int:organisation_id>", str(organisation_id))
    if round_id is not None:
        url = url.replace("<int:round_id>", str(round_id))
    if how == "json":
        return client.open(url, method=method, json=body, headers=headers)
    return client.open(url, method=method, data=body)


def snapshot_of(organisation) -> dict:
    db.session.expire_all()
    return {
        "profile": (organisation.name, organisation.site_city, organisation.status,
                    organisation.low_resource, organisation.assessed_at),
        "staff": sorted(person.email for person in organisation.staff),
        "documents": db.session.scalar(
            select(func.count()).select_from(OrganisationDocument)
            .where(OrganisationDocument.organisation_id == organisation.id)
        ),
    }


@pytest.mark.parametrize(("rule", "method"), sorted(MATRIX), ids=lambda part: part)
def test_member_a_gets_404_for_b_and_changes_nothing(client, two_members, rule, method):
    pair = two_members
    how, body = MATRIX[(rule, method)]
    before = snapshot_of(pair.b)

    response = send(client, rule, method, how, body, pair.b.id, pair.headers, pair.round_id)

    assert response.status_code == 404, response.get_data(as_text=True)[:500]
    text = response.get_data(as_text=True)
    for secret in ("Birch", "BIRCH-DOC", "bea@birch.test"):
        assert secret not in text
    if how == "json":
        assert response.get_json()["error"]["code"] == "not_found"
    assert snapshot_of(pair.b) == before
    assert mail.outbox() == []


@pytest.mark.parametrize(("rule", "method"), sorted(MATRIX), ids=lambda part: part)
def test_the_same_request_about_a_own_organisation_is_not_404(client, two_members, rule, method):
    pair = two_members
    how, body = MATRIX[(rule, method)]
    response = send(client, rule, method, how, body, pair.a.id, pair.headers, pair.round_id)
    # Admin-only actions are 403 for A's staff on their own organisation: never 404.
    assert response.status_code in {200, 201, 302, 403}, response.get_data(as_text=True)[:500]


def test_the_api_lists_only_a_for_a(client, two_members):
    pair = two_members
    listed = client.get("/api/v1/organisations", headers=pair.headers).get_json()
    assert [item["name"] for item in listed["items"]] == ["Alder Street Outreach"]
    assert listed["total"] == 1
    for query in ("?status=approved", "?q=birch", "?per_page=200"):
        names = [item["name"] for item in
                 client.get("/api/v1/organisations" + query, headers=pair.headers).get_json()["items"]]
        assert "Birch Lane Syringe Services" not in names


@pytest.mark.usefixtures("two_members")
def test_the_html_list_shows_only_a_to_a(client):
    html = client.get("/organisations?q=birch").get_data(as_text=True)
    assert "Birch" not in html.replace('value="birch"', "")
    assert "Alder Street Outreach" in client.get("/organisations").get_data(as_text=True)


def test_an_unknown_organisation_is_404_for_an_admin_too(client, session, admin, auth):
    headers = auth(admin)
    session.commit()
    assert client.get("/api/v1/organisations/999999", headers=headers).status_code == 404
    assert client.post("/api/v1/organisations/999999/approve", headers=headers).status_code == 404


def test_applying_twice_cannot_move_staff_to_another_organisation(client, two_members):
    pair = two_members
    response = client.post("/api/v1/organisations", json=profile(name="Third"), headers=pair.headers)
    assert response.status_code == 409
