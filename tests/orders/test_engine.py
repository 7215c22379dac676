"""The close engine: the SPEC's worked example, money rules, allocation properties, edges."""

from __future__ import annotations

import ast
import itertools
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyersclub.money import MoneyError
from orders import engine
from orders.engine import (
    AllocationPolicy,
    ClosingRules,
    Commitment,
    OptionKind,
    PriceBreak,
    ProductTerms,
    allocate_units,
    close_product,
    savings_against_buying_alone,
    whole_cases,
)

PROPORTIONAL = AllocationPolicy.PROPORTIONAL
FCFS = AllocationPolicy.FIRST_COME_FIRST_SERVED
A, B, C, D = 11, 12, 13, 14  # organisation ids

NALOXONE = ProductTerms(
    pack_size=24,
    price_breaks=(
        PriceBreak(960, Decimal("31.00")),  # given out of order on purpose
        PriceBreak(1, Decimal("45.00")),
        PriceBreak(240, Decimal("38.00")),
    ),
    club_price=Decimal("40.00"),
    name="Naloxone nasal spray",
    units_name="boxes",
)
WORKED_EXAMPLE = [
    Commitment(A, 480),
    Commitment(B, 300),
    Commitment(C, 96, tolerance=24),
    Commitment(D, 48),
]


def money(text: str) -> Decimal:
    return Decimal(text)


# ---------------------------------------------------------------------------
# The SPEC's worked example


def test_worked_example_cases_and_allocation():
    closing = close_product(NALOXONE, WORKED_EXAMPLE)

    assert (closing.firm_total, closing.tolerance_total) == (924, 24)
    assert closing.cases == 39
    base = closing.base
    assert base.units == 936
    assert base.allocation.units_by_member() == {A: 480, B: 300, C: 108, D: 48}
    c = base.allocation.for_member(C)
    assert (c.firm_units, c.tolerance_units) == (96, 12)
    assert "the 12 left over plus 24 tolerance fill one more case: 39 cases = 936 boxes" in (
        closing.summary
    )


def test_worked_example_base_money():
    base = close_product(NALOXONE, WORKED_EXAMPLE).base

    assert base.kind is OptionKind.BASE
    assert base.price_break == PriceBreak(240, money("38.00"))
    assert base.supplier_cost == money("35568.00")
    assert base.revenue == money("37440.00")
    assert base.operating_recovery == money("0.00")
    assert base.margin == base.fund_inflow == money("1872.00")
    assert base.free_units == 0
    assert str(base.margin) == "1872.00"  # two places, exactly
    assert "Supplier cost 35,568.00" in base.explanation
    assert "margin to the fund 1,872.00" in base.explanation


def test_worked_example_jump_to_960_is_cheaper_and_recommended():
    closing = close_product(NALOXONE, WORKED_EXAMPLE)

    (jump,) = closing.jumps
    assert jump.kind is OptionKind.JUMP
    assert (jump.units, jump.cases) == (960, 40)
    assert jump.unit_cost == money("31.00")
    assert jump.supplier_cost == money("29760.00")
    assert jump.revenue == money("37440.00")
    assert jump.margin == money("7680.00")
    assert jump.free_units == 24
    assert jump.free_units_cost == money("744.00")
    assert jump.cost_difference == money("-5808.00")
    assert jump.cheaper and not jump.little_more
    assert jump.recommended and not closing.base.recommended
    assert closing.recommended is jump
    # Members receive what they would without the jump: C gets no more tolerance.
    assert jump.allocation.units_by_member() == {A: 480, B: 300, C: 108, D: 48}
    assert "24 boxes bought out of the fund (744.00) go free" in jump.explanation
    assert "Costs 5,808.00 less than the base" in jump.explanation
    assert "Recommended" in jump.explanation


def test_worked_example_savings_against_buying_alone():
    base = close_product(NALOXONE, WORKED_EXAMPLE).base
    report = {
        line.member: line
        for line in savings_against_buying_alone(
            base.allocation.units_by_member(), NALOXONE.price_breaks, NALOXONE.club_price
        )
    }

    assert report[C].saving == money("540.00")
    assert report[D].saving == money("240.00")
    assert report[A].saving == money("-960.00")
    assert report[A].contribution == money("960.00")
    assert report[B].contribution == money("600.00")
    assert report[A].lone_unit_cost == money("38.00")
    assert report[C].lone_unit_cost == money("45.00")
    assert report[C].contribution == money("0.00")


def test_savings_leave_out_members_without_units():
    report = savings_against_buying_alone({1: 0, 2: 5}, NALOXONE.price_breaks, money("40.00"))
    assert [line.member for line in report] == [2]


# ---------------------------------------------------------------------------
# Money rules


def test_operating_share_is_taken_from_revenue_and_reduces_the_margin():
    closing = close_product(
        NALOXONE, WORKED_EXAMPLE, ClosingRules(operating_share=Decimal("0.05"))
    )

    base, jump = closing.options
    assert base.operating_recovery == money("1872.00")  # 5% of 37,440.00
    assert base.margin == money("0.00")
    assert jump.operating_recovery == money("1872.00")
    assert jump.margin == money("5808.00")
    assert "operating recovery (5%): 1,872.00" in base.explanation


def test_operating_recovery_rounds_half_up_to_the_cent():
    terms = ProductTerms(pack_size=1, price_breaks=(PriceBreak(1, money("0.10")),),
                         club_price=money("0.25"))
    # Revenue 0.50; 5% of it is 0.025, which rounds half up to 0.03.
    option = close_product(terms, [Commitment(1, 2)], ClosingRules(operating_share="0.05")).base

    assert option.revenue == money("0.50")
    assert option.operating_recovery == money("0.03")
    assert option.margin == money("0.50") - money("0.20") - money("0.03")


@pytest.mark.parametrize("share", ["1", "-0.01", "1.5"])
def test_operating_share_must_be_a_fraction_of_one(share):
    with pytest.raises(ValueError, match="operating_share"):
        ClosingRules(operating_share=Decimal(share))


def test_floats_are_refused():
    with pytest.raises(MoneyError):
        ClosingRules(operating_share=0.05)
    with pytest.raises(MoneyError):
        PriceBreak(1, 45.0)


def _ten_per_unit(jump_cost: str) -> ProductTerms:
    return ProductTerms(
        pack_size=10,
        price_breaks=(PriceBreak(1, money("10.00")), PriceBreak(100, money(jump_cost))),
        club_price=money("12.00"),
    )


def test_jump_costing_a_little_more_is_marked_within_the_configured_amount():
    commitments = [Commitment(1, 90)]  # base: 90 units at 10.00 = 900.00
    # Jump: 100 units at 9.50 = 950.00, 50.00 more than the base.
    strict = close_product(_ten_per_unit("9.50"), commitments)
    lenient = close_product(
        _ten_per_unit("9.50"), commitments, ClosingRules(little_more=money("50.00"))
    )

    for closing in (strict, lenient):
        (jump,) = closing.jumps
        assert jump.cost_difference == money("50.00")
        assert not jump.cheaper
        assert closing.recommended is closing.base  # the engine never pushes a dearer jump
    assert not strict.jumps[0].little_more
    assert lenient.jumps[0].little_more
    assert "within the 50.00 allowed as 'little more'" in lenient.jumps[0].explanation


def test_jump_costing_the_same_is_little_more_and_recommended_for_the_free_units():
    closing = close_product(_ten_per_unit("9.00"), [Commitment(1, 90)])  # 900.00 either way

    (jump,) = closing.jumps
    assert jump.cost_difference == money("0.00")
    assert jump.little_more and not jump.cheaper
    assert jump.free_units == 10
    assert closing.recommended is jump


def test_every_higher_break_is_offered_rounded_up_to_whole_cases():
    terms = ProductTerms(
        pack_size=25,
        price_breaks=(
            PriceBreak(1, money("2.00")),
            PriceBreak(110, money("1.80")),
            PriceBreak(120, money("1.70")),  # same 5 cases as 110: offered once
            PriceBreak(500, money("1.00")),
        ),
        club_price=money("2.00"),
    )
    closing = close_product(terms, [Commitment(1, 50)])

    assert [option.units for option in closing.options] == [50, 125, 500]
    assert closing.options[1].unit_cost == money("1.70")  # 125 units reach the 120 break
    assert [o.free_units for o in closing.options] == [0, 75, 450]
    assert closing.recommended.units == 50  # 100.00 against 212.50 and 500.00


# ---------------------------------------------------------------------------
# Cases, shortfall and the edges


@pytest.mark.parametrize(
    ("firm", "tolerance", "cases"),
    [
        (924, 24, 39),  # the worked example
        (924, 11, 38),  # 12 + 11 does not fill a case
        (924, 12, 39),  # 12 + 12 fills it exactly
        (912, 100, 38),  # nothing left over: tolerance does not open a case
        (10, 14, 1),
        (10, 13, 0),
        (0, 50, 0),
    ],
)
def test_whole_cases_rule(firm, tolerance, cases):
    assert whole_cases(firm, tolerance, 24) == cases


def test_tolerance_that_does_not_fill_a_case_leaves_members_short_fairly():
    commitments = [Commitment(1, 620, tolerance=5), Commitment(2, 310)]  # 930 firm
    closing = close_product(NALOXONE, commitments)

    base = closing.base
    assert base.units == 912  # 38 cases; 18 + 5 tolerance do not fill another
    assert base.allocation.units_by_member() == {1: 608, 2: 304}  # 2 : 1, as committed
    assert base.allocation.short == 18
    assert "members are 18 boxes short" in closing.summary
    assert "18 firm boxes short" in base.explanation
    # The jump to 960 serves every firm unit before giving anything away, and no tolerance.
    (jump,) = closing.jumps
    assert jump.allocation.units_by_member() == {1: 620, 2: 310}
    assert jump.free_units == 30
    assert jump.revenue == money("37200.00")


def test_no_commitments_gives_nothing_to_close():
    closing = close_product(NALOXONE, [])
    assert closing.options == ()
    assert closing.base is None and closing.recommended is None
    assert closing.firm_total == 0
    assert "Nothing to buy" in closing.summary


def test_a_product_with_one_price_break_has_only_the_base_option():
    terms = ProductTerms(pack_size=6, price_breaks=(PriceBreak(1, money("3.00")),),
                         club_price=money("3.50"))
    closing = close_product(terms, [Commitment(1, 7, tolerance=5), Commitment(2, 4)])

    assert len(closing.options) == 1
    assert closing.base.units == 12
    assert closing.base.supplier_cost == money("36.00")
    assert closing.base.recommended


def test_firm_below_one_case_buys_nothing_but_offers_a_case():
    closing = close_product(NALOXONE, [Commitment(1, 10)])

    base = closing.base
    assert base.units == 0 and base.supplier_cost == money("0.00")
    assert base.allocation.units_for(1) == 0 and base.allocation.short == 10
    # One case at the 1+ break: the member's 10 and 14 free; then the higher breaks.
    assert [jump.units for jump in closing.jumps] == [24, 240, 960]
    one_case = closing.jumps[0]
    assert one_case.allocation.units_for(1) == 10 and one_case.free_units == 14
    assert one_case.supplier_cost == money("1080.00")
    assert one_case.margin == money("-680.00")  # the fund would pay
    assert closing.recommended is base


def test_units_below_the_lowest_break_are_priced_at_it_and_say_so():
    terms = ProductTerms(pack_size=10, price_breaks=(PriceBreak(50, money("2.00")),),
                         club_price=money("3.00"))
    closing = close_product(terms, [Commitment(1, 20)])

    assert closing.base.below_lowest_break
    assert closing.base.supplier_cost == money("40.00")
    assert "below the supplier's lowest break (50 units)" in closing.base.explanation
    assert closing.jumps[0].units == 50 and not closing.jumps[0].below_lowest_break


def test_zero_quantity_commitments_are_ignored_even_with_tolerance():
    with_withdrawn = [*WORKED_EXAMPLE, Commitment(99, 0, tolerance=24)]
    closing = close_product(NALOXONE, with_withdrawn)

    assert closing.tolerance_total == 24
    assert closing.base.allocation.for_member(99) is None
    assert closing.base.allocation.units_for(99) == 0
    assert closing.base == close_product(NALOXONE, WORKED_EXAMPLE).base


def test_two_commitments_for_one_member_are_refused():
    with pytest.raises(ValueError, match="member 5 has two commitments"):
        allocate_units(10, [Commitment(5, 3), Commitment(5, 4)])


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Commitment(1, -1),
        lambda: Commitment(1, 2, tolerance=-1),
        lambda: Commitment(1, True),
        lambda: ProductTerms(0, (PriceBreak(1, money("1.00")),), money("1.00")),
        lambda: ProductTerms(1, (), money("1.00")),
        lambda: ProductTerms(1, (PriceBreak(1, money("1")), PriceBreak(1, money("2"))), 1),
        lambda: PriceBreak(0, money("1.00")),
        lambda: PriceBreak(1, money("0.00")),
        lambda: allocate_units(-1, []),
    ],
)
def test_bad_input_is_refused(bad):
    with pytest.raises(ValueError):
        bad()


# ---------------------------------------------------------------------------
# Allocation policies


def test_proportional_tie_goes_to_the_lower_member_number_whatever_the_order():
    ones = [Commitment(7, 1), Commitment(3, 1), Commitment(5, 1)]
    for order in (ones, ones[::-1]):
        assert allocate_units(2, order).units_by_member() == {3: 1, 5: 1, 7: 0}


def test_first_come_first_served_serves_the_earliest_commitments_fully():
    start = datetime(2025, 3, 1, 9, tzinfo=UTC)
    commitments = [
        Commitment(1, 50, placed_at=start + timedelta(hours=2)),
        Commitment(2, 50, placed_at=start),
        Commitment(3, 50, placed_at=start + timedelta(hours=1)),
    ]
    allocation = allocate_units(120, commitments, FCFS)

    assert allocation.units_by_member() == {2: 50, 3: 50, 1: 20}
    assert allocation.policy is FCFS


def test_first_come_first_served_takes_time_and_commitment_id_pairs():
    moment = datetime(2025, 3, 1, 9, tzinfo=UTC)
    commitments = [
        Commitment(1, 50, placed_at=(moment, 8)),
        Commitment(2, 50, placed_at=(moment, 3)),  # same time, lower commitment id
    ]
    assert allocate_units(60, commitments, FCFS).units_by_member() == {1: 10, 2: 50}


def test_first_come_first_served_closes_with_the_round_policy():
    commitments = [Commitment(1, 620, placed_at=2), Commitment(2, 310, placed_at=1)]
    base = close_product(NALOXONE, commitments, ClosingRules(policy=FCFS)).base
    assert base.allocation.units_by_member() == {2: 310, 1: 602}


def test_surplus_goes_to_tolerance_then_free_stock():
    commitments = [Commitment(1, 10, tolerance=4), Commitment(2, 10, tolerance=2)]

    some = allocate_units(23, commitments)
    assert (some.firm_units, some.tolerance_units, some.left_over) == (20, 3, 0)
    assert some.units_by_member() == {1: 12, 2: 11}

    lots = allocate_units(40, commitments)
    assert lots.units_by_member() == {1: 14, 2: 12}
    assert lots.left_over == 14


def test_delivery_shortfall_reallocates_firm_units_fairly():
    commitments = [Commitment(1, 480), Commitment(2, 300), Commitment(3, 96, tolerance=24)]
    allocation = allocate_units(600, commitments)

    # Exact shares 328.77, 205.48 and 65.75: the two spare units go to 1 and 3.
    assert allocation.units_by_member() == {1: 329, 2: 205, 3: 66}
    assert allocation.tolerance_units == 0 and allocation.short == 276


# ---------------------------------------------------------------------------
# Properties

members = st.integers(min_value=1, max_value=10_000)
commitment_lists = st.lists(
    st.builds(
        Commitment,
        member=members,
        quantity=st.integers(min_value=0, max_value=300),
        tolerance=st.integers(min_value=0, max_value=60),
        placed_at=st.integers(min_value=0, max_value=50),
    ),
    max_size=30,
    unique_by=lambda c: c.member,
)
policies = st.sampled_from(list(AllocationPolicy))
price_break_sets = st.lists(
    st.builds(
        PriceBreak,
        min_units=st.integers(min_value=1, max_value=5_000),
        unit_cost=st.integers(min_value=1, max_value=9_999).map(lambda c: Decimal(c) / 100),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda b: b.min_units,
)
terms_strategy = st.builds(
    ProductTerms,
    pack_size=st.integers(min_value=1, max_value=48),
    price_breaks=price_break_sets.map(tuple),
    club_price=st.integers(min_value=0, max_value=9_999).map(lambda c: Decimal(c) / 100),
)


def _check_allocation(allocation, commitments, available):
    counted = [c for c in commitments if c.quantity > 0]
    by_member = {line.member: line for line in allocation.members}
    assert set(by_member) == {c.member for c in counted}
    firm_total = sum(c.quantity for c in counted)
    most_total = sum(c.most for c in counted)
    for commitment in counted:
        line = by_member[commitment.member]
        assert 0 <= line.firm_units <= commitment.quantity
        assert 0 <= line.tolerance_units <= commitment.tolerance
        assert line.units <= commitment.most
    # Firm before tolerance: nobody gets tolerance while anybody is short of firm.
    if any(line.tolerance_units for line in allocation.members):
        assert allocation.short == 0
    assert allocation.firm_units == min(available, firm_total)
    assert allocation.allocated == min(available, most_total)
    assert allocation.allocated + allocation.left_over == available
    assert sum(line.units for line in allocation.members) == allocation.allocated


@given(available=st.integers(min_value=0, max_value=12_000), commitments=commitment_lists,
       policy=policies)
def test_allocate_units_never_over_allocates_and_uses_what_demand_allows(
    available, commitments, policy
):
    _check_allocation(allocate_units(available, commitments, policy), commitments, available)


@given(available=st.integers(min_value=0, max_value=12_000), commitments=commitment_lists,
       seed=st.integers())
def test_proportional_does_not_depend_on_input_order(available, commitments, seed):
    shuffled = list(commitments)
    random.Random(seed).shuffle(shuffled)
    assert allocate_units(available, shuffled) == allocate_units(available, commitments)


@given(available=st.integers(min_value=0, max_value=12_000), commitments=commitment_lists)
def test_first_come_first_served_serves_earlier_commitments_fully_first(available, commitments):
    allocation = allocate_units(available, commitments, FCFS)
    counted = sorted(
        (c for c in commitments if c.quantity > 0), key=lambda c: (c.placed_at, c.member)
    )
    lines = [allocation.for_member(c.member) for c in counted]
    # Within each stage, a member is served at all only if everyone earlier is served fully.
    for stage, wanted in (("firm_units", "quantity"), ("tolerance_units", "tolerance")):
        for earlier, later in itertools.pairwise(lines):
            if getattr(later, stage):
                assert getattr(earlier, stage) == getattr(earlier, wanted)


@given(terms=terms_strategy, commitments=commitment_lists, policy=policies)
@settings(max_examples=200)
def test_close_product_invariants(terms, commitments, policy):
    closing = close_product(terms, commitments, ClosingRules(policy=policy))
    counted = [c for c in commitments if c.quantity > 0]
    if not counted:
        assert closing.options == ()
        return
    base = closing.base
    assert base.units == closing.cases * terms.pack_size
    assert base.free_units == 0
    assert sum(o.recommended for o in closing.options) == 1
    assert closing.recommended.supplier_cost == min(o.supplier_cost for o in closing.options)
    for option in closing.options:
        assert option.units % terms.pack_size == 0
        allocation = option.allocation
        assert allocation.allocated + option.free_units == option.units
        assert allocation.left_over == 0
        _check_allocation(allocation, commitments, option.member_units)
        assert option.margin == option.revenue - option.supplier_cost - option.operating_recovery
        for amount in (option.supplier_cost, option.revenue, option.margin):
            assert amount.as_tuple().exponent == -2
        if option.kind is OptionKind.JUMP:
            assert option.units > base.units
            assert option.price_break.min_units > base.price_break.min_units or (
                base.below_lowest_break
            )
            assert allocation.short == 0  # a jump buys every firm unit
            assert option.cheaper == (option.supplier_cost < base.supplier_cost)
    assert [o.units for o in closing.options] == sorted({o.units for o in closing.options})


@given(terms=terms_strategy, commitments=commitment_lists, policy=policies)
@settings(max_examples=200)
def test_the_totals_give_the_same_options_as_the_commitments(terms, commitments, policy):
    """What a GROUP BY returns is enough for every option's figures; the allocation agrees with them."""
    rules = ClosingRules(policy=policy, operating_share="0.05")
    full = close_product(terms, commitments, rules)
    from_totals = engine.close_demand(terms, engine.Demand.of(commitments), rules)
    assert from_totals.demand == full.demand == engine.Demand(
        sum(c.quantity for c in commitments if c.quantity),
        sum(c.tolerance for c in commitments if c.quantity),
        sum(1 for c in commitments if c.quantity))
    assert [replace(option, allocation=None) for option in full.options] == list(from_totals.options)
    assert replace(full, options=()) == replace(from_totals, options=())
    for option, bare in zip(full.options, from_totals.options, strict=True):
        allocation = option.allocation
        assert (allocation.firm_units, allocation.tolerance_units, allocation.short) == (
            option.firm_units, option.tolerance_units, option.short)
        assert allocation.allocated == option.member_units
        # One option allocated on its own is the one close_product attaches, whatever the order.
        shuffled = list(reversed(commitments))
        assert from_totals.allocate(bare, shuffled) == allocation


def test_allocating_an_option_refuses_commitments_it_was_not_made_from():
    closing = engine.close_demand(NALOXONE, engine.Demand.of(WORKED_EXAMPLE))
    base = closing.base
    assert closing.allocate(base, WORKED_EXAMPLE).units_for(C) == 108
    with pytest.raises(ValueError, match="commitments total"):
        closing.allocate(base, [*WORKED_EXAMPLE, Commitment(99, 24)])
    other = engine.close_demand(NALOXONE, engine.Demand(24, 0, 1))
    with pytest.raises(ValueError, match="not one of this product's"):
        closing.allocate(other.base, WORKED_EXAMPLE)


@pytest.mark.parametrize(("firm", "tolerance", "members"), [(10, 0, 0), (0, 0, 1), (0, 5, 0), (2, 0, 3),
                                                             (-1, 0, 1), (True, 0, 1)])
def test_impossible_totals_are_refused(firm, tolerance, members):
    with pytest.raises(ValueError):
        engine.Demand(firm, tolerance, members)


@given(terms=terms_strategy, commitments=commitment_lists, seed=st.integers())
def test_closing_does_not_depend_on_input_order(terms, commitments, seed):
    shuffled = list(commitments)
    random.Random(seed).shuffle(shuffled)
    assert close_product(terms, shuffled) == close_product(terms, commitments)


# ---------------------------------------------------------------------------
# A pure module, and fast


def test_engine_imports_only_the_standard_library_and_money():
    tree = ast.parse(Path(engine.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"buyersclub.money"}


def test_importing_the_engine_loads_no_flask_or_sqlalchemy():
    script = (
        "import sys\n"
        "import orders.engine\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'flask', 'sqlalchemy', 'flask_sqlalchemy', 'werkzeug'}))\n"
        "print('orders.models' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[]", "False"]


def test_closing_thousands_of_members_stays_exact():
    # Speed at this scale is measured by `make bench`, not by a clock in a test.
    rng = random.Random(7)
    commitments = [
        Commitment(member, rng.randint(1, 60), rng.randint(0, 10), rng.randint(0, 10**6))
        for member in range(1, 5_001)
    ]
    for policy in AllocationPolicy:
        closing = close_product(NALOXONE, commitments, ClosingRules(policy=policy))
        for option in closing.options:
            assert option.allocation.allocated + option.free_units == option.units
        short = allocate_units(closing.firm_total // 2, commitments, policy)
        assert short.allocated == closing.firm_total // 2
        assert all(line.tolerance_units == 0 for line in short.members)
