"""An invoice as a PDF, with ``orders.pdf`` (WeasyPrint, the safe fetcher, the shared base template).

What the document says: the club (``CLUB_NAME``, ``CLUB_ADDRESS``), the
invoice number, issue and due dates, who is billed (``invoice.bill_to``, with
the tax exemption certificate when exempt), every line as issued (goods at the
club price, free units at zero with their value, subsidy credits, shipping,
tax, account credit applied), the total, what has been paid and credited
since, the balance due, and how to pay it: by bank transfer to
``CLUB_BANK_DETAILS`` quoting the invoice number, and by card on the invoice's
page when Stripe is configured (``STRIPE_SECRET_KEY``). That page's address is
``PUBLIC_URL`` plus its path; without ``PUBLIC_URL`` it is the request's own
host, and outside a request (the batch) the link is left out. Title = the
invoice number, author = the club.

Stored copies: ``invoices.batch`` renders a round's invoices to files under the
instance folder (``invoices/<round>/<NUMBER>.pdf``). :func:`invoice_pdf` serves
that file while it still says what a fresh rendering would (the invoice is
live, nothing paid or credited since); otherwise it renders on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, has_request_context, render_template

from buyersclub.db import db
from buyersclub.money import ZERO, format_money
from invoices.links import invoice_page_url
from invoices.models import Invoice, InvoiceStatus
from invoices.services import payments
from orders import pdf
from orders.models import Round

TEMPLATE = "invoices/pdf/invoice.html"
FOLDER = "invoices"


@dataclass(frozen=True)
class Prepared:
    """One invoice ready for WeasyPrint: its number, where the batch keeps it, and its HTML."""

    number: str
    path: Path
    html: str


def filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"


def round_folder(round_id: int) -> Path:
    """Where the batch keeps a round's invoice PDFs: ``<instance>/invoices/<round_id>/``."""
    return Path(current_app.instance_path) / FOLDER / str(int(round_id))


def stored_path(invoice: Invoice) -> Path:
    # Numbers are letters, digits and dashes (INV-2026-00001); keep it so whatever the prefix.
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in invoice.number)
    return round_folder(invoice.round_id) / f"{safe}.pdf"


def pay_url(invoice: Invoice) -> str | None:
    """The invoice's page, where a member pays by card; None without Stripe or an address to give."""
    if not current_app.config.get("STRIPE_SECRET_KEY"):
        return None
    if current_app.config.get("PUBLIC_URL") or has_request_context():
        return invoice_page_url(invoice.id)
    return None


def invoice_html(invoice: Invoice, *, settlement: payments.Settlement | None = None,
                 round_name: str | None = None) -> str:
    """The invoice's HTML for WeasyPrint (needs an application context)."""
    found = settlement or payments.settlement(invoice)
    void = invoice.status == InvoiceStatus.VOID
    if round_name is None:
        round_ = db.session.get(Round, invoice.round_id)
        round_name = round_.name if round_ is not None else None
    context: dict[str, Any] = {
        "invoice": invoice,
        "bill": invoice.bill_to or {},
        "settlement": found,
        "balance_due": ZERO if void else found.balance_due,
        "void": void,
        "round_name": round_name,
        "club_address": current_app.config.get("CLUB_ADDRESS"),
        "bank_details": current_app.config.get("CLUB_BANK_DETAILS"),
        "pay_url": None if void else pay_url(invoice),
        "format_money": format_money,
    }
    return render_template(TEMPLATE, paper_size=pdf.paper_size(), **context)


def render_invoice(invoice: Invoice, *, settlement: payments.Settlement | None = None) -> bytes:
    """A fresh rendering of the invoice as PDF bytes (raises ``orders.pdf.PdfError`` on failure)."""
    return pdf.html_to_pdf(invoice_html(invoice, settlement=settlement))


def prepare(invoice: Invoice, settlement: payments.Settlement, round_name: str | None) -> Prepared:
    """What the batch hands to a worker process: everything but the rendering itself."""
    return Prepared(invoice.number, stored_path(invoice),
                    invoice_html(invoice, settlement=settlement, round_name=round_name))


def stored_copy_is_current(invoice: Invoice, settlement: payments.Settlement) -> bool:
    """The batch's file says what a fresh rendering would: the invoice is live and untouched."""
    return invoice.status == InvoiceStatus.ISSUED and not settlement.paid and not settlement.credited


def invoice_pdf(invoice: Invoice) -> bytes:
    """The batch's stored file when present and current; else a fresh rendering."""
    found = payments.settlement(invoice)
    if stored_copy_is_current(invoice, found):
        try:
            data = stored_path(invoice).read_bytes()
        except OSError:
            data = b""
        if data.startswith(b"%PDF-"):
            return data
    return render_invoice(invoice, settlement=found)
