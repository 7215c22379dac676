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
each member leaves its floor and where it reaches its cap. At any λ, the
members at their cap and those still at their floor fix an amount F, and the
others' weights · bills add up to the slope P: the line F + μ · P meets the
money at μ = (money - F) / P, a fraction of two integers. Starting from a
guess (a sample of about 256 members water-filled in floats), that step is
taken until every member stands at μ where it stood before (Newton's method:
one or two steps for a large club, each a few passes over the members, no
sorting). Members are placed by float keys cap/p, floor/p and μ, correctly
rounded, so they compare as the exact values do except where two round to the
same float: a key equal to μ as a float is checked with integers. Should the
steps not settle, the breakpoints are sorted and a binary search with exact
integer comparisons finds the segment; in the (pathological) case of
breakpoints closer than a float can tell apart, that search is repeated with
exact :class:`~fractions.Fraction` keys. Whichever way it is found, λ and every
award are exact fractions of integers. Only members paid at the level are
divided into cents and remainders.

The result is kept column by column, per category: a member's
:class:`MemberAward` and its :class:`AwardLine` (with its exact award before
rounding, for the explanation) are built when they are read, and not kept.

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
from collections.abc import Callable, Hashable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import partial
from itertools import compress, count, repeat
from operator import (
    add,
    attrgetter,
    eq,
    floordiv,
    ge,
    gt,
    itemgetter,
    le,
    methodcaller,
    mod,
    mul,
    ne,
    neg,
    not_,
    truediv,
    xor,
)
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
_BILL_TYPES = frozenset({int, type(None)})  # None: no bill in that category


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
    do not depend on that order). It is a read-only mapping whose entries are built
    when they are read: the awards are kept column by column, per category.
    """

    members: Mapping[Hashable, MemberAward]
    categories: dict[str, CategoryOutcome]
    paid: int
    unrestricted_left: int
    restricted_left: dict[str, int]

    def award(self, key: Hashable, category: str) -> int:
        if isinstance(self.members, _MemberAwards):
            return self.members.cents(key, category)
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


# --------------------------------------------------------------------------- the result, column by column


class _Lines:
    """One category's award lines for some members, column by column.

    Row ``r`` is the member at index ``members[r]`` in the input. Awards are
    ``cents``; the exact award before rounding is numerator / ``denominator``, the
    numerator following from the limit: ``cap · D``, ``floor · D``, ``surplus ·
    product`` at the level, ``surplus · floor`` when the floors are scaled down,
    the cents themselves for an override or a member set apart (D = 1).
    """

    __slots__ = (
        "_rows", "bills", "caps", "category", "cents", "denominator", "floors", "level", "limits", "members",
        "products", "reasons", "surplus",
    )  # fmt: skip

    def __init__(
        self,
        category: str,
        members: list[int],
        bills: list[int],
        caps: list[int],
        floors: list[int],
        cents: list[int],
        limits: list[Limit],
        *,
        level: Fraction = Fraction(0),
        products: list[int] | None = None,
        surplus: int = 0,
        denominator: int = 1,
        reasons: dict[int, str] | None = None,
    ) -> None:
        self.category = category
        self.members = members
        self.bills, self.caps, self.floors, self.cents, self.limits = bills, caps, floors, cents, limits
        self.level = level
        self.products = products
        self.surplus, self.denominator = surplus, denominator
        self.reasons = reasons
        self._rows: list[int | None] | None = None

    def row(self, member: int, size: int) -> int | None:
        """The row of the member at this input index (of ``size``), or None when it has no line here."""
        rows = self._rows
        if rows is None:
            rows = self._rows = [None] * size
            _consume(map(rows.__setitem__, self.members, count()))
        return rows[member]

    def lines(self, rows: slice = slice(None)) -> Iterator[AwardLine]:
        """The lines of these rows (all by default), in row order, built column by column."""
        size = len(self.members[rows])
        reasons = (
            map(self.reasons.get, range(len(self.members))[rows]) if self.reasons else repeat(None, size)
        )
        columns = (self.bills[rows], self.caps[rows], self.floors[rows], self.cents[rows], self.limits[rows])
        return map(_new_award_line, zip(
            repeat(self.category, size), *columns, repeat(self.level, size), self._numerators(rows),
            repeat(self.denominator, size), reasons, strict=True,
        ))  # fmt: skip

    def _numerators(self, rows: slice) -> list[int]:
        """The rows' exact awards over ``denominator`` (see the class)."""
        if self.products is None:  # set apart: exactly the cents
            return self.cents[rows]
        surplus, denominator = self.surplus, self.denominator
        level, leftover, cap, floor = Limit.LEVEL, Limit.LEVEL_LEFTOVER_CENT, Limit.CAP, Limit.FLOOR
        columns = (self.limits[rows], self.caps[rows], self.floors[rows], self.products[rows])
        return [
            surplus * product if limit is level or limit is leftover
            else high * denominator if limit is cap
            else low * denominator if limit is floor
            else surplus * low  # the floors scaled down
            for limit, high, low, product in zip(*columns, strict=True)
        ]  # fmt: skip


class _MemberAwards(Mapping[Hashable, MemberAward]):
    """``Allocation.members``: each member's :class:`MemberAward`, built from the columns when read.

    Nothing is kept: reading every member once (as a run does to store its awards) builds each
    award once, and they go as soon as the reader is done with them.
    """

    def __init__(
        self,
        members: list[Member],
        weights: list[Exact],
        index_of: dict[Hashable, int],
        lines: list[_Lines],
    ) -> None:
        self._members = members
        self._weights = weights
        self._index_of = index_of
        self._lines = lines  # in the order the categories were filled

    def __getitem__(self, key: Hashable) -> MemberAward:
        index = self._index_of[key]
        size = len(self._members)
        lines = {}
        for column in self._lines:
            row = column.row(index, size)
            if row is not None:
                lines[column.category] = next(column.lines(slice(row, row + 1)))
        member = self._members[index]
        return _new_member_award((member.key, self._weights[index], member.inputs, member.eligible, lines))

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._index_of)

    def __len__(self) -> int:
        return len(self._index_of)

    def __contains__(self, key: object) -> bool:
        return key in self._index_of

    def items(self) -> ItemsView[Hashable, MemberAward]:
        return _ItemsView(self)

    def values(self) -> ValuesView[MemberAward]:
        return _ValuesView(self)

    def cents(self, key: Hashable, category: str) -> int:
        """One member's award in one category (0 without a line), without building the rest."""
        index = self._index_of[key]
        for column in self._lines:
            if column.category == category:
                row = column.row(index, len(self._members))
                if row is not None:
                    return column.cents[row]
        return 0

    def _stream(self) -> Iterator[tuple[Hashable, MemberAward]]:
        """Every member's award in input order, each category's lines built column by column.

        Each column lists its members in input order, so one pass walks them all together.
        """
        cursors = []  # per column: [its next member's index, its members, its lines, its category]
        for column in self._lines:
            members = iter(column.members)
            cursors.append([next(members, -1), members, column.lines(), column.category])
        weights = self._weights
        for index, member in enumerate(self._members):
            lines = {}
            for cursor in cursors:
                if cursor[0] == index:
                    lines[cursor[3]] = next(cursor[2])
                    cursor[0] = next(cursor[1], -1)
            yield (
                member.key,
                _new_member_award((member.key, weights[index], member.inputs, member.eligible, lines)),
            )

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{key!r}: {award!r}' for key, award in self.items())}}}"


class _ItemsView(ItemsView[Hashable, MemberAward]):
    _mapping: _MemberAwards

    def __iter__(self) -> Iterator[tuple[Hashable, MemberAward]]:
        return self._mapping._stream()


class _ValuesView(ValuesView[MemberAward]):
    _mapping: _MemberAwards

    def __iter__(self) -> Iterator[MemberAward]:
        return map(itemgetter(1), self._mapping._stream())


_new_award_line = partial(tuple.__new__, AwardLine)
_new_member_award = partial(tuple.__new__, MemberAward)


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

    # Column-wise from here on (map(), compress() and comprehensions run at C speed): a club may
    # have thousands of members. Eligible members are water-filled, the others set apart.
    if all(eligible):
        eligible_members = None
        set_apart, set_apart_books = [], []
    else:
        eligible_members = list(compress(count(), eligible))
        set_apart = list(compress(count(), map(not_, eligible)))
        set_apart_books = list(map(bill_books.__getitem__, set_apart))
    eligible_books = bill_books if eligible_members is None else list(compress(bill_books, eligible))
    bills_in = _bill_reader(bill_books)
    columns: list[_Lines] = []
    outcomes: dict[str, CategoryOutcome] = {}
    for category in order:
        category_policy = policy.categories[category]
        # The water-filled: eligible members with a bill (``billed``: positions among the eligible).
        billed, bills = _bills_in(category, eligible_books, eligible_members, keys, bills_in)
        everyone = len(billed) == len(eligible_books)  # every eligible member has a bill here
        if eligible_members is None or everyone:
            indices = billed if eligible_members is None else eligible_members
        else:
            indices = list(map(eligible_members.__getitem__, billed))
        caps, floors = _caps_and_floors(bills, category_policy)
        weights_here = scaled_weights if everyone else map(scaled_weights.__getitem__, billed)
        products = list(map(mul, weights_here, bills))
        # Set apart: members not eligible, and those whose award here an admin fixed.
        apart_billed, apart_bills = _bills_in(category, set_apart_books, set_apart, keys, bills_in)
        apart = list(map(set_apart.__getitem__, apart_billed))
        apart_caps, apart_floors = _caps_and_floors(apart_bills, category_policy)
        fixed_here = {index for index, cat in fixed if cat == category}
        if fixed_here:
            keep = [index not in fixed_here for index in indices]
            dropped = list(map(not_, keep))
            apart, apart_bills, apart_caps, apart_floors = (
                [*apart_column, *compress(column, dropped)]
                for apart_column, column in zip((apart, apart_bills, apart_caps, apart_floors),
                                                (indices, bills, caps, floors), strict=True)
            )  # fmt: skip
            indices, bills, caps, floors, products = (
                list(compress(column, keep)) for column in (indices, bills, caps, floors, products)
            )
        if apart:
            columns.append(_set_apart(category, apart, apart_bills, apart_caps, apart_floors, fixed=fixed))

        own = restricted.get(category, 0)
        available = own + unrestricted
        fill = _fill(products, caps, floors, available, indices, keys)
        level = fill.level * scale
        columns.append(
            _Lines(category, indices, bills, caps, floors, fill.cents, fill.limits, level=level,
                   products=products, surplus=fill.surplus, denominator=fill.denominator)
        )  # fmt: skip
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

    return Allocation(
        members=_MemberAwards(ordered, weights, index_of, columns),
        categories=outcomes,
        paid=sum(outcome.paid for outcome in outcomes.values()),
        unrestricted_left=unrestricted,
        restricted_left=restricted,
    )


_BillReader = Callable[[list[Mapping[str, int]], str], list[int | None]]


def _bill_reader(bill_books: list[Mapping[str, int]]) -> _BillReader:
    """A function giving each bill book's bill in a category (None where there is none)."""
    if set(map(type, bill_books)) <= {dict}:
        # dict.get called directly is several times cheaper than a method looked up on each book.
        return lambda books, category: list(map(dict.get, books, repeat(category)))
    return lambda books, category: list(map(methodcaller("get", category), books))


def _bills_in(
    category: str,
    books: list[Mapping[str, int]],
    members: list[int] | None,
    keys: list[Hashable],
    read: _BillReader,
) -> tuple[list[int], list[int]]:
    """The positions in ``books`` with a bill in the category (no bill and an empty one alike have
    no line), and those bills; ``members`` maps positions to member indices (None: the same).
    """
    given = read(books, category)
    if not set(map(type, given)) <= _BILL_TYPES or min(filter(None, given), default=0) < 0:
        for position, bill in enumerate(given):
            if bill is not None:
                index = position if members is None else members[position]
                _cents(bill, f"bill of {keys[index]!r} for {category}")
    return list(compress(count(), given)), list(compress(given, given))


def _caps_and_floors(bills: list[int], category_policy: CategoryPolicy) -> tuple[list[int], list[int]]:
    """Each bill's cap (its share, rounded down, within the absolute cap) and floor (never above the cap)."""
    share: Fraction = category_policy.max_share  # type: ignore[assignment]  # normalised
    if share == 1:  # the whole bill: no arithmetic needed
        caps = bills
    elif share.numerator == 1:
        caps = list(map(floordiv, bills, repeat(share.denominator)))
    else:
        caps = list(map(floordiv, map(mul, bills, repeat(share.numerator)), repeat(share.denominator)))
    absolute_cap = category_policy.cap_cents
    if absolute_cap is not None:
        caps = [absolute_cap if absolute_cap < cap else cap for cap in caps]
    policy_floor = category_policy.floor_cents
    if not policy_floor:
        return caps, [0] * len(caps)
    return caps, [policy_floor if policy_floor < cap else cap for cap in caps]


def _set_apart(
    category: str,
    members: list[int],
    bills: list[int],
    caps: list[int],
    floors: list[int],
    *,
    fixed: dict[tuple[int, str], Override],
) -> _Lines:
    """The lines of billed members left out of the water-filling: not eligible, or overridden."""
    if fixed:  # overridden members come after the others: put every row in input order
        rows = sorted(range(len(members)), key=members.__getitem__)
        members, bills, caps, floors = (
            [column[row] for row in rows] for column in (members, bills, caps, floors)
        )
    cents = [0] * len(members)
    limits = [Limit.NOT_ELIGIBLE] * len(members)
    reasons = {}
    for row, index in enumerate(members):
        override = fixed.get((index, category))
        if override is not None:
            cents[row], limits[row], reasons[row] = override.cents, Limit.OVERRIDE, override.reason
    return _Lines(category, members, bills, caps, floors, cents, limits, reasons=reasons)


def _read_weights(ordered: list[Member], eligible: list[bool]) -> tuple[list[Exact], list[int], int]:
    """Check the weights; return them as given (strings read as fractions), each eligible member's
    weight as an integer over a common scale (in the order of the eligible), and the scale.

    The scale is the least common multiple of the eligible members' weight denominators,
    so that weight · scale · bill is an integer for everyone.
    """
    weights: list[Exact] = list(map(attrgetter("weight"), ordered))
    types = set(map(type, weights))
    if not types <= _EXACT_TYPES:
        for index, weight in enumerate(weights):
            if type(weight) not in _EXACT_TYPES:
                weights[index] = _exact(weight, f"weight of {ordered[index].key!r}")
        types = set(map(type, weights))
    counted = weights if all(eligible) else list(compress(weights, eligible))
    if types <= {int}:
        numerators: list[int] = counted  # type: ignore[assignment]
        denominators: Sequence[int] = [1]
    elif Decimal not in types:  # ints and fractions: no pair to build per member
        numerators = list(map(attrgetter("numerator"), counted))
        denominators = list(map(attrgetter("denominator"), counted))
    else:
        ratios = [weight.as_integer_ratio() for weight in counted]
        numerators, denominators = list(map(itemgetter(0), ratios)), list(map(itemgetter(1), ratios))
    if min(numerators, default=1) <= 0:
        for member, weight in zip(ordered, weights, strict=True):
            if member.eligible and weight <= 0:
                raise AllocationError(f"weight of {member.key!r} must be positive (got {member.weight})")
    scale = math.lcm(*set(denominators))
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
    surplus: int  # with the denominator, gives the exact awards (see _Lines)
    denominator: int


def _fill(
    products: list[int],
    caps: list[int],
    floors: list[int],
    money: int,
    members: list[int],
    keys: list[Hashable],
) -> _Fill:
    """Water-fill one category: award_i = clamp(μ · products_i, floors_i, caps_i), Σ award = paid.

    ``products`` are the (integer-scaled) weight · bill, all positive; floors ≤ caps.
    ``members`` are the rows' indices into ``keys``, for the tie-break of leftover cents.
    """
    total_caps = sum(caps)
    total_floors = sum(floors)
    size = len(products)

    def tie_key(row: int) -> Any:
        return money_tie_key(keys[members[row]])

    if money >= total_caps:
        # Everyone reaches the cap: λ is the level at which the last one gets there.
        best_cap, best_product = 0, 1
        for cap, product in zip(caps, products, strict=True):
            if cap * best_product > best_cap * product:
                best_cap, best_product = cap, product
        return _Fill(total_caps, Fraction(best_cap, best_product), False, caps, [Limit.CAP] * size, 0, 1)

    if money < total_floors:
        # Not enough for every floor: each gets the same fraction of its floor.
        numerators = list(map(mul, floors, repeat(money)))
        cents = list(map(floordiv, numerators, repeat(total_floors)))
        limits = [Limit.FLOOR_SCALED] * size
        left = money - sum(cents)
        if left:
            remainders = list(map(mod, numerators, repeat(total_floors)))
            topped = _leftover_cents(remainders, left, tie_key)
            cents = list(map(add, cents, topped))
            _consume(
                map(limits.__setitem__, compress(count(), topped), repeat(Limit.FLOOR_SCALED_LEFTOVER_CENT))
            )
        return _Fill(money, Fraction(0), True, cents, limits, money, total_floors)

    found = _level_by_newton(products, caps, floors, money)
    if found is None:  # no settled guess: search the sorted breakpoints, exactly if floats cannot tell
        found = _level_segment(products, caps, floors, money, exact_keys=False)
        if found is None:
            found = _level_segment(products, caps, floors, money, exact_keys=True)
            if found is None:  # pragma: no cover - the exact search cannot miss
                raise AssertionError("water-filling found no level")
    surplus, denominator, capped, off_floor = found
    # A capped member is off its floor too: 0 at the floor, 1 at the level, 2 at the cap.
    limits = list(map(_PLACES.__getitem__, map(add, capped, off_floor)))
    # Floors and caps are whole cents; only the members at the level (off the floor, not capped:
    # a capped member is off its floor) are divided.
    cents = list(floors)
    capped_rows = list(compress(count(), capped))
    _consume(map(cents.__setitem__, capped_rows, map(caps.__getitem__, capped_rows)))
    rows = list(compress(count(), map(xor, off_floor, capped)))
    numerators = list(map(mul, map(products.__getitem__, rows), repeat(surplus)))
    at_level = list(map(floordiv, numerators, repeat(denominator)))
    left = surplus - sum(at_level)  # the exact awards at the level add up to the surplus
    if left:
        remainders = list(map(mod, numerators, repeat(denominator)))
        topped = _leftover_cents(remainders, left, lambda position: tie_key(rows[position]))
        at_level = list(map(add, at_level, topped))
        _consume(map(limits.__setitem__, compress(rows, topped), repeat(Limit.LEVEL_LEFTOVER_CENT)))
    _consume(map(cents.__setitem__, rows, at_level))
    return _Fill(money, Fraction(surplus, denominator), False, cents, limits, surplus, denominator)


_PLACES = (Limit.FLOOR, Limit.LEVEL, Limit.CAP)

_Level = tuple[int, int, list[bool], list[bool]]
"""The level μ = N / D as (N, D), and for each member whether it is at its cap and whether off its floor."""


def _level_by_newton(products: list[int], caps: list[int], floors: list[int], money: int) -> _Level | None:
    """The level at which Σ clamp(μ · p, floor, cap) = money, by Newton's method from a guess.

    Requires Σ floors ≤ money < Σ caps. The total is piecewise linear in λ: at a given λ the
    members at their cap (cap/p ≤ λ) and those still at their floor (floor/p > λ) fix an amount
    F, and the others' products add up to the slope P. The line F + μ · P meets the money at
    μ = (money - F) / P, an exact fraction; when every member stands at μ where it stood at λ,
    μ is the level. From a guess made on a sample (see :func:`_sampled_level`) this takes one or
    two steps for a large club: each is a few passes over the members, with no sorting. When
    that line gives no level (nobody at the level, or more held and capped than the money),
    the step halves the interval known to hold the level instead.

    Members are placed with float keys (cap/p, floor/p and μ, each correctly rounded, so they
    compare as the exact values do unless two round to the same float); a key that rounds to μ
    itself is checked exactly. None when the steps do not settle or floats cannot tell:
    then the breakpoints are sorted and searched (:func:`_level_segment`).
    """
    try:
        cap_keys = list(map(truediv, caps, products))
        # Without floors every member is off its floor from the start: only the caps need placing.
        floor_keys = list(map(truediv, floors, products)) if any(floors) else None
        everyone = [True] * len(products)

        def placed(level: float) -> tuple[list[bool], list[bool]]:
            """Who is at its cap, and who is off its floor, at ``level`` (by float keys)."""
            capped = list(map(le, cap_keys, repeat(level)))
            return capped, everyone if floor_keys is None else list(map(le, floor_keys, repeat(level)))

        def totals(capped: list[bool], off_floor: list[bool]) -> tuple[int, int]:
            """F and P for members so placed."""
            fixed = sum(compress(caps, capped)) + sum(floors) - sum(compress(floors, off_floor))
            return fixed, sum(compress(products, off_floor)) - sum(compress(products, capped))

        # Below the level the total falls short of the money, above it exceeds it: at 0 only the
        # floors are paid, past the last cap breakpoint every cap.
        low, high = 0.0, max(cap_keys)
        level = _sampled_level(products, caps, floors, money)
        capped, off_floor = placed(level)
        fixed, at_level = totals(capped, off_floor)
        for _ in range(_NEWTON_STEPS):
            if fixed + level * at_level > money:
                high = min(high, level)
            else:
                low = max(low, level)
            surplus = money - fixed
            newton = surplus / at_level if at_level > 0 and surplus >= 0 else None
            step = (low + high) / 2 if newton is None else newton
            capped_then, off_floor_then = placed(step)
            if newton is not None and capped_then == capped and off_floor_then == off_floor:
                for keys, limits in ((cap_keys, caps), (floor_keys or (), floors)):
                    if step in keys:  # placed at μ by a float equal to it: is it, exactly?
                        for row in compress(count(), map(eq, keys, repeat(step))):
                            if limits[row] * at_level > surplus * products[row]:
                                return None
                return surplus, at_level, capped, off_floor
            moved = list(compress(count(), map(ne, capped_then, capped)))
            lifted = [] if floor_keys is None else list(compress(count(), map(ne, off_floor_then, off_floor)))
            if len(moved) + len(lifted) > len(products) // 16:
                fixed, at_level = totals(capped_then, off_floor_then)
            else:  # a few members moved (near the level): only they change the totals
                for row in moved:
                    sign = 1 if capped_then[row] else -1
                    fixed += sign * caps[row]
                    at_level -= sign * products[row]
                for row in lifted:
                    sign = 1 if off_floor_then[row] else -1
                    fixed -= sign * floors[row]
                    at_level += sign * products[row]
            level, capped, off_floor = step, capped_then, off_floor_then
    except OverflowError:  # weights over a scale beyond floats
        return None
    return None


_NEWTON_STEPS = 8
"""Steps before giving up on Newton's method (a large club needs one or two)."""
_SAMPLE = 256
"""About this many members make the guess."""


def _sampled_level(products: list[int], caps: list[int], floors: list[int], money: int) -> float:
    """A guess at the level: every k-th member (about 256 of them) water-filled in floats with
    its share of the money. Only a starting point: the result never depends on it.
    """
    step = len(products) // _SAMPLE or 1
    sample = slice(0, None, step)
    sampled = list(zip(products[sample], caps[sample], floors[sample], strict=True))
    breakpoints = sorted(
        [(floor / product, product, -floor) for product, _, floor in sampled if floor]
        + [(cap / product, -product, cap) for product, cap, _ in sampled]
    )
    target = money * len(sampled) / len(products)
    try:
        fixed = float(sum(floor for _, _, floor in sampled))
        at_level = float(sum(product for product, _, floor in sampled if not floor))
        for key, level_change, fixed_change in breakpoints:
            if fixed + at_level * key > target:
                return (target - fixed) / at_level if at_level else key
            fixed += fixed_change
            at_level += level_change
    except OverflowError:  # weights over a scale beyond floats: any guess will do
        return 0.0
    return breakpoints[-1][0]


def _level_segment(
    products: list[int], caps: list[int], floors: list[int], money: int, *, exact_keys: bool
) -> _Level | None:
    """The level by sorting the breakpoints and a binary search (see :func:`_level_by_newton`).

    Requires Σ floors ≤ money < Σ caps. None when float keys could not tell the breakpoints
    next to the level apart (then search again with ``exact_keys``).

    Each member with a floor has a breakpoint μ = floor/p where it leaves it (members
    without one are at the level from the start), and each member a breakpoint μ = cap/p
    where it reaches its cap. Sorted, they cut μ into segments on which the total is
    F + U + μ · P (floors still held, caps reached, products at the level); a binary
    search with exact integer comparisons finds the segment.
    """
    lifted = list(compress(count(), floors))  # the members with a floor to leave
    lifted_products = list(map(products.__getitem__, lifted))
    lifted_floors = list(compress(floors, floors))
    numerators = lifted_floors + caps
    denominators = lifted_products + products
    keys: list[Any] = list(map(Fraction if exact_keys else truediv, numerators, denominators))
    events = len(keys)
    order = sorted(range(events), key=keys.__getitem__)
    # What passing each breakpoint changes: the amount held at a floor or reached a cap ("fixed"),
    # and the sum of products at the level.
    fixed_change = list(map(neg, lifted_floors)) + caps
    level_change = lifted_products + list(map(neg, products))
    # Running sums only where the binary search looks: going from one probe to the next adds up
    # the changes in between (about 2 · events additions in all, summed at C speed) instead of
    # building whole lists of prefix sums.
    reached, fixed, at_level = 0, sum(floors), sum(products) - sum(lifted_products)

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
    low, high = 0, events - 1
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
    surplus, denominator = money - fixed_then, at_level_then
    if denominator <= 0 or surplus < 0:
        return None
    # Passed breakpoints must lie at or below μ, the others above it. Sorted floats are in exact
    # order except among equal floats, so only the runs of equal keys on either side of `low`
    # can be out of place: those are checked exactly.
    for position in range(low - 1, -1, -1):
        event = order[position]
        if numerators[event] * denominator > surplus * denominators[event]:
            return None
        if keys[event] != keys[order[low - 1]]:
            break
    for position in range(low, events):
        event = order[position]
        if numerators[event] * denominator <= surplus * denominators[event]:
            return None
        if keys[event] != keys[order[low]]:
            break
    passed = [False] * events
    _consume(map(passed.__setitem__, order[:low], repeat(True)))
    off_floor = list(map(not_, floors))
    _consume(map(off_floor.__setitem__, compress(lifted, passed), repeat(True)))
    return surplus, denominator, passed[len(lifted) :], off_floor


def _leftover_cents(remainders: list[int], left: int, tie_key: Any) -> list[bool]:
    """Which parts get one of the ``left`` leftover cents (True), largest remainders first.

    Exactly as :func:`buyersclub.money.allocate_cents`: ties broken by ``tie_key(position)``
    (the member key in that function's order).
    """
    # The smallest remainder that still earns a cent; everyone above it gets one, and those
    # exactly at it are put in key order.
    cutoff = sorted(remainders, reverse=True)[left - 1]
    topped = list(map(ge, remainders, repeat(cutoff)))
    if sum(topped) == left:
        return topped
    topped = list(map(gt, remainders, repeat(cutoff)))
    tied = sorted(compress(count(), map(eq, remainders, repeat(cutoff))), key=tie_key)
    _consume(map(topped.__setitem__, tied[: left - sum(topped)], repeat(True)))
    return topped


_consume = partial(deque, maxlen=0)
"""Run an iterator to its end, keeping nothing (the itertools "consume" recipe)."""
