"""Posting to the ledger, reversing entries, and reading balances.

Every movement of money goes through ``post_entry``: it refuses anything that
would not be a proper double entry (fewer than two lines, a zero or
sub-cent line, an unknown account, postings that do not sum to zero) before
writing a row. Entries are append-only: a mistake is undone by
``reverse_entry``, which posts the same lines negated. A ``before_flush``
listener refuses changes to existing entries and postings on every
database; on PostgreSQL, triggers from the first migration refuse them too.

An entry of many lines (a round's close has one per member, thousands of
them) has its postings written in one bulk insert, not as an ORM object
each: the checks above run on the lines first, and the database's own guards
(the deferred balance trigger on PostgreSQL, the append-only triggers) apply
to rows however they are inserted.

Balances are never stored: they are sums over postings, read here. Amounts
are summed as integer cents in SQL, so SQLite (which keeps NUMERIC as
floating point) adds up exactly too.

Signs: a posting's amount is positive for a debit and negative for a
credit, and so is a balance. Liability, equity and income accounts normally
carry a negative (credit) balance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, and_, any_, bindparam, case, event, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record
from buyersclub.db import db, sql_cents, sql_cents_sum, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound
from buyersclub.ledger import chart
from buyersclub.ledger.models import AccountType, JournalEntry, LedgerAccount, Posting
from buyersclub.money import MoneyError, from_cents, to_money
from buyersclub.organisations.models import Organisation

REVERSAL = "reversal"
MEMO_LENGTH = 255
KIND_LENGTH = 40
STAFF = (Role.FINANCE, Role.ADMIN)
# From this many lines an entry's postings are inserted in bulk (see _insert_postings).
BULK_LINES = 100


@dataclass(frozen=True)
class Line:
    """One line of an entry to post: positive amount debits, negative credits."""

    account: str
    amount: Decimal
    organisation_id: int | None = None
    memo: str | None = None


class LedgerIsAppendOnly(Conflict):
    """Existing journal entries and postings are never changed or deleted."""

    code = "ledger_append_only"

    def __init__(self, what: str):
        super().__init__(
            f"The ledger is append-only: {what} is refused. Post a reversal entry instead."
        )


# --- Posting -----------------------------------------------------------------


def post_entry(
    actor: Actor,
    *,
    entry_date: date,
    memo: str,
    kind: str,
    lines: Sequence[Line],
    source: tuple[str, int] | None = None,
) -> JournalEntry:
    """Record one balanced journal entry; nothing is written if anything is wrong.

    ``source`` names the record that caused it, e.g. ``("round", 12)``.
    """
    actor.require(*STAFF)
    memo = _required_text(memo, "memo", MEMO_LENGTH)
    kind = _required_text(kind, "kind", KIND_LENGTH)
    if not isinstance(entry_date, date) or isinstance(entry_date, datetime):
        raise InvalidInput("The entry date must be a date.", field="entry_date")
    amounts = _checked_amounts(lines)
    accounts = _accounts_for(lines)
    _check_organisations(lines)

    memos = [
        _optional_text(line.memo, f"lines.{index}.memo", MEMO_LENGTH) for index, line in enumerate(lines)
    ]
    posted = [
        {
            "account": line.account,
            "amount": amount,
            "organisation_id": line.organisation_id,
            "memo": line_memo,
        }
        for line, amount, line_memo in zip(lines, amounts, memos, strict=True)
    ]

    entry = JournalEntry(
        entry_date=entry_date,
        memo=memo,
        kind=kind,
        source_type=source[0] if source else None,
        source_id=source[1] if source else None,
        created_by_id=actor.user_id,
    )
    if len(posted) < BULK_LINES:
        entry.postings = [
            Posting(
                account=accounts[line["account"]],
                organisation_id=line["organisation_id"],
                amount=line["amount"],
                memo=line["memo"],
            )
            for line in posted
        ]
        db.session.add(entry)
        db.session.flush()
    else:
        db.session.add(entry)
        db.session.flush()
        _insert_postings(entry, posted, accounts)
    _audit(actor, "ledger.entry_posted", entry, posted)
    return entry


POSTING_COLUMNS = ("entry_id", "account_id", "organisation_id", "amount", "memo")


def _insert_postings(
    entry: JournalEntry, lines: list[dict[str, Any]], accounts: dict[str, LedgerAccount]
) -> None:
    """Write a new entry's postings in bulk, in line order (ids ascend with the lines).

    For thousands of lines an ORM object per posting took longer than
    everything else a round's close writes. On PostgreSQL one ``COPY`` on the
    session's connection (same transaction; the driver escapes each value),
    elsewhere one executemany. No ``Posting`` object enters the session:
    ``entry.postings`` is loaded from the database when next read.
    """
    rows = [
        (entry.id, accounts[line["account"]].id, line["organisation_id"], line["amount"], line["memo"])
        for line in lines
    ]
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()
        statement = f"COPY {Posting.__tablename__} ({', '.join(POSTING_COLUMNS)}) FROM STDIN"
        with cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        connection.execute(
            insert(Posting.__table__), [dict(zip(POSTING_COLUMNS, row, strict=True)) for row in rows]
        )
    db.session.expire(entry, ["postings"])


def reverse_entry(
    actor: Actor,
    entry_id: int,
    reason: str,
    *,
    entry_date: date | None = None,
    by_its_document: bool = False,
) -> JournalEntry:
    """Undo an entry by posting every line negated; the original stays as it was.

    An entry can be reversed once. A reversal is itself an entry, so it too
    can be reversed (once), which reinstates the original amounts.

    An entry that a document posted (a grant, a round's close, a subsidy run,
    an invoice…) is reversed only through that document's own service, which
    passes ``by_its_document=True`` after its checks (e.g. that the fund still
    holds a grant's money): reversing it here alone would leave the document
    saying one thing and the ledger another.
    """
    actor.require(*STAFF)
    reason = _required_text(reason, "reason", 200)
    original = db.session.get(JournalEntry, entry_id)
    if original is None:
        raise NotFound("No such journal entry.")
    owner = original.reverses if original.kind == REVERSAL and original.reverses else original
    if owner.source_type is not None and not by_its_document:
        raise Conflict(
            f"Entry #{original.id} belongs to {owner.source_type.replace('_', ' ')} #{owner.source_id}: "
            "correct it from that record's page, so the record and the ledger stay in step.",
            code="entry_owned_by_document",
        )
    _refuse_second_reversal(original)

    reversal = JournalEntry(
        entry_date=entry_date or utcnow().date(),
        memo=_clip(f"Reversal of entry #{original.id} ({original.memo}): {reason}", MEMO_LENGTH),
        kind=REVERSAL,
        source_type=original.source_type,
        source_id=original.source_id,
        reverses=original,
        created_by_id=actor.user_id,
    )
    reversal.postings = [
        Posting(
            account=posting.account,
            organisation_id=posting.organisation_id,
            amount=-posting.amount,
            memo=posting.memo,
        )
        for posting in original.postings
    ]
    try:
        # A savepoint, so a reversal racing this one (the unique reverses_id)
        # becomes a clear conflict rather than a broken session.
        with db.session.begin_nested():
            db.session.add(reversal)
    except IntegrityError as exc:
        raise Conflict(f"Entry #{original.id} has already been reversed.") from exc
    _audit(actor, "ledger.entry_reversed", reversal, _lines_of(reversal), reason=reason)
    return reversal


def reversal_of(entry_id: int) -> JournalEntry | None:
    """The entry that reverses this one, if any."""
    return db.session.scalar(select(JournalEntry).where(JournalEntry.reverses_id == entry_id))


def _refuse_second_reversal(original: JournalEntry) -> None:
    existing = reversal_of(original.id)
    if existing is not None:
        what = "reversal" if original.kind == REVERSAL else "entry"
        raise Conflict(
            f"This {what} (#{original.id}) was already reversed by entry #{existing.id}.",
            code="already_reversed",
        )


def _required_text(value: Any, field: str, length: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidInput(f"The {field} is required.", field=field)
    if len(text) > length:
        raise InvalidInput(f"The {field} must be at most {length} characters.", field=field)
    return text


def _optional_text(value: str | None, field: str, length: int) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value.strip()) > length:
        raise InvalidInput(f"A line memo must be at most {length} characters.", field=field)
    return value.strip()


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _checked_amounts(lines: Sequence[Line]) -> list[Decimal]:
    if len(lines) < 2:
        raise InvalidInput("A journal entry needs at least two lines.", field="lines")
    amounts = []
    for index, line in enumerate(lines):
        field = f"lines.{index}.amount"
        try:
            amount = to_money(line.amount)
        except MoneyError as exc:
            raise InvalidInput(f"Line {index + 1}: {exc}.", field=field) from exc
        if amount == 0:
            raise InvalidInput(f"Line {index + 1} has a zero amount.", field=field)
        amounts.append(amount)
    total = sum(amounts, Decimal("0.00"))
    if total != 0:
        side = "debits exceed credits" if total > 0 else "credits exceed debits"
        raise InvalidInput(
            f"The entry does not balance: {side} by {abs(total):.2f}.", field="lines"
        )
    return amounts


def _accounts_for(lines: Iterable[Line]) -> dict[str, LedgerAccount]:
    codes = {line.account for line in lines}
    accounts = {
        account.code: account
        for account in db.session.scalars(
            select(LedgerAccount).where(LedgerAccount.code.in_(codes))
        )
    }
    for index, line in enumerate(lines):
        if line.account not in accounts:
            raise InvalidInput(
                f"Line {index + 1}: there is no ledger account {line.account!r}.",
                field=f"lines.{index}.account",
            )
    return accounts


def _check_organisations(lines: Sequence[Line]) -> None:
    wanted = {line.organisation_id for line in lines if line.organisation_id is not None}
    if not wanted:
        return
    found = db.session.scalar(select(func.count()).where(_id_in(Organisation.id, wanted)))
    if found == len(wanted):
        return  # a round's close names thousands: count them rather than read them back
    known = set(db.session.scalars(select(Organisation.id).where(_id_in(Organisation.id, wanted))))
    for index, line in enumerate(lines):
        if line.organisation_id is not None and line.organisation_id not in known:
            raise InvalidInput(
                f"Line {index + 1}: there is no organisation {line.organisation_id}.",
                field=f"lines.{index}.organisation_id",
            )


def _id_in(column: Any, ids: set[int]) -> Any:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``), not one per id.

    A round's close names thousands of organisations: as many bound
    parameters take the driver longer to prepare than the query takes to run.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("ids", sorted(ids), type_=ARRAY(Integer)))
    return column.in_(ids)


def _lines_of(entry: JournalEntry) -> list[dict[str, Any]]:
    return [
        {
            "account": posting.account.code,
            "amount": posting.amount,
            "organisation_id": posting.organisation_id,
            "memo": posting.memo,
        }
        for posting in entry.postings
    ]


def _audit(
    actor: Actor, action: str, entry: JournalEntry, lines: list[dict[str, Any]], **extra: Any
) -> None:
    organisations = {line["organisation_id"] for line in lines} - {None}
    record(
        actor,
        action,
        "journal_entry",
        entry.id,
        after={
            "entry_date": entry.entry_date,
            "memo": entry.memo,
            "kind": entry.kind,
            "source_type": entry.source_type,
            "source_id": entry.source_id,
            "reverses_id": entry.reverses_id,
            "lines": lines,
            **extra,
        },
        organisation_id=organisations.pop() if len(organisations) == 1 else None,
    )


# --- Append-only, in code ------------------------------------------------------


def _refuse_changes_to_the_ledger(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, JournalEntry | Posting):
            raise LedgerIsAppendOnly(f"deleting {_describe(obj)}")
    for obj in session.dirty:
        if isinstance(obj, JournalEntry | Posting) and session.is_modified(
            obj, include_collections=False
        ):
            raise LedgerIsAppendOnly(f"changing {_describe(obj)}")
    # session.new builds a new set on each access: read it once, or a close with
    # thousands of lines would take quadratic time here.
    new = session.new
    for obj in new:
        if isinstance(obj, Posting) and obj.entry is not None and obj.entry not in new:
            raise LedgerIsAppendOnly(f"adding a line to the recorded entry #{obj.entry.id}")


def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ in (JournalEntry, Posting):
        verb = "updating" if state.is_update else "deleting"
        raise LedgerIsAppendOnly(f"{verb} {mapper.class_.__tablename__} in bulk")


def _describe(obj: JournalEntry | Posting) -> str:
    if isinstance(obj, Posting):
        return f"a posting of entry #{obj.entry_id}"
    return f"journal entry #{obj.id}"


if not event.contains(Session, "before_flush", _refuse_changes_to_the_ledger):
    event.listen(Session, "before_flush", _refuse_changes_to_the_ledger)
if not event.contains(Session, "do_orm_execute", _refuse_bulk_changes):
    event.listen(Session, "do_orm_execute", _refuse_bulk_changes)


# --- Balances --------------------------------------------------------------------


_cents = sql_cents
_cents_sum = sql_cents_sum


def _account(code: str) -> LedgerAccount:
    account = db.session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if account is None:
        raise NotFound(f"There is no ledger account {code!r}.")
    return account


def _dated(statement, as_of: date | None):
    if as_of is None:
        return statement
    return statement.join_from(Posting, JournalEntry, JournalEntry.id == Posting.entry_id).where(
        JournalEntry.entry_date <= as_of
    )


def account_balance(
    code: str, organisation_id: int | None = None, as_of: date | None = None
) -> Decimal:
    """The account's balance (debit positive), for one organisation's sub-ledger if given."""
    account = _account(code)
    statement = select(_cents_sum(Posting.amount)).where(Posting.account_id == account.id)
    if organisation_id is not None:
        statement = statement.where(Posting.organisation_id == organisation_id)
    return from_cents(int(db.session.scalar(_dated(statement, as_of))))


def account_balances(codes: Iterable[str]) -> dict[str, Decimal]:
    """Several accounts' balances (debit positive) from one query; 0.00 for an account without postings."""
    codes = list(codes)
    rows = db.session.execute(
        select(LedgerAccount.code, _cents_sum(Posting.amount))
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .where(LedgerAccount.code.in_(codes))
        .group_by(LedgerAccount.code)
    ).all()
    found = {code: from_cents(int(cents)) for code, cents in rows}
    return {code: found.get(code, from_cents(0)) for code in codes}


def organisation_balances(code: str, as_of: date | None = None) -> dict[int | None, Decimal]:
    """The account's balance per organisation (``None``: postings without one)."""
    account = _account(code)
    statement = (
        select(Posting.organisation_id, _cents_sum(Posting.amount))
        .where(Posting.account_id == account.id)
        .group_by(Posting.organisation_id)
    )
    return {
        organisation_id: from_cents(int(cents))
        for organisation_id, cents in db.session.execute(_dated(statement, as_of))
    }


@dataclass(frozen=True)
class AccountTotals:
    code: str
    name: str
    type: AccountType
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit

    @property
    def is_empty(self) -> bool:
        return self.debit == 0 and self.credit == 0


@dataclass(frozen=True)
class TrialBalance:
    as_of: date | None
    accounts: list[AccountTotals]

    @property
    def total_debit(self) -> Decimal:
        return sum((row.debit for row in self.accounts), Decimal("0.00"))

    @property
    def total_credit(self) -> Decimal:
        return sum((row.credit for row in self.accounts), Decimal("0.00"))

    @property
    def difference(self) -> Decimal:
        return self.total_debit - self.total_credit

    @property
    def balanced(self) -> bool:
        return self.difference == 0

    @property
    def is_empty(self) -> bool:
        return all(row.is_empty for row in self.accounts)


def trial_balance(as_of: date | None = None) -> TrialBalance:
    """Every account's debit and credit totals, from one aggregate query over postings.

    ``as_of`` counts entries dated on or before that day.
    """
    postings = select(Posting.account_id, Posting.amount)
    if as_of is not None:
        postings = postings.join(JournalEntry, JournalEntry.id == Posting.entry_id).where(
            JournalEntry.entry_date <= as_of
        )
    dated = postings.subquery()
    cents = _cents(dated.c.amount)
    statement = (
        select(
            LedgerAccount.code,
            LedgerAccount.name,
            LedgerAccount.type,
            func.coalesce(func.sum(case((cents > 0, cents), else_=0)), 0),
            func.coalesce(func.sum(case((cents < 0, -cents), else_=0)), 0),
        )
        .outerjoin(dated, and_(dated.c.account_id == LedgerAccount.id))
        .group_by(LedgerAccount.id, LedgerAccount.code, LedgerAccount.name, LedgerAccount.type)
        .order_by(LedgerAccount.code)
    )
    return TrialBalance(
        as_of=as_of,
        accounts=[
            AccountTotals(code, name, type_, from_cents(int(debit)), from_cents(int(credit)))
            for code, name, type_, debit, credit in db.session.execute(statement)
        ],
    )


def parse_as_of(raw: str | None) -> date | None:
    """An ``as_of`` date typed by a person or a program (YYYY-MM-DD); blank means today."""
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput(
            "as_of must be a date written YYYY-MM-DD, e.g. 2026-03-31.", field="as_of"
        ) from exc


def lock_fund_accounts() -> None:
    """Take the one lock every withdrawal from the subsidy fund holds until its transaction ends.

    Anything that checks the fund's balance and then takes money out of it (a
    close whose margin is negative, an approved subsidy run, a grant reversal,
    free stock) calls this first, so two of them run one after the other and
    the second sees what the first took. The fund accounts' rows are locked in
    code order (PostgreSQL; SQLite runs one writer at a time anyway).
    """
    codes = sorted([chart.FUND_UNRESTRICTED, *chart.FUND_RESTRICTED.values()])
    db.session.execute(
        select(LedgerAccount.id).where(LedgerAccount.code.in_(codes)).order_by(LedgerAccount.code)
        .with_for_update()
    ).all()
