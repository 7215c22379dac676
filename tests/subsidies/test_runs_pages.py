"""Subsidy pages: the admin's run table, override form, approval step; members' awards; the report."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from buyersclub.db import db
from subsidies.models import RunStatus, SubsidyRun
from subsidies.services import runs
from tests import factories
from tests.subsidies.test_runs import make_club


@pytest.fixture
def club(session, admin):
    return make_club(admin)


def only_run(club) -> SubsidyRun:
    db.session.expire_all()
    return db.session.scalars(select(SubsidyRun).where(SubsidyRun.round_id == club.round.id)).one()


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def test_the_admin_starts_overrides_and_approves_through_the_pages(club, admin, sign_in):
    browser = sign_in(admin)
    page = browser.get(f"/rounds/{club.round.id}/subsidies")
    assert page.status_code == 200
    assert "No run yet" in text_of(page)

    started = browser.post(f"/rounds/{club.round.id}/subsidies/runs", follow_redirects=True)
    body = text_of(started)
    assert "Preview run #" in body and "$500.00 awarded" in body
    assert "Alder Outreach" in body and "$285.71" in body and "29.76 %" in body
    assert "not eligible" in body  # Cedar Union
    run = only_run(club)

    refused = browser.post(f"/subsidies/runs/{run.id}/overrides",
                           data={"organisation_id": club.a.id, "amount": "100.00", "reason": ""})
    assert refused.status_code == 400
    assert "Say why this award is overridden" in text_of(refused)

    too_much = browser.post(f"/subsidies/runs/{run.id}/overrides",
                            data={"organisation_id": club.a.id, "amount": "2000.00", "reason": "Generous"})
    assert too_much.status_code == 422
    assert "cannot exceed the member" in text_of(too_much)

    overridden = browser.post(f"/subsidies/runs/{run.id}/overrides", follow_redirects=True,
                              data={"organisation_id": club.a.id, "amount": "100.00",
                                    "reason": "Lost its grant this month"})
    body = text_of(overridden)
    assert "re-balanced" in body and "$400.00" in body and "Lost its grant this month" in body

    confirm = browser.get(f"/subsidies/runs/{run.id}/approve")
    assert "Approve and post to the ledger" in text_of(confirm)
    approved = browser.post(f"/subsidies/runs/{run.id}/approve", data={"confirm": "yes"},
                            follow_redirects=True)
    assert f"Run #{run.id} approved" in text_of(approved)
    assert only_run(club).status == RunStatus.APPROVED
    assert "Start a preview run" not in text_of(approved)


def test_a_stale_approval_shows_the_reason_and_changes_nothing(club, admin, sign_in):
    from tests.subsidies.test_runs import take

    run = runs.start_run(club.actor, club.round.id)
    take("1.00")
    browser = sign_in(admin)
    response = browser.post(f"/subsidies/runs/{run.id}/approve", data={"confirm": "yes"},
                            follow_redirects=True)
    assert "start a new run" in text_of(response)
    assert only_run(club).status == RunStatus.PREVIEW


def test_discard_from_the_page(club, admin, sign_in):
    run = runs.start_run(club.actor, club.round.id)
    browser = sign_in(admin)
    response = browser.post(f"/subsidies/runs/{run.id}/discard", data={"confirm": "yes"},
                            follow_redirects=True)
    assert f"Run #{run.id} discarded" in text_of(response)
    assert only_run(club).status == RunStatus.DISCARDED


def test_members_cannot_reach_the_admin_pages(club, member, sign_in):
    run = runs.start_run(club.actor, club.round.id)
    browser = sign_in(member)
    assert browser.get(f"/rounds/{club.round.id}/subsidies").status_code == 403
    assert browser.post(f"/subsidies/runs/{run.id}/approve", data={"confirm": "yes"}).status_code == 403
    assert only_run(club).status == RunStatus.PREVIEW


def test_a_member_sees_its_own_award_and_why_in_plain_words(club, sign_in):
    runs.approve_run(club.actor, runs.start_run(club.actor, club.round.id).id)
    staff = factories.UserFactory(roles=["member"], organisation=club.a)
    body = text_of(sign_in(staff).get("/subsidies/my-awards"))
    assert "$285.71" in body and "29.76 %" in body
    assert "Your need weight is 8 (1 to start, 4 for annual budget under 50,000" in body
    assert "This round the fund could pay 3.7202 % of each eligible naloxone bill per point of weight" in body
    assert "Birch" not in body and "$214.29" not in body


def test_a_member_without_awards_is_told_so(club, member, sign_in):
    body = text_of(sign_in(member).get("/subsidies/my-awards"))
    assert "No subsidy has been awarded to your organisation yet" in body


def test_the_report_hides_small_cells_from_members(club, sign_in, admin):
    runs.approve_run(club.actor, runs.start_run(club.actor, club.round.id).id)
    staff = factories.UserFactory(roles=["member"], organisation=club.a)
    body = text_of(sign_in(staff).get(f"/rounds/{club.round.id}/subsidies/report"))
    assert "fewer than 3" in body
    assert "$285.71" not in body and "Alder Outreach" not in body


def test_a_run_s_members_are_paged_and_the_links_keep_to_that_run(club, admin, sign_in, monkeypatch):
    monkeypatch.setattr("subsidies.runs_views.MEMBERS_PER_PAGE", 2)
    browser = sign_in(admin)
    browser.post(f"/rounds/{club.round.id}/subsidies/runs")
    run = only_run(club)
    first = browser.get(f"/rounds/{club.round.id}/subsidies")
    assert "Page 1 of 2" in text_of(first)
    assert f'href="/rounds/{club.round.id}/subsidies?run={run.id}&amp;page=2"' in first.get_data(as_text=True)
    last = text_of(browser.get(f"/rounds/{club.round.id}/subsidies?run={run.id}&page=7"))
    assert "Page 2 of 2" in last
    members = re.findall(r'<td data-label="Member">([^<]+)</td>', last)
    assert set(members) == {"Cedar Union", "Dune Mutual Aid"}  # the last two by name
