"""Suppliers and the catalogue: products, their price breaks and their rules.

Validation happens here, before anything is written, so the JSON API and the
pages give the same messages, each naming its field (``price_breaks.1.unit_cost``).
Price-break rules: at least one break; the first starts at 1 unit; thresholds
strictly ascending; unit costs positive and never rising with volume.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db
from buyersclub.errors import Conflict, InvalidInput, NotFound
from buyersclub.money import MoneyError, to_money
from buyersclub.organisations.models import DocumentKind
from buyersclub.validation import clean_text
from orders.models import PriceBreak, Product, ProductCategory, ProductRestriction, Supplier

COUNTRY = re.compile(r"[A-Z]{2}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# --- Small validators shared with rounds and commitments ---------------------


def clean_whole_number(value: Any, field: str, label: str, *, minimum: int) -> int:
    """A whole number (never a bool or a float) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Enter {label} as a whole number.", field=field)
    if value < minimum:
        raise InvalidInput(f"{label.capitalize()} must be {minimum} or more.", field=field)
    return value


def clean_money(value: Any, field: str, label: str, *, positive: bool = False) -> Decimal:
    """An amount given as a string (or Decimal) with at most two decimals; never a float."""
    if isinstance(value, bool | float | int) and not isinstance(value, Decimal):
        raise InvalidInput(f"Give {label} as a string with two decimals, e.g. \"40.00\".", field=field)
    try:
        amount = to_money(value)
    except MoneyError as exc:
        raise InvalidInput(f"Give {label} as an amount with at most two decimals, e.g. \"40.00\".",
                           field=field) from exc
    if positive and amount <= 0:
        raise InvalidInput(f"{label.capitalize()} must be more than zero.", field=field)
    if amount < 0:
        raise InvalidInput(f"{label.capitalize()} must not be negative.", field=field)
    return amount


def _clean_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("Answer true or false.", field=field)
    return value


def _clean_enum(value: Any, field: str, enum_class) -> Any:
    try:
        return enum_class(value)
    except ValueError as exc:
        choices = ", ".join(member.value for member in enum_class)
        raise InvalidInput(f"Choose one of: {choices}.", field=field) from exc


# --- Suppliers -----------------------------------------------------------------

SUPPLIER_FIELDS = ("name", "contact_name", "contact_email", "address", "is_active")


def _clean_supplier(values: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    for name in values:
        if name not in SUPPLIER_FIELDS:
            raise InvalidInput(f"{name} is not a field of a supplier.", field=name)
    cleaned: dict[str, Any] = {}
    if "name" in values or not partial:
        cleaned["name"] = clean_text(values.get("name"), "name", "the supplier's name", 160, required=True)
    if "contact_name" in values:
        cleaned["contact_name"] = clean_text(values["contact_name"], "contact_name", "the contact's name",
                                             120, required=False)
    if "contact_email" in values:
        email = clean_text(values["contact_email"], "contact_email", "the contact's e-mail address", 254,
                           required=False)
        if email is not None and not EMAIL.fullmatch(email):
            raise InvalidInput("Enter an e-mail address like orders@supplier.example.",
                               field="contact_email")
        cleaned["contact_email"] = email
    if "address" in values:
        cleaned["address"] = clean_text(values["address"], "address", "the address", 2000, required=False)
    if "is_active" in values:
        cleaned["is_active"] = _clean_bool(values["is_active"], "is_active")
    return cleaned


def _check_supplier_name_free(name: str, supplier_id: int | None = None) -> None:
    statement = select(Supplier.id).where(func.lower(Supplier.name) == name.lower())
    if supplier_id is not None:
        statement = statement.where(Supplier.id != supplier_id)
    if db.session.scalar(statement.limit(1)) is not None:
        raise Conflict("A supplier with this name already exists.", field="name")


def suppliers(actor: Actor) -> Select:
    actor.require(Role.ADMIN)
    return select(Supplier).order_by(Supplier.name, Supplier.id)


def get_supplier(actor: Actor, supplier_id: int) -> Supplier:
    actor.require(Role.ADMIN)
    supplier = db.session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound("No such supplier.")
    return supplier


def create_supplier(actor: Actor, **values: Any) -> Supplier:
    actor.require(Role.ADMIN)
    cleaned = _clean_supplier(values, partial=False)
    _check_supplier_name_free(cleaned["name"])
    supplier = Supplier(**cleaned)
    db.session.add(supplier)
    db.session.flush()
    record(actor, "supplier.created", "supplier", supplier.id, after=snapshot(supplier))
    return supplier


def update_supplier(actor: Actor, supplier_id: int, changes: Mapping[str, Any]) -> Supplier:
    supplier = get_supplier(actor, supplier_id)
    cleaned = _clean_supplier(changes, partial=True)
    if "name" in cleaned:
        _check_supplier_name_free(cleaned["name"], supplier.id)
    before = snapshot(supplier)
    for name, value in cleaned.items():
        setattr(supplier, name, value)
    db.session.flush()
    after = snapshot(supplier)
    if after != before:
        record(actor, "supplier.updated", "supplier", supplier.id, before=before, after=after)
    return supplier


# --- Price breaks and restrictions ------------------------------------------------


@dataclass(frozen=True)
class Break:
    """One price break: the unit cost from ``min_units`` units in one purchase order."""

    min_units: int
    unit_cost: Decimal

    def as_json(self) -> dict[str, Any]:
        return {"min_units": self.min_units, "unit_cost": f"{self.unit_cost:.2f}"}


def clean_price_breaks(raw: Any, field: str = "price_breaks") -> list[Break]:
    """Validated breaks, in the order given (which must already be ascending)."""
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidInput("Give at least one price break, starting at 1 unit.", field=field)
    breaks: list[Break] = []
    for index, item in enumerate(raw):
        here = f"{field}.{index}"
        if isinstance(item, Break):
            item = {"min_units": item.min_units, "unit_cost": item.unit_cost}
        if not isinstance(item, Mapping):
            raise InvalidInput("Each price break needs min_units and unit_cost.", field=here)
        for name in item:
            if name not in ("min_units", "unit_cost"):
                raise InvalidInput(f"{name} is not a field of a price break.", field=f"{here}.{name}")
        if "min_units" not in item:
            raise InvalidInput("Give the number of units this price starts at.", field=f"{here}.min_units")
        if "unit_cost" not in item:
            raise InvalidInput("Give the unit cost at this break.", field=f"{here}.unit_cost")
        min_units = clean_whole_number(item["min_units"], f"{here}.min_units", "the number of units",
                                       minimum=1)
        unit_cost = clean_money(item["unit_cost"], f"{here}.unit_cost", "the unit cost", positive=True)
        if index == 0 and min_units != 1:
            raise InvalidInput("The first price break must start at 1 unit.", field=f"{here}.min_units")
        if breaks:
            previous = breaks[-1]
            if min_units <= previous.min_units:
                raise InvalidInput(
                    f"Each price break must start at more units than the one before "
                    f"(more than {previous.min_units}).", field=f"{here}.min_units")
            if unit_cost > previous.unit_cost:
                raise InvalidInput(
                    f"A larger order must not cost more per unit: at most {previous.unit_cost:.2f} "
                    f"here.", field=f"{here}.unit_cost")
        breaks.append(Break(min_units, unit_cost))
    return breaks


@dataclass(frozen=True)
class Jurisdiction:
    country: str
    region: str | None = None

    def label(self) -> str:
        return f"{self.region}, {self.country}" if self.region else self.country


def clean_restrictions(raw: Any, field: str = "restricted_jurisdictions") -> list[Jurisdiction]:
    """Jurisdictions a product may not be shipped to: a country, or a region of one."""
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise InvalidInput("Give a list of {country, region} pairs.", field=field)
    seen: set[tuple[str, str | None]] = set()
    places: list[Jurisdiction] = []
    for index, item in enumerate(raw):
        here = f"{field}.{index}"
        if isinstance(item, Jurisdiction):
            item = {"country": item.country, "region": item.region}
        if not isinstance(item, Mapping):
            raise InvalidInput("Each restriction needs a country (and optionally a region).", field=here)
        for name in item:
            if name not in ("country", "region"):
                raise InvalidInput(f"{name} is not a field of a restriction.", field=f"{here}.{name}")
        country = item.get("country")
        country = country.strip().upper() if isinstance(country, str) else ""
        if not COUNTRY.fullmatch(country):
            raise InvalidInput("Enter the country as its two-letter ISO code, e.g. US.",
                               field=f"{here}.country")
        region = clean_text(item.get("region"), f"{here}.region", "the region", 80, required=False)
        key = (country, region.lower() if region else None)
        if key in seen:
            raise InvalidInput("This jurisdiction is listed twice.", field=here)
        seen.add(key)
        places.append(Jurisdiction(country, region))
    return places


def breaks_of(product: Product) -> list[Break]:
    return [Break(pb.min_units, pb.unit_cost) for pb in product.price_breaks]


def restrictions_of(product: Product) -> list[Jurisdiction]:
    return [Jurisdiction(r.country, r.region) for r in product.restrictions]


# --- Products --------------------------------------------------------------------

PRODUCT_FIELDS = ("supplier_id", "sku", "name", "category", "unit", "pack_size", "price_breaks",
                  "restricted_jurisdictions", "required_document", "lot_tracked", "description",
                  "is_active")


def _clean_product(values: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    for name in values:
        if name not in PRODUCT_FIELDS:
            raise InvalidInput(f"{name} is not a field of a product.", field=name)
    cleaned: dict[str, Any] = {}

    def wanted(name: str) -> bool:
        return name in values or not partial

    if wanted("supplier_id"):
        supplier_id = values.get("supplier_id")
        if isinstance(supplier_id, bool) or not isinstance(supplier_id, int):
            raise InvalidInput("Choose the supplier.", field="supplier_id")
        if db.session.get(Supplier, supplier_id) is None:
            raise InvalidInput("There is no supplier with this id.", field="supplier_id")
        cleaned["supplier_id"] = supplier_id
    if wanted("sku"):
        cleaned["sku"] = clean_text(values.get("sku"), "sku", "the supplier's product code (SKU)", 40,
                                    required=True)
    if wanted("name"):
        cleaned["name"] = clean_text(values.get("name"), "name", "the product's name", 160, required=True)
    if wanted("category"):
        cleaned["category"] = _clean_enum(values.get("category"), "category", ProductCategory)
    if wanted("unit"):
        cleaned["unit"] = clean_text(values.get("unit"), "unit", "what one unit is (e.g. vial)", 60,
                                     required=True)
    if wanted("pack_size"):
        cleaned["pack_size"] = clean_whole_number(values.get("pack_size"), "pack_size",
                                                  "the pack size (units per case)", minimum=1)
    if wanted("price_breaks"):
        cleaned["price_breaks"] = clean_price_breaks(values.get("price_breaks"))
    if "restricted_jurisdictions" in values:
        cleaned["restricted_jurisdictions"] = clean_restrictions(values["restricted_jurisdictions"])
    if "required_document" in values:
        document = values["required_document"]
        cleaned["required_document"] = (
            None if document in (None, "") else _clean_enum(document, "required_document", DocumentKind)
        )
    if "lot_tracked" in values:
        cleaned["lot_tracked"] = _clean_bool(values["lot_tracked"], "lot_tracked")
    if "is_active" in values:
        cleaned["is_active"] = _clean_bool(values["is_active"], "is_active")
    if "description" in values:
        cleaned["description"] = clean_text(values["description"], "description", "the description",
                                            4000, required=False)
    return cleaned


def _check_sku_free(supplier_id: int, sku: str, product_id: int | None = None) -> None:
    statement = select(Product.id).where(Product.supplier_id == supplier_id,
                                         func.lower(Product.sku) == sku.lower())
    if product_id is not None:
        statement = statement.where(Product.id != product_id)
    if db.session.scalar(statement.limit(1)) is not None:
        raise Conflict("This supplier already has a product with this SKU.", field="sku")


def _product_snapshot(product: Product) -> dict[str, Any]:
    data = snapshot(product)
    data["price_breaks"] = [item.as_json() for item in breaks_of(product)]
    data["restricted_jurisdictions"] = [
        {"country": place.country, "region": place.region} for place in restrictions_of(product)
    ]
    return data


def _replace_rules(product: Product, cleaned: Mapping[str, Any]) -> None:
    # Old rows go first: the new ones may reuse a (product, min_units) pair.
    if "price_breaks" in cleaned:
        product.price_breaks.clear()
        db.session.flush()
        product.price_breaks.extend(
            PriceBreak(min_units=item.min_units, unit_cost=item.unit_cost) for item in cleaned["price_breaks"]
        )
    if "restricted_jurisdictions" in cleaned:
        product.restrictions.clear()
        db.session.flush()
        product.restrictions.extend(
            ProductRestriction(country=place.country, region=place.region)
            for place in cleaned["restricted_jurisdictions"]
        )


def products(
    actor: Actor,
    *,
    supplier_id: int | None = None,
    category: str | None = None,
    include_inactive: bool = False,
) -> Select:
    """The catalogue, by supplier and name. Members see active products only."""
    statement = (
        select(Product)
        .options(selectinload(Product.price_breaks), selectinload(Product.restrictions),
                 selectinload(Product.supplier))
        .order_by(Product.name, Product.id)
    )
    if not (include_inactive and actor.has_role(Role.ADMIN)):
        statement = statement.where(Product.is_active.is_(True))
    if supplier_id is not None:
        statement = statement.where(Product.supplier_id == supplier_id)
    if category:
        statement = statement.where(Product.category == _clean_enum(category, "category", ProductCategory))
    return statement


def get_product(actor: Actor, product_id: int) -> Product:
    """One product; members may read any active one (the catalogue is not private)."""
    product = db.session.get(Product, product_id)
    if product is None or (not product.is_active and not actor.has_role(Role.ADMIN)):
        raise NotFound("No such product.")
    return product


def create_product(actor: Actor, **values: Any) -> Product:
    actor.require(Role.ADMIN)
    cleaned = _clean_product(values, partial=False)
    _check_sku_free(cleaned["supplier_id"], cleaned["sku"])
    columns = {name: value for name, value in cleaned.items()
               if name not in ("price_breaks", "restricted_jurisdictions")}
    product = Product(**columns)
    db.session.add(product)
    db.session.flush()
    _replace_rules(product, {"restricted_jurisdictions": [], **cleaned})
    db.session.flush()
    record(actor, "product.created", "product", product.id, after=_product_snapshot(product))
    return product


def update_product(actor: Actor, product_id: int, changes: Mapping[str, Any]) -> Product:
    """Change any fields. ``price_breaks`` and ``restricted_jurisdictions`` replace the lists.

    Rounds already open keep the pack size and price breaks copied when they opened.
    """
    actor.require(Role.ADMIN)
    product = get_product(actor, product_id)
    if "supplier_id" in changes and changes["supplier_id"] != product.supplier_id:
        raise InvalidInput("A product stays with its supplier: add a new product instead.",
                           field="supplier_id")
    cleaned = _clean_product(changes, partial=True)
    if "sku" in cleaned:
        _check_sku_free(product.supplier_id, cleaned["sku"], product.id)
    before = _product_snapshot(product)
    for name, value in cleaned.items():
        if name not in ("price_breaks", "restricted_jurisdictions"):
            setattr(product, name, value)
    _replace_rules(product, cleaned)
    db.session.flush()
    after = _product_snapshot(product)
    if after != before:
        record(actor, "product.updated", "product", product.id, before=before, after=after)
    return product


def active_suppliers() -> Iterable[Supplier]:
    return db.session.scalars(select(Supplier).where(Supplier.is_active.is_(True)).order_by(Supplier.name))
