"""The need weight: how the allocation policy turns an organisation's profile into a number.

The weight is a sum of points, so it can be explained line by line: a base
point, points for the annual budget band (smaller budgets score more), for
people reached a month (more people score more), for having no public
funding, and for the deprivation decile of the area (decile 1, the most
deprived, scores most). Each policy version carries its own points; the
defaults are below. Only bands and flags are used: nothing about people.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

DEFAULT_WEIGHTS: dict[str, Any] = {
    "base": "1",
    "budget_band": {"under_50k": "4", "50k_250k": "3", "250k_1m": "2", "over_1m": "1"},
    "people_reached_band": {"under_100": "0", "100_500": "1", "500_2000": "2", "over_2000": "3"},
    "no_public_funding": "2",
    "deprivation_decile": {"1": "3", "2": "3", "3": "2", "4": "2", "5": "1", "6": "1"},
}
DEFAULT_MAX_SHARE = {"naloxone": "1", "oxygen": "1", "pipes": "0.75", "other": "0.5"}
DEFAULT_PRIORITY = ["naloxone", "oxygen", "pipes", "other"]

BUDGET_LABELS = {
    "under_50k": "annual budget under 50,000",
    "50k_250k": "annual budget 50,000 to 250,000",
    "250k_1m": "annual budget 250,000 to 1 million",
    "over_1m": "annual budget over 1 million",
}
PEOPLE_LABELS = {
    "under_100": "fewer than 100 people reached a month",
    "100_500": "100 to 500 people reached a month",
    "500_2000": "500 to 2,000 people reached a month",
    "over_2000": "more than 2,000 people reached a month",
}


@dataclass(frozen=True)
class NeedWeight:
    value: Fraction
    # (what, points) for each input that scored, in order: the explanation.
    parts: tuple[tuple[str, Fraction], ...]
    # The inputs themselves, for the run's snapshot.
    inputs: dict[str, Any]

    @property
    def shown(self) -> str:
        """The weight as a person reads it: "2.5", not "5/2"."""
        return plain_number(self.value)

    def explain(self) -> str:
        """The weight and the points it adds up, as a person reads numbers ("2.5", not "5/2")."""
        lines = " + ".join(f"{plain_number(points)} ({what})" for what, points in self.parts)
        return f"need weight {plain_number(self.value)} = {lines}"


def plain_number(value: Fraction) -> str:
    """An exact number written out in decimals (``2.5``, ``-0.75``, ``11``); a fraction such as
    ``7/3``, which no decimal writes exactly, stays a fraction.
    """
    rest, places = value.denominator, 0
    for factor in (2, 5):
        count = 0
        while rest % factor == 0:
            rest //= factor
            count += 1
        places = max(places, count)
    if rest != 1:
        return str(value)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    whole, decimals = digits[: len(digits) - places], digits[len(digits) - places :]
    return ("-" if value < 0 else "") + (f"{whole}.{decimals}" if places else whole)


def _points(value: Any) -> Fraction:
    if isinstance(value, float):
        raise ValueError("policy points must not be floats")
    return Fraction(Decimal(str(value)))


def need_weight(
    weights: dict[str, Any],
    *,
    budget_band: str,
    people_reached_band: str,
    receives_public_funding: bool,
    deprivation_decile: int | None,
) -> NeedWeight:
    """The weight for these profile bands under a policy's ``weights`` (always at least the base)."""
    parts: list[tuple[str, Fraction]] = [("base", _points(weights.get("base", "1")))]
    budget = _points(weights.get("budget_band", {}).get(budget_band, "0"))
    if budget:
        parts.append((BUDGET_LABELS.get(budget_band, budget_band), budget))
    people = _points(weights.get("people_reached_band", {}).get(people_reached_band, "0"))
    if people:
        parts.append((PEOPLE_LABELS.get(people_reached_band, people_reached_band), people))
    if not receives_public_funding:
        bonus = _points(weights.get("no_public_funding", "0"))
        if bonus:
            parts.append(("no public funding", bonus))
    if deprivation_decile is not None:
        area = _points(weights.get("deprivation_decile", {}).get(str(deprivation_decile), "0"))
        if area:
            parts.append((f"deprivation decile {deprivation_decile}", area))
    value = sum((points for _, points in parts), Fraction(0))
    if value <= 0:
        raise ValueError("a need weight must be positive; check the policy's base points")
    inputs = {
        "budget_band": budget_band,
        "people_reached_band": people_reached_band,
        "receives_public_funding": receives_public_funding,
        "deprivation_decile": deprivation_decile,
    }
    return NeedWeight(value=value, parts=tuple(parts), inputs=inputs)
