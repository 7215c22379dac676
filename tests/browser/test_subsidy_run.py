"""The fund's allocation in a real browser: the admin previews, overrides with a reason and approves;
the member sees its award and why."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from buyersclub.db import db
from buyersclub.organisations.models import Organisation
from subsidies.models import SubsidyPolicy
from subsidies.policy import DEFAULT_MAX_SHARE, DEFAULT_PRIORITY, DEFAULT_WEIGHTS
from tests.subsidies.test_runs import allocate, closed_round, give, large_programme, product_in

pytestmark = pytest.mark.browser


@pytest.fixture
def closed(live_db, live_member):
    """A closed naloxone round: the member's Harbour Outreach (low-resource, 24 boxes) and one more."""
    harbour = db.session.scalars(
        select(Organisation).where(Organisation.name == live_member.organisation)).one()
    harbour.low_resource = True
    if db.session.scalar(select(SubsidyPolicy.id).limit(1)) is None:
        # Emptying the tables after another browser test took the migration's policy too.
        db.session.add(SubsidyPolicy(version=1, weights=DEFAULT_WEIGHTS, max_share=DEFAULT_MAX_SHARE,
                                     priority=DEFAULT_PRIORITY))
    found = closed_round()
    naloxone = product_in(found)
    allocate(naloxone, harbour, 24)
    allocate(naloxone, large_programme("Birch Health"), 48)
    give("500.00")
    db.session.commit()
    return found.id


def test_admin_overrides_and_approves_then_the_member_sees_its_award(page, closed, live_admin, live_member,
                                                                     browser_sign_in):
    browser_sign_in(page, live_admin)
    page.goto(f"/rounds/{closed}/subsidies")
    page.get_by_role("button", name="Start a preview run").click()
    expect(page.get_by_text("$500.00 awarded")).to_be_visible()
    expect(page.get_by_role("cell", name="$285.71")).to_be_visible()

    page.get_by_label("Member").select_option(label="Harbour Outreach")
    page.get_by_label("Award amount").fill("300.00")
    page.get_by_label("Reason").fill("Its outreach van was stolen")
    page.get_by_role("button", name="Override the award").click()
    expect(page.get_by_text("the other awards were re-balanced")).to_be_visible()
    expect(page.get_by_role("cell", name="$200.00")).to_be_visible()  # Birch Health: what is left

    page.get_by_role("link", name=re.compile(r"^Approve run #\d+")).click()
    page.get_by_role("button", name="Approve and post to the ledger").click()
    expect(page.get_by_text(re.compile(r"Run #\d+ approved: \$500\.00 awarded"))).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    browser_sign_in(page, live_member)
    page.goto("/subsidies/my-awards")
    expect(page.get_by_role("cell", name="$300.00")).to_be_visible()
    expect(page.get_by_text("An administrator set your naloxone award to $300.00")).to_be_visible()
    expect(page.get_by_text("Its outreach van was stolen")).to_be_visible()
    expect(page.get_by_text("Your need weight is 8")).to_be_visible()
    expect(page.get_by_text("Birch Health")).to_have_count(0)
