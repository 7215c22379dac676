"""Closing a round: the preview, the confirmed commit, the ledger entry and the allocations.

The arithmetic is the pure close engine's (``orders.engine``); this module
reads a round's items and commitments, feeds the engine, and records what the
admin chose.

* **Preview** (admin, round ``open``, before or after its deadline): per
  product the engine's ``ProductClosing`` from the product's totals -- firm
  and tolerance totals, members, cases, the base option and every
  price-break jump with its cost, margin, free units and flags -- plus the
  round's totals for the default choice and whether the supplier's minimum
  order is met. Every one of those figures depends only on the totals
  (``engine.close_demand``), so the preview reads them with ONE aggregate
  query (``GROUP BY`` product), whatever the number of members: a round of
  100,000 commitments previews in about the time of that query.
* **Allocation per member under each option** (``product_allocations``,
  ``preview_allocations``): computed by the engine from the commitments only
  where it is shown -- one product's (a paged page or API list), or every
  product's for a round small enough to show them inline.
* **Choices**: a mapping ``product_id -> units`` naming the option to buy by
  its number of units. A product left out gets its **base option** (whole
  cases of what members committed, no jump). Units that are not one of the
  product's options are refused naming the product.
* **Commit** (admin or the command line): locks the round row (``FOR NO KEY
  UPDATE``, see ``_locked_round``) after passing the round's gate exclusively
  (``orders.services.rounds.gate_round``): commitments pass it shared, so the
  close waits for those in flight, later ones queue behind it and then find
  the round closed (409), and a stream of commitments cannot starve it -- re-checks
  that it is open, recomputes the options from the commitments as they are
  under the lock, computes the chosen option's allocation of every member
  exactly (``engine.ProductClosing.allocate``: largest remainder or first come,
  first served, whatever order the rows come in), and writes, in the caller's
  one transaction:

  - one ``ProductClosing`` per round item (the chosen option's figures);
  - one ``Allocation`` row (source ``close``) per member per product with a
    commitment, firm and tolerance parts apart, 0 units included (a member
    that is short sees it);
  - the round ``closed`` with ``closed_at``, and an audit event with
    before/after;
  - ONE balanced journal entry (kind ``round_close``, source the round):
    Dr 1100 receivables per organisation (club price x its units), Dr 1200
    fund free stock (the free units' cost), Cr 2000 supplier payables (the
    supplier cost of every unit bought), Cr 4100 operating income (the
    recovery), Cr 3000 unrestricted fund (margin + free-stock cost; a debit
    when that is negative). Zero lines are left out; a round where nothing is
    bought posts no entry.

  Refusals: 409 when the round is not open; 422 when the supplier's minimum
  order (its value: the supplier cost of the chosen options) is not met -- the
  ``close-due-rounds`` command cancels such rounds instead -- and 422 when the
  fund would go below zero (its balance read from the ledger, the fund's
  account row locked while checking).
* **Allocations** (``allocations_for``): current rows only (``superseded_at``
  empty); a member sees its own organisation's, an admin every member's.
* **Against buying alone** (``savings_for``, ``savings_page``): each member's
  allocated units priced at the break its own quantity would reach, against
  the club price; a page of them is read with ``LIMIT``/``OFFSET``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from queue import Queue
from threading import Thread
from typing import Any

from sqlalchemy import BigInteger, Select, cast, func, insert, select
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, RuleRefused
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, account_balance, lock_fund_accounts, post_entry
from buyersclub.money import ZERO
from orders import engine
from orders.models import (
    Allocation,
    AllocationSource,
    Commitment,
    OptionKind,
    Product,
    ProductClosing,
    Round,
    RoundItem,
    RoundStatus,
)
from orders.services.progress import item_breaks
from orders.services.rounds import gate_round, get_round

JOURNAL_KIND = "round_close"
MINIMUM_NOT_MET = "minimum_not_met"
CLOSE_FIELDS = ["status", "closed_at"]
NOTHING_COMMITTED = engine.Demand(0, 0, 0)


# --- Reading the inputs ---------------------------------------------------------------


@dataclass(frozen=True)
class ProductPreview:
    """One product of the round: its item, and the engine's options for it."""

    item: RoundItem
    closing: engine.ProductClosing

    @property
    def product(self) -> Product:
        return self.item.product

    @property
    def product_id(self) -> int:
        return self.item.product_id

    def option(self, units: int | None) -> engine.Option | None:
        """The option buying ``units`` (None: the base); None when nothing can be bought."""
        if not self.closing.options:
            return None
        if units is None:
            return self.closing.base
        return next((each for each in self.closing.options if each.units == units), None)


@dataclass(frozen=True)
class Totals:
    """A round's money for one choice of options: what the ledger entry posts."""

    revenue: Decimal = ZERO
    supplier_cost: Decimal = ZERO
    operating_recovery: Decimal = ZERO
    margin: Decimal = ZERO
    free_units: int = 0
    free_units_cost: Decimal = ZERO
    units: int = 0

    @property
    def fund_inflow(self) -> Decimal:
        """The margin: what the fund gains (negative: what it pays)."""
        return self.margin

    @property
    def fund_credit(self) -> Decimal:
        """What the close credits the fund: margin plus the free stock it now holds."""
        return self.margin + self.free_units_cost


@dataclass(frozen=True)
class RoundPreview:
    round: Round
    products: list[ProductPreview]
    fingerprint: str = ""

    @property
    def members(self) -> int:
        """Commitments that count, over every product (a member committing to two counts twice)."""
        return sum(each.closing.members for each in self.products)

    def chosen(self, choices: Mapping[int, int] | None = None) -> dict[int, engine.Option | None]:
        """product_id -> the chosen option (the base where no choice is given).

        Refuses (400, naming ``choices.<product_id>``) a product not in the round
        or units that are not one of its options.
        """
        choices = dict(choices or {})
        by_product = {each.product_id: each for each in self.products}
        for product_id in choices:
            if product_id not in by_product:
                raise InvalidInput(f"Product {product_id} is not in this round.",
                                   field=f"choices.{product_id}")
        chosen: dict[int, engine.Option | None] = {}
        for each in self.products:
            units = choices.get(each.product_id)
            option = each.option(units)
            if option is None and units not in (None, 0):
                offered = ", ".join(str(o.units) for o in each.closing.options) or "none: nothing committed"
                raise InvalidInput(
                    f"{each.product.name}: {units} units is not one of the options now "
                    f"({offered}). Review the preview again.", field=f"choices.{each.product_id}")
            chosen[each.product_id] = option
        return chosen

    def totals(self, choices: Mapping[int, int] | None = None) -> Totals:
        options = [option for option in self.chosen(choices).values() if option is not None]
        return Totals(
            revenue=sum((o.revenue for o in options), ZERO),
            supplier_cost=sum((o.supplier_cost for o in options), ZERO),
            operating_recovery=sum((o.operating_recovery for o in options), ZERO),
            margin=sum((o.margin for o in options), ZERO),
            free_units=sum(o.free_units for o in options),
            free_units_cost=sum((o.free_units_cost for o in options), ZERO),
            units=sum(o.units for o in options),
        )

    def minimum_met(self, choices: Mapping[int, int] | None = None) -> bool:
        """Whether the supplier cost of the chosen options reaches the supplier's minimum order."""
        return self.totals(choices).supplier_cost >= self.round.minimum_order

    @property
    def default_totals(self) -> Totals:
        return self.totals()


def _rules(found: Round) -> engine.ClosingRules:
    return engine.ClosingRules(policy=engine.AllocationPolicy(found.allocation_policy.value),
                               operating_share=found.operating_share)


def _terms(item: RoundItem) -> engine.ProductTerms:
    pack_size, breaks = item_breaks(item)
    return engine.ProductTerms(
        pack_size=pack_size,
        price_breaks=tuple(engine.PriceBreak(each.min_units, each.unit_cost) for each in breaks),
        club_price=item.club_price,
        name=item.product.name,
    )


def _demands(found: Round) -> tuple[dict[int, engine.Demand], str]:
    """Per product the totals of the live commitments, and a fingerprint of them: one GROUP BY.

    The fingerprint changes whenever a commitment that counts changes: every
    change sets its ``updated_at`` (the latest one moves), a withdrawal or a
    new commitment changes the count, and the sums weighted by organisation
    tell apart two members trading units.
    """
    table = Commitment.__table__
    weight: Any = table.c.organisation_id
    if db.session.get_bind().dialect.name == "postgresql":
        weight = cast(weight, BigInteger)  # integer x integer overflows there; SQLite's are 64-bit anyway
    statement = (
        select(table.c.product_id, func.count(), func.sum(table.c.quantity), func.sum(table.c.tolerance),
               func.sum(weight * table.c.quantity), func.sum(weight * table.c.tolerance),
               func.max(table.c.updated_at))
        .where(table.c.round_id == found.id, table.c.quantity > 0)
        .group_by(table.c.product_id).order_by(table.c.product_id)
    )
    rows = db.session.execute(statement).all()
    demands = {product_id: engine.Demand(int(firm), int(tolerance), members)
               for product_id, members, firm, tolerance, *_ in rows}
    seen = [(*(int(value) for value in row[:6]), row[6].isoformat()) for row in rows]
    digest = hashlib.sha256(repr(seen).encode()).hexdigest()[:16]
    return demands, digest


# One commitment as read: (organisation id, quantity, tolerance, position in the queue).
CommitmentRow = tuple[int, int, int, int]


def _commitment_rows(found: Round, product_id: int | None = None) -> dict[int, list[CommitmentRow]]:
    """The live commitments of the round (or of one product), per product, as plain tuples.

    One query, read through the driver (no ORM loading, no row objects, no
    datetime conversion): for first come, first served the rows come in
    ``(first_committed_at, id)`` order and their position is the engine's
    ``placed_at``, which is the same order.
    """
    table = Commitment.__table__
    statement = (
        select(table.c.product_id, table.c.organisation_id, table.c.quantity, table.c.tolerance)
        .where(table.c.round_id == found.id, table.c.quantity > 0)
    )
    if product_id is not None:
        statement = statement.where(table.c.product_id == product_id)
    if found.allocation_policy.value == engine.AllocationPolicy.FIRST_COME_FIRST_SERVED.value:
        statement = statement.order_by(table.c.first_committed_at, table.c.id)
    else:
        statement = statement.order_by(table.c.product_id, table.c.organisation_id)
    by_product: dict[int, list[CommitmentRow]] = defaultdict(list)
    for position, (product, member, quantity, tolerance) in enumerate(_driver_rows(statement)):
        by_product[product].append((member, quantity, tolerance, position))
    return by_product


def _engine_commitments(rows: Iterable[CommitmentRow]) -> list[engine.Commitment]:
    make = engine.Commitment
    return [make(member, quantity, tolerance, position) for member, quantity, tolerance, position in rows]


def _driver_rows(statement: Select) -> list[tuple[Any, ...]]:
    """A Core select's rows as the driver's own tuples, on the session's connection.

    For the 100,000 commitments of a large round: building SQLAlchemy rows for
    plain integers took about as long as the query itself.
    """
    connection = db.session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(compiled.string, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _items(found: Round, product_id: int | None = None) -> list[RoundItem]:
    statement = (select(RoundItem).where(RoundItem.round_id == found.id).order_by(RoundItem.id)
                 .options(selectinload(RoundItem.product).selectinload(Product.price_breaks)))
    if product_id is not None:
        statement = statement.where(RoundItem.product_id == product_id)
    return list(db.session.scalars(statement).all())


def _build_preview(found: Round) -> RoundPreview:
    demands, fingerprint = _demands(found)
    rules = _rules(found)
    products = [ProductPreview(item, engine.close_demand(_terms(item), demands.get(item.product_id,
                                                                                   NOTHING_COMMITTED), rules))
                for item in _items(found)]
    return RoundPreview(round=found, products=products, fingerprint=fingerprint)


def _require_open(found: Round, doing: str) -> None:
    if found.status != RoundStatus.OPEN:
        raise Conflict(f"This round is {found.status.value}: it cannot be {doing}.", code="wrong_state")


def preview_close(actor: Actor, round_id: int) -> RoundPreview:
    """What closing the open round now would buy, option by option, from the products' totals (admin)."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id)
    _require_open(found, "previewed for closing")
    return _build_preview(found)


def product_allocations(actor: Actor, round_id: int, product_id: int) -> ProductPreview:
    """One product of the open round closed from its commitments: each option with every member's share.

    Reads that product's commitments only. The options are the preview's
    (the engine computes both from the same rules); each carries its
    ``allocation``, sorted by organisation id.
    """
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id)
    _require_open(found, "previewed for closing")
    items = _items(found, product_id)
    if not items:
        raise NotFound("That product is not in this round.", field="product_id")
    item = items[0]
    commitments = _engine_commitments(_commitment_rows(found, product_id).get(product_id, []))
    return ProductPreview(item, engine.close_product(_terms(item), commitments, _rules(found)))


def preview_allocations(preview: RoundPreview) -> dict[int, dict[int, engine.Allocation]]:
    """product_id -> option units -> every member's share: for showing a small round's inline.

    Reads every commitment of the round once. Refuses (409) when the
    commitments no longer add up to the preview's totals (one changed between
    the two reads): the preview is then out of date.
    """
    commitments = _commitment_rows(preview.round)
    result: dict[int, dict[int, engine.Allocation]] = {}
    for each in preview.products:
        shared: dict[int, engine.Allocation] = {}
        rows = _engine_commitments(commitments.get(each.product_id, []))
        for option in each.closing.options:
            if option.member_units not in shared:
                shared[option.member_units] = _allocate(each, option, rows)
        result[each.product_id] = {option.units: shared[option.member_units]
                                   for option in each.closing.options}
    return result


def _allocate(each: ProductPreview, option: engine.Option,
              rows: Iterable[engine.Commitment]) -> engine.Allocation:
    try:
        return each.closing.allocate(option, rows)
    except ValueError as exc:
        raise Conflict("Commitments changed while the close was being prepared. Review the close again.",
                       code="preview_changed") from exc


# --- Committing the close ---------------------------------------------------------------


@dataclass(frozen=True)
class CloseResult:
    round: Round
    preview: RoundPreview
    closings: list[ProductClosing]
    totals: Totals
    journal_entry: JournalEntry | None
    allocations: int


def fund_balance() -> Decimal:
    """The unrestricted fund's balance from the ledger, as a positive amount held."""
    return -account_balance(chart.FUND_UNRESTRICTED)


def commit_close(
    actor: Actor,
    round_id: int,
    choices: Mapping[int, int] | None = None,
    *,
    expected_fingerprint: str | None = None,
) -> CloseResult:
    """Close the open round with the chosen options (the base where none is given).

    ``expected_fingerprint`` (from the preview a person reviewed) makes the
    close refuse with 409 when the commitments changed since that review.
    """
    actor.require(Role.ADMIN)
    gate_round(round_id, exclusive=True)
    found = _locked_round(round_id)
    _require_open(found, "closed")
    preview = _build_preview(found)
    if expected_fingerprint is not None and expected_fingerprint != preview.fingerprint:
        raise Conflict("Commitments changed since the preview you reviewed. Review the close again.",
                       code="preview_changed")
    chosen = preview.chosen(choices)
    totals = preview.totals(choices)
    if totals.supplier_cost < found.minimum_order:
        raise RuleRefused(
            f"The supplier's minimum order is {found.minimum_order:,.2f}; the chosen options buy "
            f"{totals.supplier_cost:,.2f}. Cancel the round, or extend it so more members can commit.",
            code=MINIMUM_NOT_MET)
    if totals.fund_credit < 0:
        _check_fund_covers(-totals.fund_credit)

    now = utcnow()
    before = snapshot(found, CLOSE_FIELDS)
    commitments = _commitment_rows(found)
    closings = _write_closings(actor, found, preview, chosen, now)
    supplier = found.supplier.name  # read now: the connection is the writer's until its block ends
    with _allocation_writer(found, now) as write:
        allocations = _allocate_each(preview, chosen, commitments, closings, write)
        lines = _close_lines(supplier, preview, allocations, totals)
    entry = None
    if lines:
        entry = post_entry(actor, entry_date=now.date(), memo=f"Close of round {found.name}"[:255],
                           kind=JOURNAL_KIND, lines=lines, source=("round", found.id))
        for each in closings:
            each.journal_entry_id = entry.id
    allocated = sum(len(allocation.members) for allocation in allocations.values())
    found.status = RoundStatus.CLOSED
    found.closed_at = now
    db.session.flush()
    after = snapshot(found, CLOSE_FIELDS)
    after.update(
        journal_entry_id=entry.id if entry else None,
        revenue=totals.revenue, supplier_cost=totals.supplier_cost,
        operating_recovery=totals.operating_recovery, margin=totals.margin,
        free_units=totals.free_units, free_units_cost=totals.free_units_cost,
        allocations=allocated,
        products=[{"product_id": c.product_id, "option": c.option_kind, "units": c.units,
                   "unit_cost": c.unit_cost, "supplier_cost": c.supplier_cost, "revenue": c.revenue,
                   "margin": c.margin, "free_units": c.free_units} for c in closings],
    )
    record(actor, "round.closed", "round", found.id, before=before, after=after)
    return CloseResult(found, preview, closings, totals, entry, allocated)


def _locked_round(round_id: int) -> Round:
    """The round row, locked until the transaction ends and re-read.

    ``FOR NO KEY UPDATE`` (what an UPDATE takes): it conflicts with the
    commitments' ``FOR SHARE`` just as ``FOR UPDATE`` would, but not with the
    key-share lock each product closing's foreign key check takes on the
    round. (Allocations have no foreign key to the round since migration
    0008: their product closing implies it.) SQLite ignores both.
    """
    found = db.session.scalar(
        select(Round).where(Round.id == round_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True))
    if found is None:
        raise NotFound("No such round.")
    return found


def _check_fund_covers(amount: Decimal) -> None:
    """Refuse (422) when taking ``amount`` out of the fund would leave it below zero.

    The fund's lock is taken first (the same one subsidy approvals take), so
    two withdrawals can never both spend the same money.
    """
    lock_fund_accounts()
    held = fund_balance()
    if held - amount < 0:
        raise RuleRefused(
            f"The chosen options cost the subsidy fund {amount:,.2f}, but it holds {held:,.2f}: "
            f"the fund must not go below zero. Choose cheaper options.", field="choices",
            code="fund_too_small")


def _allocate_each(preview: RoundPreview, chosen: Mapping[int, engine.Option | None],
                   commitments: Mapping[int, list[CommitmentRow]], closings: list[ProductClosing],
                   write: WriteAllocation) -> dict[int, engine.Allocation]:
    """product_id -> every member's share under the chosen option, each handed to ``write`` at once.

    Only the chosen option is allocated: the others' shares are never needed
    once the admin has chosen.
    """
    closing_of = {each.product_id: each for each in closings}
    allocations: dict[int, engine.Allocation] = {}
    for each in preview.products:
        option = chosen[each.product_id]
        if option is None:
            continue
        allocation = _allocate(each, option, _engine_commitments(commitments.get(each.product_id, [])))
        allocations[each.product_id] = allocation
        if allocation.members:
            write(closing_of[each.product_id], allocation)
    return allocations


def _close_lines(supplier: str, preview: RoundPreview, allocations: Mapping[int, engine.Allocation],
                 totals: Totals) -> list[Line]:
    """The lines of the close's journal entry (none when nothing is bought); no database access."""
    # Units per member counted per club price first (whole numbers), then priced once per
    # member and price, not once per allocation line.
    units_at: dict[Decimal, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for each in preview.products:
        allocation = allocations.get(each.product_id)
        if allocation is None:
            continue
        units = units_at[each.item.club_price]
        for line in allocation.members:
            if line.units:
                units[line.member] += line.units
    receivables: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for price, members in units_at.items():
        for member, count in members.items():
            receivables[member] += price * count
    lines = [Line(chart.RECEIVABLES, amount, organisation_id=member)
             for member, amount in sorted(receivables.items()) if amount]
    lines += [
        Line(chart.FREE_STOCK, totals.free_units_cost, memo="Free units bought by price-break jumps"),
        Line(chart.SUPPLIER_PAYABLES, -totals.supplier_cost, memo=supplier),
        Line(chart.OPERATING_INCOME, -totals.operating_recovery, memo="Operating cost recovery"),
        Line(chart.FUND_UNRESTRICTED, -totals.fund_credit, memo="Round margin and free stock"),
    ]
    return [line for line in lines if line.amount]


def _write_closings(actor: Actor, found: Round, preview: RoundPreview,
                    chosen: Mapping[int, engine.Option | None], now: datetime) -> list[ProductClosing]:
    """One row per round item, its journal entry set once the entry is posted (after the allocations)."""
    closings = []
    for each in preview.products:
        option = chosen[each.product_id]
        closing = each.closing
        if option is None:  # nothing committed: nothing bought
            lowest = closing.terms.price_breaks[0]
            values: dict[str, Any] = dict(
                option_kind=OptionKind.BASE, cases=0, units=0, unit_cost=lowest.unit_cost,
                supplier_cost=ZERO, revenue=ZERO, operating_recovery=ZERO, margin=ZERO,
                free_units=0, free_units_cost=ZERO, explanation=closing.summary)
        else:
            values = dict(
                option_kind=OptionKind(option.kind.value), cases=option.cases, units=option.units,
                unit_cost=option.unit_cost, supplier_cost=option.supplier_cost, revenue=option.revenue,
                operating_recovery=option.operating_recovery, margin=option.margin,
                free_units=option.free_units, free_units_cost=option.free_units_cost,
                explanation=f"{closing.summary} {option.explanation}")
        closings.append(ProductClosing(
            round_id=found.id, round_item_id=each.item.id, product_id=each.product_id,
            firm_total=closing.firm_total, tolerance_total=closing.tolerance_total,
            closed_at=now, closed_by_id=actor.user_id, **values))
    db.session.add_all(closings)
    db.session.flush()
    return closings


# In the table's order (the executemany's statement lists them so).
ALLOCATION_COLUMNS = ("round_id", "product_id", "organisation_id", "product_closing_id", "firm_units",
                      "tolerance_units", "source", "created_at")
WriteAllocation = Callable[[ProductClosing, engine.Allocation], None]


@contextmanager
def _allocation_writer(found: Round, now: datetime) -> Iterator[WriteAllocation]:
    """Write allocation rows in bulk, a product at a time: thousands of members, no ORM objects.

    On PostgreSQL one ``COPY`` per product on the session's own connection
    (same transaction), fed text lines: the round, product, closing, source
    and time are the same for every member of a product, so each line only
    formats the member's three numbers. The database checks each row's two
    foreign keys when its ``COPY`` ends, which takes longer than computing the
    next product's allocation: so the copies run on a thread while the caller
    computes, and the ``with`` block ends when every row is written (the
    connection is the thread's alone meanwhile: the caller only computes).
    Elsewhere one executemany when the block ends.
    """
    connection = db.session.connection()
    source = AllocationSource.CLOSE.value
    if connection.dialect.name != "postgresql":
        yield from _allocation_executemany(found, now)
        return

    statement = f"COPY {Allocation.__tablename__} ({', '.join(ALLOCATION_COLUMNS)}) FROM STDIN"
    suffix = f"\t{source}\t{now.isoformat()}\n"
    driver = connection.connection.driver_connection
    # Plain values only cross to the thread: reading an ORM attribute there could query.
    queue: Queue[tuple[str, int, tuple[engine.MemberAllocation, ...]] | None] = Queue()
    failed: list[BaseException] = []

    def copy_each() -> None:
        while (item := queue.get()) is not None:
            if failed:
                continue  # a copy failed: the transaction is lost, drain what is left
            prefix, closing_id, members = item
            text = "".join([f"{prefix}{line.member}\t{closing_id}\t{line.firm_units}\t{line.tolerance_units}"
                            f"{suffix}" for line in members])
            try:
                with driver.cursor() as cursor, cursor.copy(statement) as copy:
                    copy.write(text)
            except BaseException as error:  # re-raised by the caller's thread below
                failed.append(error)

    worker = Thread(target=copy_each, name=f"close-round-{found.id}-allocations")
    worker.start()
    try:
        yield lambda closing, allocation: queue.put(
            (f"{found.id}\t{closing.product_id}\t", closing.id, allocation.members))
    finally:
        queue.put(None)
        worker.join()
    if failed:
        raise failed[0]


def _allocation_executemany(found: Round, now: datetime) -> Iterator[WriteAllocation]:
    """The allocation rows of every product in one driver-level executemany when the caller is done.

    The statement is compiled once and the values every row shares (round,
    source, time) go through their column types once: through SQLAlchemy's
    executemany, processing each row's parameters took longer than the insert.
    """
    connection = db.session.connection()
    table = Allocation.__table__
    compiled = insert(table).compile(dialect=connection.dialect, column_keys=list(ALLOCATION_COLUMNS))
    if tuple(compiled.positiontup or ()) != ALLOCATION_COLUMNS:
        raise RuntimeError(f"unexpected parameters in {compiled.string!r}")
    round_id, source, created_at = (_bound(table.c[name].type, value, connection.dialect) for name, value in
                                    (("round_id", found.id), ("source", AllocationSource.CLOSE),
                                     ("created_at", now)))
    rows: list[tuple[Any, ...]] = []

    def collect(closing: ProductClosing, allocation: engine.Allocation) -> None:
        product_id, closing_id = closing.product_id, closing.id
        rows.extend([(round_id, product_id, line.member, closing_id, line.firm_units, line.tolerance_units,
                      source, created_at) for line in allocation.members])

    yield collect
    if rows:
        connection.exec_driver_sql(compiled.string, rows)


def _bound(column_type: Any, value: Any, dialect: Any) -> Any:
    """``value`` as the driver receives it for a column of ``column_type`` (as SQLAlchemy would bind it)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


# --- After the close ---------------------------------------------------------------------


def allocations_for(actor: Actor, round_id: int, *, organisation_id: int | None = None) -> Select:
    """The round's current allocation rows: a member's own only; admins every member's."""
    found = get_round(actor, round_id)
    statement = select(Allocation).where(Allocation.round_id == found.id,
                                         Allocation.superseded_at.is_(None))
    if actor.has_role(Role.ADMIN):
        if organisation_id is not None:
            statement = statement.where(Allocation.organisation_id == organisation_id)
    else:
        if actor.organisation_id is None:
            raise NotFound("You have no allocations here.")
        if organisation_id is not None and organisation_id != actor.organisation_id:
            raise NotFound("No such organisation.", field="organisation_id")
        statement = statement.where(Allocation.organisation_id == actor.organisation_id)
    return statement.order_by(Allocation.organisation_id, Allocation.product_id, Allocation.id)


def closings_for(actor: Actor, round_id: int) -> tuple[Round, list[ProductClosing]]:
    """What was bought of each product when the round closed (empty before the close)."""
    found = get_round(actor, round_id)
    closings = db.session.scalars(
        select(ProductClosing).where(ProductClosing.round_id == found.id)
        .options(selectinload(ProductClosing.product)).order_by(ProductClosing.round_item_id)
    ).all()
    return found, list(closings)


@dataclass(frozen=True)
class MemberSavings:
    """One member's allocation of one product, against buying it alone."""

    organisation_id: int
    product_id: int
    product_name: str
    firm_units: int
    tolerance_units: int
    club_price: Decimal
    saving: engine.MemberSaving | None  # None for a member allocated nothing

    @property
    def units(self) -> int:
        return self.firm_units + self.tolerance_units

    @property
    def amount(self) -> Decimal:
        return self.club_price * self.units


def savings_for(actor: Actor, round_id: int, *, organisation_id: int | None = None) -> list[MemberSavings]:
    """Per member and product: units allocated and the saving against buying alone.

    A negative saving is the member's contribution to the fund (a member big
    enough to reach a good break alone pays the club price all the same).
    """
    statement = allocations_for(actor, round_id, organisation_id=organisation_id)
    return _savings(round_id, db.session.scalars(statement).all())


def savings_page(actor: Actor, round_id: int, *, page: int, per_page: int) -> tuple[list[MemberSavings], int]:
    """One page of ``savings_for`` (every member's for an admin) and how many rows there are in all.

    Paged in SQL: a closed round of 5,000 members x 20 products has 100,000
    rows, of which a page shows a hundred.
    """
    statement = allocations_for(actor, round_id)
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = db.session.scalars(statement.limit(per_page).offset((page - 1) * per_page)).all()
    return _savings(round_id, rows), total


def _savings(round_id: int, allocations: Iterable[Allocation]) -> list[MemberSavings]:
    allocations = list(allocations)
    items = {
        item.product_id: item for item in db.session.scalars(
            select(RoundItem).where(RoundItem.round_id == round_id)
            .options(selectinload(RoundItem.product)))
    }
    by_product: dict[int, dict[int, int]] = defaultdict(dict)
    for row in allocations:
        by_product[row.product_id][row.organisation_id] = row.units
    savings: dict[tuple[int, int], engine.MemberSaving] = {}
    for product_id, units in by_product.items():
        item = items[product_id]
        _, breaks = item_breaks(item)
        price_breaks = [engine.PriceBreak(each.min_units, each.unit_cost) for each in breaks]
        for saving in engine.savings_against_buying_alone(units, price_breaks, item.club_price):
            savings[(product_id, saving.member)] = saving
    return [
        MemberSavings(
            organisation_id=row.organisation_id, product_id=row.product_id,
            product_name=items[row.product_id].product.name, firm_units=row.firm_units,
            tolerance_units=row.tolerance_units, club_price=items[row.product_id].club_price,
            saving=savings.get((row.product_id, row.organisation_id)))
        for row in allocations
    ]


def due_round_ids(now: datetime | None = None) -> list[int]:
    """Open rounds whose deadline has passed, oldest deadline first."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Round.id).where(Round.status == RoundStatus.OPEN, Round.deadline <= now)
        .order_by(Round.deadline, Round.id)))
