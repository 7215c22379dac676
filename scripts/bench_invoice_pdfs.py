"""Time rendering a round's invoice PDFs: the batch with 1 and 2 processes against bare WeasyPrint.

Run: ``.venv/bin/python scripts/bench_invoice_pdfs.py [invoices]`` (default 1,000) or ``make bench``.

On a fresh, migrated SQLite database in a temporary folder, the script seeds a
received round with ``invoices`` members and their issued invoices by bulk
inserts (goods lines for two products, every third member a subsidy credit and
free units, shipping, tax), then times:

* the batch (``invoices.batch.render_round``, ``force``) with 1 process (rendered
  in this process) and with 2 worker processes: reading the invoices, building
  each one's HTML, WeasyPrint, writing each file atomically;
* a bare WeasyPrint loop over the same HTML in this process
  (``HTML(string=...).write_pdf(stylesheets=...)``, one ``FontConfiguration``
  and the shared stylesheets parsed once for all, as the batch does; no safe
  fetcher, nothing written, the interpreter's collector as it comes), the
  least plain WeasyPrint costs. The batch sets the collector for rendering
  (``invoices.batch``), so it can come out cheaper than this.

It prints PDFs per second for each, the per-invoice cost of the 1-process batch
against the bare loop (target at most 1.3x) and the 2-process throughput
(target at least 15 PDFs/s on a 2-core machine). It is not a test: wall-clock
time on a shared machine varies (it prints the load average beside each figure):
run it twice before believing it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402

from buyersclub import create_app  # noqa: E402
from buyersclub.actor import Actor  # noqa: E402
from buyersclub.db import db  # noqa: E402
from buyersclub.organisations.models import (  # noqa: E402
    BudgetBand,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    PeopleReachedBand,
)
from invoices import batch  # noqa: E402
from invoices import pdf as invoices_pdf  # noqa: E402
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, LineKind  # noqa: E402
from invoices.services import payments  # noqa: E402
from orders import pdf  # noqa: E402
from orders.models import Product, ProductCategory, Round, RoundItem, RoundStatus, Supplier  # noqa: E402

ACTOR = Actor.system("bench")
SECRET = "bench-secret-not-for-production"
ROUND_NAME = "Bench round"
BATCH = 5_000
D = Decimal


def load() -> str:
    """The machine's load: other work on a shared machine skews every figure."""
    return f"(load average over the last minute: {os.getloadavg()[0]:.1f})"


def progress(message: str) -> None:
    print(f"  … {message}", flush=True)


def _bulk(model, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        db.session.execute(sa.insert(model), rows[start:start + BATCH])


def _lines(number: int, naloxone: Product, pipes: Product) -> list[dict]:
    boxes, pipe_count = 24 * (1 + number % 20), 100 * (number % 3)
    lines = [{"kind": LineKind.GOODS, "description": "Naloxone nasal spray (box of 2 nasal doses)",
              "product_id": naloxone.id, "category": "naloxone", "quantity": boxes,
              "unit_price": D("40.00"), "amount": D(40 * boxes)}]
    if pipe_count:
        lines.append({"kind": LineKind.GOODS, "description": "Glass pipe (pipe)", "product_id": pipes.id,
                      "category": "pipes", "quantity": pipe_count, "unit_price": D("2.00"),
                      "amount": D(2 * pipe_count)})
    if number % 3 == 0:
        lines += [
            {"kind": LineKind.FREE_GOODS, "description": "Naloxone nasal spray (box of 2 nasal doses), free",
             "product_id": naloxone.id, "category": "naloxone", "quantity": 12, "unit_price": D("0.00"),
             "amount": D("0.00"), "note": "supplied free by the club fund, value $372.00"},
            {"kind": LineKind.SUBSIDY_CREDIT, "description": "Subsidy from the club fund: naloxone",
             "category": "naloxone", "amount": -D(20 * boxes)},
        ]
    goods = sum((line["amount"] for line in lines), D("0.00"))
    shipping = D("12.50") + D(number % 7)
    tax = (max(goods, D("0.00")) * D("0.0625")).quantize(D("0.01"))
    lines += [{"kind": LineKind.SHIPPING, "description": "Shipping: your share of $9,000.00, by units",
               "amount": shipping},
              {"kind": LineKind.TAX, "description": "Sales tax 6.25% (US-MA)", "amount": tax}]
    return lines


def seed(count: int) -> int:
    """A received round and ``count`` members' issued invoices, by bulk inserts; returns the round id."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    _bulk(Organisation, [
        {"name": f"Programme {number:05d}", "kind": OrganisationKind.SYRINGE_SERVICES,
         "status": MembershipStatus.APPROVED, "country": "US", "region": "MA",
         "site_address_line1": f"{number} Harbour Street", "site_city": "Boston", "site_postal_code": "02110",
         "site_is_not_a_home": True, "budget_band": BudgetBand.UNDER_50K,
         "people_reached_band": PeopleReachedBand.FROM_100_TO_500}
        for number in range(count)])
    organisations = list(db.session.execute(sa.select(Organisation.id, Organisation.name)
                                            .order_by(Organisation.id)))
    supplier = Supplier(name="Bench Wholesale")
    naloxone = Product(supplier=supplier, sku="NAL-1", name="Naloxone nasal spray",
                       category=ProductCategory.NALOXONE, unit="box of 2 nasal doses", pack_size=24)
    pipes = Product(supplier=supplier, sku="PIPE-1", name="Glass pipe", category=ProductCategory.PIPES,
                    unit="pipe", pack_size=100)
    found = Round(name=ROUND_NAME, supplier=supplier, status=RoundStatus.RECEIVED, deadline=now,
                  opened_at=now, closed_at=now, shipping_cost=D("9000.00"))
    db.session.add_all([supplier, naloxone, pipes, found,
                        RoundItem(round=found, product=naloxone, club_price=D("40.00")),
                        RoundItem(round=found, product=pipes, club_price=D("2.00"))])
    db.session.flush()
    today = datetime.now(UTC).date()
    year = today.year
    invoices, lines = [], []
    for number, (organisation_id, name) in enumerate(organisations, start=1):
        planned = _lines(number, naloxone, pipes)
        invoices.append({
            "id": number, "number": f"INV-{year}-{number:05d}", "year": year, "sequence_number": number,
            "round_id": found.id, "organisation_id": organisation_id, "status": InvoiceStatus.ISSUED,
            "issued_on": today, "due_on": today + timedelta(days=30), "currency": "USD",
            "bill_to": {"organisation_id": organisation_id, "name": name,
                        "address_lines": [f"{number} Harbour Street"], "city": "Boston", "region": "MA",
                        "postal_code": "02110", "country": "US", "tax_exempt_certificate": None},
            "total": sum((line["amount"] for line in planned), D("0.00")),
        })
        lines += [{"invoice_id": number, "position": position, "note": None, "product_id": None,
                   "category": None, "quantity": None, "unit_price": None, **line}
                  for position, line in enumerate(planned, start=1)]
    _bulk(Invoice, invoices)
    _bulk(InvoiceLine, lines)
    db.session.commit()
    progress(f"seeded {count:,} invoices ({len(lines):,} lines) in {time.perf_counter() - started:.1f} s")
    return found.id


def timed_batch(round_id: int, processes: int) -> float:
    started = time.perf_counter()
    result = batch.render_round(ACTOR, round_id, force=True, processes=processes)
    seconds = time.perf_counter() - started
    if result.failed:
        raise SystemExit(f"{len(result.failed)} PDFs failed, e.g. {next(iter(result.failed.items()))}")
    db.session.rollback()
    return seconds


def timed_bare(htmls: list[str]) -> float:
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    sheets = [CSS(filename=str(path), font_config=fonts) for path in pdf.STYLESHEETS]
    base_url = pdf.ASSETS.as_uri() + "/"
    HTML(string=htmls[0], base_url=base_url).write_pdf(stylesheets=sheets, font_config=fonts)  # as a worker
    started = time.perf_counter()
    for html in htmls:
        HTML(string=html, base_url=base_url).write_pdf(stylesheets=sheets, font_config=fonts)
    return time.perf_counter() - started


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000
    print(f"Rendering a round of {count:,} invoices to PDF", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({
            "ENVIRON": {"BUYERSCLUB_ENV": "testing", "BUYERSCLUB_SECRET_KEY": SECRET},
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3",
            "MAIL_BACKEND": "memory",
            "CLUB_ADDRESS": "12 Quay Road\nPortland, ME 04101",
            "CLUB_BANK_DETAILS": "Harbour Savings Bank\nAccount 0012 3456 78\nRouting 011000015",
        })
        app.instance_path = folder
        with app.app_context():
            logging.getLogger("alembic").setLevel(logging.WARNING)
            upgrade()
            round_id = seed(count)
            started = time.perf_counter()
            invoices = list(db.session.scalars(sa.select(Invoice).options(selectinload(Invoice.lines))
                                               .order_by(Invoice.id)))
            found = payments.settlements(invoices)
            htmls = [invoices_pdf.invoice_html(invoice, settlement=found[invoice.id], round_name=ROUND_NAME)
                     for invoice in invoices]
            building = time.perf_counter() - started
            db.session.rollback()
            print(f"  reading the invoices and building their HTML: {building / count * 1000:.1f} ms each "
                  f"{load()}", flush=True)
            pdf.html_to_pdf(htmls[0])  # this process's WeasyPrint import and fonts, outside the clocks

            one = timed_batch(round_id, 1)
            print(f"  batch, 1 process:   {count / one:6.1f} PDFs/s ({one:.1f} s) {load()}", flush=True)
            two = timed_batch(round_id, 2)
            print(f"  batch, 2 processes: {count / two:6.1f} PDFs/s ({two:.1f} s) {load()}", flush=True)
            bare = timed_bare(htmls)
            print(f"  bare WeasyPrint:    {count / bare:6.1f} PDFs/s ({bare:.1f} s) {load()}", flush=True)
            written = sorted(invoices_pdf.round_folder(round_id).glob("*.pdf"))
            size = sum(path.stat().st_size for path in written) / max(len(written), 1)
            db.session.remove()
            db.engine.dispose()
    ratio = one / bare
    print(f"Per invoice: batch (1 process) {one / count * 1000:.1f} ms, bare {bare / count * 1000:.1f} ms: "
          f"{ratio:.2f}x (target at most 1.3x, {'met' if ratio <= 1.3 else 'NOT met'}); "
          f"2 processes {count / two:.1f} PDFs/s (target at least 15, "
          f"{'met' if count / two >= 15 else 'NOT met'}); {len(written):,} files, {size / 1024:.0f} KiB each")


if __name__ == "__main__":
    main()
