"""The double-entry ledger: accounts, journal entries and postings.

A posting's amount is signed: positive is a debit, negative a credit. The
postings of an entry sum to zero (checked in ``ledger.services`` and, on
PostgreSQL, by a deferred constraint trigger). Entries are append-only: a
mistake is undone by a reversal entry that points at the original.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from buyersclub.accounts.models import enum_column
from buyersclub.db import Base, utcnow

MONEY = Numeric(12, 2, asdecimal=True)


class AccountType(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[AccountType] = mapped_column(enum_column(AccountType, "account_type"))
    # For fund accounts: the product category the money is restricted to.
    restricted_to: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<LedgerAccount {self.code} {self.name}>"


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    memo: Mapped[str] = mapped_column(String(255))
    # What kind of business event this is ("grant", "round_close", "reversal", …).
    kind: Mapped[str] = mapped_column(String(40), index=True)
    # The record that caused it, e.g. ("round", 12).
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[int | None]
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    postings: Mapped[list[Posting]] = relationship(
        back_populates="entry", order_by="Posting.id", cascade="save-update, merge"
    )
    reverses: Mapped[JournalEntry | None] = relationship(
        remote_side=[id], foreign_keys=[reverses_id]
    )

    __table_args__ = (Index("ix_journal_entries_source", "source_type", "source_id"),)


class Posting(Base):
    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_postings_account_org", "account_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    # The member organisation a receivable or credit belongs to (a sub-ledger).
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    memo: Mapped[str | None] = mapped_column(String(255))

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")
    account: Mapped[LedgerAccount] = relationship()
