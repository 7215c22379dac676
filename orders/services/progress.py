"""The read model behind the members' round page: running totals and the next break.

For each product of a round: the firm and tolerance totals so far, the units
the club would buy if the round closed now, the price break that reaches,
and how many more firm units reach the next break.

The club buys whole cases only, the way the close will (SPEC, closing step 2):
full cases of the firm total, plus one more case when the remainder together
with the tolerance fills it. So the hint counts the firm units that make the
case rounding reach the next break's threshold (rounded up to whole cases),
taking the tolerance already committed into account — "13 more boxes reach
$31.00" — and says how many cases that is. A price-break jump at the close may
still buy up to a break out of the fund; the hint does not count on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.money import format_money
from orders.models import Commitment, Product, Round, RoundItem
from orders.services.catalogue import Break, breaks_of
from orders.services.rounds import get_round


def cases_bought(firm: int, tolerance: int, pack_size: int) -> int:
    """Whole cases for a firm total and a tolerance total (SPEC closing step 2)."""
    full, remainder = divmod(firm, pack_size)
    return full + (1 if remainder and remainder + tolerance >= pack_size else 0)


def break_for(units: int, breaks: list[Break]) -> Break | None:
    """The break that buying ``units`` reaches (None when nothing is bought)."""
    reached = None
    for each in breaks:
        if units >= each.min_units:
            reached = each
    return reached if units > 0 else None


def firm_needed_for(threshold: int, tolerance: int, pack_size: int) -> int:
    """The smallest firm total whose whole cases (with this tolerance) reach ``threshold`` units."""
    cases = -(-threshold // pack_size)
    # Either all ``cases`` full from firm units, or one fewer full and a remainder the tolerance tops up.
    with_tolerance = (cases - 1) * pack_size + max(1, pack_size - tolerance)
    return min(cases * pack_size, with_tolerance)


@dataclass(frozen=True)
class NextBreak:
    unit_cost: Decimal
    min_units: int
    more_units: int  # more firm units needed
    cases: int  # cases bought once reached


@dataclass(frozen=True)
class ProductProgress:
    item: RoundItem
    firm: int
    tolerance: int
    members: int
    pack_size: int
    breaks: list[Break]
    cases: int
    units: int
    reached: Break | None
    next_break: NextBreak | None
    mine: Commitment | None = None

    @property
    def product(self):
        return self.item.product

    def hint(self, currency: str = "USD") -> str:
        if self.next_break is None:
            if self.reached is not None:
                return "The best price break is reached."
            return ""
        step = self.next_break
        cases = "case" if step.cases == 1 else "cases"
        return (f"{step.more_units} more reach {format_money(step.unit_cost, currency)} a unit "
                f"({step.cases} {cases} of {self.pack_size}).")


def item_breaks(item: RoundItem) -> tuple[int, list[Break]]:
    """Pack size and breaks: the snapshot taken at opening, or the catalogue's for a draft."""
    if item.pack_size is not None and item.price_breaks is not None:
        return item.pack_size, [Break(int(each["min_units"]), Decimal(each["unit_cost"]))
                                for each in item.price_breaks]
    return item.product.pack_size, breaks_of(item.product)


def progress_of(item: RoundItem, firm: int, tolerance: int, members: int,
                mine: Commitment | None = None) -> ProductProgress:
    pack_size, breaks = item_breaks(item)
    cases = cases_bought(firm, tolerance, pack_size)
    units = cases * pack_size
    reached = break_for(units, breaks)
    next_break = None
    for each in breaks:
        if each.min_units <= units or (reached is not None and each.unit_cost >= reached.unit_cost):
            continue
        more = max(firm_needed_for(each.min_units, tolerance, pack_size) - firm, 1)
        next_break = NextBreak(each.unit_cost, each.min_units, more,
                               cases_bought(firm + more, tolerance, pack_size))
        break
    return ProductProgress(item=item, firm=firm, tolerance=tolerance, members=members,
                           pack_size=pack_size, breaks=breaks, cases=cases, units=units,
                           reached=reached, next_break=next_break, mine=mine)


def round_progress(actor: Actor, round_id: int) -> tuple[Round, list[ProductProgress]]:
    """Per product of the round: totals so far, break reached, and the next one.

    Three queries whatever the number of products and members. For member
    staff ``mine`` is its own organisation's commitment.
    """
    found = get_round(actor, round_id)
    totals = {
        row.product_id: row
        for row in db.session.execute(
            select(Commitment.product_id,
                   func.coalesce(func.sum(Commitment.quantity), 0).label("firm"),
                   func.coalesce(func.sum(Commitment.tolerance), 0).label("tolerance"),
                   func.count().filter(Commitment.quantity > 0).label("members"))
            .where(Commitment.round_id == found.id)
            .group_by(Commitment.product_id)
        )
    }
    mine: dict[int, Commitment] = {}
    if actor.organisation_id is not None:
        mine = {
            commitment.product_id: commitment
            for commitment in db.session.scalars(
                select(Commitment).where(Commitment.round_id == found.id,
                                         Commitment.organisation_id == actor.organisation_id)
            )
        }
    items = db.session.scalars(
        select(RoundItem).where(RoundItem.round_id == found.id).order_by(RoundItem.id)
        .options(selectinload(RoundItem.product).selectinload(Product.price_breaks))
    ).all()
    rows = []
    for item in items:
        total = totals.get(item.product_id)
        rows.append(progress_of(
            item,
            int(total.firm) if total else 0,
            int(total.tolerance) if total else 0,
            int(total.members) if total else 0,
            mine.get(item.product_id),
        ))
    return found, rows
