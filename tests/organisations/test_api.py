"""The organisation endpoints of the JSON API, as API.md describes them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from buyersclub import mail
from buyersclub.db import utcnow
from buyersclub.organisations.models import MembershipStatus
from tests import factories
from tests.organisations.conftest import profile

API = "/api/v1/organisations"


def test_a_signed_up_user_applies_and_becomes_its_staff(client, auth):
    user = factories.UserFactory(name="Rita Rivers")
    headers = auth(user)
    response = client.post(API, json=profile(), headers=headers)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "applied"
    assert body["kind"] == "syringe_services"
    assert body["budget_band"] == "under_50k"
    assert response.headers["Location"].endswith(f"{API}/{body['id']}")
    me = client.get("/api/v1/me", headers=headers).get_json()
    assert me["organisation"] == {"id": body["id"], "name": "Riverside Syringe Services",
                                  "status": "applied"}
    assert "member" in me["roles"]

    again = client.post(API, json=profile(name="Second try"), headers=headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "conflict"


def test_an_admin_creates_an_approved_member(client, auth, admin):
    response = client.post(API, json=profile(), headers=auth(admin))
    assert response.status_code == 201
    assert response.get_json()["status"] == "approved"
    assert response.get_json()["decided_at"] is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "  "}, "name"),
        ({"country": "usa"}, "country"),
        ({"country": "1A"}, "country"),
        ({"site_is_not_a_home": False}, "site_is_not_a_home"),
        ({"site_is_not_a_home": "yes"}, "site_is_not_a_home"),
        ({"kind": "shop"}, "kind"),
        ({"status": "approved"}, "status"),
        ({"low_resource": True}, "low_resource"),
        ({"region": None}, "region"),
    ],
)
def test_bad_applications_are_refused_naming_the_field_and_write_nothing(
    client, session, auth, writes, changes, field
):
    headers = auth(factories.UserFactory())
    session.commit()  # a refused request rolls back to here
    before = writes()
    response = client.post(API, json=profile(**changes), headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert writes() == before


def test_a_missing_field_is_named(client, auth):
    body = profile()
    del body["site_city"]
    response = client.post(API, json=body, headers=auth(factories.UserFactory()))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "site_city"


def test_a_duplicate_name_is_409_on_name(client, auth, member):
    response = client.post(API, json=profile(name="Harbour Outreach"),
                           headers=auth(factories.UserFactory()))
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "name"


def test_admin_lists_filters_and_pages(client, session, auth, admin):
    for n in range(3):
        factories.OrganisationFactory(name=f"Applicant {n}", status=MembershipStatus.APPLIED)
    factories.OrganisationFactory(name="Approved Harbour")
    headers = auth(admin)
    session.commit()  # a refused request rolls back to here

    everyone = client.get(API, headers=headers).get_json()
    assert everyone["total"] == 4
    applied = client.get(f"{API}?status=applied&per_page=2", headers=headers).get_json()
    assert (applied["total"], applied["pages"], len(applied["items"])) == (3, 2, 2)
    assert [item["name"] for item in applied["items"]] == ["Applicant 0", "Applicant 1"]
    second = client.get(f"{API}?status=applied&per_page=2&page=2", headers=headers).get_json()
    assert [item["name"] for item in second["items"]] == ["Applicant 2"]
    found = client.get(f"{API}?q=harb", headers=headers).get_json()
    assert [item["name"] for item in found["items"]] == ["Approved Harbour"]
    bad = client.get(f"{API}?status=pending", headers=headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "status"


def test_a_member_reads_and_patches_its_own_profile(client, session, auth, member):
    headers = auth(member)
    session.commit()  # a refused request rolls back to here
    url = f"{API}/{member.organisation_id}"
    assert client.get(url, headers=headers).get_json()["name"] == "Harbour Outreach"

    response = client.patch(url, json={"site_city": "Salem", "site_address_line2": "Unit 4"},
                            headers=headers)
    assert response.status_code == 200
    assert response.get_json()["site_city"] == "Salem"
    assert client.get(url, headers=headers).get_json()["site_address_line2"] == "Unit 4"

    for field, value in (("status", "approved"), ("low_resource", True),
                         ("deprivation_decile", 1)):
        refused = client.patch(url, json={field: value}, headers=headers)
        assert refused.status_code == 400
        assert refused.get_json()["error"]["field"] == field
    assert client.get(url, headers=headers).get_json()["low_resource"] is False


def test_approve_mails_the_staff(client, auth, admin):
    organisation = factories.OrganisationFactory(name="Riverside", status=MembershipStatus.APPLIED)
    staff = factories.UserFactory(roles=["member"], organisation=organisation,
                                  email="rita@riverside.test")
    headers = auth(admin)
    response = client.post(f"{API}/{organisation.id}/approve", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "approved"
    [message] = mail.outbox()
    assert message["To"] == staff.email
    assert "approved" in message.get_content()

    again = client.post(f"{API}/{organisation.id}/approve", headers=headers)
    assert again.status_code == 409


def test_reject_needs_a_reason_and_tells_the_member(client, session, auth, admin):
    organisation = factories.OrganisationFactory(name="Riverside", status=MembershipStatus.APPLIED)
    staff = factories.UserFactory(roles=["member"], organisation=organisation)
    url = f"{API}/{organisation.id}/reject"
    admin_headers = auth(admin)
    session.commit()  # a refused request rolls back to here

    for body in ({}, {"reason": "   "}):
        refused = client.post(url, json=body, headers=admin_headers)
        assert refused.status_code == 400
        assert refused.get_json()["error"]["field"] == "reason"
    assert mail.outbox() == []

    response = client.post(url, json={"reason": "We serve New England only."},
                           headers=admin_headers)
    assert response.status_code == 200
    [message] = mail.outbox()
    assert message["To"] == staff.email
    assert "We serve New England only." in message.get_content()

    seen = client.get(f"{API}/{organisation.id}", headers=auth(staff)).get_json()
    assert (seen["status"], seen["status_reason"]) == ("rejected", "We serve New England only.")


def test_only_an_admin_decides_or_assesses(client, session, auth, member, finance):
    url = f"{API}/{member.organisation_id}"
    for user in (member, finance):
        headers = auth(user)
        session.commit()  # a refused request rolls back to here
        assert client.post(f"{url}/approve", headers=headers).status_code == 403
        assert client.post(f"{url}/reject", json={"reason": "x"}, headers=headers).status_code == 403
        assert client.put(f"{url}/assessment", json={"low_resource": False},
                          headers=headers).status_code == 403


def test_admin_records_the_need_assessment(client, session, auth, admin, member):
    url = f"{API}/{member.organisation_id}/assessment"
    headers = auth(admin)
    session.commit()  # a refused request rolls back to here
    response = client.put(url, json={"low_resource": True, "reason": "No federal funding",
                                     "deprivation_decile": 2}, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["low_resource"], body["assessment_reason"], body["deprivation_decile"]) == (
        True, "No federal funding", 2)
    assert body["assessed_at"]

    for payload, field in (({"low_resource": True, "deprivation_decile": 11}, "deprivation_decile"),
                           ({"low_resource": True}, "reason"),
                           ({"reason": "x"}, "low_resource")):
        refused = client.put(url, json=payload, headers=headers)
        assert refused.status_code == 400
        assert refused.get_json()["error"]["field"] == field


def test_documents_newest_counts_and_expiry_shows(client, auth, member):
    headers = auth(member)
    url = f"{API}/{member.organisation_id}/documents"
    today = utcnow().date()
    first = client.post(url, json={"kind": "prescriber_order", "reference": "SO-1",
                                   "expires_on": (today + timedelta(days=200)).isoformat()},
                        headers=headers)
    assert first.status_code == 201
    assert first.get_json()["status"] == "valid"
    renewal = client.post(url, json={"kind": "prescriber_order", "reference": "SO-2",
                                     "expires_on": (today - timedelta(days=3)).isoformat()},
                          headers=headers)
    assert renewal.get_json()["status"] == "expired"
    client.post(url, json={"kind": "oxygen_training", "reference": "OX-1",
                           "expires_on": (today + timedelta(days=20)).isoformat()}, headers=headers)

    listed = client.get(url, headers=headers).get_json()
    assert [(item["reference"], item["status"], item["current"]) for item in listed["items"]] == [
        ("OX-1", "expiring", True), ("SO-2", "expired", True), ("SO-1", "valid", False)]

    refused = client.post(url, json={"kind": "prescriber_order", "reference": "SO-3",
                                     "expires_on": "soon"}, headers=headers)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "expires_on"
    assert client.get(url, headers=headers).get_json()["total"] == 3


def test_an_invited_colleague_sets_a_password_and_signs_in(client, auth, member):
    headers = auth(member)
    url = f"{API}/{member.organisation_id}/members"
    response = client.post(url, json={"email": "Lee@Harbour.test", "name": "Lee Colleague"},
                           headers=headers)
    assert response.status_code == 201
    assert response.get_json()["status"] == "invited"
    staff = client.get(url, headers=headers).get_json()
    assert {(item["email"], item["status"]) for item in staff["items"]} == {
        ("lee@harbour.test", "invited"), ("staff@harbour.test", "active")}

    [message] = mail.outbox()
    assert message["To"] == "lee@harbour.test"
    link = re.search(r"http://club\.test(/invitation/\S+)", message.get_content()).group(1)
    password = "a long new password for Lee"
    set_password = client.post(link, data={"password": password, "confirm": password})
    assert set_password.status_code == 302
    client.post("/sign-out")
    signed_in = client.post("/sign-in", data={"email": "lee@harbour.test", "password": password})
    assert signed_in.status_code == 302
    assert "Harbour Outreach" in client.get("/").get_data(as_text=True)


def test_inviting_an_existing_address_is_409_on_email(client, auth, member):
    headers = auth(member)
    response = client.post(f"{API}/{member.organisation_id}/members",
                           json={"email": member.email, "name": "Again"}, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "email"
    assert mail.outbox() == []


def test_the_openapi_document_lists_the_organisation_endpoints(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    org = "/api/v1/organisations/{organisation_id}"
    assert set(paths["/api/v1/organisations"]) == {"get", "post"}
    assert set(paths[org]) == {"get", "patch"}
    assert set(paths[f"{org}/members"]) == {"get", "post"}
    assert set(paths[f"{org}/documents"]) == {"get", "post"}
    assert "put" in paths[f"{org}/assessment"]
    assert "post" in paths[f"{org}/approve"] and "post" in paths[f"{org}/reject"]
