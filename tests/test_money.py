"""Money arithmetic: exact amounts, one rounding rule, fair and order-free splits."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyersclub.money import (
    MoneyError,
    allocate,
    allocate_cents,
    format_money,
    from_cents,
    round_money,
    to_cents,
    to_money,
)

D = Decimal


# --- to_money ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("40", D("40.00")), ("40.5", D("40.50")), (" 0.01 ", D("0.01")), (3, D("3.00")),
     (D("1.000"), D("1.00")), ("-12.30", D("-12.30")), (D("1E+2"), D("100.00"))],
)
def test_to_money_gives_two_places(value, expected):
    amount = to_money(value)
    assert amount == expected
    assert str(amount) == str(expected)


@pytest.mark.parametrize("value", [0.1, 40.0, 1e-3, float("nan"), True])
def test_to_money_refuses_floats(value):
    with pytest.raises(MoneyError):
        to_money(value)


@pytest.mark.parametrize("value", ["0.001", "40.005", D("0.009"), D("-1.234")])
def test_to_money_refuses_fractions_of_a_cent(value):
    with pytest.raises(MoneyError, match="more than two decimal places"):
        to_money(value)


@pytest.mark.parametrize("value", ["", "forty", "NaN", "Infinity", "1e30"])
def test_to_money_refuses_what_is_not_an_amount(value):
    with pytest.raises(MoneyError):
        to_money(value)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_cents_round_trip(cents):
    assert to_cents(from_cents(cents)) == cents
    assert to_money(str(from_cents(cents))) == from_cents(cents)


def test_from_cents_refuses_non_integers():
    with pytest.raises(MoneyError):
        from_cents(D("1.5"))


def test_format_money():
    assert format_money(D("1234.50")) == "$1,234.50"
    assert format_money(D("-40.00"), "EUR") == "-€40.00"
    assert format_money(D("7.00"), "CHF") == "7.00 CHF"


# --- round_money -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("0.005"), D("0.01")),
        (D("0.025"), D("0.03")),  # half-even would give 0.02
        (D("2.675"), D("2.68")),
        (D("0.0049999"), D("0.00")),
        (D("-0.025"), D("-0.03")),  # halves round away from zero
        (Fraction(1, 8), D("0.13")),
        (Fraction(1, 3), D("0.33")),
        (Fraction(-1, 200), D("-0.01")),
        (Fraction(5 * 10**29 - 1, 10**32), D("0.00")),  # just below half a cent
        (7, D("7.00")),
    ],
)
def test_round_money_rounds_half_up(value, expected):
    assert round_money(value) == expected
    assert str(round_money(value)) == str(expected)


def test_round_money_refuses_floats():
    with pytest.raises(MoneyError):
        round_money(0.125)


@given(st.fractions(min_value=-10**9, max_value=10**9))
def test_round_money_is_the_nearest_cent_with_halves_away_from_zero(value):
    rounded = Fraction(round_money(value))
    error = abs(rounded - value)
    assert error <= Fraction(1, 200)
    assert rounded * 100 == int(rounded * 100)
    if error == Fraction(1, 200):
        assert abs(rounded) > abs(value)


# --- allocate ------------------------------------------------------------------------

KEYS = st.one_of(st.integers(min_value=-1000, max_value=1000), st.text(max_size=6))
WEIGHTS = st.dictionaries(
    KEYS, st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12
).filter(lambda weights: any(weights.values()))
TOTALS = st.integers(min_value=-10**9, max_value=10**9)


@settings(max_examples=150)
@given(total=TOTALS, weights=WEIGHTS)
def test_allocation_sums_exactly_and_stays_within_a_cent_of_each_share(total, weights):
    parts = allocate_cents(total, weights)
    assert set(parts) == set(weights)
    assert sum(parts.values()) == total
    weight_sum = sum(weights.values())
    for key, part in parts.items():
        exact = Fraction(total * weights[key], weight_sum)
        assert abs(part - exact) < 1


@settings(max_examples=150)
@given(total=TOTALS, weights=WEIGHTS, seed=st.randoms(use_true_random=False))
def test_allocation_does_not_depend_on_the_order_of_the_weights(total, weights, seed):
    items = list(weights.items())
    seed.shuffle(items)
    assert allocate_cents(total, dict(items)) == allocate_cents(total, weights)
    assert list(allocate_cents(total, dict(items))) == [key for key, _ in items]


@given(total=TOTALS, weights=WEIGHTS)
def test_a_negative_total_is_split_like_the_positive_one(total, weights):
    assert allocate_cents(-total, weights) == {
        key: -part for key, part in allocate_cents(total, weights).items()
    }


@given(total=TOTALS, weights=WEIGHTS)
def test_zero_weights_get_nothing(total, weights):
    parts = allocate_cents(total, weights)
    assert all(parts[key] == 0 for key, weight in weights.items() if weight == 0)


def test_ties_go_to_the_smaller_key():
    assert allocate_cents(1, {"b": 1, "a": 1}) == {"b": 0, "a": 1}
    assert allocate_cents(2, {3: 1, 1: 1, 2: 1}) == {3: 0, 1: 1, 2: 1}
    # Numbers in numeric order, strings in alphabetical order.
    assert allocate_cents(1, {10: 1, 9: 1}) == {10: 0, 9: 1}
    assert allocate_cents(1, {-5: 1, -10: 1}) == {-5: 0, -10: 1}
    assert allocate_cents(1, {"b": 1, "aa": 1}) == {"b": 0, "aa": 1}
    assert allocate_cents(-1, {"b": 1, "a": 1}) == {"b": 0, "a": -1}


def test_the_largest_remainder_wins_before_the_key():
    # Exact shares 3.333…, 3.333…, 3.333… of 10 -> one cent left, to key 1;
    # shares 6.6 and 3.4 of 10 -> 7 and 3 whatever the keys.
    assert allocate_cents(10, {2: 1, 1: 1, 3: 1}) == {1: 4, 2: 3, 3: 3}
    assert allocate_cents(10, {"a": 17, "b": 33}) == {"a": 3, "b": 7}


def test_weights_may_be_fractions_or_decimals():
    assert allocate_cents(100, {"x": Fraction(1, 3), "y": D("0.5")}) == {"x": 40, "y": 60}


@pytest.mark.parametrize(
    ("total", "weights", "message"),
    [
        (100, {"a": 0.5, "b": 1}, "float"),
        (100, {"a": -1, "b": 2}, "negative"),
        (100, {"a": 0, "b": 0}, "all zero"),
        (100, {}, "no parts"),
        (D("1.00"), {"a": 1}, "int number of cents"),
    ],
)
def test_allocation_refuses_what_cannot_be_split(total, weights, message):
    with pytest.raises(MoneyError, match=message):
        allocate_cents(total, weights)


def test_allocating_nothing_over_no_parts_is_nothing():
    assert allocate_cents(0, {}) == {}


@given(cents=TOTALS, weights=WEIGHTS)
def test_allocate_splits_money_exactly(cents, weights):
    amount = from_cents(cents)
    parts = allocate(amount, weights)
    assert sum(parts.values(), D("0.00")) == amount
    assert all(part == to_money(part) for part in parts.values())


def test_allocate_refuses_sub_cent_amounts():
    with pytest.raises(MoneyError):
        allocate(D("1.005"), {"a": 1, "b": 1})


def test_allocate_example_from_the_fund():
    # $100 over three equally needy members: the leftover cent goes to the first by key.
    assert allocate(D("100.00"), {12: 1, 7: 1, 30: 1}) == {
        7: D("33.34"), 12: D("33.33"), 30: D("33.33")}
