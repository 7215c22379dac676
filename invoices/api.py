"""Invoices in the JSON API (API.md): issuing a round's, reading them, payments, credit notes, void.

Money is a string with two decimals. Finance issues, records and corrects;
finance and administrators read every invoice; member staff read their own
organisation's (another organisation's invoice is 404).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, paginate, parse_body
from buyersclub.db import db
from buyersclub.errors import InvalidInput
from buyersclub.money import from_cents
from invoices import pdf as invoices_pdf
from invoices.models import CreditNote, Invoice, InvoiceStatus, LineKind, Payment, PaymentMethod
from invoices.services import checkout, credit_notes, issuing, payments, queries, reminders
from orders import pdf
from orders.services.rounds import get_round

bp = ApiBlueprint("invoices_api", __name__, tag="invoices")

FINANCE = (Role.FINANCE,)
INVOICE = "/invoices/<int:invoice_id>"


# --- Input -------------------------------------------------------------------------------------


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    without_subsidy_run: StrictBool = Field(
        default=False, description="Issue even though the round's subsidy run is not approved")


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: PaymentMethod = Field(description="bank_transfer, cheque or other")
    reference: str | None = Field(default=None, max_length=120,
                                  description="The bank reference or cheque number")
    received_on: date = Field(description="The day the money arrived (YYYY-MM-DD), not in the future")
    amount: str = Field(description="Money as a string; more than the balance due becomes account "
                                    "credit", examples=["250.00"])


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=500, description="Why; printed on the credit note")
    amount: str | None = Field(default=None, description="Credit this amount (shared across goods, "
                               "shipping and tax in proportion); with neither amount nor line_ids, "
                               "the whole open amount")
    line_ids: list[StrictInt] | None = Field(default=None, description="Credit these goods, shipping "
                                             "or tax lines in full")


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=500, description="Why the invoice was issued in error")


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: str = Field(description="Money as a string, at most what is left of the payment")
    reason: str = Field(max_length=500)


# --- Output ------------------------------------------------------------------------------------


class LineOut(BaseModel):
    id: int
    position: int
    kind: LineKind
    description: str
    product_id: int | None
    category: str | None
    quantity: int | None
    unit_price: Decimal | None
    amount: Decimal = Field(description="Credits (subsidy, account credit) are negative")
    note: str | None


class PaymentOut(BaseModel):
    id: int
    invoice_id: int | None
    method: PaymentMethod
    reference: str | None
    received_on: date
    amount: Decimal
    applied: Decimal = Field(description="What paid the invoice; the rest became account credit")
    account_credit: Decimal
    refunded: Decimal


class CreditNoteOut(BaseModel):
    id: int
    number: str
    invoice_id: int
    issued_on: date
    reason: str
    amount: Decimal
    lines: list[dict[str, Any]]


class InvoiceOut(BaseModel):
    id: int
    number: str
    round_id: int
    organisation_id: int
    status: InvoiceStatus
    status_label: str = Field(description="open, partly paid, paid, overdue or void")
    issued_on: date
    due_on: date
    currency: str
    total: Decimal
    paid: Decimal
    credited: Decimal
    balance_due: Decimal
    bill_to: dict[str, Any]
    tax_exempt_certificate: str | None
    subsidy_run_id: int | None
    void_reason: str | None
    notified_at: datetime | None = Field(
        None, description="When the member's staff were e-mailed that it was issued; null until then")


class InvoiceDetailOut(InvoiceOut):
    lines: list[LineOut]
    payments: list[PaymentOut]
    credit_notes: list[CreditNoteOut]


class CheckoutOut(BaseModel):
    url: str = Field(description="Stripe's payment page: send the payer there")
    session_id: str
    attempt: int = Field(description="The invoice's checkout attempt this session belongs to")
    amount: Decimal = Field(description="What the page asks for: the balance due when it was made")


class IssuedOut(BaseModel):
    round_id: int
    issued: list[InvoiceOut]


class NoticeOut(BaseModel):
    invoice_id: int
    number: str
    organisation: str
    outcome: str = Field(description="sent, no recipients (no active member staff), failed, or no longer "
                                     "due (told by another run, or void)")
    recipients: int = Field(description="How many of the member's staff it was sent to")
    problem: str | None


class NoticesOut(BaseModel):
    round_id: int
    sent: int
    notices: list[NoticeOut]


def invoice_out(invoice: Invoice, found: payments.Settlement | None = None) -> InvoiceOut:
    found = found or payments.settlement(invoice)
    void = invoice.status == InvoiceStatus.VOID
    return InvoiceOut(
        id=invoice.id, number=invoice.number, round_id=invoice.round_id,
        organisation_id=invoice.organisation_id, status=invoice.status,
        status_label=payments.status_label(invoice, found), issued_on=invoice.issued_on,
        due_on=invoice.due_on, currency=invoice.currency, total=invoice.total, paid=found.paid,
        credited=found.credited, balance_due=Decimal("0.00") if void else found.balance_due,
        bill_to=invoice.bill_to, tax_exempt_certificate=invoice.tax_exempt_certificate,
        subsidy_run_id=invoice.subsidy_run_id, void_reason=invoice.void_reason,
        notified_at=invoice.notified_at)


def payment_out(payment: Payment, refunded: Decimal) -> PaymentOut:
    return PaymentOut(id=payment.id, invoice_id=payment.invoice_id, method=payment.method,
                      reference=payment.reference, received_on=payment.received_on, amount=payment.amount,
                      applied=payment.applied, account_credit=payment.amount - payment.applied,
                      refunded=refunded)


def credit_note_out(note: CreditNote) -> CreditNoteOut:
    return CreditNoteOut(id=note.id, number=note.number, invoice_id=note.invoice_id, issued_on=note.issued_on,
                         reason=note.reason, amount=note.amount, lines=note.lines)


def detail_out(invoice: Invoice) -> InvoiceDetailOut:
    summary = invoice_out(invoice)
    return InvoiceDetailOut(
        **summary.model_dump(),
        lines=[LineOut.model_validate(line, from_attributes=True) for line in invoice.lines],
        payments=[payment_out(payment, refunded) for payment, refunded in payments.payments_for(invoice)],
        credit_notes=[credit_note_out(note) for note in credit_notes.credit_notes_for(invoice)],
    )


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number.", field=name) from exc


def _flag_arg(name: str) -> bool:
    raw = (request.args.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidInput(f"{name} must be true or false.", field=name)


# --- Endpoints ---------------------------------------------------------------------------------


@bp.endpoint("/rounds/<int:round_id>/invoices", "POST", summary="Issue a round's invoices", roles=FINANCE,
             response=IssuedOut, status=201)
def issue_invoices(actor: Actor, round_id: int):
    """Body optional: `{"without_subsidy_run": true}` issues even though the round's subsidy run is not
    approved. One invoice per member with a current allocation and no live invoice for the round: a
    second call issues only the missing ones (an empty list when none is missing). 409 when the round
    has not closed, or its subsidy run is not approved and `without_subsidy_run` is not true."""
    body = parse_body(IssueIn) if request.get_data(cache=True).strip() else IssueIn()
    issued = issuing.issue_round_invoices(actor, round_id, without_subsidy_run=body.without_subsidy_run)
    return IssuedOut(round_id=round_id, issued=[invoice_out(invoice) for invoice in issued])


@bp.endpoint("/rounds/<int:round_id>/invoices/notices", "POST", summary="E-mail members their new invoices",
             roles=FINANCE, response=NoticesOut)
def send_notices(actor: Actor, round_id: int):
    """Each live invoice of the round whose member has not been told yet: one e-mail to the member's
    active staff with the total, the balance due, the link and how to pay; marked so nobody is told
    twice (a repeated call sends nothing new). Each invoice is committed on its own, its mail sent
    after that commit; one nobody could be reached for stays unmarked, for the next call or the
    scheduled `send-reminders`."""
    get_round(actor, round_id)
    summary = reminders.send_notices(actor, commit=db.session.commit, round_id=round_id)
    return NoticesOut(round_id=round_id, sent=summary.sent, notices=[
        NoticeOut(invoice_id=notice.invoice_id, number=notice.number, organisation=notice.organisation,
                  outcome=notice.outcome, recipients=len(notice.recipients), problem=notice.problem)
        for notice in summary.reminders])


@bp.endpoint("/invoices", "GET", summary="Invoices (member staff: their own)", response=InvoiceOut,
             paginated=True, query={
                 "status": "open, partly paid (or partly_paid), paid, overdue or void",
                 "round_id": "only this round's", "organisation_id": "finance: only this member's",
                 "overdue": "true: only those with money due after their due date"})
def list_invoices(actor: Actor):
    """Newest first. Finance and administrators see every member's invoices."""
    statement = queries.invoices_for(
        actor, status=request.args.get("status") or None, round_id=_int_arg("round_id"),
        organisation_id=_int_arg("organisation_id"), overdue=_flag_arg("overdue"))
    return paginate(statement, serialise_page=invoices_out)


def invoices_out(invoices: list[Invoice]) -> list[InvoiceOut]:
    """A page of invoices with their settlements read in bulk, not per invoice."""
    found = payments.settlements(invoices)
    return [invoice_out(invoice, found[invoice.id]) for invoice in invoices]


@bp.endpoint(INVOICE, "GET", summary="One invoice with its lines, payments and credit notes",
             response=InvoiceDetailOut)
def get_invoice(actor: Actor, invoice_id: int):
    """Member staff: their own organisation's only (404 otherwise)."""
    return detail_out(issuing.get_invoice(actor, invoice_id))


@bp.endpoint(INVOICE + "/pdf", "GET", summary="One invoice as a PDF")
def get_invoice_pdf(actor: Actor, invoice_id: int):
    """`application/pdf`. The invoice as printed: the club, the member billed, the lines, the total,
    what has been paid and credited, the balance due and how to pay it. The file the batch rendered
    when it is still current, else rendered now. Member staff: their own organisation's only (404
    otherwise)."""
    invoice = issuing.get_invoice(actor, invoice_id)
    return pdf.pdf_response(invoices_pdf.invoice_pdf(invoice), invoices_pdf.filename(invoice))


@bp.endpoint(INVOICE + "/payments", "POST", summary="Record a payment (bank transfer, cheque, other)",
             roles=FINANCE, body=PaymentIn, response=PaymentOut, status=201)
def record_payment(actor: Actor, invoice_id: int, body: PaymentIn):
    """Pays the balance due at most; the excess becomes the member's account credit, used by its next
    invoice. Send an Idempotency-Key: a repeated request is replayed, not recorded twice. 409 for a void
    invoice."""
    payment = payments.record_payment(actor, invoice_id, body.method, body.reference, body.received_on,
                                      body.amount)
    return payment_out(payment, Decimal("0.00"))


@bp.endpoint(INVOICE + "/checkout", "POST", summary="A Stripe Checkout page to pay the balance due by card",
             response=CheckoutOut, status=201)
def start_checkout(actor: Actor, invoice_id: int):
    """Member staff (their own organisation's invoice; another's is 404) and finance. 201 with a new
    session; 200 with the session still open for the same amount (a repeated request reuses it). 409
    when the invoice is void, nothing is due or card payments are not configured; 502 when Stripe fails
    (nothing recorded). The invoice is marked paid only when Stripe's webhook confirms the payment."""
    started = checkout.start_checkout(actor, invoice_id)
    attempt = started.attempt
    out = CheckoutOut(url=attempt.url, session_id=attempt.session_id, attempt=attempt.attempt,
                      amount=from_cents(attempt.amount_cents))
    return out, 200 if started.reused else 201


@bp.endpoint("/payments/<int:payment_id>/refunds", "POST", summary="Refund a payment",
             roles=FINANCE, body=RefundIn, response=PaymentOut, status=201)
def refund_payment(actor: Actor, payment_id: int, body: RefundIn):
    """Never more than paid less earlier refunds; out of the payment's account credit first, then out of
    what it paid on the invoice (which is then due again). A card payment is refunded through Stripe
    first (502 and nothing recorded when Stripe fails). Returns the payment as it now stands."""
    refund = payments.refund_payment(actor, payment_id, body.amount, body.reason)
    payment = db.session.get(Payment, refund.payment_id)
    refunded = payments.refunded_of(payment)
    return payment_out(payment, refunded)


@bp.endpoint(INVOICE + "/credit-notes", "POST", summary="Issue a credit note", roles=FINANCE,
             body=CreditNoteIn, response=CreditNoteOut, status=201)
def issue_credit_note(actor: Actor, invoice_id: int, body: CreditNoteIn):
    """By `amount`, by `line_ids`, or (neither) the whole open amount; never more than the balance due
    (409). Numbered CN-YYYY-NNNNN."""
    note = credit_notes.issue_credit_note(actor, invoice_id, reason=body.reason, amount=body.amount,
                                          line_ids=body.line_ids)
    return credit_note_out(note)


@bp.endpoint(INVOICE + "/void", "POST", summary="Void an invoice issued in error", roles=FINANCE,
             body=VoidIn, response=InvoiceDetailOut)
def void_invoice(actor: Actor, invoice_id: int, body: VoidIn):
    """Only with no payment and no credit note on it (409 otherwise). It keeps its number; issuing the
    round's invoices again issues the member's replacement."""
    return detail_out(credit_notes.void_invoice(actor, invoice_id, body.reason))
