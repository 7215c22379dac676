"""The organisation services: applying, the profile, decisions, assessment, documents."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from buyersclub.organisations import services
from buyersclub.organisations.models import DocumentKind, MembershipStatus
from tests import factories
from tests.organisations.conftest import profile


def actor(user):
    return Actor.for_user(user)


def audit_events(action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_applying_makes_the_user_member_staff_of_an_applied_organisation(session):
    user = factories.UserFactory(name="Rita Rivers")
    organisation = services.apply_to_join(actor(user), **profile(country=" us "))

    assert organisation.status == MembershipStatus.APPLIED
    assert organisation.country == "US"
    assert organisation.applied_by_id == user.id
    assert user.organisation_id == organisation.id
    assert Role.MEMBER in user.roles
    [applied] = audit_events("organisation.apply")
    assert applied.after["name"] == "Riverside Syringe Services"
    [joined] = audit_events("user.join_organisation")
    assert joined.before == {"organisation_id": None, "roles": []}
    assert joined.after == {"organisation_id": organisation.id, "roles": ["member"]}


def test_a_user_who_already_belongs_to_an_organisation_cannot_apply(session, member):
    with pytest.raises(Conflict):
        services.apply_to_join(actor(member), **profile())


def test_an_admin_creates_an_approved_member_directly(session, admin):
    organisation = services.create_organisation(actor(admin), **profile())
    assert organisation.status == MembershipStatus.APPROVED
    assert organisation.decided_by_id == admin.id
    assert organisation.decided_at is not None
    assert admin.organisation_id is None


def test_only_an_admin_creates_directly(session, member):
    with pytest.raises(PermissionDenied):
        services.create_organisation(actor(member), **profile())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "   "),
        ("name", "x" * 161),
        ("kind", "shop"),
        ("country", "USA"),
        ("country", "U1"),
        ("region", ""),
        ("site_address_line1", None),
        ("site_city", " "),
        ("site_postal_code", "1" * 21),
        ("site_is_not_a_home", False),
        ("budget_band", "lots"),
        ("people_reached_band", None),
        ("tax_exempt_certificate", "T" * 81),
        ("receives_public_funding", "yes"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(session, writes, field, value):
    user = factories.UserFactory()
    before = writes()
    with pytest.raises(InvalidInput) as refused:
        services.apply_to_join(actor(user), **profile(**{field: value}))
    assert refused.value.field == field
    assert writes() == before


def test_text_is_trimmed_and_empty_optional_text_is_none(session):
    organisation = services.apply_to_join(
        actor(factories.UserFactory()),
        **profile(name="  Riverside  ", site_address_line2="   ", tax_exempt_certificate=" TX-1 "),
    )
    assert organisation.name == "Riverside"
    assert organisation.site_address_line2 is None
    assert organisation.tax_exempt_certificate == "TX-1"


def test_a_duplicate_name_is_a_conflict_whatever_the_case(session, member):
    with pytest.raises(Conflict) as refused:
        services.apply_to_join(actor(factories.UserFactory()), **profile(name="harbour OUTREACH"))
    assert refused.value.field == "name"


def test_staff_update_their_profile_with_an_audited_before_and_after(session, member):
    organisation = member.organisation
    services.update_profile(actor(member), organisation.id,
                            {"site_city": "Salem", "accepts_short_dated": True, "region": "MA"})
    assert organisation.site_city == "Salem"
    [event] = audit_events("organisation.update")
    assert event.before == {"site_city": "Boston", "accepts_short_dated": False}
    assert event.after == {"site_city": "Salem", "accepts_short_dated": True}


@pytest.mark.parametrize("field", ["status", "low_resource", "assessment_reason", "decided_by_id"])
def test_the_profile_does_not_include_status_or_assessment(session, member, field):
    with pytest.raises(InvalidInput) as refused:
        services.update_profile(actor(member), member.organisation_id, {field: True})
    assert refused.value.field == field


def test_renaming_to_another_members_name_is_a_conflict(session, member):
    factories.OrganisationFactory(name="Northside")
    with pytest.raises(Conflict):
        services.update_profile(actor(member), member.organisation_id, {"name": "Northside"})
    # Keeping one's own name is no conflict.
    services.update_profile(actor(member), member.organisation_id, {"name": "Harbour Outreach"})


def test_finance_reads_but_does_not_edit(session, member, finance):
    organisation = services.get_organisation(actor(finance), member.organisation_id)
    with pytest.raises(PermissionDenied):
        services.update_profile(actor(finance), organisation.id, {"site_city": "Salem"})


def test_another_organisation_is_not_found_for_a_member(session, member):
    other = factories.OrganisationFactory()
    with pytest.raises(NotFound):
        services.get_organisation(actor(member), other.id)
    listed = db.session.scalars(services.organisations_for(actor(member))).all()
    assert listed == [member.organisation]


def test_a_user_without_organisation_sees_none(session, member):
    assert db.session.scalars(services.organisations_for(actor(factories.UserFactory()))).all() == []


def test_approve_and_reject_follow_the_membership_lifecycle(session, admin):
    applied = factories.OrganisationFactory(status=MembershipStatus.APPLIED)
    with pytest.raises(InvalidInput) as refused:
        services.reject(actor(admin), applied.id, "  ")
    assert refused.value.field == "reason"

    services.reject(actor(admin), applied.id, "Outside the club's region")
    assert applied.status == MembershipStatus.REJECTED
    assert applied.status_reason == "Outside the club's region"
    with pytest.raises(Conflict):
        services.reject(actor(admin), applied.id, "again")

    services.approve(actor(admin), applied.id)
    assert applied.status == MembershipStatus.APPROVED
    assert applied.status_reason is None
    assert applied.decided_by_id == admin.id
    with pytest.raises(Conflict):
        services.approve(actor(admin), applied.id)
    [event] = audit_events("organisation.approve")
    assert event.before["status"] == "rejected"
    assert event.after["status"] == "approved"


def test_staff_cannot_decide_their_own_membership(session, member):
    with pytest.raises(PermissionDenied):
        services.approve(actor(member), member.organisation_id)


def test_the_need_assessment_is_recorded_by_an_admin(session, admin, member):
    organisation = services.assess_need(actor(admin), member.organisation_id, low_resource=True,
                                        reason="No federal funding", deprivation_decile=2)
    assert organisation.low_resource is True
    assert organisation.deprivation_decile == 2
    assert organisation.assessed_by_id == admin.id
    assert organisation.assessed_at is not None
    [event] = audit_events("organisation.assess")
    assert event.before["low_resource"] is False
    assert event.after["assessment_reason"] == "No federal funding"


@pytest.mark.parametrize(
    ("low_resource", "reason", "decile", "field"),
    [(True, "because", 0, "deprivation_decile"), (True, "because", 11, "deprivation_decile"),
     (True, "", 3, "reason"), (False, None, True, "deprivation_decile")],
)
def test_a_bad_assessment_names_its_field(session, admin, member, low_resource, reason, decile,
                                          field):
    with pytest.raises(InvalidInput) as refused:
        services.assess_need(actor(admin), member.organisation_id, low_resource=low_resource,
                             reason=reason, deprivation_decile=decile)
    assert refused.value.field == field


def test_a_not_low_resource_assessment_needs_no_reason(session, admin, member):
    organisation = services.assess_need(actor(admin), member.organisation_id, low_resource=False)
    assert organisation.assessment_reason is None
    assert organisation.deprivation_decile is None


def test_document_status_warns_thirty_days_ahead(session):
    today = date(2026, 3, 1)

    def status(days):
        document = factories.DocumentFactory.build(expires_on=today + timedelta(days=days))
        return services.document_status(document, today)

    assert status(-1) == services.DocumentStatus.EXPIRED
    assert status(0) == services.DocumentStatus.EXPIRING
    assert status(30) == services.DocumentStatus.EXPIRING
    assert status(31) == services.DocumentStatus.VALID


def test_the_newest_document_of_a_kind_counts(session, member):
    today = utcnow().date()
    old = services.add_document(actor(member), member.organisation_id,
                                kind="prescriber_order", reference="SO-1",
                                expires_on=today + timedelta(days=400))
    renewal = services.add_document(actor(member), member.organisation_id,
                                    kind=DocumentKind.PRESCRIBER_ORDER, reference="SO-2",
                                    expires_on=today - timedelta(days=1))
    training = services.add_document(actor(member), member.organisation_id,
                                     kind="oxygen_training", reference="OX-1",
                                     expires_on=today + timedelta(days=10))
    rows = services.document_rows(
        db.session.scalars(services.list_documents(actor(member), member.organisation_id)).all()
    )
    assert [(row.document, row.current, row.status) for row in rows] == [
        (training, True, services.DocumentStatus.EXPIRING),
        (renewal, True, services.DocumentStatus.EXPIRED),
        (old, False, services.DocumentStatus.VALID),
    ]
    # The model agrees: the renewal, though expired, is the prescriber order that counts.
    assert member.organisation.current_document(DocumentKind.PRESCRIBER_ORDER) == renewal


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"kind": "passport"}, "kind"), ({"reference": " "}, "reference"),
     ({"expires_on": "2027-01-01"}, "expires_on")],
)
def test_a_bad_document_names_its_field(session, member, writes, changes, field):
    values = {"kind": "prescriber_order", "reference": "SO-1", "expires_on": date(2027, 1, 1),
              **changes}
    before = writes()
    with pytest.raises(InvalidInput) as refused:
        services.add_document(actor(member), member.organisation_id, **values)
    assert refused.value.field == field
    assert writes() == before


def test_finance_cannot_add_documents(session, member, finance):
    with pytest.raises(PermissionDenied):
        services.add_document(actor(finance), member.organisation_id, kind="prescriber_order",
                              reference="SO-1", expires_on=date(2027, 1, 1))
