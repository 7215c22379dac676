"""The organisation pages, as a person uses them."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from sqlalchemy import select

from buyersclub import mail
from buyersclub.accounts.models import Role, User, UserRole
from buyersclub.db import db, utcnow
from buyersclub.organisations.models import MembershipStatus, Organisation
from tests import factories
from tests.organisations.conftest import profile_form


def page(response) -> str:
    return response.get_data(as_text=True)


def field_error(text: str, field_id: str) -> str:
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', text)
    return unescape(match.group(1)) if match else ""


# --- Applying ----------------------------------------------------------------


def test_a_visitor_applies_creating_an_account_and_is_signed_in(client):
    form = client.get("/apply")
    assert form.status_code == 200
    assert 'name="your_name"' in page(form) and 'name="site_is_not_a_home"' in page(form)

    response = client.post("/apply", data={
        **profile_form(), "your_name": "Rita Rivers", "email": "rita@riverside.test",
        "password": factories.PASSWORD, "confirm": factories.PASSWORD,
    })
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "rita@riverside.test"))
    organisation = user.organisation
    assert response.headers["Location"].endswith(f"/organisations/{organisation.id}")
    assert organisation.status == MembershipStatus.APPLIED

    detail = page(client.get(response.headers["Location"]))
    assert "your application is in" in detail
    assert ">Applied</span>" in detail
    assert "Riverside Syringe Services" in detail
    assert "Rita Rivers" in detail


def test_an_application_without_the_site_attestation_is_refused_and_writes_nothing(
    client, session, writes
):
    before = writes()
    data = {**profile_form(), "your_name": "Rita", "email": "rita@riverside.test",
            "password": factories.PASSWORD, "confirm": factories.PASSWORD}
    del data["site_is_not_a_home"]
    response = client.post("/apply", data=data)
    assert response.status_code == 400
    assert "only go to an organisation's site" in field_error(page(response), "site_is_not_a_home")
    assert writes() == before


def test_a_service_error_shows_next_to_its_field_and_writes_nothing(client, session, member, writes):
    session.commit()  # the refused request rolls back to here
    before = writes()
    response = client.post("/apply", data={
        **profile_form(name="harbour outreach", country="U1"), "your_name": "Rita",
        "email": "rita@riverside.test", "password": factories.PASSWORD,
        "confirm": factories.PASSWORD,
    })
    assert response.status_code == 400
    assert "two-letter" in field_error(page(response), "country")
    assert writes() == before

    response = client.post("/apply", data={
        **profile_form(name="harbour outreach"), "your_name": "Rita",
        "email": "rita@riverside.test", "password": factories.PASSWORD,
        "confirm": factories.PASSWORD,
    })
    assert response.status_code == 409
    assert "already" in field_error(page(response), "name")
    assert writes() == before
    # Nobody was signed in by the failed application.
    assert client.get("/organisations").status_code == 302


def test_a_taken_email_is_shown_on_the_email_field(client, session, member):
    session.commit()
    response = client.post("/apply", data={
        **profile_form(), "your_name": "Sam", "email": member.email,
        "password": factories.PASSWORD, "confirm": factories.PASSWORD,
    })
    assert response.status_code == 409
    assert "already exists" in field_error(page(response), "email")


def test_a_signed_in_user_without_organisation_applies_with_the_profile_only(client, sign_in):
    user = factories.UserFactory(name="Una User")
    sign_in(user)
    form = page(client.get("/apply"))
    assert 'name="your_name"' not in form and 'name="password"' not in form

    response = client.post("/apply", data=profile_form())
    assert response.status_code == 302
    assert user.organisation.name == "Riverside Syringe Services"
    assert "member" in user.roles


def test_staff_of_an_organisation_are_sent_to_it_from_the_apply_page(client, member, sign_in):
    sign_in(member)
    response = client.get("/apply")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/organisations/{member.organisation_id}")


def test_an_admin_adds_an_approved_member_from_the_apply_page(client, admin, sign_in):
    sign_in(admin)
    assert "Add a member organisation" in page(client.get("/apply"))
    response = client.post("/apply", data=profile_form(), follow_redirects=True)
    assert "created and approved" in page(response)
    assert ">Approved</span>" in page(response)
    assert admin.organisation_id is None


# --- The list ----------------------------------------------------------------


def test_admin_list_filters_by_status_searches_by_name_and_pages(client, admin, sign_in):
    for n in range(27):
        factories.OrganisationFactory(name=f"Applicant {n:02d}", status=MembershipStatus.APPLIED)
    factories.OrganisationFactory(name="Quayside Outreach")
    sign_in(admin)

    first = page(client.get("/organisations?status=applied"))
    assert "27 organisations" in first
    assert "Applicant 00" in first and "Applicant 24" in first and "Applicant 25" not in first
    assert "Quayside" not in first
    assert "Page 1 of 2" in first
    second = page(client.get("/organisations?status=applied&page=2"))
    assert "Applicant 25" in second and "Applicant 26" in second and "Applicant 00" not in second

    found = page(client.get("/organisations?q=quay"))
    assert "Quayside Outreach" in found and "Applicant" not in found
    nothing = page(client.get("/organisations?q=nowhere"))
    assert "No organisation matches these filters" in nothing


def test_the_list_is_empty_before_anyone_applies(client, admin, sign_in):
    sign_in(admin)
    assert "No organisations yet" in page(client.get("/organisations"))


def test_member_staff_see_only_their_own_organisation_in_the_list(client, member, sign_in):
    factories.OrganisationFactory(name="Someone Else")
    sign_in(member)
    listing = page(client.get("/organisations"))
    assert "Harbour Outreach" in listing and "Someone Else" not in listing


# --- One organisation --------------------------------------------------------


def test_the_detail_page_shows_profile_documents_with_expiry_and_staff(client, member, sign_in):
    today = utcnow().date()
    organisation = member.organisation
    factories.DocumentFactory(organisation=organisation, kind="prescriber_order",
                              reference="SO-OLD", expires_on=today + timedelta(days=300),
                              recorded_at=utcnow() - timedelta(days=400))
    factories.DocumentFactory(organisation=organisation, kind="prescriber_order",
                              reference="SO-NEW", expires_on=today - timedelta(days=2))
    factories.DocumentFactory(organisation=organisation, kind="oxygen_training",
                              reference="OX-1", expires_on=today + timedelta(days=12))
    sign_in(member)
    html = page(client.get(f"/organisations/{organisation.id}"))

    assert "Syringe services programme" in html
    rows = re.findall(r"<tr[^>]*>\s*<td data-label=\"Document\">(.*?)</tr>", html, re.S)
    statuses = {re.search(r"(SO-\w+|OX-\d)", row).group(1): row for row in rows}
    assert "Expired" in statuses["SO-NEW"] and "superseded" not in statuses["SO-NEW"]
    assert "Valid" in statuses["SO-OLD"] and "superseded" in statuses["SO-OLD"]
    assert "Expires within 30 days" in statuses["OX-1"]
    assert "Sam Staff" in html and "staff@harbour.test" in html
    assert "Invite a colleague" in html
    # Staff neither decide nor assess.
    assert "Membership decision" not in html and "/approve" not in html
    assert "Record the assessment" not in html


def test_an_empty_organisation_page_says_what_is_missing(client, member, sign_in):
    sign_in(member)
    html = page(client.get(f"/organisations/{member.organisation_id}"))
    assert "No documents on file" in html
    assert "Not assessed yet" in html


def test_staff_edit_their_profile(client, member, sign_in):
    sign_in(member)
    url = f"/organisations/{member.organisation_id}/edit"
    form = page(client.get(url))
    assert 'value="Harbour Outreach"' in form
    assert '<option selected value="syringe_services">' in form
    response = client.post(url, data=profile_form(name="Harbour Outreach", site_city="Salem"),
                           follow_redirects=True)
    assert "The profile is saved." in page(response)
    assert "Salem" in page(response)


def test_an_edit_that_drops_a_required_field_names_it(client, session, member, sign_in):
    sign_in(member)
    session.commit()
    url = f"/organisations/{member.organisation_id}/edit"
    response = client.post(url, data=profile_form(name="Harbour Outreach", site_city=""))
    assert response.status_code == 400
    assert field_error(page(response), "site_city")
    assert db.session.get(Organisation, member.organisation_id).site_city == "Boston"


def test_admin_approves_and_the_staff_are_told(client, admin, sign_in):
    organisation = factories.OrganisationFactory(name="Riverside", status=MembershipStatus.APPLIED)
    factories.UserFactory(roles=["member"], organisation=organisation, email="rita@riverside.test")
    sign_in(admin)
    response = client.post(f"/organisations/{organisation.id}/approve", follow_redirects=True)
    assert "Riverside is approved" in page(response)
    assert ">Approved</span>" in page(response)
    [message] = mail.outbox()
    assert message["To"] == "rita@riverside.test"


def test_rejecting_asks_for_a_reason_and_a_confirmation(client, session, admin, sign_in):
    organisation = factories.OrganisationFactory(name="Riverside", status=MembershipStatus.APPLIED)
    staff = factories.UserFactory(roles=["member"], organisation=organisation,
                                  email="rita@riverside.test")
    sign_in(admin)
    session.commit()
    url = f"/organisations/{organisation.id}/reject"
    detail = page(client.get(f"/organisations/{organisation.id}"))
    assert f'href="{url}"' in detail  # a link to a confirmation page, not a one-click reject

    confirm = page(client.get(url))
    assert "Reject the application of Riverside?" in confirm
    no_reason = client.post(url, data={"reason": "  ", "confirm": "y"})
    assert no_reason.status_code == 400
    assert field_error(page(no_reason), "reason")
    unconfirmed = client.post(url, data={"reason": "Outside our region"})
    assert unconfirmed.status_code == 400
    assert field_error(page(unconfirmed), "confirm")
    assert db.session.get(Organisation, organisation.id).status == MembershipStatus.APPLIED
    assert mail.outbox() == []

    done = client.post(url, data={"reason": "Outside our region", "confirm": "y"},
                       follow_redirects=True)
    assert "application is rejected" in page(done)
    [message] = mail.outbox()
    assert message["To"] == staff.email and "Outside our region" in message.get_content()

    client.post("/sign-out")
    client.post("/sign-in", data={"email": staff.email, "password": factories.PASSWORD})
    seen = page(client.get(f"/organisations/{organisation.id}"))
    assert ">Rejected</span>" in seen and "Outside our region" in seen


def test_admin_records_the_need_assessment(client, session, admin, member, sign_in):
    sign_in(admin)
    session.commit()
    url = f"/organisations/{member.organisation_id}/assessment"
    assert "Low-resource programme" in page(client.get(url))
    refused = client.post(url, data={"low_resource": "y", "reason": "", "deprivation_decile": "2"})
    assert refused.status_code == 400
    assert field_error(page(refused), "reason")

    response = client.post(url, data={"low_resource": "y", "reason": "No federal funding",
                                      "deprivation_decile": "2"}, follow_redirects=True)
    html = page(response)
    assert "The need assessment is saved." in html
    assert "Yes: eligible for the subsidy fund" in html and "No federal funding" in html
    assert "by Ada Admin" in html


def test_staff_cannot_open_the_assessment_or_reject_pages_of_their_own(client, member, sign_in):
    sign_in(member)
    for path in ("assessment", "reject"):
        assert client.get(f"/organisations/{member.organisation_id}/{path}").status_code == 403


def test_staff_add_a_document(client, session, member, sign_in):
    sign_in(member)
    session.commit()
    url = f"/organisations/{member.organisation_id}/documents/new"
    assert "the newest of each kind counts" in page(client.get(url))
    refused = client.post(url, data={"kind": "oxygen_training", "reference": "OX-9",
                                     "expires_on": "next year"})
    assert refused.status_code == 400
    assert field_error(page(refused), "expires_on")

    expires = (utcnow().date() + timedelta(days=90)).isoformat()
    response = client.post(url, data={"kind": "oxygen_training", "reference": "OX-9",
                                      "expires_on": expires}, follow_redirects=True)
    html = page(response)
    assert "Oxygen training attestation OX-9 is on file." in html
    assert expires in html


def test_an_invited_colleague_follows_the_link_sets_a_password_and_signs_in(
    client, session, member, sign_in
):
    sign_in(member)
    session.commit()
    url = f"/organisations/{member.organisation_id}/staff"
    refused = client.post(url, data={"name": "Lee", "email": "not an address"})
    assert refused.status_code == 400
    assert field_error(page(refused), "email")
    assert mail.outbox() == []

    response = client.post(url, data={"name": "Lee Colleague", "email": "lee@harbour.test"},
                           follow_redirects=True)
    html = page(response)
    assert "An invitation is on its way to lee@harbour.test" in html
    assert "Invited, no password yet" in html

    [message] = mail.outbox()
    link = re.search(r"http://club\.test(/invitation/\S+)", message.get_content()).group(1)
    client.post("/sign-out")
    password = "a long new password for Lee"
    assert client.post(link, data={"password": password, "confirm": password}).status_code == 302
    client.post("/sign-out")
    signed_in = client.post("/sign-in", data={"email": "lee@harbour.test", "password": password})
    assert signed_in.status_code == 302
    mine = page(client.get(f"/organisations/{member.organisation_id}"))
    assert "Harbour Outreach" in mine and "Lee Colleague" in mine
    # The link is single-use: the password it set changed its fingerprint.
    assert client.get(link).status_code == 400


def test_pages_ask_a_visitor_to_sign_in(client, member):
    for path in ("/organisations", f"/organisations/{member.organisation_id}"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/sign-in" in response.headers["Location"]


def test_a_page_past_the_end_offers_the_first_page(client, admin, member, sign_in):
    sign_in(admin)
    html = page(client.get("/organisations?page=9"))
    assert "There is no page 9" in html


def test_a_user_without_organisation_is_offered_to_apply_from_the_list(client, sign_in):
    sign_in(factories.UserFactory())
    assert "does not belong to an organisation yet" in page(client.get("/organisations"))


def test_an_admin_who_is_also_staff_can_still_add_a_member(client, member, sign_in):
    member.role_grants.append(UserRole(role=Role.ADMIN))
    sign_in(member)
    assert "Add a member organisation" in page(client.get("/apply"))
