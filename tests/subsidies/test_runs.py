"""Subsidy allocation runs through the services: preview, snapshot, overrides, approval, discard."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleRefused
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, organisation_balances, post_entry
from buyersclub.organisations.models import BudgetBand, MembershipStatus
from orders.models import ProductCategory, RoundStatus
from subsidies import fund
from subsidies.models import Award, AwardOverride, RunStatus
from subsidies.services import runs
from tests import factories

D = Decimal
SYSTEM = Actor.system("test")


# --- Set-up helpers (imported by the other test_runs* and test_free_stock* files) ----------


def give(amount: str, restriction: str | None = None) -> None:
    """A grant into the fund (unrestricted, or restricted to a category)."""
    post_entry(SYSTEM, entry_date=datetime.now(UTC).date(), memo="Grant", kind="grant",
               lines=[Line(chart.CASH, D(amount)), Line(fund.account_for(restriction), -D(amount))])


def take(amount: str, restriction: str | None = None) -> None:
    """Money spent from the fund some other way (it makes a preview stale)."""
    post_entry(SYSTEM, entry_date=datetime.now(UTC).date(), memo="Spent", kind="test",
               lines=[Line(fund.account_for(restriction), D(amount)), Line(chart.CASH, -D(amount))])


def closed_round(status: RoundStatus = RoundStatus.CLOSED):
    now = datetime.now(UTC)
    return factories.RoundFactory(status=status, opened_at=now, closed_at=now)


def product_in(found, category: ProductCategory = ProductCategory.NALOXONE, *, club_price: str = "40.00",
               free_units: int = 0, unit_cost: str = "31.00", units: int = 960):
    product = factories.ProductFactory(supplier=found.supplier, category=category)
    item = factories.RoundItemFactory(round=found, product=product, club_price=D(club_price))
    return factories.ProductClosingFactory(round_item=item, units=units, free_units=free_units,
                                           unit_cost=D(unit_cost))


def allocate(closing, organisation, units: int, tolerance: int = 0):
    return factories.AllocationFactory(closing=closing, organisation_id=organisation.id,
                                       firm_units=units, tolerance_units=tolerance)


def small_programme(name: str, **kwargs):
    """Eligible: approved, low-resource; weight 1 + 4 + 1 + 2 = 8 under the default policy."""
    return factories.OrganisationFactory(name=name, low_resource=True, **kwargs)


def large_programme(name: str, **kwargs):
    """Eligible, weight 1 + 1 (over 1m) + 1 (100-500 reached) = 3 (it has public funding)."""
    values = dict(low_resource=True, budget_band=BudgetBand.OVER_1M, receives_public_funding=True)
    return factories.OrganisationFactory(name=name, **{**values, **kwargs})


def awards_of(run) -> dict[tuple[int, str], Award]:
    db.session.expire_all()
    return {(award.organisation_id, award.category): award
            for award in db.session.scalars(select(Award).where(Award.run_id == run.id))}


def make_club(admin):
    """A closed naloxone round: A (weight 8) 24 units, B (weight 3) 48 units, C not low-resource,
    D low-resource but not approved; $500 unrestricted in the fund."""
    found = closed_round()
    naloxone = product_in(found)
    a = small_programme("Alder Outreach")
    b = large_programme("Birch Health")
    c = factories.OrganisationFactory(name="Cedar Union", low_resource=False)
    d = small_programme("Dune Mutual Aid", status=MembershipStatus.APPLIED)
    for organisation, units in ((a, 24), (b, 48), (c, 24), (d, 24)):
        allocate(naloxone, organisation, units)
    give("500.00")
    return type("Club", (), dict(round=found, naloxone=naloxone, a=a, b=b, c=c, d=d,
                                 actor=Actor.for_user(admin)))


@pytest.fixture
def club(session, admin):
    return make_club(admin)


# --- Preview --------------------------------------------------------------------------------


def test_a_preview_shares_the_fund_by_need_among_eligible_members_only(club):
    run = runs.start_run(club.actor, club.round.id)

    awards = awards_of(run)
    assert run.status == RunStatus.PREVIEW
    # λ · 8 · 960 + λ · 3 · 1920 = 500: A 285.714…, B 214.285…; the leftover cent to B's larger remainder.
    assert awards[(club.a.id, "naloxone")].amount == D("285.71")
    assert awards[(club.b.id, "naloxone")].amount == D("214.29")
    assert awards[(club.a.id, "naloxone")].binding_limit == "level"
    assert awards[(club.b.id, "naloxone")].binding_limit == "level+leftover cent"
    for ineligible in (club.c, club.d):
        assert awards[(ineligible.id, "naloxone")].amount == 0
        assert awards[(ineligible.id, "naloxone")].binding_limit == "not eligible"
    assert sum(award.amount for award in awards.values()) == run.total_awarded == D("500.00")
    assert awards[(club.a.id, "naloxone")].bill == D("960.00")
    assert awards[(club.b.id, "naloxone")].bill == D("1920.00")


def test_each_award_explains_its_weight_level_share_and_limit(club):
    run = runs.start_run(club.actor, club.round.id)
    explanation = awards_of(run)[(club.a.id, "naloxone")].explanation

    assert explanation["weight"] == "8/1"
    assert ["annual budget under 50,000", "4/1"] in explanation["weight_parts"]
    assert explanation["inputs"]["budget_band"] == "under_50k"
    assert explanation["level"] == run.level["naloxone"] == "25/672"  # 500 / (8 · 960 + 3 · 1920)
    assert explanation["percent_of_bill"] == "29.76"
    assert explanation["limit"] == "level"
    # Equal need, equal percentage: the percentage per point of weight is the same for both.
    b = awards_of(run)[(club.b.id, "naloxone")].explanation
    assert b["percent_per_point"] == explanation["percent_per_point"] == "3.7202"


def test_the_snapshot_holds_what_the_engine_got(club):
    run = runs.start_run(club.actor, club.round.id)
    inputs = run.inputs

    assert inputs["policy"]["version"] == 1
    assert inputs["policy"]["categories"]["pipes"]["max_share"] == "3/4"
    assert inputs["funds"]["unrestricted"] == 50000
    members = {member["key"]: member for member in inputs["members"]}
    assert members[club.a.id]["bills"] == {"naloxone": 96000}
    assert members[club.a.id]["weight"] == "8/1"
    assert members[club.c.id]["eligible"] is False
    assert members[club.d.id]["eligible"] is False


def test_recomputing_from_the_stored_snapshot_gives_the_same_awards(club):
    run = runs.start_run(club.actor, club.round.id)
    runs.override_award(club.actor, run.id, organisation_id=club.a.id, amount="100.00", reason="Emergency")
    run_id = run.id
    stored = {key: award.amount for key, award in awards_of(run).items()}
    db.session.expire_all()  # the snapshot as read back from the database's JSON

    again = runs.recompute(runs.get_run(club.actor, run_id)).awards()

    assert {(key, category): D(cents) / 100 for key, lines in again.items()
            for category, cents in lines.items()} == stored


def test_awards_respect_caps_and_shares(session, admin):
    found = closed_round()
    naloxone = product_in(found)
    pipes = product_in(found, ProductCategory.PIPES, club_price="2.00")
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    allocate(pipes, a, 100)
    give("100000.00")

    run = runs.start_run(Actor.for_user(admin), found.id)

    awards = awards_of(run)
    assert awards[(a.id, "naloxone")].amount == D("960.00")  # 100 % of the bill
    assert awards[(a.id, "pipes")].amount == D("150.00")  # 75 % of a $200 bill
    assert awards[(a.id, "pipes")].cap == D("150.00")
    assert {award.binding_limit for award in awards.values()} == {"cap"}


def test_restricted_money_pays_only_its_own_category(session, admin):
    found = closed_round()
    naloxone = product_in(found)
    pipes = product_in(found, ProductCategory.PIPES, club_price="2.00")
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    allocate(pipes, a, 100)
    give("50.00", "naloxone")
    give("1000.00", "oxygen")

    awards = awards_of(runs.start_run(Actor.for_user(admin), found.id))

    assert awards[(a.id, "naloxone")].amount == D("50.00")
    assert awards[(a.id, "pipes")].amount == D("0.00")


def test_a_policys_absolute_member_cap_and_floor_are_applied(session, admin):
    from subsidies.services.policies import current_policy

    policy = current_policy()
    policy.member_cap = D("100.00")
    db.session.flush()
    found = closed_round()
    naloxone = product_in(found)
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    give("5000.00")

    award = awards_of(runs.start_run(Actor.for_user(admin), found.id))[(a.id, "naloxone")]

    assert award.amount == award.cap == D("100.00")


@pytest.mark.parametrize("status", [RoundStatus.DRAFT, RoundStatus.OPEN, RoundStatus.CANCELLED])
def test_only_a_closed_round_can_be_allocated(session, admin, status):
    found = factories.RoundFactory(status=status, opened_at=datetime.now(UTC))
    with pytest.raises(Conflict, match="once a round has closed"):
        runs.start_run(Actor.for_user(admin), found.id)


def test_members_cannot_start_or_read_runs(club, member):
    with pytest.raises(PermissionDenied):
        runs.start_run(Actor.for_user(member), club.round.id)
    run = runs.start_run(club.actor, club.round.id)
    with pytest.raises(PermissionDenied):
        runs.get_run(Actor.for_user(member), run.id)


def test_free_units_are_not_billed(session, admin):
    found = closed_round()
    naloxone = product_in(found, free_units=24)
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24, tolerance=12)
    run = runs.start_run(Actor.for_user(admin), found.id)
    assert awards_of(run)[(a.id, "naloxone")].bill == D("1440.00")  # 36 units at $40; the free 24 are not


# --- Overrides --------------------------------------------------------------------------------


def test_an_override_fixes_one_award_and_the_others_rebalance(club):
    run = runs.start_run(club.actor, club.round.id)

    runs.override_award(club.actor, run.id, organisation_id=club.a.id, amount="100.00",
                        reason="Lost its grant this month")

    awards = awards_of(run)
    assert awards[(club.a.id, "naloxone")].amount == D("100.00")
    assert awards[(club.a.id, "naloxone")].binding_limit == "override"
    assert awards[(club.a.id, "naloxone")].explanation["reason"] == "Lost its grant this month"
    assert awards[(club.b.id, "naloxone")].amount == D("400.00")
    assert db.session.get(type(run), run.id).total_awarded == D("500.00")
    event = db.session.scalars(select(AuditEvent)
                               .where(AuditEvent.action == "subsidy_run.award_overridden")).one()
    assert event.organisation_id == club.a.id
    assert event.after["reason"] == "Lost its grant this month"


def test_a_new_override_supersedes_the_old_one(club):
    run = runs.start_run(club.actor, club.round.id)
    runs.override_award(club.actor, run.id, organisation_id=club.a.id, amount="100.00", reason="First")
    runs.override_award(club.actor, run.id, organisation_id=club.a.id, amount="50.00", reason="Second",
                        category="naloxone")

    rows = db.session.scalars(select(AwardOverride).order_by(AwardOverride.id)).all()
    assert [(row.amount, row.superseded_at is None) for row in rows] == [
        (D("100.00"), False), (D("50.00"), True)]
    assert [each.reason for each in runs.current_overrides(run.id)] == ["Second"]
    assert awards_of(run)[(club.b.id, "naloxone")].amount == D("450.00")


@pytest.mark.parametrize(("values", "error", "field"), [
    ({"amount": "100.00", "reason": "  "}, InvalidInput, "reason"),
    ({"amount": "960.01", "reason": "Too much"}, RuleRefused, "amount"),
    ({"amount": "1.001", "reason": "Odd"}, InvalidInput, "amount"),
    ({"amount": "10.00", "reason": "Pipes", "category": "pipes"}, RuleRefused, "category"),
])
def test_an_override_needs_a_reason_and_an_amount_within_the_bill(club, values, error, field):
    run = runs.start_run(club.actor, club.round.id)
    with pytest.raises(error) as refused:
        runs.override_award(club.actor, run.id, organisation_id=club.a.id, **values)
    assert refused.value.field == field
    assert db.session.scalar(select(func.count()).select_from(AwardOverride)) == 0


def test_an_ineligible_member_cannot_be_overridden(club):
    run = runs.start_run(club.actor, club.round.id)
    with pytest.raises(RuleRefused, match="not eligible"):
        runs.override_award(club.actor, run.id, organisation_id=club.c.id, amount="10.00", reason="Kind")


def test_with_bills_in_two_categories_the_override_must_say_which(session, admin):
    found = closed_round()
    naloxone = product_in(found)
    pipes = product_in(found, ProductCategory.PIPES, club_price="2.00")
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    allocate(pipes, a, 100)
    give("100.00")
    run = runs.start_run(Actor.for_user(admin), found.id)
    with pytest.raises(InvalidInput, match="say which category") as refused:
        runs.override_award(Actor.for_user(admin), run.id, organisation_id=a.id, amount="10.00", reason="R")
    assert refused.value.field == "category"


# --- Approve and discard --------------------------------------------------------------------------


def test_approval_posts_one_balanced_entry_reducing_receivables_and_the_fund(club):
    run = runs.start_run(club.actor, club.round.id)

    approval = runs.approve_run(club.actor, run.id)

    entries = db.session.scalars(select(JournalEntry).where(JournalEntry.kind == "subsidy_award")).all()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.source_type, entry.source_id) == ("subsidy_run", run.id)
    assert sum(posting.amount for posting in entry.postings) == 0
    assert approval.journal_entry_id == entry.id == run.journal_entry_id
    receivables = organisation_balances(chart.RECEIVABLES)
    assert receivables[club.a.id] == D("-285.71")
    assert receivables[club.b.id] == D("-214.29")
    assert club.c.id not in receivables
    assert fund.balances()[None] == D("0.00")
    assert run.status == RunStatus.APPROVED
    assert run.decided_by_id == club.actor.user_id and run.decided_at is not None


def test_approval_takes_restricted_money_from_its_own_account(session, admin):
    found = closed_round()
    naloxone = product_in(found)
    a = small_programme("Alder Outreach")
    allocate(naloxone, a, 24)
    give("100.00", "naloxone")
    give("50.00")
    run = runs.start_run(Actor.for_user(admin), found.id)
    runs.approve_run(Actor.for_user(admin), run.id)
    balances = fund.balances()
    assert balances["naloxone"] == D("0.00")
    assert balances[None] == D("0.00")
    assert organisation_balances(chart.RECEIVABLES)[a.id] == D("-150.00")


def test_a_run_is_approved_once_and_a_second_run_of_the_round_is_refused(club):
    first = runs.start_run(club.actor, club.round.id)
    second = runs.start_run(club.actor, club.round.id)
    runs.approve_run(club.actor, first.id)

    with pytest.raises(Conflict):
        runs.approve_run(club.actor, first.id)
    with pytest.raises(Conflict, match="already approved"):
        runs.approve_run(club.actor, second.id)
    with pytest.raises(Conflict, match="already approved"):
        runs.start_run(club.actor, club.round.id)
    with pytest.raises(Conflict):
        runs.override_award(club.actor, first.id, organisation_id=club.a.id, amount="1.00", reason="Late")
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)
                             .where(JournalEntry.kind == "subsidy_award")) == 1


def test_a_stale_preview_is_refused_when_the_fund_no_longer_holds_it(club):
    run = runs.start_run(club.actor, club.round.id)
    take("0.01")

    with pytest.raises(RuleRefused, match="start a new run") as refused:
        runs.approve_run(club.actor, run.id)
    assert refused.value.code == "fund_insufficient"
    assert run.status == RunStatus.PREVIEW


def test_a_discarded_run_cannot_be_approved_or_discarded_again(club):
    run = runs.start_run(club.actor, club.round.id)
    runs.discard_run(club.actor, run.id)
    assert run.status == RunStatus.DISCARDED
    with pytest.raises(Conflict):
        runs.approve_run(club.actor, run.id)
    with pytest.raises(Conflict):
        runs.discard_run(club.actor, run.id)
    # Another run can still be started and approved.
    runs.approve_run(club.actor, runs.start_run(club.actor, club.round.id).id)


def test_an_unknown_run_is_404(session, admin):
    with pytest.raises(NotFound):
        runs.get_run(Actor.for_user(admin), 999_999)


# --- What members see ---------------------------------------------------------------------------


def test_members_see_only_their_own_approved_awards(club):
    run = runs.start_run(club.actor, club.round.id)
    staff_a = factories.UserFactory(roles=["member"], organisation=club.a)
    assert runs.awards_for_member(Actor.for_user(staff_a)) == []  # a preview is not an award yet

    runs.approve_run(club.actor, run.id)

    mine = runs.awards_for_member(Actor.for_user(staff_a))
    assert [(each.round.id, [award.amount for award in each.awards]) for each in mine] == [
        (club.round.id, [D("285.71")])]
    with pytest.raises(NotFound):
        runs.awards_for_member(Actor.for_user(staff_a), club.b.id)


# --- The awards report --------------------------------------------------------------------------


def test_the_report_hides_small_cells_from_all_but_admins(session, admin, finance):
    found = closed_round()
    naloxone = product_in(found)
    for index in range(3):
        allocate(naloxone, small_programme(f"Small {index}"), 24)
    for index in range(4):
        allocate(naloxone, small_programme(f"Middle {index}", budget_band=BudgetBand.FROM_50K_TO_250K), 24)
    allocate(naloxone, large_programme("Lone Giant"), 24)
    give("300.00")
    runs.approve_run(Actor.for_user(admin), runs.start_run(Actor.for_user(admin), found.id).id)

    seen = runs.awards_report(Actor.for_user(finance), found.id)
    cells = {cell.band: cell for cell in seen.cells["naloxone"]}
    assert cells["over_1m"].suppressed  # one organisation
    assert (cells["over_1m"].organisations, cells["over_1m"].awarded) == (0, 0)  # not even in the data
    assert cells["under_50k"].suppressed  # else 'all' less the shown cells would give it away
    assert not cells["50k_250k"].suppressed
    assert not seen.totals["naloxone"].suppressed and seen.totals["naloxone"].organisations == 8
    assert seen.members == []

    full = runs.awards_report(Actor.for_user(admin), found.id)
    assert not any(cell.suppressed for cell in full.cells["naloxone"])
    assert "Lone Giant" in {name for name, _ in full.members}
