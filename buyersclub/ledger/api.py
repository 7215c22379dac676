"""Ledger endpoints of the JSON API: the trial balance and the journal (finance, admin)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, paginate
from buyersclub.db import db
from buyersclub.errors import NotFound
from buyersclub.ledger import services
from buyersclub.ledger.models import AccountType, JournalEntry, Posting
from buyersclub.money import ZERO

bp = ApiBlueprint("ledger_api", __name__, tag="ledger")

STAFF = (Role.FINANCE, Role.ADMIN)


class AccountTotalsOut(BaseModel):
    code: str
    name: str
    type: AccountType
    debit: Decimal
    credit: Decimal
    balance: Decimal


class TrialBalanceOut(BaseModel):
    as_of: date | None
    accounts: list[AccountTotalsOut]
    total_debit: Decimal
    total_credit: Decimal
    balanced: bool


class PostingOut(BaseModel):
    id: int
    account_code: str
    account_name: str
    organisation_id: int | None
    amount: Decimal
    debit: Decimal
    credit: Decimal
    memo: str | None


class EntryOut(BaseModel):
    id: int
    entry_date: date
    created_at: datetime
    memo: str
    kind: str
    source_type: str | None
    source_id: int | None
    reverses_id: int | None
    created_by_id: int | None
    total: Decimal
    postings: list[PostingOut]


class EntryDetailOut(EntryOut):
    reversed_by_id: int | None


def _posting_out(posting: Posting) -> PostingOut:
    return PostingOut(
        id=posting.id,
        account_code=posting.account.code,
        account_name=posting.account.name,
        organisation_id=posting.organisation_id,
        amount=posting.amount,
        debit=posting.amount if posting.amount > 0 else ZERO,
        credit=-posting.amount if posting.amount < 0 else ZERO,
        memo=posting.memo,
    )


def _entry_fields(entry: JournalEntry) -> dict:
    return {
        "id": entry.id,
        "entry_date": entry.entry_date,
        "created_at": entry.created_at,
        "memo": entry.memo,
        "kind": entry.kind,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "reverses_id": entry.reverses_id,
        "created_by_id": entry.created_by_id,
        "total": sum((p.amount for p in entry.postings if p.amount > 0), ZERO),
        "postings": [_posting_out(posting) for posting in entry.postings],
    }


@bp.endpoint(
    "/ledger/trial-balance",
    "GET",
    summary="Debit and credit totals per account; debits equal credits",
    roles=STAFF,
    response=TrialBalanceOut,
    query={"as_of": "Count only entries dated on or before this day (YYYY-MM-DD)"},
)
def get_trial_balance(actor: Actor) -> TrialBalanceOut:
    """Every account of the chart with its debit total, credit total and balance
    (debit positive), derived from the postings. ``balanced`` is true when total
    debits equal total credits, which the ledger guarantees."""
    report = services.trial_balance(as_of=services.parse_as_of(request.args.get("as_of")))
    return TrialBalanceOut(
        as_of=report.as_of,
        accounts=[
            AccountTotalsOut(code=row.code, name=row.name, type=row.type, debit=row.debit,
                             credit=row.credit, balance=row.balance)
            for row in report.accounts
        ],
        total_debit=report.total_debit,
        total_credit=report.total_credit,
        balanced=report.balanced,
    )


@bp.endpoint(
    "/ledger/entries",
    "GET",
    summary="Journal entries with their postings, newest first",
    roles=STAFF,
    response=EntryOut,
    paginated=True,
    query={"kind": "Only entries of this kind, e.g. grant, round_close, reversal"},
)
def list_entries(actor: Actor) -> dict:
    """Newest entry date first (then newest recorded first)."""
    statement = (
        select(JournalEntry)
        .options(selectinload(JournalEntry.postings).selectinload(Posting.account))
        .order_by(JournalEntry.entry_date.desc(), JournalEntry.id.desc())
    )
    kind = request.args.get("kind", "").strip()
    if kind:
        statement = statement.where(JournalEntry.kind == kind)
    return paginate(statement, lambda entry: EntryOut(**_entry_fields(entry)))


@bp.endpoint(
    "/ledger/entries/<int:entry_id>",
    "GET",
    summary="One journal entry with its postings",
    roles=STAFF,
    response=EntryDetailOut,
)
def get_entry(actor: Actor, entry_id: int) -> EntryDetailOut:
    """``reversed_by_id`` names the entry that reversed this one, if any."""
    entry = db.session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound("No such journal entry.")
    reversal = services.reversal_of(entry.id)
    return EntryDetailOut(
        **_entry_fields(entry), reversed_by_id=reversal.id if reversal else None
    )
