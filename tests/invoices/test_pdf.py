"""Invoice PDFs: what they say for the worked example, pages, metadata, paper, how to pay, fonts, download.

Text is read back with poppler's ``pdftotext -layout``, page 1 is rendered
with ``pdftoppm``, metadata, page sizes and links with pypdf.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from pypdf import PdfReader

from buyersclub.actor import Actor
from buyersclub.db import db
from invoices import batch
from invoices import pdf as invoices_pdf
from invoices.models import Invoice, PaymentMethod
from invoices.services import credit_notes, issuing, payments
from orders import pdf
from orders.services import commitments
from tests.invoices.conftest import close_and_receive, issue_all, open_round
from tests.orders.test_pdf import text_of

ROOT = Path(__file__).resolve().parents[2]
A4 = (595, 842)
LETTER = (612, 792)
BANK = "Harbour Savings Bank\nAccount 0012 3456 78\nRouting 011000015"

pytestmark = pytest.mark.usefixtures("pdf_instance")


@pytest.fixture
def invoices(approved, app_ctx, monkeypatch):
    """The worked example's invoices by member (A, B, C, D), with the club's address and bank set."""
    monkeypatch.setitem(app_ctx.config, "CLUB_NAME", "Harbour Buyers' Club")
    monkeypatch.setitem(app_ctx.config, "CLUB_ADDRESS", "12 Quay Road\nPortland, ME 04101")
    monkeypatch.setitem(app_ctx.config, "CLUB_BANK_DETAILS", BANK)
    monkeypatch.setitem(app_ctx.config, "STRIPE_SECRET_KEY", None)
    monkeypatch.setitem(app_ctx.config, "PUBLIC_URL", None)
    return issue_all(approved)


def size_of(data: bytes, page: int = 0) -> tuple[int, int]:
    box = PdfReader(io.BytesIO(data)).pages[page].mediabox
    return round(float(box.width)), round(float(box.height))


def links_of(data: bytes) -> list[str]:
    found = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for annotation in page.get("/Annots") or []:
            action = annotation.get_object().get("/A") or {}
            if "/URI" in action:
                found.append(str(action["/URI"]))
    return found


def copy_of(invoice: Invoice, **changes) -> SimpleNamespace:
    """What the template reads of an invoice, with some of it changed (never saved)."""
    fields = {column.key: getattr(invoice, column.key) for column in Invoice.__table__.columns}
    return SimpleNamespace(**(fields | changes))


def squeeze(text: str) -> str:
    """Layout text with runs of spaces made one, to match a line's cells in order."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_the_invoice_says_who_what_and_how_much_for_a_subsidised_member(invoices, tmp_path, no_network):
    invoice = invoices["C"]

    data = invoices_pdf.render_invoice(invoice)

    assert data.startswith(b"%PDF-")
    text = squeeze(text_of(data, tmp_path))
    for expected in (
        f"Invoice {invoice.number}", "Harbour Buyers' Club", "12 Quay Road", "Portland, ME 04101",
        "Programme Cedar", f"Invoice number {invoice.number}",
        f"Issued {invoice.issued_on.isoformat()}", f"Due {invoice.due_on.isoformat()}",
        "Description Quantity Unit price Amount",
        # Goods at the club price; the fund's free units at zero with their value; the subsidy credit.
        "Naloxone nasal spray (box of 2 nasal doses) 108 $40.00 $4,320.00",
        "Naloxone nasal spray (box of 2 nasal doses), free 12 $0.00 $0.00",
        "supplied free by the club fund, value $372.00",
        "Subsidy from the club fund: naloxone -$4,320.00",
        # 108 of the 936 units bought: $28.85 of the $250.00 shipping.
        "Shipping: your share of $250.00, by units $28.85",
        "Total $28.85", "Balance due $28.85",
        f"Please pay $28.85 by {invoice.due_on.isoformat()}, quoting the invoice number",
        "Page 1 of 1",
    ):
        assert expected in text, expected
    assert "Paid" not in text and "Exempt" not in text
    assert no_network == []


def test_tax_and_an_exemption_certificate_are_printed(approved, app_ctx, monkeypatch, tmp_path):
    monkeypatch.setitem(app_ctx.config, "INVOICE_TAX_RATES", {"US-MA": "0.0625"})
    approved.members["A"].tax_exempt_certificate = "MA-ST5-88812"
    issued = {invoice.organisation_id: invoice
              for invoice in issuing.issue_round_invoices(approved.finance, approved.round.id)}

    exempt = squeeze(text_of(invoices_pdf.render_invoice(issued[approved.members["A"].id]), tmp_path))
    taxed = squeeze(text_of(invoices_pdf.render_invoice(issued[approved.members["B"].id]), tmp_path))

    assert "Exempt from sales tax: certificate MA-ST5-88812" in exempt and "Sales tax" not in exempt
    # B: 300 x $40.00 + $80.13 shipping = $12,080.13; 6.25% of it is $755.01.
    assert "Sales tax 6.25% (US-MA) $755.01" in taxed and "Total $12,835.14" in taxed
    assert "Exempt" not in taxed


def test_account_credit_applied_is_a_line(approved, admin, app_ctx, tmp_path):
    d = approved.members["D"]
    [first] = issuing.issue_round_invoices(approved.finance, approved.round.id, organisation_ids={d.id})
    payments.record_payment(approved.finance, first.id, PaymentMethod.CHEQUE, "CHQ-9", first.issued_on,
                            "100.00")  # $87.18 more than the $12.82 due: the member's account credit
    later = open_round(admin, approved.product, name="Naloxone, autumn")
    commitments.set_commitment(Actor.for_user(d.staff[0]), later.id, approved.product.id, quantity=24,
                               tolerance=0)
    close_and_receive(approved.admin, later, approved.product)

    [second] = issuing.issue_round_invoices(approved.finance, later.id, without_subsidy_run=True)

    text = squeeze(text_of(invoices_pdf.render_invoice(second), tmp_path))
    assert "Naloxone nasal spray (box of 2 nasal doses) 24 $40.00 $960.00" in text
    assert "Account credit applied -$87.18" in text and "Total $872.82" in text


def test_a_long_invoice_repeats_its_table_header_and_numbers_its_pages(invoices, tmp_path):
    invoice = invoices["C"]
    long = copy_of(invoice, lines=list(invoice.lines) * 25)
    html = invoices_pdf.invoice_html(long, settlement=payments.Settlement(total=invoice.total),
                                     round_name="Naloxone, spring")

    data = pdf.html_to_pdf(html)

    pages = len(PdfReader(io.BytesIO(data)).pages)
    assert pages >= 2
    second = squeeze(text_of(data, tmp_path, first=2, last=2))
    assert "Description Quantity Unit price Amount" in second  # the header, again
    assert "Subsidy from the club fund: naloxone -$4,320.00" in second  # and lines under it
    assert f"Page 2 of {pages}" in second and f"Invoice {invoice.number}" in second
    whole = squeeze(text_of(data, tmp_path))
    assert whole.count("Balance due $28.85") == 1 and whole.count("Page ") == pages


def test_metadata_and_paper_size(invoices, app_ctx, monkeypatch):
    invoice = invoices["A"]
    data = invoices_pdf.render_invoice(invoice)
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata.title == invoice.number
    assert reader.metadata.author == "Harbour Buyers' Club"
    assert size_of(data) == A4

    monkeypatch.setitem(app_ctx.config, "PAPER_SIZE", "Letter")
    assert size_of(invoices_pdf.render_invoice(invoice)) == LETTER


def test_bank_details_quote_the_number_and_the_pay_link_needs_stripe(invoices, app_ctx, monkeypatch,
                                                                     tmp_path):
    invoice = invoices["B"]
    data = invoices_pdf.render_invoice(invoice)
    text = squeeze(text_of(data, tmp_path))
    assert f"By bank transfer, with {invoice.number} as the reference:" in text
    assert "Harbour Savings Bank\nAccount 0012 3456 78\nRouting 011000015" in text
    assert "By card" not in text and links_of(data) == []

    monkeypatch.setitem(app_ctx.config, "STRIPE_SECRET_KEY", "sk_test_not_a_real_key")
    # Outside a request and without PUBLIC_URL there is no address to give: no link.
    assert "By card" not in text_of(invoices_pdf.render_invoice(invoice), tmp_path)

    monkeypatch.setitem(app_ctx.config, "PUBLIC_URL", "https://club.example.org")
    data = invoices_pdf.render_invoice(invoice)
    page = f"https://club.example.org/invoices/{invoice.id}"
    assert f"By card, on the invoice's page: {page}" in squeeze(text_of(data, tmp_path))
    assert links_of(data) == [page]

    monkeypatch.setitem(app_ctx.config, "PUBLIC_URL", None)
    with app_ctx.test_request_context():
        assert links_of(invoices_pdf.render_invoice(invoice)) == [f"http://club.test/invoices/{invoice.id}"]


def test_a_paid_invoice_says_so_and_asks_for_nothing(invoices, approved, app_ctx, monkeypatch, tmp_path):
    monkeypatch.setitem(app_ctx.config, "STRIPE_SECRET_KEY", "sk_test_not_a_real_key")
    monkeypatch.setitem(app_ctx.config, "PUBLIC_URL", "https://club.example.org")
    invoice = invoices["D"]
    payments.record_payment(approved.finance, invoice.id, PaymentMethod.BANK_TRANSFER, "T-1",
                            invoice.issued_on, "12.82")
    data = invoices_pdf.render_invoice(invoice)
    text = squeeze(text_of(data, tmp_path))
    assert "Total $12.82" in text and "Paid -$12.82" in text and "Balance due $0.00" in text
    assert "Paid. Nothing is due on this invoice." in text
    assert "How to pay" not in text and links_of(data) == []


def test_a_void_invoice_says_void_and_asks_for_nothing(invoices, approved, client, sign_in, finance,
                                                       tmp_path):
    invoice = invoices["B"]
    batch.render_round(approved.finance, approved.round.id, processes=1)  # its stored copy, now stale
    credit_notes.void_invoice(approved.finance, invoice.id, "Issued to the wrong member")
    sign_in(finance)
    text = squeeze(text_of(client.get(f"/invoices/{invoice.id}/pdf").data, tmp_path))
    assert "VOID. This invoice was cancelled: Issued to the wrong member." in text
    assert "Total $12,080.13" in text and "Balance due $0.00" in text and "How to pay" not in text


def test_page_one_renders_to_a_png_of_the_paper_s_shape(invoices, tmp_path):
    source = tmp_path / "invoice.pdf"
    source.write_bytes(invoices_pdf.render_invoice(invoices["C"]))
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(tmp_path / "page")], check=True, capture_output=True)
    with Image.open(tmp_path / "page.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        assert abs(width / height - 210 / 297) < 0.01  # A4
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])
        assert dark > 0.005 * width * height  # ink on the page, not a blank sheet


def test_member_data_cannot_make_the_invoice_fetch_anything(invoices, monkeypatch, tmp_path, no_network):
    invoice = invoices["A"]
    hostile = '<img src="http://x.io/t.png"> & Co'
    shown = copy_of(invoice, lines=invoice.lines, bill_to={**invoice.bill_to, "name": hostile})
    html = invoices_pdf.invoice_html(shown, settlement=payments.Settlement(total=invoice.total))
    assert hostile in text_of(pdf.html_to_pdf(html), tmp_path)  # printed as text, not fetched

    original = invoices_pdf.invoice_html
    monkeypatch.setattr(invoices_pdf, "invoice_html", lambda *args, **kwargs: original(*args, **kwargs)
                        .replace("</body>", '<img src="https://example.com/x.png"></body>'))
    with pytest.raises(pdf.PdfRefused, match=r"example\.com"):
        invoices_pdf.render_invoice(invoice)
    assert no_network == []


def test_the_fonts_are_the_package_s_own_not_the_system_s(invoices, tmp_path):
    """With a fontconfig that knows no font at all, the invoice still prints in DejaVu Sans."""
    (tmp_path / "invoice.html").write_text(invoices_pdf.invoice_html(invoices["C"]))
    (tmp_path / "fonts.conf").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n<fontconfig>'
        f'<dir>{tmp_path / "no-fonts"}</dir><cachedir>{tmp_path / "cache"}</cachedir></fontconfig>\n')
    script = ("import sys; from pathlib import Path; from orders import pdf; "
              "Path(sys.argv[2]).write_bytes(pdf.html_to_pdf(Path(sys.argv[1]).read_text()))")
    environment = {**os.environ, "FONTCONFIG_FILE": str(tmp_path / "fonts.conf"), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "invoice.html"), str(tmp_path / "out.pdf")],
                   check=True, capture_output=True, env=environment, cwd=ROOT)
    fonts = subprocess.run(["pdffonts", str(tmp_path / "out.pdf")], check=True, capture_output=True,
                           text=True).stdout
    assert "DejaVu-Sans-Bold" in fonts and "DejaVu-Sans " in fonts
    assert "Programme Cedar" in text_of((tmp_path / "out.pdf").read_bytes(), tmp_path)


# --- Download ----------------------------------------------------------------------------------


def test_member_staff_download_their_own_invoice_and_no_other(client, sign_in, invoices, approved, tmp_path):
    own, other = invoices["C"], invoices["A"]
    sign_in(approved.members["C"].staff[0])
    response = client.get(f"/invoices/{own.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'inline; filename="{own.number}.pdf"'
    assert "Programme Cedar" in text_of(response.data, tmp_path)
    assert client.get(f"/invoices/{other.id}/pdf").status_code == 404
    page = client.get(f"/invoices/{own.id}").get_data(as_text=True)
    assert f'href="/invoices/{own.id}/pdf">Download PDF' in page
    listing = client.get("/invoices").get_data(as_text=True)
    assert f'href="/invoices/{own.id}/pdf">PDF' in listing and f"/invoices/{other.id}/pdf" not in listing


def test_finance_downloads_any_invoice(client, sign_in, finance, invoices):
    sign_in(finance)
    for invoice in invoices.values():
        response = client.get(f"/invoices/{invoice.id}/pdf")
        assert response.status_code == 200 and response.data.startswith(b"%PDF-")


def test_the_api_serves_the_pdf_with_a_token(client, auth, finance, invoices, approved, tmp_path):
    own = invoices["D"]
    response = client.get(f"/api/v1/invoices/{own.id}/pdf", headers=auth(approved.members["D"].staff[0]))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert f"Invoice {own.number}" in text_of(response.data, tmp_path)
    staff = auth(approved.members["D"].staff[0])
    other = client.get(f"/api/v1/invoices/{invoices['A'].id}/pdf", headers=staff)
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/invoices/{own.id}/pdf").status_code == 401
    assert client.get(f"/api/v1/invoices/{own.id}/pdf", headers=auth(finance)).status_code == 200
    described = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/invoices/{invoice_id}/pdf"]
    assert described["get"]["description"].startswith("`application/pdf`.")


def test_the_stored_file_is_served_until_the_invoice_changes(client, sign_in, finance, invoices, approved,
                                                             tmp_path):
    invoice = invoices["D"]
    result = batch.render_round(approved.finance, approved.round.id, processes=1)
    assert invoice.number in result.written
    stored = invoices_pdf.stored_path(invoice).read_bytes()
    sign_in(finance)
    assert client.get(f"/invoices/{invoice.id}/pdf").data == stored

    payments.record_payment(approved.finance, invoice.id, PaymentMethod.CHEQUE, "CHQ-1", invoice.issued_on,
                            "5.00")
    db.session.commit()
    fresh = client.get(f"/invoices/{invoice.id}/pdf").data
    assert fresh != stored
    text = squeeze(text_of(fresh, tmp_path))
    assert "Paid -$5.00" in text and "Balance due $7.82" in text
