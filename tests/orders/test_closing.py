"""Closing a round through the services: the SPEC worked example end to end, with the ledger."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.audit.models import AuditEvent
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleRefused
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, account_balance, organisation_balances, post_entry, trial_balance
from orders import engine
from orders.models import Allocation, AllocationSource, Commitment, OptionKind, ProductClosing, RoundStatus
from orders.services import closing, commitments, rounds
from tests import factories

D = Decimal


def open_round(admin, *products, minimum="0.00", policy=None, share="0", deadline=None):
    actor = Actor.for_user(admin)
    values = dict(supplier_id=products[0].supplier_id, name="Naloxone, spring",
                  deadline=deadline or datetime.now(UTC) + timedelta(days=7), minimum_order=minimum,
                  operating_share=share,
                  items=[{"product_id": p.id, "club_price": "40.00"} for p in products])
    if policy:
        values["allocation_policy"] = policy
    found = rounds.create_round(actor, **values)
    return rounds.open_round(actor, found.id)


def member_of(name):
    organisation = factories.OrganisationFactory(name=name)
    return factories.UserFactory(roles=["member"], organisation=organisation)


def donate(admin, amount):
    post_entry(Actor.for_user(admin), entry_date=datetime.now(UTC).date(), memo="Donation", kind="grant",
               lines=[Line(chart.CASH, D(amount)), Line(chart.FUND_UNRESTRICTED, -D(amount))])


@pytest.fixture
def naloxone(session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    return factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")


@pytest.fixture
def worked_example(session, admin, naloxone):
    """SPEC: A 480, B 300, C 96 (+24 tolerance), D 48, committed through the commitments service."""
    found = open_round(admin, naloxone)
    members = {}
    for name, quantity, tolerance in (("A", 480, 0), ("B", 300, 0), ("C", 96, 24), ("D", 48, 0)):
        user = member_of(f"Programme {name}")
        commitments.set_commitment(Actor.for_user(user), found.id, naloxone.id,
                                   quantity=quantity, tolerance=tolerance)
        members[name] = user.organisation_id
    return found, members


def test_the_preview_shows_39_cases_without_a_jump_and_c_gets_108(admin, naloxone, worked_example):
    found, members = worked_example
    preview = closing.preview_close(Actor.for_user(admin), found.id)

    [product] = preview.products
    result = product.closing
    assert (result.firm_total, result.tolerance_total, result.cases) == (924, 24, 39)
    base, jump = result.options
    assert (base.units, base.unit_cost, base.supplier_cost) == (936, D("38.00"), D("35568.00"))
    assert (base.revenue, base.margin, base.free_units) == (D("37440.00"), D("1872.00"), 0)
    assert (base.firm_units, base.tolerance_units, base.short) == (924, 12, 0)
    assert (jump.units, jump.unit_cost, jump.margin, jump.free_units) == (960, D("31.00"), D("7680.00"), 24)
    assert jump.cheaper and jump.recommended and not base.recommended
    totals = preview.default_totals  # the base option, unless the admin chooses
    assert (totals.revenue, totals.supplier_cost, totals.margin) == (D("37440.00"), D("35568.00"),
                                                                   D("1872.00"))
    assert preview.minimum_met()

    # The allocation per member, computed for the product on demand: C gets 108 either way.
    shown = closing.product_allocations(Actor.for_user(admin), found.id, product.product_id)
    assert [option.units for option in shown.closing.options] == [936, 960]
    for option in shown.closing.options:
        assert option.allocation.units_for(members["C"]) == 108
        assert option.allocation.units_by_member() == {members["A"]: 480, members["B"]: 300,
                                                       members["C"]: 108, members["D"]: 48}


def test_the_preview_reads_two_tables_whatever_the_number_of_members(admin, naloxone, worked_example,
                                                                     count_queries):
    found, _ = worked_example
    actor = Actor.for_user(admin)
    with count_queries() as few:
        closing.preview_close(actor, found.id)
    for index in range(20):
        commitments.set_commitment(Actor.for_user(member_of(f"More {index}")), found.id, naloxone.id,
                                   quantity=24)
    with count_queries() as many:
        preview = closing.preview_close(actor, found.id)
    assert many.count == few.count
    assert (preview.products[0].closing.members, preview.products[0].closing.firm_total) == (24, 924 + 480)


def test_closing_with_the_jump_buys_960_and_posts_one_balanced_entry(session, admin, naloxone,
                                                                     worked_example):
    found, members = worked_example
    result = closing.commit_close(Actor.for_user(admin), found.id, {naloxone.id: 960})

    assert found.status == RoundStatus.CLOSED and found.closed_at is not None
    [stored] = session.scalars(select(ProductClosing).where(ProductClosing.round_id == found.id)).all()
    assert (stored.option_kind, stored.units, stored.cases, stored.unit_cost) == (OptionKind.JUMP, 960, 40,
                                                                                 D("31.00"))
    assert (stored.supplier_cost, stored.revenue, stored.margin) == (D("29760.00"), D("37440.00"),
                                                                    D("7680.00"))
    assert (stored.free_units, stored.free_units_cost) == (24, D("744.00"))
    assert stored.journal_entry_id == result.journal_entry.id

    rows = session.scalars(select(Allocation).where(Allocation.round_id == found.id)).all()
    got = {row.organisation_id: (row.firm_units, row.tolerance_units) for row in rows}
    assert got == {members["A"]: (480, 0), members["B"]: (300, 0), members["C"]: (96, 12),
                   members["D"]: (48, 0)}
    assert all(row.source == AllocationSource.CLOSE and row.superseded_at is None for row in rows)
    assert {row.created_at for row in rows} == {found.closed_at}  # written in bulk, read back the same
    assert {row.product_closing_id for row in rows} == {stored.id}

    entry = session.get(JournalEntry, result.journal_entry.id)
    assert (entry.kind, entry.source_type, entry.source_id) == ("round_close", "round", found.id)
    assert sum(posting.amount for posting in entry.postings) == 0
    assert trial_balance().balanced
    receivables = organisation_balances(chart.RECEIVABLES)
    assert receivables == {members["A"]: D("19200.00"), members["B"]: D("12000.00"),
                           members["C"]: D("4320.00"), members["D"]: D("1920.00")}
    assert account_balance(chart.FREE_STOCK) == D("744.00")
    assert account_balance(chart.SUPPLIER_PAYABLES) == D("-29760.00")
    assert account_balance(chart.FUND_UNRESTRICTED) == D("-8424.00")  # margin + the free stock it holds
    assert closing.fund_balance() == D("8424.00")

    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "round.closed"))
    assert event.before["status"] == "open" and event.after["status"] == "closed"
    assert event.after["margin"] == "7680.00"


def test_the_base_option_is_the_default(session, admin, naloxone, worked_example):
    found, _ = worked_example
    result = closing.commit_close(Actor.for_user(admin), found.id)
    [stored] = result.closings
    assert (stored.option_kind, stored.units, stored.margin, stored.free_units) == (
        OptionKind.BASE, 936, D("1872.00"), 0)
    assert account_balance(chart.FUND_UNRESTRICTED) == D("-1872.00")
    assert account_balance(chart.FREE_STOCK) == 0


def test_against_buying_alone_c_and_d_save_and_a_and_b_contribute(session, admin, naloxone, worked_example):
    found, members = worked_example
    closing.commit_close(Actor.for_user(admin), found.id, {naloxone.id: 960})
    saved = {row.organisation_id: row.saving.saving for row in closing.savings_for(Actor.for_user(admin),
                                                                                    found.id)}
    assert saved == {members["A"]: D("-960.00"), members["B"]: D("-600.00"), members["C"]: D("540.00"),
                     members["D"]: D("240.00")}


def test_members_see_only_their_own_allocations(session, admin, naloxone, worked_example):
    found, members = worked_example
    closing.commit_close(Actor.for_user(admin), found.id)
    c_staff = session.scalar(select(User).where(User.organisation_id == members["C"]))
    mine = session.scalars(closing.allocations_for(Actor.for_user(c_staff), found.id)).all()
    assert [(row.organisation_id, row.units) for row in mine] == [(members["C"], 108)]
    with pytest.raises(NotFound):
        closing.allocations_for(Actor.for_user(c_staff), found.id, organisation_id=members["A"])
    everyone = session.scalars(closing.allocations_for(Actor.for_user(admin), found.id)).all()
    assert len(everyone) == 4


def test_members_cannot_preview_or_close(session, naloxone, worked_example, member):
    found, _ = worked_example
    with pytest.raises(PermissionDenied):
        closing.preview_close(Actor.for_user(member), found.id)
    with pytest.raises(PermissionDenied):
        closing.commit_close(Actor.for_user(member), found.id)


def test_a_closed_or_cancelled_round_cannot_be_closed_again(session, admin, naloxone, worked_example):
    found, _ = worked_example
    actor = Actor.for_user(admin)
    closing.commit_close(actor, found.id)
    with pytest.raises(Conflict):
        closing.commit_close(actor, found.id)
    with pytest.raises(Conflict):
        closing.preview_close(actor, found.id)
    other = open_round(admin, naloxone)
    rounds.cancel_round(actor, other.id, "Supplier recall")
    with pytest.raises(Conflict):
        closing.commit_close(actor, other.id)


def test_below_the_supplier_minimum_the_close_is_refused_and_nothing_is_written(session, admin, naloxone):
    found = open_round(admin, naloxone, minimum="3000.00")
    user = member_of("Small Outreach")
    commitments.set_commitment(Actor.for_user(user), found.id, naloxone.id, quantity=48)
    actor = Actor.for_user(admin)
    assert not closing.preview_close(actor, found.id).minimum_met()  # 48 x 45.00 = 2,160.00
    with pytest.raises(RuleRefused) as refused:
        closing.commit_close(actor, found.id)
    assert refused.value.code == closing.MINIMUM_NOT_MET
    assert "minimum order" in refused.value.message
    assert found.status == RoundStatus.OPEN
    assert session.scalar(select(func.count()).select_from(Allocation)) == 0


def test_a_choice_that_is_not_an_option_names_the_product(session, admin, naloxone, worked_example):
    found, _ = worked_example
    with pytest.raises(InvalidInput) as refused:
        closing.commit_close(Actor.for_user(admin), found.id, {naloxone.id: 950})
    assert refused.value.field == f"choices.{naloxone.id}"
    assert "936, 960" in refused.value.message
    with pytest.raises(InvalidInput):
        closing.commit_close(Actor.for_user(admin), found.id, {naloxone.id + 1000: 960})


def test_a_stale_review_is_refused(session, admin, naloxone, worked_example):
    found, _ = worked_example
    actor = Actor.for_user(admin)
    reviewed = closing.preview_close(actor, found.id).fingerprint
    commitments.set_commitment(Actor.for_user(member_of("Late Outreach")), found.id, naloxone.id, quantity=24)
    with pytest.raises(Conflict) as refused:
        closing.commit_close(actor, found.id, expected_fingerprint=reviewed)
    assert refused.value.code == "preview_changed"
    fresh = closing.preview_close(actor, found.id).fingerprint
    result = closing.commit_close(actor, found.id, expected_fingerprint=fresh)
    assert result.round.status == RoundStatus.CLOSED


def test_commitments_after_the_close_are_refused(session, admin, naloxone, worked_example):
    found, _ = worked_example
    closing.commit_close(Actor.for_user(admin), found.id)
    with pytest.raises(Conflict):
        commitments.set_commitment(Actor.for_user(member_of("Too Late")), found.id, naloxone.id, quantity=24)


def test_a_negative_margin_is_paid_by_the_fund_only_when_it_holds_enough(session, admin, naloxone):
    # Club price 40.00 but only 48 boxes: bought at 45.00 each, a loss the fund must cover.
    found = open_round(admin, naloxone)
    commitments.set_commitment(Actor.for_user(member_of("Tiny Outreach")), found.id, naloxone.id, quantity=48)
    actor = Actor.for_user(admin)
    assert closing.preview_close(actor, found.id).default_totals.margin == D("-240.00")
    with pytest.raises(RuleRefused) as refused:
        closing.commit_close(actor, found.id)
    assert refused.value.code == "fund_too_small"
    donate(admin, "300.00")
    closing.commit_close(actor, found.id)
    assert closing.fund_balance() == D("60.00")
    assert trial_balance().balanced


def test_operating_recovery_goes_to_operating_income(session, admin, naloxone):
    found = open_round(admin, naloxone, share="0.05")
    commitments.set_commitment(Actor.for_user(member_of("Big Outreach")), found.id, naloxone.id, quantity=240)
    closing.commit_close(Actor.for_user(admin), found.id)
    # 240 x 40.00 = 9,600.00 revenue; 5% = 480.00; cost 240 x 38.00 = 9,120.00; margin 0.00.
    assert account_balance(chart.OPERATING_INCOME) == D("-480.00")
    assert account_balance(chart.FUND_UNRESTRICTED) == 0
    assert trial_balance().balanced


def test_a_product_nobody_committed_to_buys_nothing(session, admin, naloxone):
    other = factories.ProductFactory(supplier=naloxone.supplier, name="Naloxone vial")
    found = open_round(admin, naloxone, other)
    commitments.set_commitment(Actor.for_user(member_of("One Outreach")), found.id, naloxone.id, quantity=240)
    result = closing.commit_close(Actor.for_user(admin), found.id, {other.id: 0})
    by_product = {c.product_id: c for c in result.closings}
    assert by_product[other.id].units == 0 and by_product[other.id].supplier_cost == 0
    assert by_product[naloxone.id].units == 240
    assert result.allocations == 1


def test_first_come_first_served_uses_the_commitment_order(session, admin, naloxone):
    found = open_round(admin, naloxone, policy="first_come_first_served")
    first, second = member_of("Early Outreach"), member_of("Later Outreach")
    commitments.set_commitment(Actor.for_user(first), found.id, naloxone.id, quantity=20)
    commitments.set_commitment(Actor.for_user(second), found.id, naloxone.id, quantity=20)
    donate(admin, "200.00")  # 24 boxes at 45.00 sold at 40.00: the fund pays 120.00
    # 40 firm: one case of 24, short 16; the earlier commitment is served fully first.
    result = closing.commit_close(Actor.for_user(admin), found.id)
    rows = session.scalars(select(Allocation).where(Allocation.round_id == found.id)).all()
    got = {row.organisation_id: row.units for row in rows}
    assert got == {first.organisation_id: 20, second.organisation_id: 4}
    assert result.closings[0].units == 24
    assert session.scalar(select(func.count()).select_from(Commitment)) == 2


@pytest.mark.parametrize("policy", ["proportional", "first_come_first_served"])
def test_the_close_stores_exactly_the_engines_allocation_when_units_are_short(session, admin, policy):
    """Two products, members short on one: every stored row is the engine's, computed over the commitments."""
    supplier = factories.SupplierFactory()
    spray = factories.ProductFactory(supplier=supplier, name="Spray")
    strips = factories.ProductFactory(supplier=supplier, name="Strips", pack_size=10)
    found = open_round(admin, spray, strips, policy=policy)
    for number in range(17):
        user = member_of(f"Programme {number:02d}")
        # 111 firm and 4 tolerance of spray: 4 full cases, 15 boxes short; 38 strips: 8 short.
        commitments.set_commitment(Actor.for_user(user), found.id, spray.id, quantity=1 + (number * 7) % 13,
                                   tolerance=1 if number % 5 == 0 else 0)
        if number % 2:
            commitments.set_commitment(Actor.for_user(user), found.id, strips.id, quantity=3 + number % 5)
    donate(admin, "1000.00")  # small orders cost more than the club price: the fund pays the difference
    actor = Actor.for_user(admin)
    preview = closing.preview_close(actor, found.id)
    assert [each.closing.base.short for each in preview.products] == [15, 8]
    result = closing.commit_close(actor, found.id)

    stored = {(row.product_id, row.organisation_id): (row.firm_units, row.tolerance_units)
              for row in session.scalars(select(Allocation).where(Allocation.round_id == found.id))}
    expected = {}
    for each in preview.products:
        rows = session.scalars(select(Commitment).where(Commitment.round_id == found.id,
                                                        Commitment.product_id == each.product_id)).all()
        full = engine.close_product(each.closing.terms, [
            engine.Commitment(row.organisation_id, row.quantity, row.tolerance,
                              (row.first_committed_at, row.id)) for row in rows], each.closing.rules)
        assert replace(full.base, allocation=None) == each.closing.base  # the totals gave the same option
        expected.update({(each.product_id, line.member): (line.firm_units, line.tolerance_units)
                         for line in full.base.allocation.members})
    assert stored == expected and result.allocations == len(expected) == 17 + 8
    receivables = organisation_balances(chart.RECEIVABLES)
    for organisation_id in {member for _, member in stored}:
        units = sum(sum(parts) for (_, member), parts in stored.items() if member == organisation_id)
        assert receivables.get(organisation_id, D("0")) == D("40.00") * units
    assert trial_balance().balanced


def test_the_fingerprint_changes_when_members_trade_units(session, admin, naloxone, worked_example):
    """The totals stay the same, the commitments behind them do not: the reviewed preview is stale."""
    found, members = worked_example
    actor = Actor.for_user(admin)
    reviewed = closing.preview_close(actor, found.id)
    a_staff = session.scalar(select(User).where(User.organisation_id == members["A"]))
    b_staff = session.scalar(select(User).where(User.organisation_id == members["B"]))
    commitments.set_commitment(Actor.for_user(a_staff), found.id, naloxone.id, quantity=470)
    commitments.set_commitment(Actor.for_user(b_staff), found.id, naloxone.id, quantity=310)
    now = closing.preview_close(actor, found.id)
    assert now.products[0].closing.demand == reviewed.products[0].closing.demand
    assert now.fingerprint != reviewed.fingerprint
    with pytest.raises(Conflict):
        closing.commit_close(actor, found.id, expected_fingerprint=reviewed.fingerprint)


def test_a_page_of_savings_is_read_from_the_database(session, admin, naloxone, worked_example):
    found, members = worked_example
    actor = Actor.for_user(admin)
    closing.commit_close(actor, found.id, {naloxone.id: 960})
    every = closing.savings_for(actor, found.id)
    first, total = closing.savings_page(actor, found.id, page=1, per_page=3)
    second, _ = closing.savings_page(actor, found.id, page=2, per_page=3)
    assert total == 4 and len(first) == 3 and len(second) == 1
    assert first + second == every
    assert [row.organisation_id for row in every] == sorted(members.values())


@pytest.mark.postgres_only
def test_a_failed_copy_of_allocation_rows_fails_the_close_in_the_callers_thread(session, admin, naloxone,
                                                                               worked_example, monkeypatch):
    """The rows are copied on a thread while the next product is allocated: its failure is the close's."""
    import psycopg

    found, _ = worked_example
    writer = closing._allocation_writer

    @contextmanager
    def pointing_nowhere(round_, now):
        with writer(round_, now) as write:
            yield lambda row, allocation: write(
                SimpleNamespace(product_id=row.product_id, id=row.id + 10_000), allocation)

    monkeypatch.setattr(closing, "_allocation_writer", pointing_nowhere)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        closing.commit_close(Actor.for_user(admin), found.id)
