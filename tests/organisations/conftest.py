"""Shared data for the organisation tests."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from buyersclub.organisations.models import Organisation, OrganisationDocument


def profile(**overrides):
    """A complete, valid profile as the API takes it."""
    values = {
        "name": "Riverside Syringe Services",
        "kind": "syringe_services",
        "country": "US",
        "region": "MA",
        "site_address_line1": "12 Mill Street",
        "site_address_line2": None,
        "site_city": "Lowell",
        "site_postal_code": "01852",
        "site_is_not_a_home": True,
        "tax_exempt_certificate": None,
        "budget_band": "under_50k",
        "people_reached_band": "100_500",
        "receives_public_funding": False,
        "receives_private_funding": True,
        "accepts_short_dated": True,
    }
    values.update(overrides)
    return values


def profile_form(**overrides):
    """The same profile as the HTML form posts it (unticked boxes are left out)."""
    data = {}
    for name, value in profile(**overrides).items():
        if value is None or value is False:
            continue
        data[name] = "y" if value is True else value
    return data


def count_rows(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def writes(session):
    """``writes()`` counts organisations, documents, users and audit events: to show that
    a refused request wrote nothing."""

    def _writes() -> tuple[int, int, int, int]:
        return tuple(count_rows(model) for model in (Organisation, OrganisationDocument, User,
                                                      AuditEvent))

    return _writes
