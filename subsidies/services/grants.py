"""Grants and donations into the subsidy fund, and reversing a mistaken one.

A grant is money received: the bank is debited and the fund's account for
the grant's restriction (unrestricted, or one product category) is credited,
in one balanced journal entry whose source is the grant. Money restricted to
naloxone sits in the naloxone account, so it can only ever pay for naloxone.

Recording grants is finance's job (SPEC: finance "record grants and
donations into the fund"; API.md: finance). Administrators see the fund but
do not record money received; a person holding both roles may.

Nothing is deleted: a mistaken grant is reversed by a ledger reversal entry.
Reversing takes money out of the fund, so it locks the fund first and is
refused when that part of the fund no longer holds the grant's amount (it was
already awarded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, text

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, RuleRefused
from buyersclub.ledger.chart import CASH
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, post_entry, reversal_of, reverse_entry
from buyersclub.money import MoneyError, format_money, to_money
from subsidies import fund
from subsidies.models import Grant

GRANT_KIND = "grant"
SOURCE_LENGTH = 160
NOTE_LENGTH = 2000
REASON_LENGTH = 200
# The largest amount a NUMERIC(12, 2) column holds.
MAX_AMOUNT = Decimal("9999999999.99")
# Values a filter may use for money that is not restricted.
UNRESTRICTED = ("none", "unrestricted")


# --- Validation ------------------------------------------------------------------


def clean_source(value: Any) -> str:
    source = value.strip() if isinstance(value, str) else ""
    if not source:
        raise InvalidInput("Say who the money came from (the funder or donor).", field="source")
    if len(source) > SOURCE_LENGTH:
        raise InvalidInput(f"The source must be at most {SOURCE_LENGTH} characters.", field="source")
    return source


def clean_amount(value: Any, field: str = "amount") -> Decimal:
    """A positive amount of money written with at most two decimals; never a float."""
    if isinstance(value, float | bool) or value is None:
        raise InvalidInput("Write the amount as money, e.g. 2500.00.", field=field)
    if isinstance(value, str) and not value.strip():
        raise InvalidInput("The amount is required.", field=field)
    try:
        amount = to_money(value)
    except MoneyError as exc:
        raise InvalidInput(
            "Write the amount as money with at most two decimals, e.g. 2500.00.", field=field
        ) from exc
    if amount <= 0:
        raise InvalidInput("The amount must be more than zero.", field=field)
    if amount > MAX_AMOUNT:
        raise InvalidInput("The amount is too large.", field=field)
    return amount


def clean_received_on(value: Any, today: date | None = None) -> date:
    """The day the money arrived: a date, not in the future (UTC)."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidInput(
                "Write the date received as YYYY-MM-DD, e.g. 2026-03-31.", field="received_on"
            ) from exc
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInput("The date received is required.", field="received_on")
    if value > (today or utcnow().date()):
        raise InvalidInput("The date received cannot be in the future.", field="received_on")
    return value


def clean_restriction(value: Any) -> str | None:
    """``None`` (unrestricted) or one of the fund's categories."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    restriction = value.strip() if isinstance(value, str) else value
    if restriction not in fund.CATEGORIES:
        choices = ", ".join(fund.CATEGORIES)
        raise InvalidInput(
            f"Money can be restricted to {choices}, or not at all.", field="restricted_to"
        )
    return restriction


def clean_note(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("The note must be text.", field="note")
    note = value.strip()
    if len(note) > NOTE_LENGTH:
        raise InvalidInput(f"The note must be at most {NOTE_LENGTH} characters.", field="note")
    return note or None


def _clean_reason(value: Any) -> str:
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:
        raise InvalidInput("Give the reason: it is kept with the reversal.", field="reason")
    if len(reason) > REASON_LENGTH:
        raise InvalidInput(f"Keep the reason to {REASON_LENGTH} characters.", field="reason")
    return reason


# --- Recording a grant -----------------------------------------------------------------


def _next_grant_id() -> int:
    """The new grant's id, known before the row is written.

    The journal entry names its grant (``source=("grant", id)``) and the grant
    names its entry; entries are append-only, so the grant's id is taken first.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        return int(db.session.scalar(text("SELECT nextval(pg_get_serial_sequence('grants', 'id'))")))
    # SQLite has one writer at a time; a racing insert fails on the key (409).
    return int(db.session.scalar(select(func.coalesce(func.max(Grant.id), 0) + 1)))


def describe(restriction: str | None) -> str:
    return f"restricted to {restriction}" if restriction else "unrestricted"


def record_grant(
    actor: Actor,
    source: Any,
    amount: Any,
    received_on: Any,
    restricted_to: Any = None,
    note: Any = None,
) -> Grant:
    """Record money received into the fund: the grant, its balanced entry, the audit row.

    Every input is checked before anything is written; an error names its field.
    """
    actor.require(Role.FINANCE)
    source = clean_source(source)
    amount = clean_amount(amount)
    received_on = clean_received_on(received_on)
    restricted_to = clean_restriction(restricted_to)
    note = clean_note(note)

    grant_id = _next_grant_id()
    entry = post_entry(
        actor,
        entry_date=received_on,
        memo=_memo(f"Grant #{grant_id} from {source} ({describe(restricted_to)})"),
        kind=GRANT_KIND,
        lines=[Line(CASH, amount), Line(fund.account_for(restricted_to), -amount)],
        source=("grant", grant_id),
    )
    grant = Grant(
        id=grant_id,
        source=source,
        amount=amount,
        received_on=received_on,
        restricted_to=restricted_to,
        note=note,
        journal_entry_id=entry.id,
        recorded_by_id=actor.user_id,
    )
    db.session.add(grant)
    db.session.flush()
    record(actor, "grant.recorded", "grant", grant.id, after=snapshot(grant))
    return grant


def _memo(text_: str) -> str:
    return text_ if len(text_) <= 255 else text_[:254] + "…"


# --- Reversing one ---------------------------------------------------------------------


def get_grant(actor: Actor, grant_id: int) -> Grant:
    actor.require(Role.FINANCE, Role.ADMIN)
    grant = db.session.get(Grant, grant_id)
    if grant is None:
        raise NotFound("No such grant.")
    return grant


def reverse_grant(actor: Actor, grant_id: int, reason: Any, currency: str = "USD") -> JournalEntry:
    """Undo a mistaken grant with a ledger reversal; the grant and its entry stay.

    Locks the fund first, so a reversal and an award racing for the same money
    run one after the other; refused (422) when that part of the fund no longer
    holds the grant's amount, and (409) when the grant was already reversed.
    """
    actor.require(Role.FINANCE)
    reason = _clean_reason(reason)
    grant = get_grant(actor, grant_id)
    fund.lock_fund()
    existing = reversal_of(grant.journal_entry_id)
    if existing is not None:
        raise Conflict(
            f"Grant #{grant.id} was already reversed by entry #{existing.id}.",
            code="already_reversed",
        )
    have = fund.available(grant.restricted_to)
    if grant.amount > have:
        raise RuleRefused(
            f"Reversing this grant would take {format_money(grant.amount, currency)} from the "
            f"fund's {describe(grant.restricted_to)} money, which holds only "
            f"{format_money(have, currency)}: the rest has already been awarded. Record the "
            "correction another way (for example a refund to the funder out of new money).",
            code="fund_insufficient",
        )
    reversal = reverse_entry(actor, grant.journal_entry_id, f"grant #{grant.id}: {reason}",
                             by_its_document=True)
    record(
        actor,
        "grant.reversed",
        "grant",
        grant.id,
        before=snapshot(grant),
        after={"reversal_entry_id": reversal.id, "reason": reason},
    )
    return reversal


# --- Reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FundBalance:
    restricted_to: str | None
    available: Decimal


def fund_balances() -> list[FundBalance]:
    """Money available by restriction, unrestricted first, then each category."""
    found = fund.balances()
    return [FundBalance(restriction, found[restriction]) for restriction in fund.FUND_ACCOUNTS]


def parse_restriction_filter(raw: str | None) -> tuple[bool, str | None]:
    """``(filtering, restriction)`` from a query string value; 'none' means unrestricted."""
    value = (raw or "").strip()
    if not value:
        return False, None
    if value in UNRESTRICTED:
        return True, None
    if value not in fund.CATEGORIES:
        choices = ", ".join((*fund.CATEGORIES, "none"))
        raise InvalidInput(f"restricted_to must be one of {choices}.", field="restricted_to")
    return True, value


def grants_statement(raw_restriction: str | None = None) -> Select:
    """Grants, newest received first, optionally of one restriction ('none': unrestricted)."""
    statement = select(Grant).order_by(Grant.received_on.desc(), Grant.id.desc())
    filtering, restriction = parse_restriction_filter(raw_restriction)
    if filtering:
        statement = statement.where(
            Grant.restricted_to.is_(None) if restriction is None else Grant.restricted_to == restriction
        )
    return statement


def reversals_for(grants: list[Grant]) -> dict[int, int]:
    """Grant id -> the entry that reversed its journal entry, in one query."""
    by_entry = {grant.journal_entry_id: grant.id for grant in grants}
    if not by_entry:
        return {}
    rows = db.session.execute(
        select(JournalEntry.reverses_id, JournalEntry.id).where(
            JournalEntry.reverses_id.in_(by_entry)
        )
    ).all()
    return {by_entry[original]: reversal for original, reversal in rows}
