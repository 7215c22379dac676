"""The subsidy allocation engine: the worked example, the rules as properties, overrides."""

from __future__ import annotations

import ast
import random
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import subsidies.engine as engine
from buyersclub.money import allocate_cents
from subsidies.engine import (
    AllocationError,
    CategoryPolicy,
    Funds,
    Limit,
    Member,
    Override,
    Policy,
    allocate_subsidies,
)

# --------------------------------------------------------------------------- the worked example

EXAMPLE_POLICY = Policy(
    {"naloxone": CategoryPolicy(max_share=Fraction(1, 2), cap_cents=40_000, floor_cents=2_500)}
)


def example_members() -> list[Member]:
    def member(key: str, weight: int, bill: int, eligible: bool = True) -> Member:
        return Member(
            key, weight, {"naloxone": bill}, eligible=eligible, inputs={"budget band": "under $250k"}
        )

    return [
        member("A", 4, 150_000),
        member("B", 4, 45_000),
        member("C", 2, 200_000),
        member("D", 3, 80_000),
        member("G", 1, 15_000),
        member("E", 3, 300_000, eligible=False),
    ]


def test_worked_example_awards_to_the_cent():
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY)

    awards = {key: allocation.award(key, "naloxone") for key in "ABCDEG"}
    assert awards == {"A": 40_000, "B": 17_771, "C": 39_491, "D": 23_695, "G": 2_500, "E": 0}
    assert allocation.paid == 123_457 == sum(awards.values())
    assert allocation.unrestricted_left == 0
    assert allocation.categories["naloxone"].level == Fraction(80_957, 820_000)

    limits = {key: member.lines["naloxone"].limit for key, member in allocation.members.items()}
    assert limits == {
        "A": Limit.CAP,
        "B": Limit.LEVEL,
        "C": Limit.LEVEL,
        "D": Limit.LEVEL_LEFTOVER_CENT,
        "G": Limit.FLOOR,
        "E": Limit.NOT_ELIGIBLE,
    }


def test_worked_example_how_the_numbers_arise():
    """A is capped at 40,000 and G held at its 2,500 floor; B, C and D share the rest.

    123,457 - 40,000 - 2,500 = 80,957 cents go to B, C and D in proportion to
    weight x bill (180,000 + 400,000 + 240,000 = 820,000), so lambda = 80,957 / 820,000.
    Exactly: B 17,771.05, C 39,491.22, D 23,694.73; rounded down they leave one cent,
    which goes to the largest remainder, D's .73.
    """
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY)
    level = Fraction(80_957, 820_000)
    exact = {key: allocation.members[key].lines["naloxone"].exact for key in "BCD"}
    assert exact == {"B": level * 4 * 45_000, "C": level * 2 * 200_000, "D": level * 3 * 80_000}
    remainders = {key: value - int(value) for key, value in exact.items()}
    assert max(remainders, key=remainders.__getitem__) == "D"
    assert sum(int(value) for value in exact.values()) == 80_956  # one cent left over

    # A would get lambda x 4 x 150,000 = 59,236.80 but its cap is min(75,000, 40,000);
    # G would get lambda x 1 x 15,000 = 1,480.94, below its floor.
    assert level * 4 * 150_000 > 40_000
    assert level * 15_000 < 2_500


def test_worked_example_explains_each_award():
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY)
    d = allocation.members["D"]
    line = d.lines["naloxone"]
    assert d.weight == 3 and d.inputs == {"budget band": "under $250k"}
    assert line.level == Fraction(80_957, 820_000)
    assert line.percent_of_bill == Decimal("29.62")  # 23,695 of 80,000
    text = d.explain()
    assert "need weight 3" in text and "budget band under $250k" in text
    assert "80957/820000" in text and "leftover cent" in text
    assert "cap of $400.00" in allocation.members["A"].explain()
    assert "floor of $25.00" in allocation.members["G"].explain()
    assert "not eligible" in allocation.members["E"].explain()


def test_order_of_members_does_not_matter_for_the_example():
    members = example_members()
    first = allocate_subsidies(members, Funds(123_457), EXAMPLE_POLICY)
    for seed in range(5):
        random.Random(seed).shuffle(members)
        again = allocate_subsidies(members, Funds(123_457), EXAMPLE_POLICY)
        assert again.awards() == first.awards()
        assert again.members == first.members


def test_more_money_than_the_caps_stays_in_the_fund():
    allocation = allocate_subsidies(example_members(), Funds(1_000_000), EXAMPLE_POLICY)
    assert allocation.awards() == {
        "A": {"naloxone": 40_000},
        "B": {"naloxone": 22_500},
        "C": {"naloxone": 40_000},
        "D": {"naloxone": 40_000},
        "E": {"naloxone": 0},
        "G": {"naloxone": 7_500},
    }
    assert allocation.paid == 150_000
    assert allocation.unrestricted_left == 850_000
    # lambda is the level at which the last member reaches its cap (G: 7,500 / (1 x 15,000)).
    assert allocation.categories["naloxone"].level == Fraction(7_500, 1 * 15_000)


# --------------------------------------------------------------------------- floors the money cannot cover


def test_floors_are_scaled_down_alike_when_the_money_cannot_cover_them():
    policy = Policy({"naloxone": CategoryPolicy(max_share=1, floor_cents=2_500)})
    members = [Member(key, 1, {"naloxone": 100_000}) for key in ("c", "a", "b")] + [
        Member("small", 1, {"naloxone": 1_000}),  # its floor is its cap, 1,000
    ]
    allocation = allocate_subsidies(members, Funds(5_000), policy)

    # 5,000 of 8,500 in floors: every floor x 10/17. 2,500 x 10/17 = 1,470.59 (x3), 1,000 x 10/17 = 588.24.
    assert allocation.categories["naloxone"].floors_scaled
    assert allocation.categories["naloxone"].level == 0
    assert allocation.awards() == {
        "a": {"naloxone": 1_471},
        "b": {"naloxone": 1_471},
        "c": {"naloxone": 1_470},
        "small": {"naloxone": 588},
    }
    assert allocation.paid == 5_000
    assert allocation.members["a"].lines["naloxone"].limit is Limit.FLOOR_SCALED_LEFTOVER_CENT
    assert allocation.members["c"].lines["naloxone"].limit is Limit.FLOOR_SCALED
    assert "scaled down" in allocation.members["c"].explain()


def test_exactly_enough_for_the_floors_pays_every_floor():
    policy = Policy({"naloxone": CategoryPolicy(max_share=1, floor_cents=2_500)})
    members = [Member(key, weight, {"naloxone": 100_000}) for key, weight in (("a", 1), ("b", 5))]
    allocation = allocate_subsidies(members, Funds(5_000), policy)
    assert allocation.awards() == {"a": {"naloxone": 2_500}, "b": {"naloxone": 2_500}}
    assert not allocation.categories["naloxone"].floors_scaled


# ------------------------------------------------------------- categories, priorities, restrictions

TWO_CATEGORIES = Policy(
    {
        "naloxone": CategoryPolicy(max_share=1),
        "pipes": CategoryPolicy(max_share=Fraction(3, 4)),
    },
    priority=("naloxone",),
)


def clubs() -> list[Member]:
    return [
        Member("harbour", 2, {"naloxone": 10_000, "pipes": 20_000}),
        Member("northside", 1, {"naloxone": 30_000, "pipes": 8_000}),
    ]


def test_restricted_grant_pays_only_its_category():
    allocation = allocate_subsidies(clubs(), Funds(0, {"naloxone": 25_000}), TWO_CATEGORIES)
    assert all(member.lines["pipes"].cents == 0 for member in allocation.members.values())
    assert allocation.categories["naloxone"].paid == 25_000
    assert allocation.categories["naloxone"].from_restricted == 25_000
    assert allocation.categories["pipes"].paid == 0


def test_pipes_money_never_buys_naloxone_and_the_rest_stays_restricted():
    allocation = allocate_subsidies(clubs(), Funds(0, {"pipes": 100_000}), TWO_CATEGORIES)
    assert allocation.categories["naloxone"].paid == 0
    assert allocation.awards() == {
        "harbour": {"naloxone": 0, "pipes": 15_000},
        "northside": {"naloxone": 0, "pipes": 6_000},
    }
    assert allocation.restricted_left["pipes"] == 100_000 - 21_000
    assert allocation.unrestricted_left == 0


def test_naloxone_caps_fill_before_pipes_get_unrestricted_money():
    # 50,000 unrestricted: naloxone caps (40,000) fill first, pipes share the other 10,000.
    allocation = allocate_subsidies(clubs(), Funds(50_000), TWO_CATEGORIES)
    assert {key: member.lines["naloxone"].cents for key, member in allocation.members.items()} == {
        "harbour": 10_000,
        "northside": 30_000,
    }
    assert allocation.categories["pipes"].paid == 10_000
    assert allocation.categories["pipes"].from_unrestricted == 10_000

    # With pipes first, the same money goes to pipes caps (15,000 + 6,000) first.
    pipes_first = Policy(TWO_CATEGORIES.categories, priority=("pipes", "naloxone"))
    allocation = allocate_subsidies(clubs(), Funds(50_000), pipes_first)
    assert allocation.categories["pipes"].paid == 21_000
    assert allocation.categories["naloxone"].paid == 29_000


def test_restricted_money_is_used_before_unrestricted_in_its_category():
    allocation = allocate_subsidies(clubs(), Funds(30_000, {"naloxone": 15_000}), TWO_CATEGORIES)
    naloxone = allocation.categories["naloxone"]
    assert (naloxone.paid, naloxone.from_restricted, naloxone.from_unrestricted) == (40_000, 15_000, 25_000)
    assert allocation.categories["pipes"].paid == 5_000
    assert allocation.unrestricted_left == 0 and allocation.restricted_left["naloxone"] == 0


def test_categories_without_priority_follow_by_name():
    policy = Policy({"pipes": CategoryPolicy(), "oxygen": CategoryPolicy(), "naloxone": CategoryPolicy()},
                    priority=("pipes",))  # fmt: skip
    assert policy.order() == ["pipes", "naloxone", "oxygen"]


# --------------------------------------------------------------------------- overrides


def test_override_rebalances_the_others():
    override = Override("B", "naloxone", 20_000, reason="fire destroyed their stock")
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY, [override])

    b = allocation.members["B"].lines["naloxone"]
    assert (b.cents, b.limit, b.reason) == (20_000, Limit.OVERRIDE, "fire destroyed their stock")
    assert "override: fire destroyed their stock" in allocation.members["B"].explain()
    # The other 103,457 cents are water-filled among A, C, D and G: A and G as before,
    # C and D share 60,957 in proportion 400,000 : 240,000.
    level = allocation.categories["naloxone"].level
    assert level == Fraction(60_957, 640_000)
    assert allocation.award("A", "naloxone") == 40_000
    assert allocation.award("G", "naloxone") == 2_500
    assert allocation.award("C", "naloxone") + allocation.award("D", "naloxone") == 60_957
    assert allocation.paid == 123_457 == sum(sum(lines.values()) for lines in allocation.awards().values())
    assert allocation.categories["naloxone"].overridden == 20_000


def test_override_may_go_above_the_cap_but_not_the_bill_nor_the_money():
    above_cap = Override("G", "naloxone", 15_000, reason="new programme")
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY, [above_cap])
    assert allocation.award("G", "naloxone") == 15_000
    with pytest.raises(AllocationError, match="more than its naloxone bill"):
        allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY,
                           [Override("G", "naloxone", 15_001, reason="typo")])  # fmt: skip
    with pytest.raises(AllocationError, match="more than the money"):
        allocate_subsidies(example_members(), Funds(10_000), EXAMPLE_POLICY,
                           [Override("A", "naloxone", 10_001, reason="typo")])  # fmt: skip
    with pytest.raises(AllocationError, match="reason"):
        Override("A", "naloxone", 1, reason=" ")
    with pytest.raises(AllocationError, match="not eligible"):
        allocate_subsidies(example_members(), Funds(10_000), EXAMPLE_POLICY,
                           [Override("E", "naloxone", 1, reason="asked nicely")])  # fmt: skip


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([Member("a", 1, {"naloxone": 1}), Member("a", 2, {"naloxone": 1})], "listed twice"),
        ([Member("a", 0, {"naloxone": 1})], "must be positive"),
        ([Member("a", 0.5, {"naloxone": 1})], "exact number"),
        ([Member("a", 1, {"naloxone": -1})], "must not be negative"),
        ([Member("a", 1, {"naloxone": Decimal("1.5")})], "int number of cents"),
        ([Member("a", 1, {"glitter": 100})], "glitter, which the policy does not cover"),
    ],
)
def test_bad_members_are_refused(members, message):
    with pytest.raises(AllocationError, match=message):
        allocate_subsidies(members, Funds(100), EXAMPLE_POLICY)


def test_bad_policy_and_money_are_refused():
    with pytest.raises(AllocationError, match="between 0 and 1"):
        CategoryPolicy(max_share=Fraction(5, 4))
    with pytest.raises(AllocationError, match="without a policy"):
        Policy({"pipes": CategoryPolicy()}, priority=("naloxone",))
    with pytest.raises(AllocationError, match="must not be negative"):
        Funds(-1)
    with pytest.raises(AllocationError, match="int number of cents"):
        Funds(100, {"pipes": Decimal("1.00")})


def test_weights_may_be_decimals_fractions_or_strings():
    members = [
        Member("a", Decimal("1.25"), {"naloxone": 40_000}),
        Member("b", Fraction(5, 4), {"naloxone": 40_000}),
        Member("c", "5/4", {"naloxone": 40_000}),
    ]
    allocation = allocate_subsidies(members, Funds(30_000), Policy({"naloxone": CategoryPolicy()}))
    assert allocation.awards() == {key: {"naloxone": 10_000} for key in "abc"}
    assert allocation.categories["naloxone"].level == Fraction(10_000, 50_000)


def test_the_engine_uses_no_web_or_database_code():
    tree = ast.parse(Path(engine.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"buyersclub.money"}


def test_breakpoints_closer_than_a_float_can_tell_are_still_exact(monkeypatch):
    # b's weight differs from a's by 1e-17: their floor breakpoints round to the same float, in the
    # wrong order. The engine notices (the exact check fails) and searches again with exact keys.
    searches = []
    real = engine._level_segment

    def spy(*args, exact_keys):
        searches.append(exact_keys)
        return real(*args, exact_keys=exact_keys)

    monkeypatch.setattr(engine, "_level_segment", spy)
    policy = Policy({"naloxone": CategoryPolicy(max_share=1, floor_cents=1_000)})
    members = [
        Member("a", 1, {"naloxone": 100_000}),
        Member("b", Fraction(10**17 + 1, 10**17), {"naloxone": 100_000}),
    ]
    allocation = allocate_subsidies(members, Funds(2_000), policy)
    assert searches == [False, True]
    assert allocation.awards() == {"a": {"naloxone": 1_000}, "b": {"naloxone": 1_000}}
    # lambda is as large as the money allows: b's breakpoint, where it would leave its floor.
    assert allocation.categories["naloxone"].level == Fraction(1_000, 100_000) / Fraction(10**17 + 1, 10**17)
    assert allocation.members["a"].lines["naloxone"].limit is Limit.FLOOR


def test_an_override_of_an_empty_bill_adds_no_line_beside_members_set_apart():
    members = [*example_members(), Member("H", 2, {})]  # E is not eligible: set apart
    override = Override("H", "naloxone", 0, reason="nothing billed this round")
    allocation = allocate_subsidies(members, Funds(123_457), EXAMPLE_POLICY, [override])
    assert allocation.members["H"].lines == {}
    assert allocation.members["E"].lines["naloxone"].limit is Limit.NOT_ELIGIBLE
    assert allocation.members["E"].lines["naloxone"].cap == 40_000
    assert allocation.award("D", "naloxone") == 23_695


# --------------------------------------------------------------------------- properties

CATEGORIES = ("naloxone", "pipes")

category_policies = st.builds(
    CategoryPolicy,
    max_share=st.sampled_from([Fraction(1), Fraction(3, 4), Fraction(1, 2), Fraction(1, 3), Decimal("0.15")]),
    cap_cents=st.none() | st.integers(0, 60_000),
    floor_cents=st.sampled_from([0, 0, 500, 2_500, 10_000]),
)
policies = st.builds(
    Policy,
    categories=st.fixed_dictionaries({category: category_policies for category in CATEGORIES}),
    priority=st.permutations(CATEGORIES) | st.just(("naloxone",)) | st.just(()),
)
weights = (
    st.integers(1, 6)
    | st.fractions(Fraction(1, 4), Fraction(6), max_denominator=12)
    | st.sampled_from([Decimal("0.5"), Decimal("1.75"), Decimal("2.333")])
)
bills = st.integers(0, 200_000) | st.sampled_from([0, 1, 99, 45_000])


@st.composite
def member_lists(draw, min_size=0, max_size=12):
    keys = draw(st.lists(st.integers(1, 500), min_size=min_size, max_size=max_size, unique=True))
    return [
        Member(
            key,
            draw(weights),
            draw(st.fixed_dictionaries({category: bills for category in CATEGORIES})),
            eligible=draw(st.booleans() | st.just(True)),
        )
        for key in keys
    ]


funds = st.builds(
    Funds,
    unrestricted=st.integers(0, 400_000) | st.sampled_from([0, 1, 2_500]),
    restricted=st.fixed_dictionaries(
        {}, optional={category: st.integers(0, 150_000) for category in CATEGORIES}
    ),
)

PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lines_of(allocation):
    return [(member, line) for member in allocation.members.values() for line in member.lines.values()]


@PROPERTIES
@given(member_lists(), funds, policies)
def test_money_adds_up_and_never_overspends(members, money, policy):
    allocation = allocate_subsidies(members, money, policy)
    paid = sum(line.cents for _, line in lines_of(allocation))
    assert paid == allocation.paid
    assert allocation.unrestricted_left >= 0
    assert all(left >= 0 for left in allocation.restricted_left.values())
    assert allocation.paid + allocation.unrestricted_left + sum(allocation.restricted_left.values()) == (
        money.unrestricted + sum(money.restricted.values())
    )
    assert sum(outcome.from_unrestricted for outcome in allocation.categories.values()) <= money.unrestricted
    for category, outcome in allocation.categories.items():
        in_category = sum(line.cents for _, line in lines_of(allocation) if line.category == category)
        assert in_category == outcome.paid == outcome.from_restricted + outcome.from_unrestricted
        # Restricted money pays only its own category.
        assert outcome.from_restricted <= money.restricted.get(category, 0)
        assert (
            allocation.restricted_left[category]
            == money.restricted.get(category, 0) - outcome.from_restricted
        )
        assert outcome.paid <= outcome.available


@PROPERTIES
@given(member_lists(), funds, policies)
def test_awards_are_water_filled_between_floor_and_cap(members, money, policy):
    allocation = allocate_subsidies(members, money, policy)
    for member, line in lines_of(allocation):
        outcome = allocation.categories[line.category]
        if not member.eligible:
            assert line.cents == 0 and line.limit is Limit.NOT_ELIGIBLE
            continue
        assert line.cents <= line.cap <= line.bill
        if outcome.floors_scaled:
            # Not enough for all floors: each gets the same share of its floor, never more than it.
            assert line.exact == Fraction(outcome.paid * line.floor, sum(
                other.floor for other_member, other in lines_of(allocation)
                if other.category == line.category and other_member.eligible
            ))  # fmt: skip
            assert line.cents <= line.floor
        else:
            assert line.floor <= line.cents
            # Exactly the sliding scale: lambda x weight x bill, held between floor and cap.
            level = outcome.level * Fraction(member.weight) * line.bill
            assert line.exact == min(max(level, line.floor), line.cap)
            if outcome.paid < outcome.available:  # money left over: only because everyone is capped
                assert line.cents == line.cap
        assert abs(line.cents - line.exact) < 1


@PROPERTIES
@given(member_lists(), funds, policies)
def test_cents_are_split_by_largest_remainder_with_the_shared_function(members, money, policy):
    allocation = allocate_subsidies(members, money, policy)
    for category, outcome in allocation.categories.items():
        exact = {
            member.key: line.exact
            for member, line in lines_of(allocation)
            if line.category == category and line.exact
        }
        if exact:
            cents = {key: allocation.award(key, category) for key in exact}
            assert cents == allocate_cents(outcome.paid, exact)
        for member, line in lines_of(allocation):
            if line.category == category and line.limit in (
                Limit.LEVEL_LEFTOVER_CENT,
                Limit.FLOOR_SCALED_LEFTOVER_CENT,
            ):
                assert line.cents == int(line.exact) + 1
                assert member.key in exact


@PROPERTIES
@given(member_lists(), funds, policies, st.randoms(use_true_random=False))
def test_order_of_members_does_not_matter(members, money, policy, rng):
    first = allocate_subsidies(members, money, policy)
    shuffled = list(members)
    rng.shuffle(shuffled)
    again = allocate_subsidies(shuffled, money, policy)
    assert again.awards() == first.awards()
    assert again.members == first.members
    assert again.categories == first.categories


@PROPERTIES
@given(
    member_lists(),
    funds,
    policies,
    st.integers(0, 100_000),
    st.sampled_from([None, *CATEGORIES]),
)
def test_more_money_never_lowers_an_exact_award(members, money, policy, extra, restricted_to):
    more = (
        Funds(money.unrestricted + extra, money.restricted)
        if restricted_to is None
        else Funds(money.unrestricted, {**money.restricted,
                                        restricted_to: money.restricted.get(restricted_to, 0) + extra})
    )  # fmt: skip
    before = allocate_subsidies(members, money, policy)
    after = allocate_subsidies(members, more, policy)
    for key, member in before.members.items():
        for category, line in member.lines.items():
            assert after.members[key].lines[category].exact >= line.exact
            # After rounding, largest remainder may cost a line one cent (the Alabama paradox), no more.
            assert after.members[key].lines[category].cents >= line.cents - 1
    assert after.paid >= before.paid


@PROPERTIES
@given(
    st.integers(2, 30),
    weights,
    st.integers(1, 200_000),
    st.integers(0, 2_000_000),
    category_policies,
    member_lists(max_size=5),
)
def test_equal_need_gets_equal_awards(count, weight, bill, money, category_policy, others):
    twins = [Member(f"twin-{number}", weight, {"naloxone": bill}) for number in range(count)]
    policy = Policy({"naloxone": category_policy, "pipes": category_policy})
    allocation = allocate_subsidies(twins + others, Funds(money), policy)
    awards = [allocation.award(twin.key, "naloxone") for twin in twins]
    assert max(awards) - min(awards) <= 1
    assert len({allocation.members[twin.key].lines["naloxone"].exact for twin in twins}) == 1


@PROPERTIES
@given(member_lists(min_size=2), funds, policies, st.data())
def test_override_fixes_one_award_and_the_rest_still_adds_up(members, money, policy, data):
    candidates = [(m, c) for m in members if m.eligible for c in CATEGORIES if m.bills[c]]
    assume(candidates)
    member, category = data.draw(st.sampled_from(candidates))
    available = money.unrestricted + money.restricted.get(category, 0)
    cents = data.draw(st.integers(0, min(member.bills[category], available)))
    override = Override(member.key, category, cents, reason="assessed by hand")

    allocation = allocate_subsidies(members, money, policy, [override])
    line = allocation.members[member.key].lines[category]
    assert (line.cents, line.limit) == (cents, Limit.OVERRIDE)
    assert allocation.paid == sum(line.cents for _, line in lines_of(allocation))
    assert allocation.paid + allocation.unrestricted_left + sum(allocation.restricted_left.values()) == (
        money.unrestricted + sum(money.restricted.values())
    )
    # The others are water-filled with what is left, as if the member had been paid beforehand.
    others = [m for m in members if m.key != member.key] + [
        Member(member.key, member.weight, {c: b for c, b in member.bills.items() if c != category},
               eligible=member.eligible)
    ]  # fmt: skip
    from_restricted = min(cents, money.restricted.get(category, 0))
    rest = Funds(
        money.unrestricted - (cents - from_restricted),
        {**money.restricted, category: money.restricted.get(category, 0) - from_restricted},
    )
    without = allocate_subsidies(others, rest, policy)
    for key, other in without.members.items():
        for other_category, other_line in other.lines.items():
            assert allocation.award(key, other_category) == other_line.cents


def filled_columns(allocation, category):
    """The water-filled members' products (weight x bill, scaled to integers), caps and floors."""
    products, caps, floors = [], [], []
    for member in allocation.members.values():
        line = member.lines.get(category)
        if line is None or line.limit in (Limit.NOT_ELIGIBLE, Limit.OVERRIDE):
            continue
        products.append(int(Fraction(member.weight) * line.bill * 1_000_000_000))
        caps.append(line.cap)
        floors.append(line.floor)
    return products, caps, floors


@settings(max_examples=60, deadline=None)
@given(member_lists(max_size=30), funds, policies)
def test_every_way_to_the_level_finds_the_same_one(members, money, policy):
    # Newton's steps from a sampled guess, then the sorted search with float keys, then with exact
    # keys: each of the first two may give up (floats could not tell), never give another answer.
    allocation = allocate_subsidies(members, money, policy)
    for category, outcome in allocation.categories.items():
        if outcome.floors_scaled:
            continue
        products, caps, floors = filled_columns(allocation, category)
        available = outcome.available - outcome.overridden
        if not products or available >= sum(caps):
            continue
        exact = engine._level_segment(products, caps, floors, available, exact_keys=True)
        assert exact is not None
        surplus, denominator, capped, off_floor = exact
        # At that level, floors still held, caps reached and λ · weight · bill for the rest spend the money.
        rows = list(zip(products, caps, floors, capped, off_floor, strict=True))
        held = sum(floor for _, _, floor, _, off in rows if not off) + sum(
            cap for _, cap, _, at_cap, _ in rows if at_cap
        )
        at_level = sum(product for product, _, _, at_cap, off in rows if off and not at_cap)
        assert held + Fraction(surplus, denominator) * at_level == available
        for found in (
            engine._level_by_newton(products, caps, floors, available),
            engine._level_segment(products, caps, floors, available, exact_keys=False),
        ):
            assert found is None or found == exact


@PROPERTIES
@given(member_lists(), funds, policies)
def test_the_sorted_search_gives_the_same_allocation_as_newtons_steps(members, money, policy):
    first = allocate_subsidies(members, money, policy)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_level_by_newton", lambda *args: None)
        again = allocate_subsidies(members, money, policy)
    assert again == first


def test_a_large_club_is_water_filled_exactly(monkeypatch):
    rng = random.Random(20261122)
    weights = [1, 3, Fraction(5, 2), Decimal("1.75"), "7/3"]
    members = [
        Member(f"org-{number}", rng.choice(weights), {"naloxone": rng.randint(1, 500_000)},
               eligible=rng.random() < 0.9)
        for number in range(3_000)
    ]  # fmt: skip
    sorted_searches = []
    real = engine._level_segment

    def spy(*args, exact_keys):
        sorted_searches.append(exact_keys)
        return real(*args, exact_keys=exact_keys)

    monkeypatch.setattr(engine, "_level_segment", spy)
    caps = [min(member.bills["naloxone"] // 2, 40_000) for member in members if member.eligible]
    floors, caps = sum(min(cap, 2_500) for cap in caps), sum(caps)
    for money in (floors + (caps - floors) // 10, (floors + caps) // 2, caps - 1):
        allocation = allocate_subsidies(members, Funds(money), EXAMPLE_POLICY)
        outcome = allocation.categories["naloxone"]
        assert outcome.paid == money and not outcome.floors_scaled
        paid = 0
        for member in members:
            line = allocation.members[member.key].lines["naloxone"]
            paid += line.cents
            if member.eligible:
                level = outcome.level * Fraction(member.weight) * line.bill
                assert line.exact == min(max(level, line.floor), line.cap)
                assert line.floor <= line.cents <= line.cap and abs(line.cents - line.exact) < 1
        assert paid == money
    # Newton's steps settled every time: the sorted search is only a fallback.
    assert sorted_searches == []


def test_awards_read_alike_however_they_are_read():
    override = Override("B", "naloxone", 20_000, reason="fire destroyed their stock")
    allocation = allocate_subsidies(example_members(), Funds(123_457), EXAMPLE_POLICY, [override])
    one_by_one = {key: allocation.members[key] for key in allocation.members}
    assert list(one_by_one) == ["A", "B", "C", "D", "G", "E"]  # the order they were given
    assert dict(allocation.members.items()) == one_by_one == allocation.members
    assert list(allocation.members.values()) == list(one_by_one.values())
    assert len(allocation.members) == 6 and "E" in allocation.members and "Z" not in allocation.members
    for key, award in one_by_one.items():
        assert allocation.award(key, "naloxone") == award.lines["naloxone"].cents == award.cents
        assert allocation.award(key, "pipes") == 0
    assert one_by_one["B"].lines["naloxone"].reason == "fire destroyed their stock"
    with pytest.raises(KeyError):
        allocation.members["Z"]


def test_weights_beyond_what_floats_hold_are_still_shared_exactly():
    policy = Policy({"naloxone": CategoryPolicy(floor_cents=100)})
    tiny = [
        Member("a", Fraction(1, 10**400), {"naloxone": 1_000}),
        Member("b", Fraction(3, 10**401), {"naloxone": 5_000}),
    ]
    # Weight x bill: 10 and 15 (over 10**401): 1,500 cents go 600 and 900.
    assert allocate_subsidies(tiny, Funds(1_500), policy).awards() == {
        "a": {"naloxone": 600},
        "b": {"naloxone": 900},
    }
    huge = [Member("a", Fraction(10**400), {"naloxone": 1_000}), Member("b", 1, {"naloxone": 5_000})]
    allocation = allocate_subsidies(huge, Funds(1_500), policy)
    assert allocation.awards() == {"a": {"naloxone": 1_000}, "b": {"naloxone": 500}}
    assert allocation.members["a"].lines["naloxone"].limit is Limit.CAP
