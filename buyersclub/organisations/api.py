"""Organisation endpoints of the JSON API (see API.md).

Scoping is the services' job: another organisation's record is 404, never
403, so admin-only actions on an organisation declare no role here and let
the service look the organisation up (404) before it checks the role (403).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from flask import request, url_for
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from buyersclub.accounts.models import Role, User
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, json_response, paginate
from buyersclub.db import db
from buyersclub.organisations import services
from buyersclub.organisations.models import (
    BudgetBand,
    DocumentKind,
    MembershipStatus,
    Organisation,
    OrganisationDocument,
    OrganisationKind,
    PeopleReachedBand,
)

bp = ApiBlueprint("organisations_api", __name__, tag="organisations")

ORG = "/organisations/<int:organisation_id>"

Name = Annotated[str, Field(max_length=160)]
Short = Annotated[str, Field(max_length=80)]


# --- Input -------------------------------------------------------------------


class OrganisationIn(BaseModel):
    """The full profile, to apply (or, for an admin, to create a member directly)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: OrganisationKind
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. US", max_length=2)
    region: Short = Field(description="State, province or region")
    site_address_line1: Annotated[str, Field(max_length=160)]
    site_address_line2: Annotated[str, Field(max_length=160)] | None = None
    site_city: Short
    site_postal_code: Annotated[str, Field(max_length=20)]
    site_is_not_a_home: StrictBool = Field(
        description="Must be true: shipments go to the organisation's site, never a home"
    )
    tax_exempt_certificate: Short | None = None
    budget_band: BudgetBand
    people_reached_band: PeopleReachedBand
    receives_public_funding: StrictBool = False
    receives_private_funding: StrictBool = False
    accepts_short_dated: StrictBool = False


class OrganisationPatch(BaseModel):
    """Any profile fields to change. Status and assessment are not part of the profile."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: OrganisationKind | None = None
    country: str | None = Field(None, max_length=2)
    region: Short | None = None
    site_address_line1: Annotated[str, Field(max_length=160)] | None = None
    site_address_line2: Annotated[str, Field(max_length=160)] | None = None
    site_city: Short | None = None
    site_postal_code: Annotated[str, Field(max_length=20)] | None = None
    site_is_not_a_home: StrictBool | None = None
    tax_exempt_certificate: Short | None = None
    budget_band: BudgetBand | None = None
    people_reached_band: PeopleReachedBand | None = None
    receives_public_funding: StrictBool | None = None
    receives_private_funding: StrictBool | None = None
    accepts_short_dated: StrictBool | None = None


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, description="Required: why the application is turned down")


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low_resource: StrictBool
    reason: str | None = Field(None, description="Required when low_resource is true")
    deprivation_decile: int | None = Field(None, ge=1, le=10,
                                           description="1 (most deprived) to 10, or null")


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=254)]
    name: Annotated[str, Field(max_length=120)]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DocumentKind
    reference: Annotated[str, Field(max_length=120)]
    expires_on: date


# --- Output ------------------------------------------------------------------


class OrganisationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: OrganisationKind
    status: MembershipStatus
    status_reason: str | None
    decided_at: datetime | None
    country: str
    region: str
    site_address_line1: str
    site_address_line2: str | None
    site_city: str
    site_postal_code: str
    site_is_not_a_home: bool
    tax_exempt_certificate: str | None
    budget_band: BudgetBand
    people_reached_band: PeopleReachedBand
    receives_public_funding: bool
    receives_private_funding: bool
    accepts_short_dated: bool
    low_resource: bool
    assessment_reason: str | None
    deprivation_decile: int | None
    assessed_at: datetime | None
    created_at: datetime


class StaffOut(BaseModel):
    id: int
    name: str
    email: str
    roles: list[str]
    status: str = Field(description="active, invited (no password yet) or disabled")
    last_sign_in_at: datetime | None


class DocumentOut(BaseModel):
    id: int
    organisation_id: int
    kind: DocumentKind
    reference: str
    expires_on: date
    recorded_at: datetime
    status: services.DocumentStatus = Field(
        description="valid, expiring (within 30 days) or expired"
    )
    current: bool = Field(description="True for the newest document of its kind: the one that counts")


def organisation_out(organisation: Organisation) -> OrganisationOut:
    return OrganisationOut.model_validate(organisation)


def staff_out(user: User) -> StaffOut:
    return StaffOut(id=user.id, name=user.name, email=user.email,
                    roles=sorted(str(role) for role in user.roles),
                    status=services.staff_status(user), last_sign_in_at=user.last_sign_in_at)


def document_out(document: OrganisationDocument, current: bool) -> DocumentOut:
    return DocumentOut(
        id=document.id, organisation_id=document.organisation_id, kind=document.kind,
        reference=document.reference, expires_on=document.expires_on,
        recorded_at=document.recorded_at, status=services.document_status(document),
        current=current,
    )


def _created(data: BaseModel, location: str):
    response = json_response(data, 201)
    response.headers["Location"] = location
    return response


# --- Organisations -----------------------------------------------------------


@bp.endpoint("/organisations", "POST", summary="Apply to join, or (admin) create a member",
             body=OrganisationIn, response=OrganisationOut, status=201)
def create_organisation(actor: Actor, body: OrganisationIn):
    """A signed-up user without an organisation applies for its organisation and becomes
    its staff (status `applied`). An admin creates a member directly (status `approved`)."""
    profile = body.model_dump()
    if actor.has_role(Role.ADMIN):
        organisation = services.create_organisation(actor, **profile)
    else:
        organisation = services.apply_to_join(actor, **profile)
    return _created(organisation_out(organisation),
                    url_for(".get_organisation", organisation_id=organisation.id))


@bp.endpoint("/organisations", "GET", summary="Organisations (member staff: only their own)",
             response=OrganisationOut, paginated=True,
             query={"status": "applied, approved or rejected", "q": "part of the name"})
def list_organisations(actor: Actor):
    statement = services.organisations_for(
        actor, status=request.args.get("status") or None, q=request.args.get("q")
    )
    return paginate(statement, organisation_out)


@bp.endpoint(ORG, "GET", summary="One organisation's profile", response=OrganisationOut)
def get_organisation(actor: Actor, organisation_id: int):
    return organisation_out(services.get_organisation(actor, organisation_id))


@bp.endpoint(ORG, "PATCH", summary="Change the profile (its staff, or an admin)",
             body=OrganisationPatch, response=OrganisationOut)
def update_organisation(actor: Actor, organisation_id: int, body: OrganisationPatch):
    changes = body.model_dump(exclude_unset=True)
    return organisation_out(services.update_profile(actor, organisation_id, changes))


@bp.endpoint(ORG + "/approve", "POST", summary="Approve the membership (admin)",
             response=OrganisationOut)
def approve_organisation(actor: Actor, organisation_id: int):
    """Admin only. From `applied` or `rejected`; the organisation's staff are e-mailed."""
    return organisation_out(services.approve(actor, organisation_id))


@bp.endpoint(ORG + "/reject", "POST", summary="Reject the application (admin)",
             body=RejectIn, response=OrganisationOut)
def reject_organisation(actor: Actor, organisation_id: int, body: RejectIn):
    """Admin only. From `applied`; `reason` is required and e-mailed to the staff."""
    return organisation_out(services.reject(actor, organisation_id, body.reason))


@bp.endpoint(ORG + "/assessment", "PUT", summary="Record the need assessment (admin)",
             body=AssessmentIn, response=OrganisationOut)
def put_assessment(actor: Actor, organisation_id: int, body: AssessmentIn):
    """Admin only. The low-resource flag (a reason is required when true) and the
    deprivation decile (1-10 or null)."""
    return organisation_out(services.assess_need(
        actor, organisation_id, low_resource=body.low_resource, reason=body.reason,
        deprivation_decile=body.deprivation_decile,
    ))


# --- Staff -------------------------------------------------------------------


@bp.endpoint(ORG + "/members", "GET", summary="The organisation's staff",
             response=StaffOut, paginated=True)
def list_members(actor: Actor, organisation_id: int):
    return paginate(services.list_staff(actor, organisation_id), staff_out)


@bp.endpoint(ORG + "/members", "POST", summary="Invite a colleague (its staff, or an admin)",
             body=InviteIn, response=StaffOut, status=201)
def invite_member(actor: Actor, organisation_id: int, body: InviteIn):
    """Creates a member account without a password and e-mails an invitation link; the
    account is usable once the colleague sets a password from it."""
    user = services.invite_colleague(
        actor, organisation_id, email=body.email, name=body.name,
        invite_url=lambda token: url_for("accounts.accept_invitation", token=token, _external=True),
    )
    return staff_out(user), 201


# --- Documents ---------------------------------------------------------------


@bp.endpoint(ORG + "/documents", "GET", summary="Compliance documents, newest first",
             response=DocumentOut, paginated=True)
def list_documents(actor: Actor, organisation_id: int):
    statement = services.list_documents(actor, organisation_id)
    newest = {
        row.document.id
        for row in services.document_rows(db.session.scalars(statement).all())
        if row.current
    }
    return paginate(statement, lambda document: document_out(document, document.id in newest))


@bp.endpoint(ORG + "/documents", "POST", summary="Put a document on file (its staff, or an admin)",
             body=DocumentIn, response=DocumentOut, status=201)
def add_document(actor: Actor, organisation_id: int, body: DocumentIn):
    """Documents are never edited or deleted: a renewal is a new document, and the newest
    of each kind is the one that counts."""
    document = services.add_document(actor, organisation_id, kind=body.kind,
                                     reference=body.reference, expires_on=body.expires_on)
    return document_out(document, current=True), 201
