"""Member organisations, their profile, need inputs and compliance documents.

Need is described only in aggregates and bands: no data about the people a
programme serves is ever stored. Shipping goes to the organisation's site.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from buyersclub.accounts.models import enum_column
from buyersclub.db import Base, utcnow


class OrganisationKind(enum.StrEnum):
    SYRINGE_SERVICES = "syringe_services"
    OUTREACH = "outreach"
    DRUG_USERS_UNION = "drug_users_union"
    MUTUAL_AID = "mutual_aid"
    HEALTH_CENTRE = "health_centre"
    OTHER = "other"


class MembershipStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"


class BudgetBand(enum.StrEnum):
    UNDER_50K = "under_50k"
    FROM_50K_TO_250K = "50k_250k"
    FROM_250K_TO_1M = "250k_1m"
    OVER_1M = "over_1m"


class PeopleReachedBand(enum.StrEnum):
    """People reached per month, as a rounded band: never a per-person count."""

    UNDER_100 = "under_100"
    FROM_100_TO_500 = "100_500"
    FROM_500_TO_2000 = "500_2000"
    OVER_2000 = "over_2000"


class DocumentKind(enum.StrEnum):
    PRESCRIBER_ORDER = "prescriber_order"
    PIPE_AUTHORISATION = "pipe_authorisation"
    OXYGEN_TRAINING = "oxygen_training"


KIND_LABELS = {
    OrganisationKind.SYRINGE_SERVICES: "Syringe services programme",
    OrganisationKind.OUTREACH: "Outreach team",
    OrganisationKind.DRUG_USERS_UNION: "Drug users' union",
    OrganisationKind.MUTUAL_AID: "Mutual-aid group",
    OrganisationKind.HEALTH_CENTRE: "Community health centre",
    OrganisationKind.OTHER: "Other",
}
BUDGET_LABELS = {
    BudgetBand.UNDER_50K: "Under 50,000 a year",
    BudgetBand.FROM_50K_TO_250K: "50,000 to 250,000 a year",
    BudgetBand.FROM_250K_TO_1M: "250,000 to 1 million a year",
    BudgetBand.OVER_1M: "Over 1 million a year",
}
PEOPLE_LABELS = {
    PeopleReachedBand.UNDER_100: "Fewer than 100 a month",
    PeopleReachedBand.FROM_100_TO_500: "100 to 500 a month",
    PeopleReachedBand.FROM_500_TO_2000: "500 to 2,000 a month",
    PeopleReachedBand.OVER_2000: "More than 2,000 a month",
}
DOCUMENT_LABELS = {
    DocumentKind.PRESCRIBER_ORDER: "Prescriber or standing order",
    DocumentKind.PIPE_AUTHORISATION: "Pipe-distribution authorisation",
    DocumentKind.OXYGEN_TRAINING: "Oxygen training attestation",
}


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint(
            "deprivation_decile IS NULL OR (deprivation_decile BETWEEN 1 AND 10)",
            name="deprivation_decile_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(enum_column(OrganisationKind, "organisation_kind"))
    status: Mapped[MembershipStatus] = mapped_column(
        enum_column(MembershipStatus, "membership_status"), default=MembershipStatus.APPLIED, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))

    # Jurisdiction: ISO 3166-1 alpha-2 country and a region (state, province).
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str] = mapped_column(String(80))

    # The site that receives shipments; never a home address.
    site_address_line1: Mapped[str] = mapped_column(String(160))
    site_address_line2: Mapped[str | None] = mapped_column(String(160))
    site_city: Mapped[str] = mapped_column(String(80))
    site_postal_code: Mapped[str] = mapped_column(String(20))
    site_is_not_a_home: Mapped[bool] = mapped_column(default=False)

    tax_exempt_certificate: Mapped[str | None] = mapped_column(String(80))

    budget_band: Mapped[BudgetBand] = mapped_column(enum_column(BudgetBand, "budget_band"))
    people_reached_band: Mapped[PeopleReachedBand] = mapped_column(
        enum_column(PeopleReachedBand, "people_reached_band")
    )
    receives_public_funding: Mapped[bool] = mapped_column(default=False)
    receives_private_funding: Mapped[bool] = mapped_column(default=False)
    accepts_short_dated: Mapped[bool] = mapped_column(default=False)

    # Need assessment, recorded by an admin.
    low_resource: Mapped[bool] = mapped_column(default=False)
    assessment_reason: Mapped[str | None] = mapped_column(Text)
    deprivation_decile: Mapped[int | None]
    assessed_at: Mapped[datetime | None]
    assessed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))

    staff = relationship(
        "User", back_populates="organisation", foreign_keys="User.organisation_id"
    )
    documents: Mapped[list[OrganisationDocument]] = relationship(
        back_populates="organisation", order_by="OrganisationDocument.recorded_at.desc()"
    )

    @property
    def is_approved(self) -> bool:
        return self.status == MembershipStatus.APPROVED

    def current_document(self, kind: DocumentKind) -> OrganisationDocument | None:
        """The latest document of a kind: newer records supersede older ones."""
        for document in self.documents:
            if document.kind == kind:
                return document
        return None

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.name!r}>"


class OrganisationDocument(Base):
    """A compliance document on file: a reference and an expiry date.

    Documents are never edited or deleted: a renewal is a new record, and the
    newest of each kind is the one that counts.
    """

    __tablename__ = "organisation_documents"
    __table_args__ = (Index("ix_organisation_documents_org_kind", "organisation_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[DocumentKind] = mapped_column(enum_column(DocumentKind, "document_kind"))
    reference: Mapped[str] = mapped_column(String(120))
    expires_on: Mapped[date]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))

    organisation: Mapped[Organisation] = relationship(back_populates="documents")

    def is_valid_on(self, day: date) -> bool:
        return self.expires_on >= day
