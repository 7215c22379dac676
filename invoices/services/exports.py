"""Exports for the club's accounting package: invoices, payments and journal lines as CSV, and the
journal as a plain-text (h)ledger journal.

Every export covers a period of days (``from`` and ``to`` included): invoices
by their issue date, payments by the day the money arrived, journal entries by
their entry date. Finance only.

CSV
---
Written with the ``csv`` module (quoting where needed, one header row). Money
is a plain decimal with two places (``1234.50``: no currency sign, no
thousands separator); dates are YYYY-MM-DD. A text cell that a spreadsheet
would read as a formula -- starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return -- is prefixed with a single quote, as OWASP advises against
CSV injection; amounts and dates this module writes itself are left as
numbers.

The ledger journal
------------------
One transaction per journal entry: its date, ``(entry id)`` as the code, its
memo as the description, and one posting per line with the amount and the
club's currency (``120.00 USD``); every transaction balances. Account names
come from the chart (``buyersclub.ledger.chart``): the type's top-level name
(assets, liabilities, equity, income, expenses) and the account's name,
e.g. ``assets:member-receivables``; a member's receivable and account credit
are sub-accounts named after the member (``assets:member-receivables:
harbour-outreach-12``, the organisation id keeps names unique). Every account
and the currency are declared first (with the account's type and code as
tags), so ``hledger check`` passes in its strict mode too. When entries
exist before the period, the file opens with one "Opening balances"
transaction on the first day carrying every account's balance the day before,
so the balances the file gives on its last day are the ledger's trial balance
on that day.

Large exports are streamed: rows are read a batch at a time and written out
as they come, never built in memory whole.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.db import db, sql_cents_sum, utcnow
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.money import ZERO, from_cents
from buyersclub.organisations.models import Organisation
from buyersclub.organisations.services import organisation_names
from invoices.models import REFUND_STANDS, Invoice, InvoiceStatus, Payment, Refund
from invoices.services import payments as payment_service
from invoices.services.periods import Period
from orders.models import Round

BATCH = 500
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LEDGER_ROOTS = {"asset": "assets", "liability": "liabilities", "equity": "equity", "income": "income",
                "expense": "expenses"}
CHART_BY_CODE = {account.code: account for account in chart.CHART}
LEDGER_TYPES = {"asset": "A", "liability": "L", "equity": "E", "income": "R", "expense": "X"}

INVOICE_HEADER = ("number", "issued", "due", "member", "round", "total", "paid", "credited",
                  "balance_due", "status")
PAYMENT_HEADER = ("date", "invoice", "member", "method", "reference", "amount", "applied", "refunded")
JOURNAL_HEADER = ("entry_id", "date", "kind", "memo", "account_code", "account_name", "organisation_id",
                  "organisation", "debit", "credit")


# --- Cells and CSV ---------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """One CSV cell: money with two places, ISO dates, and text that cannot start a formula."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_stream(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text, a batch of rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(value) for value in row])
        if count % BATCH == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _batches(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH):
        yield list(ids[start:start + BATCH])


# --- Invoices --------------------------------------------------------------------------------------


def invoices_csv(actor: Actor, period: Period) -> Iterator[str]:
    """Invoices issued in the period, oldest first, with what was paid and credited on them so far."""
    actor.require(Role.FINANCE)
    return csv_stream(INVOICE_HEADER, invoice_rows(period))


def invoice_rows(period: Period, *, today: date | None = None) -> Iterator[tuple[Any, ...]]:
    today = today or utcnow().date()
    ids = db.session.scalars(select(Invoice.id).where(Invoice.issued_on.between(period.start, period.end))
                             .order_by(Invoice.issued_on, Invoice.number)).all()
    for batch in _batches(ids):
        invoices = db.session.scalars(select(Invoice).where(Invoice.id.in_(batch))
                                      .order_by(Invoice.issued_on, Invoice.number)).all()
        found = payment_service.settlements(invoices)
        members = organisation_names(invoice.organisation_id for invoice in invoices)
        rounds = dict(db.session.execute(select(Round.id, Round.name).where(
            Round.id.in_({invoice.round_id for invoice in invoices}))).all())
        for invoice in invoices:
            settled = found[invoice.id]
            void = invoice.status == InvoiceStatus.VOID
            yield (invoice.number, invoice.issued_on, invoice.due_on,
                   members.get(invoice.organisation_id, invoice.bill_to.get("name")),
                   rounds.get(invoice.round_id, ""), invoice.total, settled.paid, settled.credited,
                   ZERO if void else settled.balance_due,
                   payment_service.status_label(invoice, settled, today=today))


# --- Payments --------------------------------------------------------------------------------------


def payments_csv(actor: Actor, period: Period) -> Iterator[str]:
    """Payments received in the period, oldest first, with what was applied and refunded of each."""
    actor.require(Role.FINANCE)
    return csv_stream(PAYMENT_HEADER, payment_rows(period))


def payment_rows(period: Period) -> Iterator[tuple[Any, ...]]:
    ids = db.session.scalars(select(Payment.id)
                             .where(Payment.received_on.between(period.start, period.end))
                             .order_by(Payment.received_on, Payment.id)).all()
    for batch in _batches(ids):
        payments = db.session.scalars(select(Payment).where(Payment.id.in_(batch))
                                      .order_by(Payment.received_on, Payment.id)).all()
        numbers = dict(db.session.execute(select(Invoice.id, Invoice.number).where(
            Invoice.id.in_({payment.invoice_id for payment in payments if payment.invoice_id}))).all())
        members = organisation_names(payment.organisation_id for payment in payments)
        refunded: dict[int, Decimal] = dict(db.session.execute(
            select(Refund.payment_id, sql_cents_sum(Refund.amount))
            .where(Refund.payment_id.in_(batch), REFUND_STANDS).group_by(Refund.payment_id)).all())
        for payment in payments:
            yield (payment.received_on, numbers.get(payment.invoice_id, ""),
                   members.get(payment.organisation_id, ""), payment.method.value, payment.reference,
                   payment.amount, payment.applied, from_cents(int(refunded.get(payment.id, 0))))


# --- Journal lines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalLine:
    entry_id: int
    entry_date: date
    kind: str
    memo: str
    posting_memo: str | None
    account_code: str
    account_name: str
    account_type: str
    organisation_id: int | None
    organisation: str | None
    amount: Decimal


def journal_csv(actor: Actor, period: Period) -> Iterator[str]:
    """Every posting of the entries dated in the period: debit and credit in two columns."""
    actor.require(Role.FINANCE)
    rows = ((line.entry_id, line.entry_date, line.kind, line.memo, line.account_code, line.account_name,
             line.organisation_id, line.organisation,
             line.amount if line.amount > 0 else ZERO, -line.amount if line.amount < 0 else ZERO)
            for line in journal_lines(period))
    return csv_stream(JOURNAL_HEADER, rows)


def _entry_ids(period: Period) -> list[int]:
    return list(db.session.scalars(
        select(JournalEntry.id).where(JournalEntry.entry_date.between(period.start, period.end))
        .order_by(JournalEntry.entry_date, JournalEntry.id)))


def journal_lines(period: Period) -> Iterator[JournalLine]:
    """The postings of the period's entries, by entry date, entry and posting, a batch at a time."""
    for batch in _batches(_entry_ids(period)):
        rows = db.session.execute(
            select(JournalEntry.id, JournalEntry.entry_date, JournalEntry.kind, JournalEntry.memo,
                   Posting.memo, LedgerAccount.code, LedgerAccount.name, LedgerAccount.type,
                   Posting.organisation_id, Organisation.name, Posting.amount)
            .join(Posting, Posting.entry_id == JournalEntry.id)
            .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
            .outerjoin(Organisation, Organisation.id == Posting.organisation_id)
            .where(JournalEntry.id.in_(batch))
            .order_by(JournalEntry.entry_date, JournalEntry.id, Posting.id)
        ).all()
        for row in rows:
            yield JournalLine(*row[:7], str(row[7]), *row[8:])


# --- The ledger journal ----------------------------------------------------------------------------


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and dashes: safe in an (h)ledger account name."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def account_name(code: str, name: str, type_: str) -> str:
    """The chart account's ledger name: its type's top-level account, then its own name."""
    known = CHART_BY_CODE.get(code)
    if known is not None:
        name, type_ = known.name, known.type
    return f"{LEDGER_ROOTS.get(type_, 'equity')}:{slug(name) or code}"


def member_account(base: str, organisation_id: int | None, organisation: str | None) -> str:
    if organisation_id is None:
        return base
    return f"{base}:{slug(organisation or '') or 'member'}-{organisation_id}"


def _text(value: str | None) -> str:
    """One line of text that cannot end a description early (``;`` starts a comment)."""
    return " ".join((value or "").replace(";", ",").replace("|", "/").split())


def _amount(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def journal_ledger(actor: Actor, period: Period) -> Iterator[str]:
    """The period's journal as (h)ledger text: declarations, opening balances, a transaction per entry."""
    actor.require(Role.FINANCE)
    currency = current_app.config.get("CLUB_CURRENCY", "USD")
    club = current_app.config.get("CLUB_NAME", "Buyers' club")
    return _ledger_text(period, currency, club)


def _ledger_text(period: Period, currency: str, club: str) -> Iterator[str]:
    yield (f"; {_text(club)}: the journal from {period.start.isoformat()} to {period.end.isoformat()}\n"
           f"; exported {utcnow().strftime('%Y-%m-%d %H:%M')} UTC; amounts in {currency}\n\n"
           f"commodity 1000.00 {currency}\n\n")
    yield "".join(_declarations(period))
    opening = _opening_balances(period, currency)
    if opening:
        yield opening
    pending: list[JournalLine] = []
    for line in journal_lines(period):
        if pending and pending[0].entry_id != line.entry_id:
            yield _transaction(pending, currency)
            pending = []
        pending.append(line)
    if pending:
        yield _transaction(pending, currency)


def _declarations(period: Period) -> Iterator[str]:
    """``account`` directives: every chart account, and each member sub-account used by the period's end."""
    accounts = db.session.execute(select(LedgerAccount.code, LedgerAccount.name, LedgerAccount.type)
                                  .order_by(LedgerAccount.code)).all()
    used = db.session.execute(
        select(LedgerAccount.code, Posting.organisation_id, Organisation.name).distinct()
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .join(Organisation, Organisation.id == Posting.organisation_id)
        .where(JournalEntry.entry_date <= period.end)
        .order_by(LedgerAccount.code, Posting.organisation_id)).all()
    members: dict[str, list[tuple[int, str]]] = {}
    for code, organisation_id, name in used:
        members.setdefault(code, []).append((organisation_id, name))
    for code, name, type_ in accounts:
        type_ = str(type_)
        base = account_name(code, name, type_)
        tags = f"type:{LEDGER_TYPES.get(type_, 'E')}, code:{code}"
        yield f"account {base}  ; {tags}, name:{_text(name)}\n"
        for organisation_id, organisation in members.get(code, []):
            yield f"account {member_account(base, organisation_id, organisation)}  ; {tags}\n"
    yield "\n"


def _opening_balances(period: Period, currency: str) -> str:
    """One transaction on the first day with every account's balance the day before, or nothing."""
    rows = db.session.execute(
        select(LedgerAccount.code, LedgerAccount.name, LedgerAccount.type, Posting.organisation_id,
               Organisation.name, sql_cents_sum(Posting.amount))
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .outerjoin(Organisation, Organisation.id == Posting.organisation_id)
        .where(JournalEntry.entry_date < period.start)
        .group_by(LedgerAccount.code, LedgerAccount.name, LedgerAccount.type, Posting.organisation_id,
                  Organisation.name)
        .order_by(LedgerAccount.code, Posting.organisation_id)).all()
    postings = [(member_account(account_name(code, name, str(type_)), organisation_id, organisation),
                 from_cents(int(cents)))
                for code, name, type_, organisation_id, organisation, cents in rows if cents]
    if not postings:
        return ""
    lines = [f"{period.start.isoformat()} * Opening balances  ; balances on "
             f"{period.day_before.isoformat()}, from the entries before this export\n"]
    lines += [_posting(account, amount, currency) for account, amount in postings]
    return "".join(lines) + "\n"


def _posting(account: str, amount: Decimal, currency: str, memo: str | None = None) -> str:
    comment = f"  ; {_text(memo)}" if memo and _text(memo) else ""
    return f"    {account:<60}  {_amount(amount, currency):>16}{comment}\n"


def _transaction(lines: list[JournalLine], currency: str) -> str:
    first = lines[0]
    head = (f"{first.entry_date.isoformat()} * ({first.entry_id}) {_text(first.memo)}"
            f"  ; kind:{_text(first.kind)}\n")
    body = [_posting(member_account(account_name(line.account_code, line.account_name, line.account_type),
                                    line.organisation_id, line.organisation),
                     line.amount, currency, line.posting_memo)
            for line in lines]
    return head + "".join(body) + "\n"


# --- What can be exported ------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    kind: str
    title: str
    extension: str
    mimetype: str
    produce: Callable[[Actor, Period], Iterator[str]]

    def filename(self, period: Period) -> str:
        name = "journal" if self.kind == "ledger" else self.kind
        return f"{name}-{period.slug()}.{self.extension}"


EXPORTS: dict[str, Export] = {
    "invoices": Export("invoices", "Invoices (CSV)", "csv", "text/csv", invoices_csv),
    "payments": Export("payments", "Payments (CSV)", "csv", "text/csv", payments_csv),
    "journal": Export("journal", "Journal lines (CSV)", "csv", "text/csv", journal_csv),
    "ledger": Export("ledger", "Journal for hledger or ledger (plain text)", "ledger", "text/plain",
                     journal_ledger),
}
