"""Invoices, credit notes, payments, refunds and the Stripe records behind them.

An issued invoice never changes: corrections are credit notes, and a void
keeps its number. Numbers come from gapless yearly series (``DocumentSeries``
rows locked while a number is taken). What a member owes is derived from these
documents and agrees with the ledger's receivables; nothing stores a balance.

How the ledger already holds an invoice's parts: the round's close posted
the goods at the club price to the member's receivable, and the approved
subsidy run credited its awards. Issuing the invoice posts only what is new
on it: shipping, tax, and account credit applied.
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


class SeriesKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class DocumentSeries(Base):
    """The last number used in one yearly series; locked ``FOR UPDATE`` to take the next."""

    __tablename__ = "document_series"
    __table_args__ = (UniqueConstraint("kind", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SeriesKind] = mapped_column(enum_column(SeriesKind, "series_kind"))
    year: Mapped[int]
    last_number: Mapped[int] = mapped_column(default=0)


class InvoiceStatus(enum.StrEnum):
    ISSUED = "issued"
    VOID = "void"


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("number"),
        # One live invoice per member per round; a void one keeps its number beside its replacement.
        Index(
            "uq_invoices_one_issued_per_round_member",
            "round_id",
            "organisation_id",
            unique=True,
            sqlite_where=text("status = 'issued'"),
            postgresql_where=text("status = 'issued'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    year: Mapped[int]
    sequence_number: Mapped[int]
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    status: Mapped[InvoiceStatus] = mapped_column(
        enum_column(InvoiceStatus, "invoice_status"), default=InvoiceStatus.ISSUED
    )
    issued_on: Mapped[date]
    due_on: Mapped[date]
    currency: Mapped[str] = mapped_column(String(3))
    # What the member was, when the invoice was issued: name, site address, exemption.
    bill_to: Mapped[dict[str, Any]] = mapped_column(JSON)
    tax_exempt_certificate: Mapped[str | None] = mapped_column(String(80))
    total: Mapped[Decimal] = mapped_column(MONEY)
    subsidy_run_id: Mapped[int | None] = mapped_column(ForeignKey("subsidy_runs.id"))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(Text)
    last_reminder_at: Mapped[datetime | None]
    # When the member's staff were e-mailed that it was issued (invoices.services.reminders).
    notified_at: Mapped[datetime | None]

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position"
    )


class LineKind(enum.StrEnum):
    GOODS = "goods"
    FREE_GOODS = "free_goods"
    SUBSIDY_CREDIT = "subsidy_credit"
    SHIPPING = "shipping"
    TAX = "tax"
    ACCOUNT_CREDIT = "account_credit"


class InvoiceLine(Base):
    """One line; credits (subsidy, account credit) have negative amounts."""

    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int]
    kind: Mapped[LineKind] = mapped_column(enum_column(LineKind, "invoice_line_kind"))
    description: Mapped[str] = mapped_column(String(255))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    category: Mapped[str | None] = mapped_column(String(32))
    quantity: Mapped[int | None]
    unit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    # E.g. "supplied free by the club fund, value $744.00".
    note: Mapped[str | None] = mapped_column(String(255))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class CreditNote(Base):
    """A correction to an issued invoice: the whole of it, some lines, or an amount."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("number"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    year: Mapped[int]
    sequence_number: Mapped[int]
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    issued_on: Mapped[date]
    reason: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    BANK_TRANSFER = "bank_transfer"
    CHEQUE = "cheque"
    ACCOUNT_CREDIT = "account_credit"
    OTHER = "other"


class Payment(Base):
    """Money received from a member, applied to an invoice; any excess is account credit."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("applied >= 0 AND applied <= amount", name="applied_within_amount"),
        UniqueConstraint("stripe_payment_intent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    method: Mapped[PaymentMethod] = mapped_column(enum_column(PaymentMethod, "payment_method"))
    reference: Mapped[str | None] = mapped_column(String(120))
    received_on: Mapped[date]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    # How much of it paid the invoice; the rest became account credit.
    applied: Mapped[Decimal] = mapped_column(MONEY)
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(255))
    stripe_checkout_session: Mapped[str | None] = mapped_column(String(255))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        UniqueConstraint("stripe_refund"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    reason: Mapped[str] = mapped_column(Text)
    stripe_refund: Mapped[str | None] = mapped_column(String(255))
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Stripe could not make it (``charge.refund.updated``): the money came back, and
    # ``failure_entry_id`` reverses what ``journal_entry_id`` moved. A failed refund counts for nothing.
    failed_at: Mapped[datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))


# In a query: the refunds that stand, those Stripe did not turn back. Every sum of refunds uses it.
REFUND_STANDS = Refund.failed_at.is_(None)


class CheckoutStatus(enum.StrEnum):
    OPEN = "open"  # the member may still pay on Stripe's page
    PENDING = "pending"  # completed, waiting for a bank debit to clear
    COMPLETED = "completed"  # paid: a card payment is recorded
    FAILED = "failed"  # the bank debit failed; nothing was posted
    EXPIRED = "expired"  # Stripe closed the session unpaid


class CheckoutAttempt(Base):
    """One Stripe Checkout Session made for an invoice (its idempotency key names the attempt).

    Webhooks move it from open to its outcome. ``problem`` says what finance
    should look at: the amount paid differed from the session's amount or from
    the balance due, or the invoice was void when the money arrived.
    """

    __tablename__ = "checkout_attempts"
    __table_args__ = (UniqueConstraint("invoice_id", "attempt"), UniqueConstraint("session_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    attempt: Mapped[int]
    session_id: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    amount_cents: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[CheckoutStatus] = mapped_column(
        enum_column(CheckoutStatus, "checkout_status"), default=CheckoutStatus.OPEN,
        server_default=CheckoutStatus.OPEN.value)
    # When Stripe closes the session unpaid (from the session itself).
    expires_at: Mapped[datetime | None]
    received_cents: Mapped[int | None]
    problem: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]


class StripeEvent(Base):
    """A webhook event handled once: stored in the same transaction as its effect."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    created: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(255))
