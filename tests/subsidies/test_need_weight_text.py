"""How a need weight reads in its explanation: decimals a person reads, the exact value kept."""

from __future__ import annotations

from fractions import Fraction

import pytest

from subsidies.policy import DEFAULT_WEIGHTS, NeedWeight, need_weight, plain_number


def test_points_with_decimals_read_as_decimals_and_the_weight_stays_exact():
    points = {**DEFAULT_WEIGHTS, "base": "0.5", "no_public_funding": "1.25"}
    weight = need_weight(points, budget_band="under_50k", people_reached_band="100_500",
                         receives_public_funding=False, deprivation_decile=2)  # fmt: skip
    assert weight.value == Fraction(39, 4)
    assert weight.parts[0] == ("base", Fraction(1, 2))
    assert weight.explain() == (
        "need weight 9.75 = 0.5 (base) + 4 (annual budget under 50,000) + "
        "1 (100 to 500 people reached a month) + 1.25 (no public funding) + 3 (deprivation decile 2)"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(5, 2), "2.5"),
        (Fraction(11), "11"),
        (Fraction(-3, 4), "-0.75"),
        (Fraction(1, 8), "0.125"),
        (Fraction(1, 20), "0.05"),
        (Fraction(0), "0"),
        (Fraction(7, 3), "7/3"),  # no decimal writes it exactly
    ],
)
def test_plain_numbers(value, text):
    assert plain_number(value) == text


def test_the_policy_page_shows_a_weight_as_a_decimal():
    weight = NeedWeight(Fraction(39, 4), (("base", Fraction(1, 2)),), {})
    assert weight.shown == "9.75" and weight.value == Fraction(39, 4)
