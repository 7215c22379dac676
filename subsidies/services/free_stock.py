"""The fund's free stock: whole units handed, free, to eligible members by need weight.

Where free stock comes from
---------------------------
* Units bought by a **price-break jump** at close (``ProductClosing.free_units``):
  the fund paid for them -- the close debited 1200 *fund free stock* with their
  cost and credited the fund.
* Units **left over on delivery** (``LotShipment`` rows packed for no
  organisation). Once receiving is completed these packed rows are the free
  stock as it really is: they include the jump's units that did arrive (a
  shortfall gives the jump's units up first) and any surplus the supplier
  delivered beyond what was bought.

So a round's free stock of a product is what was packed as free stock once the
round has been received, and the jump's free units before that.

Who gets it
-----------
Eligible members of the allocation run (approved, assessed low-resource) that
were allocated units of that same product in the round -- so every product
rule (documents, jurisdictions) they passed to order it holds for the free
units too. Units are split in proportion to need weight, in whole units, by
largest remainder with the deterministic tie-break of
:func:`buyersclub.money.sort_key` (``allocate_cents`` works on any whole
numbers). A product nobody eligible ordered stays with the fund.

Value and the ledger
--------------------
Each unit is valued at the close's unit cost (the break reached) and recorded
in ``FreeStockAward`` when the run is approved. Giving units away that the fund
paid for moves their cost out of the fund: Dr 3000 fund, Cr 1200 fund free
stock, in the run's one journal entry. Only units the fund paid for are
posted (at most the jump's free units of the product); surplus units the
supplier delivered beyond what was bought cost the fund nothing, so their
value is noted on the award but not posted.

Packing lists and invoices show them at zero with the value noted ("supplied
free by the club fund"): :func:`free_stock_for` gives the lines.

Packing and recall
------------------
The units must also leave the fund's packed lots, so the packing lists and the
recall name the members who hold them. If the round was already received when
the run is approved, :func:`distribute` hands the units over at once with
:func:`orders.services.delivery.hand_over_free_stock` (the fund's rows of the
product, earliest expiry first, become rows for the members; audited). If it
was not, this module's provider in :mod:`orders.hooks` tells the packing at
receipt which members get free units, and the packing hands them over then.
The provider is registered when this module is imported (the application
factory imports it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger import chart
from buyersclub.ledger.services import Line
from buyersclub.money import allocate_cents, from_cents, to_cents
from orders import hooks
from orders.models import LotShipment, Product, ProductClosing, Round, RoundStatus
from orders.services.delivery import hand_over_free_stock
from subsidies.models import FreeStockAward, SubsidyRun

FREE_NOTE = "supplied free by the club fund"
# Once a round is received, what was packed for the fund is its free stock.
PACKED = (RoundStatus.RECEIVED, RoundStatus.INVOICED, RoundStatus.SETTLED)


@dataclass(frozen=True)
class StockLine:
    """Free stock of one product in a round, as planned for a run (and kept in its snapshot)."""

    product_id: int
    units: int
    paid_units: int
    """Of ``units``, those the fund bought at close (their cost sits in account 1200)."""
    unit_cost_cents: int
    recipients: tuple[int, ...]
    """Eligible members allocated this product, by organisation id."""

    def as_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "units": self.units,
            "paid_units": self.paid_units,
            "unit_cost_cents": self.unit_cost_cents,
            "recipients": list(self.recipients),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StockLine:
        return cls(
            product_id=int(data["product_id"]),
            units=int(data["units"]),
            paid_units=int(data["paid_units"]),
            unit_cost_cents=int(data["unit_cost_cents"]),
            recipients=tuple(int(key) for key in data["recipients"]),
        )

    @property
    def posted_cents(self) -> int:
        """What giving these units away takes from the fund (0 when nobody can receive them)."""
        return self.paid_units * self.unit_cost_cents if self.recipients else 0


def plan(found: Round, eligible: Iterable[int], allocated: Mapping[int, set[int]]) -> list[StockLine]:
    """The round's free stock per product, with who may receive it.

    ``eligible``: organisation ids eligible for a subsidy; ``allocated``: per
    product, the organisations allocated units of it. Two queries.
    """
    closings = {
        closing.product_id: closing
        for closing in db.session.scalars(select(ProductClosing).where(ProductClosing.round_id == found.id))
    }
    packed: dict[int, int] = {}
    if found.status in PACKED:
        packed = {
            product_id: int(units)
            for product_id, units in db.session.execute(
                select(LotShipment.product_id, func.sum(LotShipment.units))
                .where(LotShipment.round_id == found.id, LotShipment.organisation_id.is_(None))
                .group_by(LotShipment.product_id)
            )
        }
    wanted = set(eligible)
    lines = []
    for product_id in sorted(set(packed) | set(closings)):
        closing = closings.get(product_id)
        bought_free = closing.free_units if closing is not None else 0
        units = packed.get(product_id, 0) if found.status in PACKED else bought_free
        if units <= 0:
            continue
        lines.append(
            StockLine(
                product_id=product_id,
                units=units,
                paid_units=min(units, bought_free),
                unit_cost_cents=to_cents(closing.unit_cost) if closing is not None else 0,
                recipients=tuple(sorted(allocated.get(product_id, set()) & wanted)),
            )
        )
    return lines


def split_units(units: int, weights: Mapping[int, Fraction]) -> dict[int, int]:
    """``units`` whole units in proportion to ``weights``, largest remainder, ties by key; zeros left out."""
    if units <= 0 or not weights:
        return {}
    return {key: share for key, share in allocate_cents(units, weights).items() if share}


def distribute(
    round_id: int, run_id: int, stock: Iterable[StockLine], weights: Mapping[int, Fraction],
    actor: Actor | None = None,
) -> tuple[list[FreeStockAward], list[Line]]:
    """Write the ``FreeStockAward`` rows of an approved run; the ledger lines their cost needs.

    The caller posts the lines in the run's journal entry and sets the rows'
    ``journal_entry_id``. A received round's units are handed out of the
    fund's packed lots to the members now (audited as ``actor``, by default
    the user who decided the run); otherwise packing does it at receipt.
    """
    awards: list[FreeStockAward] = []
    posted = 0
    for line in stock:
        shares = split_units(line.units, {key: weights[key] for key in line.recipients})
        if not shares:
            continue
        unit_value = from_cents(line.unit_cost_cents)
        for organisation_id, units in sorted(shares.items()):
            awards.append(
                FreeStockAward(round_id=round_id, product_id=line.product_id, organisation_id=organisation_id,
                               units=units, unit_value=unit_value, run_id=run_id)
            )
        posted += line.posted_cents
    db.session.add_all(awards)
    found = db.session.get(Round, round_id)
    if awards and found is not None and found.status in PACKED:
        by_product: dict[int, dict[int, int]] = defaultdict(dict)
        for award in awards:
            by_product[award.product_id][award.organisation_id] = award.units
        who = actor or _deciding_actor(run_id)
        for product_id, given in sorted(by_product.items()):
            hand_over_free_stock(who, round_id, product_id, given)
    lines: list[Line] = []
    if posted:
        amount = from_cents(posted)
        lines = [
            Line(chart.FUND_UNRESTRICTED, amount, memo="Free stock given to members, at cost"),
            Line(chart.FREE_STOCK, -amount, memo="Free stock given to members, at cost"),
        ]
    return awards, lines


def _deciding_actor(run_id: int) -> Actor:
    run = db.session.get(SubsidyRun, run_id)
    user = db.session.get(User, run.decided_by_id) if run is not None and run.decided_by_id else None
    return Actor.for_user(user) if user is not None else Actor.system("subsidy run approval")


@hooks.register_free_units
def awarded_units(round_id: int) -> list[tuple[int, int, int]]:
    """The free units given from a round, (organisation id, product id, units): for packing."""
    rows = db.session.execute(
        select(FreeStockAward.organisation_id, FreeStockAward.product_id, func.sum(FreeStockAward.units))
        .where(FreeStockAward.round_id == round_id)
        .group_by(FreeStockAward.organisation_id, FreeStockAward.product_id)
        .order_by(FreeStockAward.organisation_id, FreeStockAward.product_id))
    return [(organisation_id, product_id, int(units)) for organisation_id, product_id, units in rows]


# --- Reading -----------------------------------------------------------------------


@dataclass(frozen=True)
class FreeUnits:
    """Units of one product a member receives free, for packing lists and invoices (at zero)."""

    product_id: int
    product_name: str
    unit: str
    units: int
    unit_value: Decimal

    @property
    def value(self) -> Decimal:
        return self.unit_value * self.units

    @property
    def note(self) -> str:
        return FREE_NOTE


def free_stock_for(round_id: int, organisation_id: int) -> list[FreeUnits]:
    """The free units a member receives from a round, by product name.

    Not scoped by actor: callers (the packing list, the invoice) have already
    checked that the actor may see this organisation's records.
    """
    rows = db.session.execute(
        select(FreeStockAward.product_id, Product.name, Product.unit, FreeStockAward.units,
               FreeStockAward.unit_value)
        .join(Product, Product.id == FreeStockAward.product_id)
        .where(FreeStockAward.round_id == round_id, FreeStockAward.organisation_id == organisation_id)
        .order_by(Product.name, FreeStockAward.product_id)
    ).all()
    return [FreeUnits(product_id, name, unit, units, unit_value)
            for product_id, name, unit, units, unit_value in rows]


def free_stock_by_round(organisation_id: int) -> dict[int, list[FreeUnits]]:
    """Every round's free units for one member (caller scopes), round id -> lines."""
    rows = db.session.execute(
        select(FreeStockAward.round_id, FreeStockAward.product_id, Product.name, Product.unit,
               FreeStockAward.units, FreeStockAward.unit_value)
        .join(Product, Product.id == FreeStockAward.product_id)
        .where(FreeStockAward.organisation_id == organisation_id)
        .order_by(FreeStockAward.round_id, Product.name)
    ).all()
    found: dict[int, list[FreeUnits]] = defaultdict(list)
    for round_id, product_id, name, unit, units, unit_value in rows:
        found[round_id].append(FreeUnits(product_id, name, unit, units, unit_value))
    return dict(found)


def free_stock_totals(round_id: int) -> list[tuple[str, int, int]]:
    """Per product of a round: (name, units given, members that received some)."""
    rows = db.session.execute(
        select(Product.name, func.sum(FreeStockAward.units), func.count(FreeStockAward.organisation_id))
        .join(Product, Product.id == FreeStockAward.product_id)
        .where(FreeStockAward.round_id == round_id)
        .group_by(Product.name)
        .order_by(Product.name)
    ).all()
    return [(name, int(units), int(members)) for name, units, members in rows]
