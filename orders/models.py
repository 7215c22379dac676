"""The catalogue: suppliers, products, price breaks and shipping restrictions."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from buyersclub.accounts.models import enum_column
from buyersclub.db import Base, utcnow
from buyersclub.ledger.models import MONEY
from buyersclub.organisations.models import DocumentKind


class ProductCategory(enum.StrEnum):
    PIPES = "pipes"
    NALOXONE = "naloxone"
    OXYGEN = "oxygen"
    OTHER = "other"


class Supplier(Base):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    contact_name: Mapped[str | None] = mapped_column(String(120))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    products: Mapped[list[Product]] = relationship(back_populates="supplier", order_by="Product.name")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("supplier_id", "sku"),
        CheckConstraint("pack_size > 0", name="pack_size_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    sku: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(160))
    category: Mapped[ProductCategory] = mapped_column(enum_column(ProductCategory, "product_category"))
    # What one unit is: "box of 2 nasal doses", "vial", "cylinder", "pipe".
    unit: Mapped[str] = mapped_column(String(60))
    # Units per case: the supplier sells whole cases only.
    pack_size: Mapped[int]
    required_document: Mapped[DocumentKind | None] = mapped_column(
        enum_column(DocumentKind, "required_document")
    )
    lot_tracked: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    supplier: Mapped[Supplier] = relationship(back_populates="products")
    price_breaks: Mapped[list[PriceBreak]] = relationship(
        back_populates="product", order_by="PriceBreak.min_units", cascade="all, delete-orphan"
    )
    restrictions: Mapped[list[ProductRestriction]] = relationship(
        back_populates="product", cascade="all, delete-orphan"
    )


class PriceBreak(Base):
    """The supplier's unit cost from ``min_units`` units in one purchase order."""

    __tablename__ = "price_breaks"
    __table_args__ = (
        UniqueConstraint("product_id", "min_units"),
        CheckConstraint("min_units >= 1", name="min_units_positive"),
        CheckConstraint("unit_cost > 0", name="unit_cost_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    min_units: Mapped[int]
    unit_cost: Mapped[Decimal] = mapped_column(MONEY)

    product: Mapped[Product] = relationship(back_populates="price_breaks")


class ProductRestriction(Base):
    """A jurisdiction the product may not be shipped to (a whole country when region is empty)."""

    __tablename__ = "product_restrictions"
    __table_args__ = (UniqueConstraint("product_id", "country", "region"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(String(200))

    product: Mapped[Product] = relationship(back_populates="restrictions")


class RoundStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    ORDERED = "ordered"
    RECEIVED = "received"
    INVOICED = "invoiced"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class AllocationPolicy(enum.StrEnum):
    PROPORTIONAL = "proportional"
    FIRST_COME_FIRST_SERVED = "first_come_first_served"


class Round(Base):
    """A pooled buying round with one supplier."""

    __tablename__ = "rounds"
    __table_args__ = (
        CheckConstraint("operating_share >= 0 AND operating_share < 1", name="operating_share_range"),
        CheckConstraint("minimum_order >= 0", name="minimum_order_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    status: Mapped[RoundStatus] = mapped_column(
        enum_column(RoundStatus, "round_status"), default=RoundStatus.DRAFT, index=True
    )
    deadline: Mapped[datetime]
    # The supplier's minimum order value; below it the round is cancelled at close.
    minimum_order: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    allocation_policy: Mapped[AllocationPolicy] = mapped_column(
        enum_column(AllocationPolicy, "allocation_policy"), default=AllocationPolicy.PROPORTIONAL
    )
    # Share of revenue kept to recover operating costs, e.g. 0.0500.
    operating_share: Mapped[Decimal] = mapped_column(Numeric(5, 4), default=Decimal("0"))
    shipping_cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    notes: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    supplier: Mapped[Supplier] = relationship()
    items: Mapped[list[RoundItem]] = relationship(
        back_populates="round", order_by="RoundItem.id", cascade="all, delete-orphan"
    )


class RoundItem(Base):
    """A product offered in a round, at the club price published when it opened.

    The pack size and price breaks are copied at opening, so later catalogue
    edits never change a round in progress.
    """

    __tablename__ = "round_items"
    __table_args__ = (
        UniqueConstraint("round_id", "product_id"),
        CheckConstraint("club_price > 0", name="club_price_positive"),
        CheckConstraint("member_cap IS NULL OR member_cap > 0", name="member_cap_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    club_price: Mapped[Decimal] = mapped_column(MONEY)
    member_cap: Mapped[int | None]
    pack_size: Mapped[int | None]
    price_breaks: Mapped[list[dict] | None] = mapped_column(JSON)

    round: Mapped[Round] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


class Commitment(Base):
    """A member's current quantity and tolerance for one product of a round.

    First-come-first-served orders commitments by ``(first_committed_at, id)``:
    the time is kept while a member lowers its quantity or changes its
    tolerance, and moves to the change's time when it raises the quantity or
    commits again after withdrawing. Every change is kept in
    ``commitment_changes``.
    """

    __tablename__ = "commitments"
    __table_args__ = (
        UniqueConstraint("round_id", "product_id", "organisation_id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("tolerance >= 0", name="tolerance_not_negative"),
        Index("ix_commitments_round_product", "round_id", "product_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    quantity: Mapped[int]
    tolerance: Mapped[int] = mapped_column(default=0)
    first_committed_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    changes: Mapped[list[CommitmentChange]] = relationship(
        back_populates="commitment", order_by="CommitmentChange.id"
    )


class CommitmentChange(Base):
    """One change to a commitment, with its time: the history members see."""

    __tablename__ = "commitment_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    commitment_id: Mapped[int] = mapped_column(ForeignKey("commitments.id"), index=True)
    quantity: Mapped[int]
    tolerance: Mapped[int]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    commitment: Mapped[Commitment] = relationship(back_populates="changes")


class OptionKind(enum.StrEnum):
    BASE = "base"
    JUMP = "jump"


class ProductClosing(Base):
    """What the club buys of one product when its round closes: the option the admin chose.

    Amounts are those of the close engine for that option. ``free_units`` were
    bought by a price-break jump (out of the fund) and are not allocated to
    members at the club price.
    """

    __tablename__ = "product_closings"
    __table_args__ = (
        UniqueConstraint("round_item_id"),
        CheckConstraint("units >= 0", name="units_not_negative"),
        CheckConstraint("free_units >= 0", name="free_units_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    round_item_id: Mapped[int] = mapped_column(ForeignKey("round_items.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    option_kind: Mapped[OptionKind] = mapped_column(enum_column(OptionKind, "option_kind"))
    firm_total: Mapped[int]
    tolerance_total: Mapped[int]
    cases: Mapped[int]
    units: Mapped[int]
    unit_cost: Mapped[Decimal] = mapped_column(MONEY)
    supplier_cost: Mapped[Decimal] = mapped_column(MONEY)
    revenue: Mapped[Decimal] = mapped_column(MONEY)
    operating_recovery: Mapped[Decimal] = mapped_column(MONEY)
    margin: Mapped[Decimal] = mapped_column(MONEY)
    free_units: Mapped[int] = mapped_column(default=0)
    free_units_cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    explanation: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))

    round_item: Mapped[RoundItem] = relationship()
    product: Mapped[Product] = relationship()


class AllocationSource(enum.StrEnum):
    CLOSE = "close"
    RECEIPT = "receipt"


class Allocation(Base):
    """Units of a product a member receives from a round.

    Never edited: a delivery shortfall or surplus writes new rows and marks the
    old ones superseded, so the current allocation is the rows whose
    ``superseded_at`` is empty and the history stays readable.
    """

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("firm_units >= 0 AND tolerance_units >= 0", name="units_not_negative"),
        Index("ix_allocations_round_product", "round_id", "product_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Copied from the product closing, which is keyed to the round and product: no foreign
    # keys of their own, which would double-check every row of a 100,000-row close
    # (migration 0008).
    round_id: Mapped[int]
    product_id: Mapped[int]
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    product_closing_id: Mapped[int] = mapped_column(ForeignKey("product_closings.id"))
    firm_units: Mapped[int]
    tolerance_units: Mapped[int] = mapped_column(default=0)
    source: Mapped[AllocationSource] = mapped_column(enum_column(AllocationSource, "allocation_source"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None]

    @property
    def units(self) -> int:
        return self.firm_units + self.tolerance_units


class Receipt(Base):
    """A delivery from the supplier for a round, as counted on arrival."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    received_on: Mapped[date]
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    lines: Mapped[list[ReceiptLine]] = relationship(back_populates="receipt", order_by="ReceiptLine.id")


class ReceiptLine(Base):
    """Units of one product from one lot (lot and expiry for lot-tracked products)."""

    __tablename__ = "receipt_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_receipt_lines_lot", "lot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipts.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    lot: Mapped[str | None] = mapped_column(String(60))
    expiry: Mapped[date | None]
    quantity: Mapped[int]

    receipt: Mapped[Receipt] = relationship(back_populates="lines")


class LotShipment(Base):
    """Units of a lot packed for a member (or kept as fund free stock): the recall record."""

    __tablename__ = "lot_shipments"
    __table_args__ = (
        CheckConstraint("units > 0", name="units_positive"),
        Index("ix_lot_shipments_lot", "lot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    receipt_line_id: Mapped[int] = mapped_column(ForeignKey("receipt_lines.id"))
    # None: kept by the fund as free stock.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    lot: Mapped[str | None] = mapped_column(String(60))
    expiry: Mapped[date | None]
    units: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
