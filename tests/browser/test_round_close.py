"""Closing a round in a real browser: a member commits, the admin previews and closes, the member
sees the allocation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from buyersclub.actor import Actor
from buyersclub.db import db
from orders.services import commitments, rounds
from tests import factories

pytestmark = pytest.mark.browser


@pytest.fixture
def worked_example_round(live_db, live_member, live_admin):
    """The SPEC's round with A, B and D committed; the live member (C) has still to commit."""
    actor = Actor.system("test")
    product = factories.ProductFactory(supplier=factories.SupplierFactory(name="Remedy Wholesale"),
                                       name="Naloxone nasal spray")
    found = rounds.create_round(actor, supplier_id=product.supplier_id, name="Naloxone, spring",
                                deadline=datetime.now(UTC) + timedelta(days=7),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    rounds.open_round(actor, found.id)
    for name, quantity in (("A", 480), ("B", 300), ("D", 48)):
        staff = factories.UserFactory(roles=["member"],
                                      organisation=factories.OrganisationFactory(name=f"Programme {name}"))
        commitments.set_commitment(Actor.for_user(staff), found.id, product.id, quantity=quantity)
    db.session.commit()
    return found.id


def test_member_commits_admin_closes_with_the_jump_member_sees_the_allocation(
        page, live_member, live_admin, browser_sign_in, worked_example_round):
    round_id = worked_example_round

    browser_sign_in(page, live_member)
    page.goto(f"/rounds/{round_id}")
    page.get_by_label("Quantity").fill("96")
    page.get_by_label("Tolerance").fill("24")
    page.get_by_role("button", name="Save commitment").click()
    expect(page.get_by_text("Your commitment is saved.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    browser_sign_in(page, live_admin)
    page.goto(f"/admin/rounds/{round_id}")
    page.get_by_role("link", name="Preview closing this round…").click()
    options = page.get_by_role("table", name=re.compile("options for Naloxone nasal spray"))
    expect(options.get_by_role("columnheader", name=re.compile("Base: 936 units"))).to_be_visible()
    expect(options.get_by_role("columnheader", name=re.compile("Jump to 960 units"))).to_be_visible()
    expect(options.get_by_text("recommended", exact=True)).to_be_visible()
    expect(page.get_by_label("Buy 936")).to_be_checked()
    page.get_by_label("Buy 960").check()
    page.get_by_role("button", name="Review the close").click()
    expect(page.get_by_role("heading", name=re.compile("Confirm: close"))).to_be_visible()
    page.get_by_role("button", name="Close the round").click()
    expect(page.get_by_text(re.compile("The round is closed: 4 allocations recorded"))).to_be_visible()
    expect(page.get_by_role("cell", name="960 (40 cases)")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    browser_sign_in(page, live_member)
    page.goto(f"/rounds/{round_id}")
    page.get_by_role("link", name="My allocations").click()
    expect(page.get_by_role("heading", name=re.compile("My allocations"))).to_be_visible()
    row = page.get_by_role("row", name=re.compile("Naloxone nasal spray"))
    expect(row.get_by_role("cell", name="108", exact=True)).to_be_visible()
    expect(row.get_by_text("saves $540.00")).to_be_visible()
    expect(page.get_by_text("Programme A")).to_have_count(0)
