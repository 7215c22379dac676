"""The catalogue: suppliers, products, price breaks and shipping restrictions."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
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
