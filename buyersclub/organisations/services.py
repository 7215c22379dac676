"""Operations on member organisations: applying, the profile, the membership
decision, the need assessment, compliance documents and staff.

Every function takes the acting ``Actor`` first. Functions that change data
flush and audit (with before and after); none commits. Scoping lives here:
``get_organisation`` and ``organisations_for`` are the only ways the views and
the API reach an organisation, and a member asking for another organisation's
record gets ``NotFound``, never a hint that it exists.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, false, func, select

from buyersclub import mail
from buyersclub.accounts import services as accounts
from buyersclub.accounts.models import Role, User, UserRole
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from buyersclub.organisations.models import (
    BudgetBand,
    DocumentKind,
    MembershipStatus,
    Organisation,
    OrganisationDocument,
    OrganisationKind,
    PeopleReachedBand,
)
from buyersclub.validation import clean_text

# Roles that may read every organisation; members read only their own.
READERS_OF_ALL = (Role.ADMIN, Role.FINANCE)
EXPIRY_WARNING_DAYS = 30
MAX_REASON_LENGTH = 2000

# --- Validation ---------------------------------------------------------------

# The profile a member keeps.
TEXT_FIELDS: dict[str, tuple[str, int, bool]] = {
    # field: (what a person calls it, max length, required)
    "name": ("the organisation's name", 160, True),
    "region": ("the region (state, province)", 80, True),
    "site_address_line1": ("the first line of the site address", 160, True),
    "site_address_line2": ("the second line of the site address", 160, False),
    "site_city": ("the site's city or town", 80, True),
    "site_postal_code": ("the site's postal code", 20, True),
    "tax_exempt_certificate": ("the tax-exemption certificate number", 80, False),
}
ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "kind": OrganisationKind,
    "budget_band": BudgetBand,
    "people_reached_band": PeopleReachedBand,
}
BOOL_FIELDS = (
    "site_is_not_a_home",
    "receives_public_funding",
    "receives_private_funding",
    "accepts_short_dated",
)
PROFILE_FIELDS = (*TEXT_FIELDS, "country", *ENUM_FIELDS, *BOOL_FIELDS)
ASSESSMENT_FIELDS = ("low_resource", "assessment_reason", "deprivation_decile", "assessed_at",
                     "assessed_by_id")
COUNTRY = re.compile(r"[A-Z]{2}")


def _clean_enum(value: Any, field: str, enum_class: type[enum.Enum]) -> enum.Enum:
    try:
        return enum_class(value)
    except ValueError as exc:
        choices = ", ".join(member.value for member in enum_class)
        raise InvalidInput(f"Choose one of: {choices}.", field=field) from exc


def _clean_country(value: Any) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if not COUNTRY.fullmatch(text):
        raise InvalidInput("Enter the country as its two-letter ISO code, e.g. US or CA.",
                           field="country")
    return text


def _clean_profile_value(field: str, value: Any) -> Any:
    if field in TEXT_FIELDS:
        label, max_length, required = TEXT_FIELDS[field]
        return clean_text(value, field, label, max_length, required=required)
    if field in ENUM_FIELDS:
        return _clean_enum(value, field, ENUM_FIELDS[field])
    if field == "country":
        return _clean_country(value)
    if field in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise InvalidInput("Answer yes or no.", field=field)
        if field == "site_is_not_a_home" and not value:
            raise InvalidInput(
                "Shipments go to the organisation's site, never to a home address: "
                "confirm that the site is not a home.",
                field=field,
            )
        return value
    raise InvalidInput(f"{field} is not part of an organisation's profile.", field=field)


def clean_profile(values: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validated profile values, in field order; raises on the first bad one.

    With ``partial`` only the given fields are checked (an update); otherwise
    every required field must be there, and the site must not be a home.
    """
    for field in values:
        if field not in PROFILE_FIELDS:
            raise InvalidInput(f"{field} is not part of an organisation's profile.", field=field)
    cleaned: dict[str, Any] = {}
    for field in PROFILE_FIELDS:
        if field in values:
            cleaned[field] = _clean_profile_value(field, values[field])
        elif not partial:
            if field in BOOL_FIELDS and field != "site_is_not_a_home":
                cleaned[field] = False
            else:
                cleaned[field] = _clean_profile_value(field, None)
    return cleaned


def _check_name_free(name: str, organisation_id: int | None = None) -> None:
    statement = select(Organisation.id).where(func.lower(Organisation.name) == name.lower())
    if organisation_id is not None:
        statement = statement.where(Organisation.id != organisation_id)
    if db.session.scalar(statement.limit(1)) is not None:
        raise Conflict("An organisation with this name is already a member or has applied.",
                       field="name")


# --- Reading, with scoping ----------------------------------------------------


def organisation_names(ids: Iterable[int | None]) -> dict[int, str]:
    """Organisation id -> name for the ids given (``None`` and repeats ignored), in one query."""
    wanted = {each for each in ids if each is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(select(Organisation.id, Organisation.name)
                                   .where(Organisation.id.in_(wanted))).tuples().all())


def get_organisation(actor: Actor, organisation_id: int) -> Organisation:
    """The organisation, for admin and finance or its own staff; else NotFound."""
    actor.require_own_organisation(organisation_id, *READERS_OF_ALL)
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.")
    return organisation


def organisations_for(
    actor: Actor, *, status: MembershipStatus | str | None = None, q: str | None = None
) -> Select:
    """The organisations the actor may see, by name: all for admin and finance,
    only its own for member staff, none for anyone else."""
    statement = select(Organisation).order_by(Organisation.name, Organisation.id)
    if not actor.has_role(*READERS_OF_ALL):
        statement = statement.where(Organisation.id == actor.organisation_id)
        if actor.organisation_id is None:
            statement = statement.where(false())
    if status:
        statement = statement.where(
            Organisation.status == _clean_enum(status, "status", MembershipStatus)
        )
    if q and q.strip():
        statement = statement.where(
            func.lower(Organisation.name).contains(q.strip().lower(), autoescape=True)
        )
    return statement


def require_editor(actor: Actor, organisation: Organisation) -> None:
    """Admin for any organisation, its own staff for their own."""
    if actor.has_role(Role.ADMIN):
        return
    if actor.user is None or actor.user.organisation_id != organisation.id:
        raise PermissionDenied("Only the organisation's own staff or an admin may change this.")


def list_staff(actor: Actor, organisation_id: int) -> Select:
    """The organisation's staff accounts, by name (scoped like ``get_organisation``)."""
    organisation = get_organisation(actor, organisation_id)
    return (
        select(User)
        .where(User.organisation_id == organisation.id)
        .order_by(User.name, User.id)
    )


def list_documents(actor: Actor, organisation_id: int) -> Select:
    """The organisation's documents, newest first (scoped like ``get_organisation``)."""
    organisation = get_organisation(actor, organisation_id)
    return (
        select(OrganisationDocument)
        .where(OrganisationDocument.organisation_id == organisation.id)
        .order_by(OrganisationDocument.recorded_at.desc(), OrganisationDocument.id.desc())
    )


# --- Applying and creating ----------------------------------------------------


def apply_to_join(actor: Actor, **profile: Any) -> Organisation:
    """A signed-up user applies for its organisation and becomes its member staff."""
    user = actor.user
    if user is None:
        raise PermissionDenied("Sign in, or create an account, to apply.")
    if user.organisation_id is not None:
        raise Conflict("Your account already belongs to an organisation.", field="organisation")
    values = clean_profile(profile)
    _check_name_free(values["name"])
    organisation = Organisation(**values, status=MembershipStatus.APPLIED, applied_by_id=user.id)
    db.session.add(organisation)
    db.session.flush()
    record(actor, "organisation.apply", "organisation", organisation.id,
           after=snapshot(organisation), organisation_id=organisation.id)

    before = {"organisation_id": user.organisation_id, "roles": sorted(user.roles)}
    user.organisation_id = organisation.id
    if Role.MEMBER not in user.roles:
        user.role_grants.append(UserRole(role=Role.MEMBER))
    db.session.flush()
    record(actor, "user.join_organisation", "user", user.id, before=before,
           after={"organisation_id": organisation.id, "roles": sorted(user.roles)},
           organisation_id=organisation.id)
    return organisation


def create_organisation(actor: Actor, **profile: Any) -> Organisation:
    """An admin creates a member organisation directly: it starts approved."""
    actor.require(Role.ADMIN)
    values = clean_profile(profile)
    _check_name_free(values["name"])
    organisation = Organisation(
        **values,
        status=MembershipStatus.APPROVED,
        decided_at=utcnow(),
        decided_by_id=actor.user_id,
        applied_by_id=actor.user_id,
    )
    db.session.add(organisation)
    db.session.flush()
    record(actor, "organisation.create", "organisation", organisation.id,
           after=snapshot(organisation), organisation_id=organisation.id)
    return organisation


def update_profile(actor: Actor, organisation_id: int, changes: Mapping[str, Any]) -> Organisation:
    """Change profile fields (its staff for their own, an admin for any).

    Status and assessment are not part of the profile: they change only by
    approve/reject and the need assessment.
    """
    organisation = get_organisation(actor, organisation_id)
    require_editor(actor, organisation)
    values = clean_profile(changes, partial=True)
    if "name" in values:
        _check_name_free(values["name"], organisation.id)
    changed = {field: value for field, value in values.items()
               if getattr(organisation, field) != value}
    if not changed:
        return organisation
    before = snapshot(organisation, list(changed))
    for field, value in changed.items():
        setattr(organisation, field, value)
    db.session.flush()
    record(actor, "organisation.update", "organisation", organisation.id,
           before=before, after=snapshot(organisation, list(changed)),
           organisation_id=organisation.id)
    return organisation


# --- The membership decision --------------------------------------------------


def _mail_staff(organisation: Organisation, subject: str, body: str) -> None:
    staff = db.session.scalars(
        select(User).where(User.organisation_id == organisation.id, User.is_active.is_(True))
        .order_by(User.id)
    ).all()
    for person in staff:
        mail.send(person.email, subject, f"Hello {person.name},\n\n{body}")


DECISION_FIELDS = ["status", "status_reason", "decided_at", "decided_by_id"]


def approve(actor: Actor, organisation_id: int) -> Organisation:
    """Admit an organisation that applied (or reconsider a rejected one)."""
    organisation = get_organisation(actor, organisation_id)
    actor.require(Role.ADMIN)
    if organisation.status not in (MembershipStatus.APPLIED, MembershipStatus.REJECTED):
        raise Conflict("This organisation is already approved.", field="status")
    before = snapshot(organisation, DECISION_FIELDS)
    organisation.status = MembershipStatus.APPROVED
    organisation.status_reason = None
    organisation.decided_at = utcnow()
    organisation.decided_by_id = actor.user_id
    db.session.flush()
    record(actor, "organisation.approve", "organisation", organisation.id,
           before=before, after=snapshot(organisation, DECISION_FIELDS),
           organisation_id=organisation.id)
    _mail_staff(
        organisation,
        f"{organisation.name} is now a member of the buyers' club",
        f"{organisation.name}'s application to the buyers' club is approved. You can now "
        "take part in buying rounds.\n",
    )
    return organisation


def reject(actor: Actor, organisation_id: int, reason: Any) -> Organisation:
    """Turn down an application, saying why; the reason is mailed to its staff."""
    organisation = get_organisation(actor, organisation_id)
    actor.require(Role.ADMIN)
    reason = clean_text(reason, "reason", "the reason for the decision", MAX_REASON_LENGTH,
                        required=True)
    if organisation.status != MembershipStatus.APPLIED:
        raise Conflict(
            f"Only an application can be rejected; this organisation is {organisation.status.value}.",
            field="status",
        )
    before = snapshot(organisation, DECISION_FIELDS)
    organisation.status = MembershipStatus.REJECTED
    organisation.status_reason = reason
    organisation.decided_at = utcnow()
    organisation.decided_by_id = actor.user_id
    db.session.flush()
    record(actor, "organisation.reject", "organisation", organisation.id,
           before=before, after=snapshot(organisation, DECISION_FIELDS),
           organisation_id=organisation.id)
    _mail_staff(
        organisation,
        f"Your application for {organisation.name}",
        f"The buyers' club could not accept {organisation.name}'s application at this time.\n\n"
        f"The reason given:\n{reason}\n\nYou may reply to this message to ask about it.\n",
    )
    return organisation


# --- Need assessment ----------------------------------------------------------


def assess_need(
    actor: Actor,
    organisation_id: int,
    *,
    low_resource: bool,
    reason: Any = None,
    deprivation_decile: Any = None,
) -> Organisation:
    """Record an admin's need assessment: the low-resource flag and its inputs."""
    organisation = get_organisation(actor, organisation_id)
    actor.require(Role.ADMIN)
    if not isinstance(low_resource, bool):
        raise InvalidInput("Answer yes or no.", field="low_resource")
    reason = clean_text(reason, "reason", "the reason for the assessment", MAX_REASON_LENGTH,
                        required=low_resource)
    if deprivation_decile is not None and (
        isinstance(deprivation_decile, bool)
        or not isinstance(deprivation_decile, int)
        or not 1 <= deprivation_decile <= 10
    ):
        raise InvalidInput("The deprivation decile is a whole number from 1 to 10, or empty.",
                           field="deprivation_decile")
    before = snapshot(organisation, list(ASSESSMENT_FIELDS))
    organisation.low_resource = low_resource
    organisation.assessment_reason = reason
    organisation.deprivation_decile = deprivation_decile
    organisation.assessed_at = utcnow()
    organisation.assessed_by_id = actor.user_id
    db.session.flush()
    record(actor, "organisation.assess", "organisation", organisation.id,
           before=before, after=snapshot(organisation, list(ASSESSMENT_FIELDS)),
           organisation_id=organisation.id)
    return organisation


# --- Compliance documents -----------------------------------------------------


class DocumentStatus(enum.StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"


DOCUMENT_STATUS_LABELS = {
    DocumentStatus.VALID: "Valid",
    DocumentStatus.EXPIRING: f"Expires within {EXPIRY_WARNING_DAYS} days",
    DocumentStatus.EXPIRED: "Expired",
}


def document_status(document: OrganisationDocument, today: date | None = None) -> DocumentStatus:
    today = today or utcnow().date()
    if document.expires_on < today:
        return DocumentStatus.EXPIRED
    if document.expires_on <= today + timedelta(days=EXPIRY_WARNING_DAYS):
        return DocumentStatus.EXPIRING
    return DocumentStatus.VALID


@dataclass(frozen=True)
class DocumentRow:
    """A document as a person sees it: its status, and whether it is the one that counts."""

    document: OrganisationDocument
    status: DocumentStatus
    current: bool

    @property
    def status_label(self) -> str:
        return DOCUMENT_STATUS_LABELS[self.status]


def document_rows(documents: list[OrganisationDocument], today: date | None = None) -> list[DocumentRow]:
    """Documents (newest first) marked with status and which of each kind counts."""
    seen: set[DocumentKind] = set()
    rows = []
    for document in documents:
        rows.append(DocumentRow(document, document_status(document, today), document.kind not in seen))
        seen.add(document.kind)
    return rows


def add_document(
    actor: Actor, organisation_id: int, *, kind: Any, reference: Any, expires_on: Any
) -> OrganisationDocument:
    """Put a document on file. Documents are never edited: a renewal is a new one."""
    organisation = get_organisation(actor, organisation_id)
    require_editor(actor, organisation)
    kind = _clean_enum(kind, "kind", DocumentKind)
    reference = clean_text(reference, "reference", "the document's reference", 120, required=True)
    if not isinstance(expires_on, date):
        raise InvalidInput("Enter the expiry date as YYYY-MM-DD.", field="expires_on")
    document = OrganisationDocument(
        organisation_id=organisation.id,
        kind=kind,
        reference=reference,
        expires_on=expires_on,
        recorded_at=utcnow(),
        recorded_by_id=actor.user_id,
    )
    db.session.add(document)
    db.session.flush()
    record(actor, "organisation_document.add", "organisation_document", document.id,
           after=snapshot(document), organisation_id=organisation.id)
    db.session.expire(organisation, ["documents"])
    return document


# --- Staff --------------------------------------------------------------------


def invite_colleague(
    actor: Actor, organisation_id: int, *, email: str, name: str, invite_url: Callable[[str], str]
) -> User:
    """Invite a colleague to the organisation (its staff, or an admin).

    ``invite_url`` turns the signed token into the link to mail; the web and
    API layers build it, so this function knows nothing of URLs.
    """
    organisation = get_organisation(actor, organisation_id)
    require_editor(actor, organisation)
    name = clean_text(name, "name", "the colleague's name", 120, required=True)
    return accounts.invite_colleague(actor, organisation.id, email=email or "", name=name,
                                     invite_url=invite_url)


def staff_status(user: User) -> str:
    if not user.is_active:
        return "disabled"
    return "invited" if user.password_hash is None else "active"
