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
