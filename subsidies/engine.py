"""The subsidy allocation engine: weighted water-filling of the fund, to the cent.

A plain module (no Flask, no SQLAlchemy): the services feed it members, money and
a policy, and store what it returns.

The rule
--------
Every eligible member has a **need weight** ``w`` (a positive exact number) and,
per category, a **bill** ``b`` in cents. The policy gives each category a
maximum share of the bill (100 % of naloxone, 75 % of pipes...), optionally an
absolute cap per member, and optionally a **floor** (a guaranteed minimum award).
For one member in one category::

    cap   = min(floor(b · max_share), absolute cap)     whole cents
    floor = min(policy floor, cap)                       never above the cap
    award = λ · w · b, held between floor and cap

with the level λ as large as the money allows ("weighted water-filling"): members
of equal need get the same percentage off their bill. Each category has its own λ.

Money comes as unrestricted cents plus restricted cents per category
(restricted money only ever pays for its own category). Categories are filled
one after the other in the policy's priority order (categories it does not
list come after, by name). A category may use its own restricted money first,
then whatever unrestricted money the categories before it left. What is not
paid out stays in the fund, restricted money in its restriction.

When the money available to a category cannot even cover its floors, the
**floors are scaled down proportionally**: every member gets the same fraction
of its floor (λ is then 0 and no one gets more than its floor share). As the
money grows the floors fill up, then the level rises, then members reach their
caps: nobody's exact award ever goes down when there is more money.

Cents
-----
Exact awards are rational. Each is rounded down to the cent and the cents left
over (the category's total paid is always a whole number of cents) go one each
to the largest remainders, ties broken by the member key -- exactly what
:func:`buyersclub.money.allocate_cents` does, computed here with integers
because 10,000 members must fit in a 50 ms budget (``scripts/bench_subsidies.py``). Only members
paid at the level can receive a leftover cent, so a rounded award never leaves
[floor, cap]. Largest remainder can, rarely, give a member one cent less when
the total grows (the Alabama paradox): monotonicity holds for the exact
amounts, and rounded amounts move by at most that cent.

How it is fast
--------------
Award(λ) summed over members is piecewise linear in λ, with a breakpoint where
each member leaves its floor and where it reaches its cap. The breakpoints are
sorted by float keys (correctly rounded, so the order is exact except between
values that round to the same float), the running sums of floors, caps and
weights · bills are integer prefix sums, and a binary search with exact integer
comparisons finds the segment holding the λ that spends the money. λ is then
a fraction of two integers, every member is classified with exact integer
comparisons, and the result is checked exactly; in the (pathological) case of
breakpoints closer than a float can tell apart, the search is repeated with
exact :class:`~fractions.Fraction` keys.

Override
--------
An admin may fix one member's award in one category, with a reason (any amount
up to the member's bill: an override may exceed the cap, that is its point).
That amount is taken off the top of the money before any category is filled
(the category's restricted money first, then unrestricted), the member leaves
the water-filling of that category, and everyone else is re-balanced with what
remains. The override must fit in the money, or :class:`AllocationError`.

Limits
------
Each line says what bound it: ``cap``; ``floor`` (the level fell strictly short
of the floor); ``level`` (λ · w · b rounded down) or ``level+leftover cent``;
``floor scaled down`` (+leftover cent); ``override``; ``not eligible``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import partial
from itertools import compress, count, repeat
from operator import attrgetter, eq, floordiv, gt, itemgetter, methodcaller, mod, mul, neg, not_, truediv
from typing import Any, NamedTuple

from buyersclub.money import format_money, from_cents, round_money
from buyersclub.money import sort_key as money_tie_key

__all__ = [
    "Allocation",
    "AllocationError",
    "AwardLine",
    "CategoryOutcome",
    "CategoryPolicy",
    "Funds",
    "Limit",
    "Member",
    "MemberAward",
    "Override",
    "Policy",
    "allocate_subsidies",
]

Exact = int | Fraction | Decimal
_EXACT_TYPES = frozenset({int, Fraction, Decimal})


class AllocationError(ValueError):
    """The inputs cannot be allocated (bad policy, member, money or override)."""


def _exact(value: Any, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | Fraction | Decimal | str):
        raise AllocationError(
            f"{what} must be an exact number (int, Fraction, Decimal, string), not {value!r}"
        )
    try:
        return Fraction(value)
    except (ValueError, ArithmeticError) as exc:
        raise AllocationError(f"{what} {value!r} is not a number") from exc


def _cents(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AllocationError(f"{what} must be an int number of cents, not {value!r}")
    if value < 0:
        raise AllocationError(f"{what} must not be negative (got {value})")
    return value


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class CategoryPolicy:
    """How far the fund may pay down one category's bills.

    ``max_share``: the largest part of a member's bill the fund pays (``Fraction(3, 4)``,
    ``Decimal("0.75")`` or ``"3/4"``; 1 for all of it). ``cap_cents``: an optional
    absolute cap per member. ``floor_cents``: the guaranteed minimum award (0 = none);
    it never exceeds the member's cap.
    """

    max_share: Exact | str = 1
    cap_cents: int | None = None
    floor_cents: int = 0

    def __post_init__(self) -> None:
        share = _exact(self.max_share, "max_share")
        if not 0 <= share <= 1:
            raise AllocationError(f"max_share must be between 0 and 1 (got {share})")
        object.__setattr__(self, "max_share", share)
        if self.cap_cents is not None:
            _cents(self.cap_cents, "cap_cents")
        _cents(self.floor_cents, "floor_cents")

    def cap_for(self, bill: int) -> int:
        """A member's cap on a bill: the share of it, rounded down to the cent, within the absolute cap."""
        share: Fraction = self.max_share  # type: ignore[assignment]  # normalised in __post_init__
        cap = bill * share.numerator // share.denominator
        return cap if self.cap_cents is None else min(cap, self.cap_cents)


@dataclass(frozen=True)
class Policy:
    """The allocation policy: one :class:`CategoryPolicy` per category, and the priority order."""

    categories: Mapping[str, CategoryPolicy]
    priority: Sequence[str] = ()

    def __post_init__(self) -> None:
        if len(set(self.priority)) != len(self.priority):
            raise AllocationError("a category appears twice in the priority order")
        unknown = [category for category in self.priority if category not in self.categories]
        if unknown:
            names = ", ".join(map(str, unknown))
            raise AllocationError(f"priority names categories without a policy: {names}")

    def order(self) -> list[str]:
        """Categories in the order they are filled: the priority list, then the rest by name."""
        rest = sorted(str(category) for category in self.categories if category not in self.priority)
        return [*self.priority, *rest]


@dataclass(frozen=True)
class Member:
    """One member organisation as the engine sees it.

    ``key`` identifies the member and breaks ties (use the organisation id).
    ``bills`` maps category to cents billed. ``inputs`` is passed through untouched
    into the explanation (the profile figures the weight was computed from).
    """

    key: Hashable
    weight: Exact
    bills: Mapping[str, int]
    eligible: bool = True
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Funds:
    """Money available, in cents: unrestricted, and restricted per category."""

    unrestricted: int
    restricted: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _cents(self.unrestricted, "unrestricted money")
        for category, cents in self.restricted.items():
            _cents(cents, f"money restricted to {category}")


@dataclass(frozen=True)
class Override:
    """An admin's fixed award for one member in one category, with the reason."""

    member: Hashable
    category: str
    cents: int
    reason: str

    def __post_init__(self) -> None:
        _cents(self.cents, "override")
        if not self.reason or not self.reason.strip():
            raise AllocationError("an override needs a reason")


# --------------------------------------------------------------------------- outputs


class Limit(StrEnum):
    """What bound a member's award in a category."""

    LEVEL = "level"
    """λ · weight · bill, rounded down to the cent."""
    LEVEL_LEFTOVER_CENT = "level+leftover cent"
    """λ · weight · bill, rounded down, plus one of the cents left over by rounding."""
    CAP = "cap"
    FLOOR = "floor"
    FLOOR_SCALED = "floor scaled down"
    """Not enough money for every floor: the same fraction of each floor."""
    FLOOR_SCALED_LEFTOVER_CENT = "floor scaled down+leftover cent"
    OVERRIDE = "override"
    NOT_ELIGIBLE = "not eligible"


class AwardLine(NamedTuple):
    """One member's award in one category, and why."""

    category: str
    bill: int
    cap: int
    floor: int
    cents: int
    limit: Limit
    level: Fraction
    """The category's λ."""
    exact_numerator: int
    exact_denominator: int
    reason: str | None = None
    """The admin's reason, for an override."""

    @property
    def exact(self) -> Fraction:
        """The award before rounding to the cent."""
        return Fraction(self.exact_numerator, self.exact_denominator)

    @property
    def share_of_bill(self) -> Fraction:
        """The part of the bill paid by the award (0 for an empty bill)."""
        return Fraction(self.cents, self.bill) if self.bill else Fraction(0)

    @property
    def percent_of_bill(self) -> Decimal:
        """The percentage off the bill, to two places."""
        return round_money(self.share_of_bill * 100)


class MemberAward(NamedTuple):
    """Everything one member gets, with the inputs behind it."""

    key: Hashable
    weight: Exact
    inputs: Mapping[str, Any]
    eligible: bool
    lines: dict[str, AwardLine]

    @property
    def cents(self) -> int:
        return sum(line.cents for line in self.lines.values())

    def explain(self) -> str:
        """A plain-language account of the award, one line per category."""
        inputs = ", ".join(f"{name} {value}" for name, value in self.inputs.items())
        head = f"{self.key}: need weight {self.weight}" + (f" (from {inputs})" if inputs else "")
        if not self.eligible:
            head += "; not eligible for a subsidy"
        rows = [head]
        for line in self.lines.values():
            bill = format_money(from_cents(line.bill))
            award = format_money(from_cents(line.cents))
            row = f"  {line.category}: {award} off a {bill} bill ({line.percent_of_bill}%), "
            if line.limit is Limit.NOT_ELIGIBLE:
                row += "not eligible"
            elif line.limit is Limit.OVERRIDE:
                row += f"override: {line.reason}"
            elif line.limit is Limit.CAP:
                row += f"reached its cap of {format_money(from_cents(line.cap))}"
            elif line.limit is Limit.FLOOR:
                row += f"raised to the floor of {format_money(from_cents(line.floor))}"
            elif line.limit in (Limit.FLOOR_SCALED, Limit.FLOOR_SCALED_LEFTOVER_CENT):
                row += (
                    f"not enough money for every floor: its floor of {format_money(from_cents(line.floor))}"
                    " scaled down like everyone's"
                )
                if line.limit is Limit.FLOOR_SCALED_LEFTOVER_CENT:
                    row += ", plus a leftover cent (largest remainder)"
            else:
                row += (
                    f"level λ = {line.level}: λ · {self.weight} · {bill} ≈ "
                    f"{_approximately(line.exact / 100)}, rounded down to the cent"
                )
                if line.limit is Limit.LEVEL_LEFTOVER_CENT:
                    row += ", plus a leftover cent (largest remainder)"
            rows.append(row)
        return "\n".join(rows)


@dataclass(frozen=True)
class CategoryOutcome:
    """What one category got from the fund."""

    category: str
    level: Fraction
    """λ: awards at the level are λ · weight · bill."""
    available: int
    """Money this category could draw on when its turn came (overrides included)."""
    paid: int
    from_restricted: int
    from_unrestricted: int
    overridden: int
    """Part of ``paid`` fixed by overrides."""
    floors_scaled: bool
    """True when the money could not cover every floor."""


@dataclass(frozen=True)
class Allocation:
    """The result: awards per member, per category, and what stays in the fund.

    ``members`` lists the members in the order they were given (the awards themselves
    do not depend on that order).
    """

    members: dict[Hashable, MemberAward]
    categories: dict[str, CategoryOutcome]
    paid: int
    unrestricted_left: int
    restricted_left: dict[str, int]

    def award(self, key: Hashable, category: str) -> int:
        line = self.members[key].lines.get(category)
        return 0 if line is None else line.cents

    def awards(self) -> dict[Hashable, dict[str, int]]:
        """Cents per member per category."""
        return {
            key: {category: line.cents for category, line in member.lines.items()}
            for key, member in self.members.items()
        }


def _approximately(value: Fraction) -> Decimal:
    """A rational amount to four places, for reading (never for money)."""
    return Decimal(value.numerator * 10_000 // value.denominator) / 10_000


# --------------------------------------------------------------------------- the engine


def allocate_subsidies(
    members: Iterable[Member],
    funds: Funds,
    policy: Policy,
    overrides: Iterable[Override] = (),
) -> Allocation:
    """Share the fund among eligible members by weighted water-filling.

    Deterministic and independent of the order of ``members``.
    Raises :class:`AllocationError` for bad input (duplicate keys, a weight that is
    not positive, a bill in a category without a policy, an override the money
    cannot cover...).
    """
    return _allocate(members, funds, policy, overrides)


def _allocate(
    members: Iterable[Member], funds: Funds, policy: Policy, overrides: Iterable[Override]
) -> Allocation:
    # No sorting needed: nothing below depends on the order except the tie-break of the
    # leftover cents, which goes by key.
    ordered = list(members)
    keys = list(map(attrgetter("key"), ordered))
    index_of = dict(zip(keys, count()))
    if len(index_of) != len(ordered):
        raise AllocationError("a member is listed twice")
    eligible = list(map(attrgetter("eligible"), ordered))
    bill_books = list(map(attrgetter("bills"), ordered))
    weights, scaled_weights, scale = _read_weights(ordered, eligible)
    uncovered = set().union(*bill_books) - set(policy.categories)
    if uncovered:
        names = ", ".join(sorted(map(str, uncovered)))
        raise AllocationError(f"bills for {names}, which the policy does not cover")
    fixed = _read_overrides(overrides, ordered, index_of)

    unrestricted = funds.unrestricted
    restricted = {str(category): cents for category, cents in funds.restricted.items()}
    order = policy.order()

    # Overrides come off the top: their own restricted money first, then unrestricted money.
    drawn: dict[str, tuple[int, int]] = {}
    for category in order:
        total = sum(override.cents for (_, cat), override in fixed.items() if cat == category)
        from_restricted = min(total, restricted.get(category, 0))
        from_unrestricted = total - from_restricted
        if from_unrestricted > unrestricted:
            raise AllocationError(f"the overrides in {category} are more than the money available for it")
        unrestricted -= from_unrestricted
        restricted[category] = restricted.get(category, 0) - from_restricted
        drawn[category] = (from_restricted, from_unrestricted)

    lines: list[dict[str, AwardLine]] = [{} for _ in ordered]
    outcomes: dict[str, CategoryOutcome] = {}
    for category in order:
        category_policy = policy.categories[category]
        share: Fraction = category_policy.max_share  # type: ignore[assignment]  # normalised
        share_numerator, share_denominator = share.numerator, share.denominator
        absolute_cap = category_policy.cap_cents
        policy_floor = category_policy.floor_cents
        # Column-wise (list comprehensions and map() run at C speed): a club may have thousands.
        all_bills = list(map(methodcaller("get", category, 0), bill_books))
        if not set(map(type, all_bills)) <= {int} or min(all_bills, default=0) < 0:
            for index, bill in enumerate(all_bills):
                _cents(bill, f"bill of {keys[index]!r} for {category}")
        billed = list(compress(count(), all_bills))
        billed_bills = list(compress(all_bills, all_bills))
        # Caps and floors for every billed member at once (also those set apart below).
        if share_numerator == share_denominator:  # the whole bill: no arithmetic needed
            billed_caps = billed_bills
        else:
            billed_caps = list(
                map(floordiv, map(mul, billed_bills, repeat(share_numerator)), repeat(share_denominator))
            )
        if absolute_cap is not None:
            billed_caps = [absolute_cap if absolute_cap < cap else cap for cap in billed_caps]
        billed_floors = [policy_floor if policy_floor < cap else cap for cap in billed_caps]
        # Who is water-filled: eligible and not overridden in this category.
        filled = list(map(eligible.__getitem__, billed))
        fixed_here = {index for index, cat in fixed if cat == category}
        if fixed_here:
            filled = [take and index not in fixed_here for index, take in zip(billed, filled, strict=True)]
        if all(filled):
            indices, bills, caps, floors = billed, billed_bills, billed_caps, billed_floors
        else:
            columns = (billed, billed_bills, billed_caps, billed_floors)
            indices, bills, caps, floors = (list(compress(column, filled)) for column in columns)
            apart = list(map(not_, filled))
            set_apart = list(compress(billed, apart))
            apart_bills, apart_caps, apart_floors = (
                list(compress(column, apart)) for column in (billed_bills, billed_caps, billed_floors)
            )
            size = len(set_apart)
            apart_lines = map(
                _new_award_line,
                zip(
                    repeat(category, size), apart_bills, apart_caps, apart_floors, repeat(0, size),
                    repeat(Limit.NOT_ELIGIBLE, size), repeat(_NO_LEVEL, size), repeat(0, size),
                    repeat(1, size), repeat(None, size),
                    strict=True,
                ),
            )  # fmt: skip
            _consume(map(dict.__setitem__, map(lines.__getitem__, set_apart), repeat(category), apart_lines))
            for index in fixed_here:
                line = lines[index].get(category)
                if line is None:  # an override of an empty bill: no line, as for every empty bill
                    continue
                override = fixed[(index, category)]
                lines[index][category] = line._replace(
                    cents=override.cents, limit=Limit.OVERRIDE, exact_numerator=override.cents,
                    reason=override.reason,
                )  # fmt: skip
        products = list(map(mul, map(scaled_weights.__getitem__, indices), bills))

        own = restricted.get(category, 0)
        available = own + unrestricted
        fill = _fill(products, caps, floors, available, list(map(keys.__getitem__, indices)))
        level = fill.level * scale
        size = len(indices)
        # Built column-wise, at C speed: these are the bulk of the work for a large club.
        new_lines = map(
            _new_award_line,
            zip(
                repeat(category, size), bills, caps, floors, fill.cents, fill.limits,
                repeat(level, size), fill.numerators, repeat(fill.denominator, size), repeat(None, size),
                strict=True,
            ),
        )  # fmt: skip
        # lines[index][category] = line for each, without a Python-level loop.
        _consume(map(dict.__setitem__, map(lines.__getitem__, indices), repeat(category), new_lines))
        from_restricted = min(own, fill.paid)
        from_unrestricted = fill.paid - from_restricted
        restricted[category] = own - from_restricted
        unrestricted -= from_unrestricted
        over_restricted, over_unrestricted = drawn[category]
        overridden = over_restricted + over_unrestricted
        outcomes[category] = CategoryOutcome(
            category=category,
            level=level,
            available=available + overridden,
            paid=fill.paid + overridden,
            from_restricted=from_restricted + over_restricted,
            from_unrestricted=from_unrestricted + over_unrestricted,
            overridden=overridden,
            floors_scaled=fill.floors_scaled,
        )

    inputs = list(map(attrgetter("inputs"), ordered))
    members_awards = map(_new_member_award, zip(keys, weights, inputs, eligible, lines, strict=True))
    awards = dict(zip(keys, members_awards, strict=True))
    return Allocation(
        members=awards,
        categories=outcomes,
        paid=sum(outcome.paid for outcome in outcomes.values()),
        unrestricted_left=unrestricted,
        restricted_left=restricted,
    )


_NO_LEVEL = Fraction(0)
_new_award_line = partial(tuple.__new__, AwardLine)
_new_member_award = partial(tuple.__new__, MemberAward)
_consume = partial(deque, maxlen=0)
"""Run an iterator to its end, keeping nothing (the itertools "consume" recipe)."""


def _read_weights(ordered: list[Member], eligible: list[bool]) -> tuple[list[Exact], list[int], int]:
    """Check the weights: as given (strings read as fractions), as integers over a common scale, the scale.

    The scale is the least common multiple of the eligible members' weight denominators,
    so that weight · scale · bill is an integer for everyone.
    """
    weights: list[Exact] = list(map(attrgetter("weight"), ordered))
    if not set(map(type, weights)) <= _EXACT_TYPES:
        for index, weight in enumerate(weights):
            if type(weight) not in _EXACT_TYPES:
                weights[index] = _exact(weight, f"weight of {ordered[index].key!r}")
    if set(map(type, weights)) <= {int}:
        numerators: list[int] = weights  # type: ignore[assignment]
        denominators = [1] * len(weights)
    else:
        ratios = [weight.as_integer_ratio() for weight in weights]
        numerators, denominators = list(map(itemgetter(0), ratios)), list(map(itemgetter(1), ratios))
    if min(compress(numerators, eligible), default=1) <= 0:
        for member, numerator in zip(ordered, numerators, strict=True):
            if member.eligible and numerator <= 0:
                raise AllocationError(f"weight of {member.key!r} must be positive (got {member.weight})")
    scale = math.lcm(*set(compress(denominators, eligible)))
    if scale == 1:
        return weights, numerators, scale
    return weights, list(map(mul, numerators, map(floordiv, repeat(scale), denominators))), scale


def _read_overrides(
    overrides: Iterable[Override], ordered: list[Member], index_of: dict[Hashable, int]
) -> dict[tuple[int, str], Override]:
    fixed: dict[tuple[int, str], Override] = {}
    for override in overrides:
        index = index_of.get(override.member)
        if index is None:
            raise AllocationError(f"override for {override.member!r}, who is not in this allocation")
        member = ordered[index]
        if not member.eligible:
            raise AllocationError(f"override for {override.member!r}, who is not eligible")
        if (index, override.category) in fixed:
            raise AllocationError(f"two overrides for {override.member!r} in {override.category}")
        if override.cents > member.bills.get(override.category, 0):
            raise AllocationError(
                f"override for {override.member!r} is more than its {override.category} bill"
            )
        fixed[(index, override.category)] = override
    return fixed


class _Fill(NamedTuple):
    paid: int
    level: Fraction  # in units of the scaled weight: multiply by the weight scale for λ
    floors_scaled: bool
    cents: list[int]
    limits: list[Limit]
    numerators: list[int]
    denominator: int


def _fill(products: list[int], caps: list[int], floors: list[int], money: int, keys: list[Hashable]) -> _Fill:
    """Water-fill one category: award_i = clamp(μ · products_i, floors_i, caps_i), Σ award = paid.

    ``products`` are the (integer-scaled) weight · bill, all positive; floors ≤ caps.
    """
    total_caps = sum(caps)
    total_floors = sum(floors)
    size = len(products)

    if money >= total_caps:
        # Everyone reaches the cap: λ is the level at which the last one gets there.
        best_cap, best_product = 0, 1
        for cap, product in zip(caps, products, strict=True):
            if cap * best_product > best_cap * product:
                best_cap, best_product = cap, product
        return _Fill(
            total_caps,
            Fraction(best_cap, best_product),
            False,
            list(caps),
            [Limit.CAP] * size,
            list(caps),
            1,
        )

    if money < total_floors:
        # Not enough for every floor: each gets the same fraction of its floor.
        numerators = [money * floor for floor in floors]
        cents, topped = _round(numerators, total_floors, money, keys)
        limits = [Limit.FLOOR_SCALED] * size
        for position in topped:
            limits[position] = Limit.FLOOR_SCALED_LEFTOVER_CENT
        return _Fill(money, Fraction(0), True, cents, limits, numerators, total_floors)

    segment = _level_segment(products, caps, floors, money, exact_keys=False)
    classified = _classify(products, caps, floors, money, segment)
    if classified is None:  # breakpoints too close for floats: search again with exact keys
        segment = _level_segment(products, caps, floors, money, exact_keys=True)
        classified = _classify(products, caps, floors, money, segment)
        if classified is None:  # pragma: no cover - the exact search cannot miss
            raise AssertionError("water-filling found no level")
    numerators, limits = classified
    surplus, denominator = segment
    cents, topped = _round(numerators, denominator, money, keys)
    for position in topped:
        limits[position] = Limit.LEVEL_LEFTOVER_CENT
    return _Fill(money, Fraction(surplus, denominator), False, cents, limits, numerators, denominator)


def _level_segment(
    products: list[int], caps: list[int], floors: list[int], money: int, *, exact_keys: bool
) -> tuple[int, int]:
    """The level μ = N / D (as the pair N, D) at which Σ clamp(μ · p, floor, cap) = money.

    Requires Σ floors ≤ money < Σ caps. Each member has two breakpoints: μ = floor/p where
    it leaves its floor, μ = cap/p where it reaches its cap. Sorted, they cut μ into segments
    on which the total is F + U + μ · P (floors still held, caps reached, products at the
    level); prefix sums give those per segment, and a binary search finds the segment.
    """
    size = len(products)
    numerators = floors + caps
    denominators = products + products
    keys: list[Any] = list(map(Fraction if exact_keys else truediv, numerators, denominators))
    order = list(range(2 * size))
    order.sort(key=keys.__getitem__)
    # What passing each breakpoint changes: the amount held at a floor or reached a cap ("fixed"),
    # and the sum of products still at the level.
    fixed_change = list(map(neg, floors)) + caps
    level_change = products + list(map(neg, products))
    # Prefix sums only where the binary search looks: going from one probe to the next adds up
    # the changes in between (about 4 · size additions in all, summed at C speed) instead of
    # building whole lists of prefix sums.
    reached, fixed, at_level = 0, sum(floors), 0

    def totals_at(state: int) -> tuple[int, int]:
        nonlocal reached, fixed, at_level
        if state > reached:
            passed = order[reached:state]
            fixed += sum(map(fixed_change.__getitem__, passed))
            at_level += sum(map(level_change.__getitem__, passed))
        elif state < reached:
            unpassed = order[state:reached]
            fixed -= sum(map(fixed_change.__getitem__, unpassed))
            at_level -= sum(map(level_change.__getitem__, unpassed))
        reached = state
        return fixed, at_level

    # Smallest k such that the total at breakpoint k (after passing it) exceeds the money.
    low, high = 0, 2 * size - 1
    while low < high:
        middle = (low + high) // 2
        event = order[middle]
        num, den = numerators[event], denominators[event]
        fixed_then, at_level_then = totals_at(middle + 1)
        if (fixed_then - money) * den + num * at_level_then > 0:
            high = middle
        else:
            low = middle + 1
    # The level lies on the segment just before breakpoint `low`.
    fixed_then, at_level_then = totals_at(low)
    return money - fixed_then, at_level_then


def _classify(
    products: list[int], caps: list[int], floors: list[int], money: int, segment: tuple[int, int]
) -> tuple[list[int], list[Limit]] | None:
    """Exact award numerators (over the segment's denominator) and limits; None if the level is wrong."""
    surplus, denominator = segment
    if denominator <= 0 or surplus < 0:
        return None
    # Column-wise with C-level map(): award = clamp(surplus · product, floor · D, cap · D) / D.
    at_level = list(map(mul, products, repeat(surplus)))
    at_cap = list(map(mul, caps, repeat(denominator)))
    at_floor = list(map(mul, floors, repeat(denominator)))
    numerators = [
        high if value >= high else low if value < low else value
        for value, high, low in zip(at_level, at_cap, at_floor, strict=True)
    ]
    if sum(numerators) != money * denominator:
        return None
    # Cap when the level reaches it; floor when the level falls strictly short of it; else level.
    cap, floor, level = Limit.CAP, Limit.FLOOR, Limit.LEVEL
    limits = [
        cap if value >= high else floor if value < low else level
        for value, high, low in zip(at_level, at_cap, at_floor, strict=True)
    ]
    return numerators, limits


def _round(
    numerators: list[int], denominator: int, total: int, keys: list[Hashable]
) -> tuple[list[int], list[int]]:
    """Round numerators/denominator (summing exactly to ``total``) to whole cents.

    Largest remainder, exactly as :func:`buyersclub.money.allocate_cents`: round every
    part down, then one leftover cent each to the largest remainders, ties broken by
    the member key in that function's order. Returns the cents and the positions that
    received a leftover cent.
    """
    cents = list(map(floordiv, numerators, repeat(denominator)))
    left = total - sum(cents)
    if not left:
        return cents, []
    remainders = list(map(mod, numerators, repeat(denominator)))
    # The smallest remainder that still earns a cent; everyone above it gets one, and those
    # exactly at it are put in key order.
    cutoff = sorted(remainders, reverse=True)[left - 1]
    topped = list(compress(count(), map(gt, remainders, repeat(cutoff))))
    tied = list(compress(count(), map(eq, remainders, repeat(cutoff))))
    if len(topped) + len(tied) > left:
        tied.sort(key=lambda position: money_tie_key(keys[position]))
    topped += tied[: left - len(topped)]
    for position in topped:
        cents[position] += 1
    return cents, topped
