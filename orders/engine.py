"""Closing a pooled buying round, product by product: cases, price breaks, allocation.

A pure engine: plain values in, plain values out, no database and no Flask.
Import the module (``from orders import engine``): its ``Commitment`` and
``PriceBreak`` are values, not the database models.

Every figure of an option -- cases, units, cost, revenue, margin, free units,
how many units go against firm quantities and how many against tolerance --
depends only on a product's totals (:class:`Demand`: firm total, tolerance
total, number of members), so :func:`close_demand` previews a product from
three numbers a ``GROUP BY`` returns, whatever the number of members. The
allocation per member needs every commitment: :func:`close_product` computes
it for each option (small rounds, tests), and :meth:`ProductClosing.allocate`
for the one option that is shown or chosen (large rounds: the close itself).
The two agree: an option's totals are its allocation's totals.

The rules, in the club's words:

1. **Totals.** For each product, add up the members' firm quantities and their
   tolerances (the extra units each will accept so cases fill). A commitment
   for zero units is a withdrawn commitment and is ignored, tolerance and all.
2. **Whole cases.** The supplier sells whole cases only. Round the firm total
   down to full cases, plus one more case when the units left over together
   with the tolerance total fill it. (With nothing left over, no extra case is
   bought: tolerance fills cases, it does not open them.) When the cases round
   down, some firm units cannot be bought and members are short.
3. **The price break reached** is the highest break whose minimum the units
   bought meet. Below the lowest break the lowest break's price is used, and
   the option says so (the supplier's minimum order is checked for the round).
4. **Price-break jumps.** For every higher break, the club could buy up to it
   (rounded up to whole cases). Members still receive what they would without
   the jump -- their firm quantities first, their tolerance only as far as the
   case rule drew on it -- and every extra unit is bought out of the subsidy
   fund and goes free to low-resource programmes. Each option shows its
   supplier cost and the difference from the base. It is marked *cheaper* when
   it costs less, and *little more* when it costs at most
   :attr:`ClosingRules.little_more` more. The admin chooses; the engine only
   marks the cheapest total cost as *recommended* (on a tie, the option with
   more units, i.e. more free stock for the same money).
5. **Allocation** (:func:`allocate_units`): firm quantities first, then
   tolerance; nobody gets more than its quantity plus tolerance. When there
   are too few units for a stage, they are shared in whole units by the
   round's policy -- *proportional* (each gets the whole part of its exact
   share; the units left go one each to the largest remainders, ties to the
   lower member number, never to the order the list came in; like every
   largest-remainder rule it can, rarely, give one member one unit less when
   the total grows) or *first come, first served* (earliest commitment served
   fully first). Units no member can take are left over: free stock.
6. **Money.** Supplier cost = units bought x the unit cost reached. Revenue =
   units members receive x the club price. Operating cost recovery = the
   configured share of revenue, rounded half up to the cent. Margin = revenue
   - supplier cost - recovery; it goes to the subsidy fund (a negative margin
   is money the fund pays). Every amount is an exact ``Decimal`` with two
   places; units are whole numbers.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from buyersclub.money import ZERO, MoneyError, round_money, to_money

__all__ = [
    "Allocation",
    "AllocationPolicy",
    "ClosingRules",
    "Commitment",
    "Demand",
    "MemberAllocation",
    "MemberSaving",
    "Option",
    "OptionKind",
    "PriceBreak",
    "ProductClosing",
    "ProductTerms",
    "allocate_units",
    "close_demand",
    "close_product",
    "price_break_for",
    "savings_against_buying_alone",
    "whole_cases",
]


class AllocationPolicy(enum.StrEnum):
    """How units are shared when there are not enough for everyone."""

    PROPORTIONAL = "proportional"
    FIRST_COME_FIRST_SERVED = "first_come_first_served"


class OptionKind(enum.StrEnum):
    BASE = "base"
    JUMP = "jump"


def _whole_number(value: object, name: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def _fraction_of_one(value: object, name: str) -> Decimal:
    if isinstance(value, float | bool):
        raise MoneyError(f"{name} must be a Decimal, int or string, not a float")
    try:
        share = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except ArithmeticError as exc:
        raise ValueError(f"{name} must be a number, not {value!r}") from exc
    if not share.is_finite() or not Decimal(0) <= share < Decimal(1):
        raise ValueError(f"{name} must be at least 0 and below 1, not {value}")
    return share


# ---------------------------------------------------------------------------
# Inputs

# When a commitment was placed, for first come, first served (see Commitment).
Placed = datetime | int | tuple[datetime, int]
# member -> (placed_at, member): the first-come-first-served queue order.
_Queue = Mapping[int, tuple[Placed, int]]


@dataclass(frozen=True, slots=True)
class PriceBreak:
    """The supplier's unit cost from ``min_units`` units in one purchase order."""

    min_units: int
    unit_cost: Decimal

    def __post_init__(self) -> None:
        _whole_number(self.min_units, "min_units", minimum=1)
        cost = to_money(self.unit_cost)
        if cost <= 0:
            raise ValueError(f"unit cost must be above zero, not {cost}")
        object.__setattr__(self, "unit_cost", cost)


@dataclass(frozen=True, slots=True)
class Commitment:
    """One member's commitment to one product.

    ``member`` is the organisation id (it also breaks ties, so allocations never
    depend on list order). ``placed_at`` orders commitments for first come,
    first served: the time of the commitment (or of the change that counts), a
    ``(time, commitment id)`` pair, or any increasing sequence number; use one
    kind for all commitments of a product. Equal ``placed_at`` falls back to
    the member number.
    """

    member: int
    quantity: int
    tolerance: int = 0
    placed_at: Placed = 0

    def __post_init__(self) -> None:
        # A large round builds 100,000 of these: the common case is checked without
        # formatting the messages that name the field.
        member, quantity, tolerance = self.member, self.quantity, self.tolerance
        if type(member) is int and type(quantity) is int and type(tolerance) is int and (
            member >= 0 and quantity >= 0 and tolerance >= 0
        ):
            return
        _whole_number(self.member, "member")
        _whole_number(self.quantity, f"quantity of member {self.member}")
        _whole_number(self.tolerance, f"tolerance of member {self.member}")

    @property
    def most(self) -> int:
        """The most units this member can receive: quantity plus tolerance."""
        return self.quantity + self.tolerance


@dataclass(frozen=True, slots=True)
class Demand:
    """What members committed to one product, in totals: all an option's figures need.

    ``firm`` and ``tolerance`` are the sums over the commitments that count (a
    quantity above zero, so at least one firm unit each); ``members`` is how
    many there are.
    """

    firm: int
    tolerance: int
    members: int

    def __post_init__(self) -> None:
        _whole_number(self.firm, "firm total")
        _whole_number(self.tolerance, "tolerance total")
        _whole_number(self.members, "members")
        if (self.firm == 0) != (self.members == 0) or self.firm < self.members:
            raise ValueError(f"{self.members} members cannot commit {self.firm} firm units in total")
        if self.tolerance and not self.members:
            raise ValueError("tolerance needs a member that committed")

    @classmethod
    def of(cls, commitments: Iterable[Commitment]) -> Demand:
        """The totals of the commitments that count (zero-quantity ones are withdrawn)."""
        counted = [c for c in commitments if c.quantity > 0]
        return cls(sum(c.quantity for c in counted), sum(c.tolerance for c in counted), len(counted))


@dataclass(frozen=True, slots=True)
class ProductTerms:
    """What the round says about one product.

    ``price_breaks`` may be given in any order; they are kept sorted by
    ``min_units``. ``units_name`` (plural, e.g. "boxes") is only for the
    explanations.
    """

    pack_size: int
    price_breaks: tuple[PriceBreak, ...]
    club_price: Decimal
    name: str = ""
    units_name: str = "units"

    def __post_init__(self) -> None:
        _whole_number(self.pack_size, "pack_size", minimum=1)
        breaks = tuple(sorted(self.price_breaks, key=lambda b: b.min_units))
        if not breaks:
            raise ValueError("a product needs at least one price break")
        if len({b.min_units for b in breaks}) != len(breaks):
            raise ValueError("two price breaks start at the same number of units")
        object.__setattr__(self, "price_breaks", breaks)
        price = to_money(self.club_price)
        if price < 0:
            raise ValueError(f"club price must not be negative, not {price}")
        object.__setattr__(self, "club_price", price)


@dataclass(frozen=True, slots=True)
class ClosingRules:
    """The round's settings that shape a close.

    ``operating_share`` is the fraction of revenue kept to cover operating
    costs (``Decimal("0.05")`` for 5%; 0 for none). ``little_more`` is the most,
    in money, a price-break jump may cost above the base and still be marked
    "little more" (default 0.00: only a jump costing exactly the same).
    """

    policy: AllocationPolicy = AllocationPolicy.PROPORTIONAL
    operating_share: Decimal = Decimal("0")
    little_more: Decimal = ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", AllocationPolicy(self.policy))
        object.__setattr__(
            self, "operating_share", _fraction_of_one(self.operating_share, "operating_share")
        )
        little_more = to_money(self.little_more)
        if little_more < 0:
            raise ValueError(f"little_more must not be negative, not {little_more}")
        object.__setattr__(self, "little_more", little_more)


# ---------------------------------------------------------------------------
# Allocation


class MemberAllocation(NamedTuple):
    """What one member receives: against its firm quantity, then its tolerance.

    An immutable named tuple rather than a frozen dataclass: a large round's
    close makes 100,000 of them, and a tuple is several times quicker to make.
    """

    member: int
    quantity: int
    tolerance: int
    firm_units: int
    tolerance_units: int

    @property
    def units(self) -> int:
        return self.firm_units + self.tolerance_units

    @property
    def short(self) -> int:
        """Firm units the member asked for and does not receive."""
        return self.quantity - self.firm_units


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units shared among members; ``left_over`` is what no member can take.

    ``firm_units``, ``tolerance_units`` and ``short`` are totals over members.
    """

    available: int
    policy: AllocationPolicy
    members: tuple[MemberAllocation, ...]  # sorted by member
    firm_units: int
    tolerance_units: int
    short: int
    left_over: int
    _index: dict[int, MemberAllocation] = field(repr=False, compare=False, hash=False)

    @property
    def allocated(self) -> int:
        return self.available - self.left_over

    def units_for(self, member: int) -> int:
        """Units for ``member``; 0 for a member without a (non-zero) commitment."""
        found = self._index.get(member)
        return found.units if found else 0

    def for_member(self, member: int) -> MemberAllocation | None:
        return self._index.get(member)

    def units_by_member(self) -> dict[int, int]:
        return {line.member: line.units for line in self.members}


def _largest_remainder(total: int, demands: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Share ``total`` whole units in proportion to ``(member, weight)`` demands.

    Exact Hamilton in integers: the part is ``total * weight // weight_sum`` and
    the remainder ``total * weight % weight_sum`` compares exactly, so no
    fractions are needed. Callers only share when ``total`` is below the sum of
    weights, so nobody gets more than its weight. (``money.allocate_cents`` is
    the same rule for cents; it works in ``Fraction`` and is far too slow for
    thousands of members on every product.)
    """
    weight_sum = sum(weight for _, weight in demands)
    parts: dict[int, int] = {}
    remainders: list[tuple[int, int]] = []
    for member, weight in demands:
        part, remainder = divmod(total * weight, weight_sum)
        parts[member] = part
        if remainder:
            remainders.append((-remainder, member))
    left = total - sum(parts.values())
    if left:
        remainders.sort()
        for _, member in remainders[:left]:
            parts[member] += 1
    return parts


def _first_come_first_served(
    total: int, demands: Sequence[tuple[int, int]], order: _Queue
) -> dict[int, int]:
    parts: dict[int, int] = {}
    remaining = total
    for member, demand in sorted(demands, key=lambda item: order[item[0]]):
        given = min(demand, remaining)
        parts[member] = given
        remaining -= given
    return parts


def _share(
    total: int,
    demands: Sequence[tuple[int, int]],
    policy: AllocationPolicy,
    order: _Queue,
) -> dict[int, int]:
    """Give each demand in full when ``total`` allows, else share by ``policy``."""
    wanted = sum(demand for _, demand in demands)
    if total >= wanted:
        return dict(demands)
    if total == 0:
        return dict.fromkeys((member for member, _ in demands), 0)
    if policy is AllocationPolicy.PROPORTIONAL:
        return _largest_remainder(total, demands)
    return _first_come_first_served(total, demands, order)


def _counted(commitments: Iterable[Commitment]) -> list[Commitment]:
    """Commitments that count, sorted by member; refuses two for one member."""
    counted = sorted((c for c in commitments if c.quantity > 0), key=lambda c: c.member)
    for before, after in itertools.pairwise(counted):
        if before.member == after.member:
            raise ValueError(f"member {after.member} has two commitments for one product")
    return counted


def allocate_units(
    available: int,
    commitments: Iterable[Commitment],
    policy: AllocationPolicy = AllocationPolicy.PROPORTIONAL,
) -> Allocation:
    """Share ``available`` units among ``commitments``: firm first, then tolerance.

    Usable at closing, after a delivery shortfall (fewer units), and for a
    surplus (more units: tolerance is filled first; what no member can take is
    ``left_over``, for the fund's free stock). Zero-quantity commitments are
    ignored.
    """
    _whole_number(available, "available units")
    return _allocate(available, _counted(commitments), AllocationPolicy(policy))


def _allocate(available: int, counted: list[Commitment], policy: AllocationPolicy) -> Allocation:
    order: _Queue = {}
    if policy is AllocationPolicy.FIRST_COME_FIRST_SERVED:
        order = {c.member: (c.placed_at, c.member) for c in counted}

    firm = _share(available, [(c.member, c.quantity) for c in counted], policy, order)
    after_firm = available - sum(firm.values())
    tolerance_demands = [(c.member, c.tolerance) for c in counted if c.tolerance]
    extra = _share(after_firm, tolerance_demands, policy, order)
    lines = tuple(
        MemberAllocation(
            member=c.member,
            quantity=c.quantity,
            tolerance=c.tolerance,
            firm_units=firm[c.member],
            tolerance_units=extra.get(c.member, 0),
        )
        for c in counted
    )
    firm_units = available - after_firm
    tolerance_units = sum(extra.values())
    return Allocation(
        available=available,
        policy=policy,
        members=lines,
        firm_units=firm_units,
        tolerance_units=tolerance_units,
        short=sum(c.quantity for c in counted) - firm_units,
        left_over=after_firm - tolerance_units,
        _index={line.member: line for line in lines},
    )


# ---------------------------------------------------------------------------
# Cases and price breaks


def whole_cases(firm_total: int, tolerance_total: int, pack_size: int) -> int:
    """Cases to buy: firm rounded down to full cases, plus one when the rest fills it."""
    _whole_number(firm_total, "firm_total")
    _whole_number(tolerance_total, "tolerance_total")
    _whole_number(pack_size, "pack_size", minimum=1)
    cases, remainder = divmod(firm_total, pack_size)
    if remainder and remainder + tolerance_total >= pack_size:
        cases += 1
    return cases


def price_break_for(units: int, price_breaks: Sequence[PriceBreak]) -> PriceBreak | None:
    """The highest break whose minimum ``units`` meets; ``None`` below the lowest."""
    reached = None
    for price_break in sorted(price_breaks, key=lambda b: b.min_units):
        if price_break.min_units > units:
            break
        reached = price_break
    return reached


# ---------------------------------------------------------------------------
# Closing one product


@dataclass(frozen=True, slots=True)
class Option:
    """One way of buying a product, with its money and how its units are shared.

    ``cost_difference`` is supplier cost minus the base's (negative when
    cheaper). ``fund_inflow`` equals the margin: negative means the fund pays.
    ``free_units_cost`` is what the free units cost at the unit cost reached.
    ``member_units`` go to members: ``firm_units`` against their quantities,
    ``tolerance_units`` against their tolerance; ``short`` is the firm units
    they asked for and do not receive. ``allocation`` is the share of every
    member, present when the option was computed from the commitments
    (:func:`close_product`), ``None`` when from totals (:func:`close_demand`).
    """

    kind: OptionKind
    units: int
    cases: int
    price_break: PriceBreak
    below_lowest_break: bool
    member_units: int
    firm_units: int
    tolerance_units: int
    short: int
    free_units: int
    supplier_cost: Decimal
    revenue: Decimal
    operating_recovery: Decimal
    margin: Decimal
    free_units_cost: Decimal
    cost_difference: Decimal
    cheaper: bool
    little_more: bool
    recommended: bool
    explanation: str
    allocation: Allocation | None = None

    @property
    def unit_cost(self) -> Decimal:
        return self.price_break.unit_cost

    @property
    def fund_inflow(self) -> Decimal:
        return self.margin


@dataclass(frozen=True, slots=True)
class ProductClosing:
    """The preview of closing one product: totals and the options, base first.

    ``options`` is empty only when no member committed any units. When the firm
    total does not fill one case, the base option buys nothing (every member is
    short) and the jumps show what buying a case or a break would cost.
    """

    terms: ProductTerms
    rules: ClosingRules
    firm_total: int
    tolerance_total: int
    cases: int
    options: tuple[Option, ...]
    summary: str
    members: int = 0

    @property
    def base(self) -> Option | None:
        return self.options[0] if self.options else None

    @property
    def recommended(self) -> Option | None:
        return next((option for option in self.options if option.recommended), None)

    @property
    def jumps(self) -> tuple[Option, ...]:
        return self.options[1:]

    @property
    def demand(self) -> Demand:
        return Demand(self.firm_total, self.tolerance_total, self.members)

    def allocate(self, option: Option, commitments: Iterable[Commitment]) -> Allocation:
        """The share of every member under ``option``, from the commitments this closing totals.

        Exactly the allocation :func:`close_product` attaches to the option.
        Refuses commitments whose totals are not this closing's (they changed
        since, or belong to another product): the option's figures would not
        be theirs.
        """
        if option not in self.options:
            raise ValueError("the option is not one of this product's")
        counted = _counted(commitments)
        found = Demand.of(counted)
        if found != self.demand:
            raise ValueError(f"the commitments total {found}, not {self.demand} as the options assume")
        if option.allocation is not None:
            return option.allocation
        return _allocate(option.member_units, counted, self.rules.policy)


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


def _case_summary(firm: int, tolerance: int, pack: int, cases: int, name: str) -> str:
    full, remainder = divmod(firm, pack)
    text = f"Members committed {firm} {name} firm and {tolerance} tolerance. "
    if firm == 0:
        return text + "Nothing to buy."
    text += f"{full} full case{'s' if full != 1 else ''} of {pack} hold {full * pack}"
    if not remainder:
        return text + "; no units left over."
    if cases > full:
        return (
            text + f"; the {remainder} left over plus {tolerance} tolerance fill one more case: "
            f"{cases} cases = {cases * pack} {name}."
        )
    return (
        text + f"; the {remainder} left over plus {tolerance} tolerance do not fill a case, "
        f"so members are {remainder} {name} short."
    )


def _option(
    kind: OptionKind,
    units: int,
    member_take: int,
    terms: ProductTerms,
    rules: ClosingRules,
    demand: Demand,
) -> Option:
    """An option's figures from the totals: firm is served before tolerance, whatever the policy."""
    reached = price_break_for(units, terms.price_breaks)
    below = reached is None
    price_break = reached or terms.price_breaks[0]
    firm_units = min(member_take, demand.firm)
    tolerance_units = min(member_take - firm_units, demand.tolerance)
    member_units = firm_units + tolerance_units
    revenue = (terms.club_price * member_units).quantize(ZERO)
    cost = (price_break.unit_cost * units).quantize(ZERO)
    recovery = round_money(rules.operating_share * revenue)
    free_units = units - member_units
    return Option(
        kind=kind,
        units=units,
        cases=units // terms.pack_size,
        price_break=price_break,
        below_lowest_break=below,
        member_units=member_units,
        firm_units=firm_units,
        tolerance_units=tolerance_units,
        short=demand.firm - firm_units,
        free_units=free_units,
        supplier_cost=cost,
        revenue=revenue,
        operating_recovery=recovery,
        margin=revenue - cost - recovery,
        free_units_cost=(price_break.unit_cost * free_units).quantize(ZERO),
        cost_difference=ZERO,
        cheaper=False,
        little_more=False,
        recommended=False,
        explanation="",
    )


def _explain(option: Option, terms: ProductTerms, rules: ClosingRules) -> str:
    name = terms.units_name
    pb = option.price_break
    lines: list[str] = []
    if option.kind is OptionKind.BASE:
        lines.append(f"Buy {option.units} {name} ({option.cases} cases of {terms.pack_size}).")
    else:
        lines.append(
            f"Jump: buy {option.units} {name} ({option.cases} cases of {terms.pack_size}) "
            f"to reach the {pb.min_units}+ price break."
        )
    if option.units == 0:
        lines.append("Nothing is bought, so no price break applies.")
    elif option.below_lowest_break:
        lines.append(
            f"That is below the supplier's lowest break ({pb.min_units} {name}); "
            f"priced at its unit cost {_money(pb.unit_cost)}."
        )
    else:
        lines.append(f"Price break reached: {pb.min_units}+ at {_money(pb.unit_cost)} each.")
    short = option.short
    received = (
        f"Members receive {option.member_units} "
        f"({option.firm_units} firm, {option.tolerance_units} from tolerance)"
    )
    lines.append(received + (f"; {short} firm {name} short." if short else "."))
    if option.free_units:
        lines.append(
            f"{option.free_units} {name} bought out of the fund "
            f"({_money(option.free_units_cost)}) go free to low-resource programmes."
        )
    lines.append(
        f"Supplier cost {_money(option.supplier_cost)}; revenue at the club price "
        f"{_money(terms.club_price)}: {_money(option.revenue)}; operating recovery "
        f"({_percent(rules.operating_share)}): {_money(option.operating_recovery)}; "
        f"margin to the fund {_money(option.margin)}."
    )
    if option.kind is OptionKind.JUMP:
        difference = option.cost_difference
        if option.cheaper:
            verdict = f"Costs {_money(-difference)} less than the base."
        elif difference == 0:
            verdict = "Costs the same as the base."
        else:
            verdict = f"Costs {_money(difference)} more than the base"
            if option.little_more:
                verdict += f" (within the {_money(rules.little_more)} allowed as 'little more')."
            else:
                verdict += "."
        lines.append(verdict)
    if option.recommended:
        lines.append("Recommended: the lowest total cost.")
    return " ".join(lines)


def close_demand(terms: ProductTerms, demand: Demand, rules: ClosingRules | None = None) -> ProductClosing:
    """Preview closing one product from its totals: the base option and every price-break jump.

    Nothing is chosen here: the admin picks an option; ``recommended`` marks
    the lowest supplier cost. The options carry no allocation per member
    (:meth:`ProductClosing.allocate` computes it for one option).
    """
    rules = rules or ClosingRules()
    firm_total, tolerance_total = demand.firm, demand.tolerance
    pack = terms.pack_size
    cases = whole_cases(firm_total, tolerance_total, pack)
    base_units = cases * pack
    summary = _case_summary(firm_total, tolerance_total, pack, cases, terms.units_name)
    if firm_total == 0:
        return ProductClosing(terms, rules, 0, tolerance_total, 0, (), summary, demand.members)

    base = _option(OptionKind.BASE, base_units, base_units, terms, rules, demand)
    options = [base]
    # A jump draws on no more tolerance than the case rule did, but fills firm.
    jump_take = max(base_units, firm_total)
    seen = {base_units}
    for price_break in terms.price_breaks:
        if price_break.min_units <= base_units:
            continue
        units = -(-price_break.min_units // pack) * pack
        if units in seen:
            continue
        seen.add(units)
        options.append(_option(OptionKind.JUMP, units, jump_take, terms, rules, demand))

    base_cost = base.supplier_cost
    cheapest = min(options, key=lambda o: (o.supplier_cost, -o.units))
    finished: list[Option] = []
    for option in options:
        difference = option.supplier_cost - base_cost
        is_jump = option.kind is OptionKind.JUMP
        flagged = replace(
            option,
            cost_difference=difference,
            cheaper=is_jump and difference < 0,
            little_more=is_jump and 0 <= difference <= rules.little_more,
            recommended=option is cheapest,
        )
        finished.append(replace(flagged, explanation=_explain(flagged, terms, rules)))
    return ProductClosing(terms, rules, firm_total, tolerance_total, cases, tuple(finished), summary,
                          demand.members)


def close_product(
    terms: ProductTerms,
    commitments: Iterable[Commitment],
    rules: ClosingRules | None = None,
) -> ProductClosing:
    """Preview closing one product from its commitments: :func:`close_demand`, and each
    option's allocation per member (options buying the same units for members share one).
    """
    rules = rules or ClosingRules()
    counted = _counted(commitments)
    closing = close_demand(terms, Demand.of(counted), rules)
    allocations: dict[int, Allocation] = {}
    options = []
    for option in closing.options:
        if option.member_units not in allocations:
            allocations[option.member_units] = _allocate(option.member_units, counted, rules.policy)
        options.append(replace(option, allocation=allocations[option.member_units]))
    return replace(closing, options=tuple(options))


# ---------------------------------------------------------------------------
# Savings against buying alone


@dataclass(frozen=True, slots=True)
class MemberSaving:
    """What a member saves at the club price against buying its units alone.

    ``saving`` is negative for a member big enough to beat the club price on
    its own: that difference is its contribution to the fund.
    """

    member: int
    units: int
    lone_unit_cost: Decimal
    lone_cost: Decimal
    club_cost: Decimal
    saving: Decimal

    @property
    def contribution(self) -> Decimal:
        """How much more than alone the member pays (0 when it saves)."""
        return max(-self.saving, ZERO)


def savings_against_buying_alone(
    units_by_member: Mapping[int, int],
    price_breaks: Sequence[PriceBreak],
    club_price: Decimal,
) -> tuple[MemberSaving, ...]:
    """Each member's units priced at the break its own quantity would reach.

    A member alone pays the supplier's unit cost for the break its units reach
    (the lowest break's cost below it); at the club it pays the club price.
    Members with no units are left out. Sorted by member.
    """
    if not price_breaks:
        raise ValueError("savings need at least one price break")
    price = to_money(club_price)
    lowest = min(price_breaks, key=lambda b: b.min_units)
    savings = []
    for member in sorted(units_by_member):
        units = _whole_number(units_by_member[member], f"units of member {member}")
        if units == 0:
            continue
        lone = (price_break_for(units, price_breaks) or lowest).unit_cost
        lone_cost = (lone * units).quantize(ZERO)
        club_cost = (price * units).quantize(ZERO)
        savings.append(
            MemberSaving(
                member=member,
                units=units,
                lone_unit_cost=lone,
                lone_cost=lone_cost,
                club_cost=club_cost,
                saving=lone_cost - club_cost,
            )
        )
    return tuple(savings)
