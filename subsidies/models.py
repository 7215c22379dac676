"""The subsidy fund's records: policy versions, grants, allocation runs, awards and free stock.

The fund's money itself lives in the ledger (``buyersclub.ledger``): one
equity account per restriction. These tables say why money moved.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from buyersclub.accounts.models import enum_column
from buyersclub.db import Base, utcnow
from buyersclub.ledger.models import MONEY


class SubsidyPolicy(Base):
    """One version of the allocation policy. A change is a new version; old ones stay.

    ``weights`` gives the need-weight points per input (see
    ``subsidies.policy``); ``max_share`` the largest share of a member's bill the
    fund may pay, per category; ``priority`` the order categories are funded in.
    """

    __tablename__ = "subsidy_policies"
    __table_args__ = (
        CheckConstraint("floor_amount >= 0", name="floor_not_negative"),
        CheckConstraint("member_cap IS NULL OR member_cap > 0", name="member_cap_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_share: Mapped[dict[str, str]] = mapped_column(JSON)
    priority: Mapped[list[str]] = mapped_column(JSON)
    floor_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    member_cap: Mapped[Decimal | None] = mapped_column(MONEY)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Grant(Base):
    """A grant or donation into the fund, optionally restricted to one product category."""

    __tablename__ = "grants"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(160))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    received_on: Mapped[date]
    restricted_to: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    journal_entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class RunStatus(enum.StrEnum):
    PREVIEW = "preview"
    APPROVED = "approved"
    DISCARDED = "discarded"


class SubsidyRun(Base):
    """An allocation of the fund for one round: a preview until approved or discarded.

    ``inputs`` is a snapshot of everything the engine was given (members,
    weights and their inputs, bills, caps, floors, money by restriction,
    priority), so re-computing from it gives the same awards.
    """

    __tablename__ = "subsidy_runs"
    __table_args__ = (
        # At most one approved run per round, enforced by the database.
        Index(
            "uq_subsidy_runs_one_approved_per_round",
            "round_id",
            unique=True,
            sqlite_where=text("status = 'approved'"),
            postgresql_where=text("status = 'approved'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("subsidy_policies.id"))
    status: Mapped[RunStatus] = mapped_column(
        enum_column(RunStatus, "subsidy_run_status"), default=RunStatus.PREVIEW
    )
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    level: Mapped[dict[str, str] | None] = mapped_column(JSON)  # λ per category, as "p/q"
    total_awarded: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.00"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))

    policy: Mapped[SubsidyPolicy] = relationship()
    awards: Mapped[list[Award]] = relationship(back_populates="run", order_by="Award.id")
    overrides: Mapped[list[AwardOverride]] = relationship(order_by="AwardOverride.id")


class Award(Base):
    """One member's award for one category in a run, with why it is what it is."""

    __tablename__ = "awards"
    __table_args__ = (
        UniqueConstraint("run_id", "organisation_id", "category"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("subsidy_runs.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    bill: Mapped[Decimal] = mapped_column(MONEY)
    cap: Mapped[Decimal] = mapped_column(MONEY)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    # Which limit bound it: level, cap, floor, override, leftover cent…
    binding_limit: Mapped[str] = mapped_column(String(60))
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)

    run: Mapped[SubsidyRun] = relationship(back_populates="awards")


class AwardOverride(Base):
    """An admin's fixed award for one member and category in a run, with the reason."""

    __tablename__ = "award_overrides"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("subsidy_runs.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    category: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A later override of the same member and category replaces this one.
    superseded_at: Mapped[datetime | None]


class FreeStockAward(Base):
    """Whole units of fund free stock given to an eligible member, with their value."""

    __tablename__ = "free_stock_awards"
    __table_args__ = (
        CheckConstraint("units > 0", name="units_positive"),
        UniqueConstraint("round_id", "product_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    units: Mapped[int]
    unit_value: Mapped[Decimal] = mapped_column(MONEY)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("subsidy_runs.id"))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
