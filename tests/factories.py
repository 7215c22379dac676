"""factory_boy factories for the models, flushing into the test session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factory
from factory.alchemy import SQLAlchemyModelFactory

from buyersclub.accounts.models import Role, User, UserRole
from buyersclub.accounts.services import hash_password
from buyersclub.db import db
from buyersclub.organisations.models import (
    BudgetBand,
    DocumentKind,
    MembershipStatus,
    Organisation,
    OrganisationDocument,
    OrganisationKind,
    PeopleReachedBand,
)

PASSWORD = "correct horse battery staple"
_PASSWORD_HASH = None


def _password_hash() -> str:
    # Hashing is deliberately slow: do it once per test run.
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = hash_password(PASSWORD)
    return _PASSWORD_HASH


class Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class OrganisationFactory(Base):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Programme {n}")
    kind = OrganisationKind.SYRINGE_SERVICES
    status = MembershipStatus.APPROVED
    country = "US"
    region = "MA"
    site_address_line1 = factory.Sequence(lambda n: f"{n} Harbour Street")
    site_city = "Boston"
    site_postal_code = "02110"
    site_is_not_a_home = True
    budget_band = BudgetBand.UNDER_50K
    people_reached_band = PeopleReachedBand.FROM_100_TO_500


class UserFactory(Base):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    name = factory.Sequence(lambda n: f"Person {n}")
    password_hash = factory.LazyFunction(_password_hash)
    roles: tuple[str, ...] = ()

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        roles = kwargs.pop("roles", ())
        user = model_class(*args, **kwargs)
        user.role_grants = [UserRole(role=Role(role)) for role in roles]
        session = cls._meta.sqlalchemy_session_factory()
        session.add(user)
        session.flush()
        return user


class DocumentFactory(Base):
    class Meta:
        model = OrganisationDocument

    organisation = factory.SubFactory(OrganisationFactory)
    kind = DocumentKind.PRESCRIBER_ORDER
    reference = factory.Sequence(lambda n: f"SO-{n:04d}")
    expires_on = factory.LazyFunction(lambda: datetime.now(UTC).date() + timedelta(days=365))


# --- Orders: catalogue and rounds ---------------------------------------------

from decimal import Decimal  # noqa: E402

from orders.models import (  # noqa: E402
    PriceBreak,
    Product,
    ProductCategory,
    Round,
    RoundItem,
    RoundStatus,
    Supplier,
)

# The worked example's naloxone breaks per box: 1-239 $45, 240-959 $38, 960+ $31.
NALOXONE_BREAKS = ((1, "45.00"), (240, "38.00"), (960, "31.00"))


class SupplierFactory(Base):
    class Meta:
        model = Supplier

    name = factory.Sequence(lambda n: f"Supplier {n}")
    contact_email = "orders@supplier.test"


class ProductFactory(Base):
    """Naloxone nasal spray by default, with the worked example's price breaks."""

    class Meta:
        model = Product

    supplier = factory.SubFactory(SupplierFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Naloxone nasal spray {n}")
    category = ProductCategory.NALOXONE
    unit = "box of 2 nasal doses"
    pack_size = 24

    @classmethod
    def _create(cls, model_class, *args, breaks=NALOXONE_BREAKS, **kwargs):
        product = model_class(*args, **kwargs)
        product.price_breaks = [PriceBreak(min_units=units, unit_cost=Decimal(cost))
                                for units, cost in breaks]
        session = cls._meta.sqlalchemy_session_factory()
        session.add(product)
        session.flush()
        return product


class RoundFactory(Base):
    """A draft round closing in a week; give ``items=[RoundItem(...)]`` or use RoundItemFactory."""

    class Meta:
        model = Round

    name = factory.Sequence(lambda n: f"Round {n}")
    supplier = factory.SubFactory(SupplierFactory)
    status = RoundStatus.DRAFT
    deadline = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=7))
    minimum_order = Decimal("0.00")


class RoundItemFactory(Base):
    class Meta:
        model = RoundItem

    round = factory.SubFactory(RoundFactory)
    product = factory.LazyAttribute(lambda item: ProductFactory(supplier=item.round.supplier))
    club_price = Decimal("40.00")


# --- Orders: after the close (closings, allocations, commitments) ------------

from orders.models import (  # noqa: E402
    Allocation,
    AllocationSource,
    Commitment,
    OptionKind,
    ProductClosing,
)


class CommitmentFactory(Base):
    """A member's commitment; give ``round_id``, ``product_id`` and ``organisation_id``."""

    class Meta:
        model = Commitment

    quantity = 24
    tolerance = 0


class ProductClosingFactory(Base):
    """What the club bought of one product at close; give ``round_item`` (units, unit_cost...)."""

    class Meta:
        model = ProductClosing

    round_id = factory.LazyAttribute(lambda closing: closing.round_item.round_id)
    product_id = factory.LazyAttribute(lambda closing: closing.round_item.product_id)
    option_kind = OptionKind.BASE
    firm_total = factory.LazyAttribute(lambda closing: closing.units - closing.free_units)
    tolerance_total = 0
    cases = factory.LazyAttribute(lambda closing: closing.units // 24)
    units = 24
    free_units = 0
    unit_cost = Decimal("38.00")
    supplier_cost = factory.LazyAttribute(lambda closing: closing.unit_cost * closing.units)
    revenue = Decimal("0.00")
    operating_recovery = Decimal("0.00")
    margin = Decimal("0.00")


class AllocationFactory(Base):
    """A member's units at close; give ``closing`` (a ProductClosing) and ``organisation_id``."""

    class Meta:
        model = Allocation
        exclude = ("closing",)

    closing = None
    round_id = factory.LazyAttribute(lambda row: row.closing.round_id)
    product_id = factory.LazyAttribute(lambda row: row.closing.product_id)
    product_closing_id = factory.LazyAttribute(lambda row: row.closing.id)
    firm_units = 24
    tolerance_units = 0
    source = AllocationSource.CLOSE
