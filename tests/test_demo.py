"""The demo data: what `make run` shows a newcomer, loaded safely."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from buyersclub import demo
from buyersclub.accounts import services as accounts
from buyersclub.audit.models import AuditEvent
from buyersclub.db import utcnow
from buyersclub.organisations.models import MembershipStatus, Organisation
from orders.models import Product, ProductCategory
from tests import factories


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    """Fifteen scrypt hashes per load would dominate these tests; the check reads any method."""
    monkeypatch.setattr(
        accounts, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1")
    )


def run_demo(app, *args):
    return app.test_cli_runner().invoke(args=["demo", *args], catch_exceptions=False)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_demo_accounts_sign_in_with_the_printed_password(app_ctx, session, client):
    result = run_demo(app_ctx)
    assert result.exit_code == 0, result.output
    assert demo.DEMO_PASSWORD in result.output
    assert demo.ADMIN_EMAIL in result.output

    for email, expected in [
        (demo.ADMIN_EMAIL, "Membership"),  # the admin's dashboard card
        (demo.FINANCE_EMAIL, "Ledger"),
        (demo.MEMBER_EMAIL, "Harbour Lights Outreach"),
    ]:
        response = client.post("/sign-in", data={"email": email, "password": demo.DEMO_PASSWORD})
        assert response.status_code == 302, email
        assert expected in client.get("/").get_data(as_text=True)
        client.post("/sign-out")


def test_demo_club_is_varied_and_fictional(app_ctx, session):
    run_demo(app_ctx)
    organisations = session.scalars(select(Organisation)).all()
    assert 12 <= len(organisations) <= 14
    assert {o.status for o in organisations} == {MembershipStatus.APPROVED, MembershipStatus.APPLIED}
    assert len({o.kind for o in organisations}) >= 4
    assert len({o.budget_band for o in organisations}) == 4
    assert len({o.people_reached_band for o in organisations}) == 4
    assert {o.country for o in organisations} == {"US", "CA"}
    assert len({o.region for o in organisations if o.country == "US"}) >= 5
    low_resource = [o for o in organisations if o.low_resource]
    assert low_resource and all(o.deprivation_decile for o in low_resource)
    assert all(o.site_is_not_a_home for o in organisations)
    for organisation in organisations:
        staff = [person.email for person in organisation.staff]
        assert len(staff) == 1 and staff[0].endswith(".example.org")

    today = utcnow().date()
    expiries = [d.expires_on for o in organisations for d in o.documents]
    assert sum(1 for day in expiries if day < today) == 1
    assert any(today <= day <= today + timedelta(days=30) for day in expiries)


def test_catalogue_matches_the_worked_example(app_ctx, session):
    run_demo(app_ctx)
    products = {p.category: p for p in session.scalars(select(Product)) if p.unit != "vial"}
    spray = products[ProductCategory.NALOXONE]
    assert spray.unit == "box of two 4 mg doses"
    assert spray.pack_size == 24
    assert [(b.min_units, b.unit_cost) for b in spray.price_breaks] == [
        (1, Decimal("45.00")), (240, Decimal("38.00")), (960, Decimal("31.00"))
    ]
    pipes = products[ProductCategory.PIPES]
    assert pipes.required_document == "pipe_authorisation"
    assert [(r.country, r.region) for r in pipes.restrictions] == [("US", "TX")]
    assert products[ProductCategory.OXYGEN].required_document == "oxygen_training"
    vial = session.scalar(select(Product).where(Product.unit == "vial"))
    assert vial.required_document == "prescriber_order" and vial.lot_tracked


def test_second_run_changes_nothing_and_says_so(app_ctx, session):
    run_demo(app_ctx)
    events = count(session, AuditEvent)
    result = run_demo(app_ctx)
    assert "nothing changed" in result.output
    assert count(session, AuditEvent) == events


def test_if_empty_leaves_a_real_club_alone(app_ctx, session):
    factories.UserFactory(roles=["admin"], email="someone@club.test")
    result = run_demo(app_ctx, "--if-empty")
    assert result.exit_code == 0
    assert "demo data not loaded" in result.output
    assert demo.DEMO_PASSWORD not in result.output
    assert count(session, Organisation) == 0


def test_refused_in_production_unless_forced(app_ctx, session, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "BUYERSCLUB_ENV", "production")
    result = app_ctx.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code != 0
    assert "production" in result.output
    assert count(session, Organisation) == 0

    assert run_demo(app_ctx, "--force").exit_code == 0
    assert count(session, Organisation) > 0


def test_the_demo_club_has_an_open_round_with_the_worked_example(app_ctx, session):
    from buyersclub.actor import Actor
    from orders.models import Round, RoundStatus
    from orders.services.closing import preview_close

    result = run_demo(app_ctx)
    assert "Opened the round Winter naloxone" in result.output
    found = session.scalars(select(Round).where(Round.name == demo.DEMO_ROUND)).one()
    assert found.status == RoundStatus.OPEN and found.deadline > utcnow()
    preview = preview_close(Actor.system("test"), found.id)
    (naloxone,) = preview.products
    assert (naloxone.closing.firm_total, naloxone.closing.tolerance_total) == (924, 24)
    assert naloxone.closing.base.units == 936
    assert naloxone.closing.recommended.units == 960
