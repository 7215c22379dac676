"""PDF rendering: what the documents say, paper size, page numbers, metadata, and the fetcher.

Text is read back with Debian's ``pdftotext``; page 1 is rendered to PNG with
``pdftoppm``; metadata and page sizes with pypdf.
"""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from buyersclub.actor import Actor
from orders import pdf
from orders.delivery_api import purchase_order_pdf
from orders.models import RoundStatus
from orders.services import delivery
from tests.orders.test_delivery import Member, closed_round, line, receive, worked_example

TIMES = "\u00d7"  # cases x pack size, as printed
# A 1x1 transparent PNG.
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def text_of(data: bytes, tmp_path: Path, *, first: int | None = None, last: int | None = None) -> str:
    source = tmp_path / "doc.pdf"
    source.write_bytes(data)
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    return subprocess.run(["pdftotext", "-layout", *pages, str(source), "-"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def request_ctx(app_ctx):
    with app_ctx.test_request_context():
        yield app_ctx


def test_the_purchase_order_lists_products_units_costs_and_totals(session, admin, request_ctx, tmp_path,
                                                                   no_network):
    setup = worked_example(status=RoundStatus.CLOSED)
    setup.round.supplier.name = "Remedy Wholesale"
    closed_round([Member("E", 48)], units=48, round_=setup.round, product_name="Safer-smoking pipe",
                 unit_cost="1.25")
    order = delivery.purchase_order(Actor.for_user(admin), setup.round.id)

    data = purchase_order_pdf(order)

    assert data.startswith(b"%PDF-")
    text = text_of(data, tmp_path)
    assert f"Purchase order PO-{setup.round.id:05d}" in text
    assert "Remedy Wholesale" in text and setup.round.name in text
    naloxone, pipe = order.lines[0].product, order.lines[1].product
    for expected in (naloxone.sku, naloxone.name, f"39 {TIMES} 24", "936", "$38.00", "$35,568.00",
                     pipe.sku, "Safer-smoking pipe", f"2 {TIMES} 24", "48", "$1.25", "$60.00",
                     "984", "$35,628.00", "5 member sites", "Page 1 of 1"):
        assert expected in text, expected
    assert no_network == []


def test_page_one_renders_to_a_png(session, admin, request_ctx, tmp_path):
    setup = worked_example(status=RoundStatus.ORDERED)
    (tmp_path / "po.pdf").write_bytes(purchase_order_pdf(delivery.purchase_order(Actor.for_user(admin),
                                                                                setup.round.id)))
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile",
                    str(tmp_path / "po.pdf"), str(tmp_path / "page")], check=True, capture_output=True)
    image = tmp_path / "page.png"
    assert image.exists() and image.read_bytes().startswith(b"\x89PNG")
    assert image.stat().st_size > 1000  # not a blank page


def test_metadata_and_paper_size_follow_the_document_and_the_configuration(session, admin, request_ctx,
                                                                           monkeypatch):
    setup = worked_example(status=RoundStatus.CLOSED)
    order = delivery.purchase_order(Actor.for_user(admin), setup.round.id)
    reader = PdfReader(io.BytesIO(purchase_order_pdf(order)))
    assert reader.metadata.title == f"Purchase order {order.number} · {setup.round.name}"
    assert reader.metadata.author == request_ctx.config["CLUB_NAME"]
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points

    monkeypatch.setitem(request_ctx.config, "PAPER_SIZE", "letter")
    box = PdfReader(io.BytesIO(purchase_order_pdf(order))).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)

    monkeypatch.setitem(request_ctx.config, "PAPER_SIZE", "A4; } body { display: none")
    assert pdf.paper_size() == "A4"


def test_a_long_table_repeats_its_header_and_numbers_its_pages(session, admin, request_ctx, tmp_path):
    setup = closed_round([Member("A", 24)], units=24)
    receive(admin, setup, line(setup, 24, "LOT-1"))
    packing = delivery.packing_list(Actor.for_user(admin), setup.round.id, setup.orgs["A"])
    many = delivery.PackingList(round=packing.round, organisation=packing.organisation,
                                lines=[packing.lines[0]] * 80, packed=True)
    data = pdf.render_pdf("orders/pdf/packing_list.html", packing=many)
    pages = len(PdfReader(io.BytesIO(data)).pages)
    assert pages >= 2
    second = text_of(data, tmp_path, first=2, last=2)
    assert "Lot" in second and "Expiry" in second and "Units" in second  # the header, again
    assert f"Page 2 of {pages}" in second


def test_the_fetcher_refuses_a_remote_image_without_touching_the_network(request_ctx, no_network):
    html = '<html><body><p>Hello</p><img src="http://example.com/x.png"></body></html>'
    with pytest.raises(pdf.PdfRefused, match=r"example\.com"):
        pdf.html_to_pdf(html)
    assert no_network == []


@pytest.mark.parametrize("url", ["https://example.com/style.css", "ftp://example.com/x.png",
                                 "file:///etc/passwd", "file:///work/../etc/hostname",
                                 "../../buyersclub/config.py"])
def test_the_fetcher_refuses_anything_outside_the_package_assets(request_ctx, no_network, url):
    html = f'<html><head><link rel="stylesheet" href="{url}"></head><body>Hello</body></html>'
    with pytest.raises(pdf.PdfRefused):
        pdf.html_to_pdf(html)
    assert no_network == []


def test_the_fetcher_allows_data_urls_and_the_packages_own_files(request_ctx, no_network):
    html = (f'<html><head><link rel="stylesheet" href="print.css"></head>'
            f'<body><img src="data:image/png;base64,{PIXEL}" alt=""><p>Hello</p></body></html>')
    assert pdf.html_to_pdf(html).startswith(b"%PDF-")
    assert no_network == []


def test_a_pdf_response_is_private_and_named(request_ctx):
    response = pdf.pdf_response(b"%PDF-1.7", 'PO "1"/2.pdf')
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="PO--1--2.pdf"'
    assert "no-store" in response.headers["Cache-Control"]
