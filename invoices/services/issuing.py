"""Issuing a round's invoices: one per member, gapless numbers, one journal entry each.

Finance issues a round's invoices once the round is closed (or later) and,
unless told to go ahead without one, once its subsidy run is approved (409
otherwise, saying so). One invoice is issued per member with a current
allocation (allocation rows whose ``superseded_at`` is empty, units > 0) and no
live (issued) invoice for the round: running it again issues only the missing
ones, e.g. the replacement of a voided invoice.

What an invoice says
--------------------
In this order:

1. **Goods**: one line per product, quantity x the round's club price.
2. **Free units** the member received from the fund's free stock
   (``FreeStockAward``): at zero, the value noted ("supplied free by the club
   fund, value $X").
3. **Subsidy credits**: one negative line per category, the member's awards in
   the round's approved subsidy run.
4. **Shipping**: the round's ``shipping_cost`` shared among all members
   allocated units in the round, in proportion to their goods units (free
   units not counted), by largest remainder (``buyersclub.money.allocate``, ties
   broken by organisation id). Every member's share is fixed by the whole
   round, so a re-run or a replacement gets the same share and the shares sum
   exactly to the round's shipping cost.
5. **Sales tax**: the rate configured for the member's jurisdiction
   (``INVOICE_TAX_RATES``: ``"US-MA"`` -- country and region -- first, then
   ``"US"``; a fraction such as ``"0.0625"``; none configured: no tax) on goods
   - subsidy + shipping, rounded half up to the cent. A member with a tax
   exemption certificate pays none; the certificate is shown on the invoice.
6. **Account credit applied**: the member's account credit (its balance on
   2100, e.g. from an over-payment) as a negative line, up to the total.

The due date is the issue date plus ``INVOICE_NET_DAYS`` (default 30). The
member's name, site address and exemption are copied into ``bill_to``.

The ledger
----------
The round's close already debited the goods at the club price to the member's
receivable (1100) and the approved subsidy run credited its awards, so the
invoice's one balanced entry (kind ``invoice``, source the invoice) posts only
what is new: Dr 1100 / Cr 5200 shipping recharged (shipping costs are
recovered), Dr 1100 / Cr 2200 tax, and Dr 2100 / Cr 1100 account credit
applied. Nothing new: no entry.

What the receivable holds for the round before the invoice is read from the
ledger (the close's entry, the approved run's entry, and the issue and void
entries of the round's voided invoices for the member). When that differs
from the invoice's goods net of subsidy, the difference is posted too, against
4000 sales: a delivery shortfall or surplus re-allocated units after the
close, or a voided invoice gave the goods back (see ``credit_notes``) and its
replacement bills them again. The receivable then always equals the invoice.

So for every member, the receivable movements of the round (close, subsidy
run, invoice) sum to the invoice total.

Account credit is one pool per member that several invoices may draw on: the
member credit account's row is locked while it is read and applied, so two
issues (or an issue and a refund) never spend it twice. The round's row is
locked too, so two runs for one round do not race.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import BigInteger, cast, func, select
from sqlalchemy.orm import contains_eager

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, NotFound
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.ledger.services import Line, organisation_balances, post_entry
from buyersclub.money import ZERO, allocate, format_money, from_cents, round_money
from buyersclub.organisations.models import Organisation
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, LineKind, SeriesKind
from invoices.services.immutability import allow_change
from invoices.services.numbering import next_number
from orders.models import Allocation, Product, Round, RoundItem, RoundStatus
from orders.services.rounds import get_round, set_billing_status
from subsidies.models import Award, FreeStockAward, RunStatus, SubsidyRun

JOURNAL_KIND = "invoice"
CLOSE_KIND = "round_close"
# Invoices follow what was delivered: a shortfall re-allocates before anything is invoiced.
INVOICEABLE = (RoundStatus.RECEIVED, RoundStatus.INVOICED, RoundStatus.SETTLED)
FREE_NOTE = "supplied free by the club fund"
# The lines whose sum the close and the subsidy run already hold in the receivable.
GOODS_NET = (LineKind.GOODS, LineKind.FREE_GOODS, LineKind.SUBSIDY_CREDIT)
DEFAULT_NET_DAYS = 30


class ConfigurationProblem(Conflict):
    code = "configuration"


# --- Configuration ----------------------------------------------------------------------------


def net_days() -> int:
    return int(current_app.config.get("INVOICE_NET_DAYS", DEFAULT_NET_DAYS))


def tax_rates() -> dict[str, Decimal]:
    """``INVOICE_TAX_RATES``: jurisdiction ("US-MA" or "US") -> rate as a fraction."""
    raw: Mapping[str, Any] = current_app.config.get("INVOICE_TAX_RATES") or {}
    rates = {}
    for key, value in raw.items():
        if isinstance(value, bool | float):
            raise ConfigurationProblem(
                f"INVOICE_TAX_RATES[{key!r}] must be a string or Decimal such as '0.0625', not a float.")
        rate = Decimal(str(value))
        if not 0 <= rate < 1:
            raise ConfigurationProblem(f"INVOICE_TAX_RATES[{key!r}] must be a fraction between 0 and 1.")
        rates[str(key).strip().upper()] = rate
    return rates


def tax_rate_for(organisation: Organisation, rates: Mapping[str, Decimal]) -> tuple[str, Decimal] | None:
    """The jurisdiction and rate for the member's site: country-region first, then country."""
    country = (organisation.country or "").strip().upper()
    region = (organisation.region or "").strip().upper()
    for key in (f"{country}-{region}", country):
        if key in rates:
            return key, rates[key]
    return None


# --- The plan of one invoice -------------------------------------------------------------------


@dataclass
class PlannedLine:
    kind: LineKind
    description: str
    amount: Decimal
    product_id: int | None = None
    category: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    note: str | None = None


@dataclass(frozen=True)
class RoundFacts:
    """Everything about the round the invoices are computed from (read once for all members)."""

    round: Round
    run: SubsidyRun | None
    items: dict[int, RoundItem]
    units: dict[int, dict[int, int]]  # organisation -> product -> units
    awards: dict[int, list[Award]]
    free_stock: dict[int, list[FreeStockAward]]
    shipping: dict[int, Decimal]
    held: dict[int, Decimal]  # organisation -> what its receivable holds for the round, uninvoiced


def approved_run(round_id: int) -> SubsidyRun | None:
    return db.session.scalar(select(SubsidyRun).where(SubsidyRun.round_id == round_id,
                                                      SubsidyRun.status == RunStatus.APPROVED))


def _round_facts(found: Round, run: SubsidyRun | None) -> RoundFacts:
    items = {item.product_id: item for item in db.session.scalars(
        select(RoundItem).where(RoundItem.round_id == found.id).join(RoundItem.product)
        .options(contains_eager(RoundItem.product)).order_by(Product.name, RoundItem.id))}
    units = _allocated_units(found)
    awards: dict[int, list[Award]] = defaultdict(list)
    if run is not None:
        for award in db.session.scalars(select(Award).where(Award.run_id == run.id, Award.amount > 0)
                                        .order_by(Award.organisation_id, Award.category)):
            awards[award.organisation_id].append(award)
    free_stock = _free_stock(found, run)
    weights = {member: sum(counts.values()) for member, counts in units.items() if sum(counts.values())}
    shipping = allocate(found.shipping_cost, weights) if weights and found.shipping_cost else {}
    return RoundFacts(found, run, items, units, awards, free_stock, shipping, _held_for_round(found, run))


def _allocated_units(found: Round) -> dict[int, dict[int, int]]:
    """organisation -> product -> units of its current allocations (members with none are left out)."""
    units: dict[int, dict[int, int]] = defaultdict(dict)
    for organisation_id, product_id, count in db.session.execute(
        select(Allocation.organisation_id, Allocation.product_id,
               func.sum(Allocation.firm_units + Allocation.tolerance_units))
        .where(Allocation.round_id == found.id, Allocation.superseded_at.is_(None))
        .group_by(Allocation.organisation_id, Allocation.product_id)
    ):
        if count:
            units[organisation_id][product_id] = int(count)
    return units


def _free_stock(found: Round, run: SubsidyRun | None) -> dict[int, list[FreeStockAward]]:
    """organisation -> the free units given to it in the round (by ``run``, or by no run)."""
    free_stock: dict[int, list[FreeStockAward]] = defaultdict(list)
    statement = select(FreeStockAward).where(FreeStockAward.round_id == found.id)
    statement = statement.where(FreeStockAward.run_id.is_(None) if run is None else
                                (FreeStockAward.run_id.is_(None)) | (FreeStockAward.run_id == run.id))
    for row in db.session.scalars(statement.order_by(FreeStockAward.product_id)):
        free_stock[row.organisation_id].append(row)
    return free_stock


def _held_for_round(found: Round, run: SubsidyRun | None) -> dict[int, Decimal]:
    """Per member, what the receivable holds for the round before its (next) invoice.

    The close's receivable, the approved run's credits, and the entries of the
    round's voided invoices (their issue and their void): the new invoice's
    entry posts the difference between that and its goods net of subsidy.
    """
    void_ids = select(Invoice.id).where(Invoice.round_id == found.id,
                                        Invoice.status == InvoiceStatus.VOID).scalar_subquery()
    sources = (
        ((JournalEntry.kind == CLOSE_KIND) & (JournalEntry.source_type == "round")
         & (JournalEntry.source_id == found.id))
        | ((JournalEntry.source_type == "invoice") & JournalEntry.source_id.in_(void_ids))
    )
    if run is not None and run.journal_entry_id is not None:
        sources = sources | (JournalEntry.id == run.journal_entry_id)
    rows = db.session.execute(
        select(Posting.organisation_id, func.sum(cast(func.round(Posting.amount * 100), BigInteger)))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
        .where(sources, LedgerAccount.code == chart.RECEIVABLES, Posting.organisation_id.is_not(None))
        .group_by(Posting.organisation_id)
    )
    return {organisation_id: from_cents(int(cents)) for organisation_id, cents in rows}


def plan_lines(facts: RoundFacts, organisation: Organisation, *, rates: Mapping[str, Decimal],
               credit_available: Decimal, currency: str) -> list[PlannedLine]:
    """The member's invoice lines, in order."""
    member = organisation.id
    lines: list[PlannedLine] = []
    goods = ZERO
    for product_id, item in facts.items.items():
        count = facts.units.get(member, {}).get(product_id, 0)
        if not count:
            continue
        amount = item.club_price * count
        goods += amount
        lines.append(PlannedLine(LineKind.GOODS, f"{item.product.name} ({item.product.unit})", amount,
                                 product_id=product_id, category=item.product.category.value,
                                 quantity=count, unit_price=item.club_price))
    for free in facts.free_stock.get(member, []):
        item = facts.items.get(free.product_id)
        name = f"{item.product.name} ({item.product.unit})" if item else f"Product {free.product_id}"
        value = free.unit_value * free.units
        lines.append(PlannedLine(LineKind.FREE_GOODS, f"{name}, free", ZERO, product_id=free.product_id,
                                 category=item.product.category.value if item else None,
                                 quantity=free.units, unit_price=ZERO,
                                 note=f"{FREE_NOTE}, value {format_money(value, currency)}"))
    subsidy = ZERO
    for award in facts.awards.get(member, []):
        subsidy += award.amount
        lines.append(PlannedLine(LineKind.SUBSIDY_CREDIT, f"Subsidy from the club fund: {award.category}",
                                 -award.amount, category=award.category))
    shipping = facts.shipping.get(member, ZERO)
    if shipping:
        lines.append(PlannedLine(
            LineKind.SHIPPING,
            f"Shipping: your share of {format_money(facts.round.shipping_cost, currency)}, by units",
            shipping))
    exempt = bool((organisation.tax_exempt_certificate or "").strip())
    jurisdiction = None if exempt else tax_rate_for(organisation, rates)
    if jurisdiction is not None:
        key, rate = jurisdiction
        tax = round_money(max(goods - subsidy + shipping, ZERO) * rate)
        if tax:
            lines.append(PlannedLine(LineKind.TAX, f"Sales tax {_percent(rate)} ({key})", tax,
                                     unit_price=None))
    subtotal = sum((line.amount for line in lines), ZERO)
    applied = min(max(credit_available, ZERO), max(subtotal, ZERO))
    if applied:
        lines.append(PlannedLine(LineKind.ACCOUNT_CREDIT, "Account credit applied", -applied))
    return lines


def _percent(rate: Decimal) -> str:
    text = f"{rate * 100:f}".rstrip("0").rstrip(".")
    return f"{text}%"


def bill_to(organisation: Organisation) -> dict[str, Any]:
    return {
        "organisation_id": organisation.id,
        "name": organisation.name,
        "address_lines": [line for line in (organisation.site_address_line1,
                                             organisation.site_address_line2) if line],
        "city": organisation.site_city,
        "region": organisation.region,
        "postal_code": organisation.site_postal_code,
        "country": organisation.country,
        "tax_exempt_certificate": (organisation.tax_exempt_certificate or "").strip() or None,
    }


# --- Issuing -----------------------------------------------------------------------------------


def lock_member_credit() -> None:
    """The one lock held by everything that spends members' account credit (issuing, refunds)."""
    db.session.execute(select(LedgerAccount.id).where(LedgerAccount.code == chart.MEMBER_CREDIT)
                       .with_for_update()).all()


def member_credit(organisation_id: int) -> Decimal:
    """The member's account credit, as a positive amount held for it."""
    return -organisation_balances(chart.MEMBER_CREDIT).get(organisation_id, ZERO)


def _require_invoiceable(found: Round, run: SubsidyRun | None, without_subsidy_run: bool) -> None:
    if found.status not in INVOICEABLE:
        raise Conflict(f"This round is {found.status.value}: invoices are issued once its delivery is "
                       "received, so that they bill what members actually get.", code="wrong_state")
    if run is None and not without_subsidy_run:
        raise Conflict(
            "This round's subsidy run is not approved yet: invoices are issued after it, so they carry "
            "the subsidy credits. Approve the run first, or issue without one (without_subsidy_run).",
            code="subsidy_run_not_approved")


def _invoiced_members(found: Round) -> set[int]:
    """The members with a live invoice for the round."""
    return set(db.session.scalars(select(Invoice.organisation_id).where(
        Invoice.round_id == found.id, Invoice.status == InvoiceStatus.ISSUED)))


def members_to_invoice(round_id: int) -> int:
    """How many members the next issue would invoice: allocated units or given free stock, and no
    live invoice for the round (none before the first issue; after it, only those whose invoice was
    voided)."""
    found = db.session.get(Round, round_id)
    if found is None:
        return 0
    members = set(_allocated_units(found)) | set(_free_stock(found, approved_run(found.id)))
    return len(members - _invoiced_members(found))


def issue_round_invoices(
    actor: Actor,
    round_id: int,
    *,
    without_subsidy_run: bool = False,
    organisation_ids: set[int] | None = None,
    on_issued: Callable[[Invoice], None] | None = None,
) -> list[Invoice]:
    """Issue the round's missing invoices (finance); returns those issued, by number.

    ``organisation_ids`` limits the run to some members; ``on_issued`` is called
    after each invoice (the command line prints a progress line).
    """
    actor.require(Role.FINANCE)
    found = get_round(actor, round_id, lock="update")
    run = approved_run(found.id)
    _require_invoiceable(found, run, without_subsidy_run)
    facts = _round_facts(found, run)
    live = _invoiced_members(found)
    members = sorted(set(facts.units) | set(facts.free_stock))
    wanted = [member for member in members if member not in live
              and (organisation_ids is None or member in organisation_ids)]
    if not wanted:
        return []
    organisations = {org.id: org for org in db.session.scalars(
        select(Organisation).where(Organisation.id.in_(wanted)))}
    rates = tax_rates()
    currency = current_app.config.get("CLUB_CURRENCY", "USD")
    today = utcnow().date()
    lock_member_credit()
    credits = {member: -amount for member, amount in organisation_balances(chart.MEMBER_CREDIT).items()
               if member is not None}
    issued = []
    for member in wanted:
        invoice = _issue_one(actor, facts, organisations[member], rates=rates, currency=currency,
                             credit_available=credits.get(member, ZERO), today=today)
        issued.append(invoice)
        if on_issued is not None:
            on_issued(invoice)
    set_billing_status(actor, found, RoundStatus.INVOICED, because=f"{len(issued)} invoice(s) issued")
    return issued


def _issue_one(actor: Actor, facts: RoundFacts, organisation: Organisation, *,
               rates: Mapping[str, Decimal], currency: str, credit_available: Decimal,
               today: date) -> Invoice:
    planned = plan_lines(facts, organisation, rates=rates, credit_available=credit_available,
                         currency=currency)
    number, sequence = next_number(SeriesKind.INVOICE, today.year)
    target = bill_to(organisation)
    invoice = Invoice(
        number=number, year=today.year, sequence_number=sequence, round_id=facts.round.id,
        organisation_id=organisation.id, status=InvoiceStatus.ISSUED, issued_on=today,
        due_on=today + timedelta(days=net_days()), currency=currency, bill_to=target,
        tax_exempt_certificate=target["tax_exempt_certificate"],
        total=sum((line.amount for line in planned), ZERO),
        subsidy_run_id=facts.run.id if facts.run else None, issued_by_id=actor.user_id,
    )
    invoice.lines = [
        InvoiceLine(position=index, kind=line.kind, description=line.description[:255],
                    product_id=line.product_id, category=line.category, quantity=line.quantity,
                    unit_price=line.unit_price, amount=line.amount, note=line.note)
        for index, line in enumerate(planned, start=1)
    ]
    db.session.add(invoice)
    db.session.flush()
    goods_net = sum((line.amount for line in planned if line.kind in GOODS_NET), ZERO)
    entry = _post_invoice(actor, invoice, planned, goods_net - facts.held.get(organisation.id, ZERO))
    if entry is not None:
        allow_change(db.session, invoice, "journal_entry_id")
        invoice.journal_entry_id = entry.id
        db.session.flush()
    record(actor, "invoice.issued", "invoice", invoice.id, organisation_id=organisation.id,
           after=invoice_summary(invoice))
    return invoice


def _post_invoice(actor: Actor, invoice: Invoice, planned: list[PlannedLine],
                  goods_adjustment: Decimal) -> JournalEntry | None:
    member = invoice.organisation_id
    amounts: dict[LineKind, Decimal] = defaultdict(lambda: ZERO)
    for line in planned:
        amounts[line.kind] += line.amount
    shipping, tax = amounts[LineKind.SHIPPING], amounts[LineKind.TAX]
    applied = -amounts[LineKind.ACCOUNT_CREDIT]
    adjusted = f"{invoice.number}: goods as delivered, against the close"
    lines = [
        Line(chart.RECEIVABLES, shipping, member, f"{invoice.number}: shipping"),
        Line(chart.SHIPPING_COSTS, -shipping, None, f"{invoice.number}: shipping recharged"),
        Line(chart.RECEIVABLES, tax, member, f"{invoice.number}: sales tax"),
        Line(chart.TAX_PAYABLE, -tax, None, f"{invoice.number}: sales tax"),
        Line(chart.RECEIVABLES, goods_adjustment, member, adjusted),
        Line(chart.SALES, -goods_adjustment, None, adjusted),
        Line(chart.MEMBER_CREDIT, applied, member, f"{invoice.number}: account credit applied"),
        Line(chart.RECEIVABLES, -applied, member, f"{invoice.number}: account credit applied"),
    ]
    lines = [line for line in lines if line.amount]
    if not lines:
        return None
    return post_entry(actor, entry_date=invoice.issued_on, memo=f"Invoice {invoice.number}",
                      kind=JOURNAL_KIND, lines=lines, source=("invoice", invoice.id))


def invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number, "round_id": invoice.round_id, "organisation_id": invoice.organisation_id,
        "status": invoice.status, "issued_on": invoice.issued_on, "due_on": invoice.due_on,
        "total": invoice.total, "subsidy_run_id": invoice.subsidy_run_id,
        "journal_entry_id": invoice.journal_entry_id,
        "tax_exempt_certificate": invoice.tax_exempt_certificate,
        "lines": [{"kind": line.kind, "description": line.description, "quantity": line.quantity,
                   "unit_price": line.unit_price, "amount": line.amount} for line in invoice.lines],
    }


def get_invoice(actor: Actor, invoice_id: int, *, lock: bool = False) -> Invoice:
    """The invoice: finance and admins any, member staff their own organisation's; else 404."""
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if not actor.has_role(Role.FINANCE, Role.ADMIN):
        if actor.organisation_id is None:
            raise NotFound("No such invoice.")
        statement = statement.where(Invoice.organisation_id == actor.organisation_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    found = db.session.scalar(statement)
    if found is None:
        raise NotFound("No such invoice.")
    return found
