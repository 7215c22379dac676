"""A round's invoice PDFs in a batch: files in the instance folder, skipping, failures, retries, commands.

The batch runs in a real pool of worker processes here (two of them), except
where a test says otherwise.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from buyersclub.db import db, utcnow
from invoices import batch
from invoices import pdf as invoices_pdf
from invoices.models import Invoice
from invoices.services import issuing
from orders import pdf

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("pdf_instance")


@pytest.fixture
def issued(approved):
    invoices = issuing.issue_round_invoices(approved.finance, approved.round.id)
    db.session.commit()  # what the command line sees: issued invoices, committed
    return invoices


@pytest.fixture
def broken(monkeypatch) -> set[str]:
    """Invoice numbers whose document refers to a remote image: WeasyPrint refuses it, in its worker."""
    numbers: set[str] = set()
    original = invoices_pdf.invoice_html

    def invoice_html(invoice, **kwargs):
        html = original(invoice, **kwargs)
        if invoice.number in numbers:
            html = html.replace("</body>", '<img src="https://example.com/pixel.png"></body>')
        return html

    monkeypatch.setattr(invoices_pdf, "invoice_html", invoice_html)
    return numbers


def text_of(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def files_in(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_every_live_invoice_of_the_round_is_written_to_the_instance_folder(approved, issued, pdf_instance):
    heard: list[str] = []

    result = batch.render_round(approved.finance, approved.round.id, processes=2, on_progress=heard.append)

    folder = pdf_instance / "invoices" / str(approved.round.id)
    numbers = [invoice.number for invoice in issued]
    assert result.folder == folder and sorted(result.written) == numbers and not result.failed
    assert files_in(folder) == [f"{number}.pdf" for number in numbers]  # no temporary file left
    assert sorted(heard) == numbers
    for invoice in issued:
        path = folder / f"{invoice.number}.pdf"
        assert f"Invoice {invoice.number}" in text_of(path)
        assert invoice.bill_to["name"] in text_of(path)
        assert PdfReader(path).metadata.title == invoice.number


def test_workers_are_replaced_as_they_go_and_nothing_is_lost(approved, issued, monkeypatch):
    monkeypatch.setattr(batch, "MAX_TASKS_PER_CHILD", 1)  # a fresh pair of workers every 2 documents

    result = batch.render_round(approved.finance, approved.round.id, processes=2)

    assert sorted(result.written) == [invoice.number for invoice in issued] and not result.failed
    assert files_in(result.folder) == [f"{invoice.number}.pdf" for invoice in issued]


def test_existing_files_are_kept_unless_forced(approved, issued, pdf_instance):
    first = batch.render_round(approved.finance, approved.round.id, processes=1)
    path = invoices_pdf.stored_path(issued[0])
    path.write_bytes(path.read_bytes() + b"\n% kept\n")

    again = batch.render_round(approved.finance, approved.round.id, processes=2)

    assert again.written == [] and sorted(again.skipped) == sorted(first.written)
    assert path.read_bytes().endswith(b"% kept\n")
    forced = batch.render_round(approved.finance, approved.round.id, processes=2, force=True)
    assert sorted(forced.written) == sorted(first.written)
    assert not path.read_bytes().endswith(b"% kept\n")


def test_a_failure_loses_nothing_and_a_retry_renders_only_what_is_missing(approved, issued, broken):
    number = issued[2].number
    broken.add(number)
    before = db.session.scalar(select(func.count()).select_from(Invoice))

    result = batch.render_round(approved.finance, approved.round.id, processes=2)

    assert list(result.failed) == [number] and "example.com" in result.failed[number]
    assert sorted(result.written) == sorted(invoice.number for invoice in issued if invoice.number != number)
    folder = result.folder
    assert f"{number}.pdf" not in files_in(folder) and len(files_in(folder)) == 3
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == before

    broken.clear()  # the problem is fixed
    retry = batch.render_round(approved.finance, approved.round.id, processes=2)
    assert retry.written == [number] and len(retry.skipped) == 3 and not retry.failed
    assert f"Invoice {number}" in text_of(folder / f"{number}.pdf")


def test_a_failure_in_this_process_is_reported_too(approved, issued, monkeypatch):
    def refuse(invoice, settlement, round_name):
        raise pdf.PdfError(f"no template for {invoice.number}")

    monkeypatch.setattr(invoices_pdf, "prepare", refuse)
    result = batch.render_round(approved.finance, approved.round.id, processes=1)
    assert sorted(result.failed) == sorted(invoice.number for invoice in issued) and not result.written


def test_rendering_in_this_process_leaves_the_collector_as_it_found_it(approved, issued, monkeypatch):
    """The batch sets the collector for rendering while it runs here, and puts it back after, even
    when a document fails."""
    thresholds = gc.get_threshold()
    seen: list[tuple] = []
    original = batch.render_to_file

    def render_to_file(html, target):
        seen.append((gc.get_threshold(), gc.get_freeze_count() > 0))
        if len(seen) == 2:
            raise pdf.PdfError("the second one fails")
        return original(html, target)

    monkeypatch.setattr(batch, "render_to_file", render_to_file)
    result = batch.render_round(approved.finance, approved.round.id, processes=1)
    assert len(result.written) == len(issued) - 1 and len(result.failed) == 1
    assert set(seen) == {(batch.RENDERING_GC_THRESHOLDS, True)}
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "round" / "INV-1.pdf"
    batch.write_atomically(target, b"%PDF-first")
    with pytest.raises(TypeError):
        batch.write_atomically(target, "not bytes")  # fails while writing the temporary file
    assert target.read_bytes() == b"%PDF-first" and files_in(target.parent) == ["INV-1.pdf"]


LEAVES_NOTHING_BEHIND = """
import sys
from pathlib import Path
from invoices import batch
from invoices import pdf as invoices_pdf
from orders import pdf

batch.MAX_TASKS_PER_CHILD = 2  # two sets of workers, one replacing the other
out = Path(sys.argv[1])
documents = [invoices_pdf.Prepared(f"INV-{n}", out / f"INV-{n}.pdf", f"<p><b>Invoice</b> {n}</p>")
             for n in range(6)]
result = batch.BatchResult(folder=out)
batch._render_in_pool(iter(documents), result, 2)
pdf.html_to_pdf("<p>And one in this process</p>")
print(len(result.written), len(result.failed))
"""


def test_no_process_leaves_its_temporary_fonts_behind(tmp_path):
    """WeasyPrint copies the bundled fonts to a temporary folder per process; every worker, and the
    process that started them, removes its own as it exits."""
    temporary, out = tmp_path / "tmp", tmp_path / "out"
    temporary.mkdir()
    environment = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)}
    finished = subprocess.run([sys.executable, "-c", LEAVES_NOTHING_BEHIND, str(out)], check=True,
                              capture_output=True, text=True, env=environment, cwd=ROOT, timeout=120)
    assert finished.stdout.split() == ["6", "0"] and len(files_in(out)) == 6
    assert "Exception ignored" not in finished.stderr
    assert files_in(temporary) == []


# --- Commands ----------------------------------------------------------------------------------


def test_the_command_shows_progress_names_the_failure_and_a_retry_renders_it(app, approved, issued, broken):
    runner = app.test_cli_runner()
    number = issued[2].number
    broken.add(number)

    failed = runner.invoke(args=["render-invoice-pdfs", str(approved.round.id)])

    assert failed.exit_code != 0
    assert "Rendering 4 invoice PDFs" in failed.output
    assert "3 written, 0 already there, 1 failed." in failed.output
    assert f"FAILED {number}:" in failed.output and "example.com" in failed.output
    assert f"flask --app buyersclub render-invoice-pdfs {approved.round.id}" in failed.output

    broken.clear()
    retry = runner.invoke(args=["render-invoice-pdfs", str(approved.round.id)])
    assert retry.exit_code == 0, retry.output
    assert "1 written, 3 already there, 0 failed." in retry.output


def test_the_command_renders_a_deleted_file_again_and_force_renders_all(app, approved, issued):
    runner = app.test_cli_runner()
    batch.render_round(approved.finance, approved.round.id, processes=1)
    folder = invoices_pdf.round_folder(approved.round.id)
    (folder / f"{issued[1].number}.pdf").unlink()

    again = runner.invoke(args=["render-invoice-pdfs", str(approved.round.id)])
    assert again.exit_code == 0, again.output
    assert "1 written, 3 already there, 0 failed." in again.output
    assert files_in(folder) == sorted(f"{invoice.number}.pdf" for invoice in issued)
    forced = runner.invoke(args=["render-invoice-pdfs", str(approved.round.id), "--force"])
    assert forced.exit_code == 0 and "4 written, 0 already there, 0 failed." in forced.output
    unknown = runner.invoke(args=["render-invoice-pdfs", "999999"])
    assert unknown.exit_code != 0 and "No such round" in unknown.output


def test_issuing_renders_the_pdfs_after_the_invoices_are_committed(app, approved, broken):
    runner = app.test_cli_runner()
    broken.add(f"INV-{utcnow().year}-00003")

    result = runner.invoke(args=["issue-invoices", str(approved.round.id)])

    assert result.exit_code != 0
    assert "Issued 4 invoices." in result.output and "Rendering 4 invoice PDFs" in result.output
    assert "The invoices are issued; only their PDFs are missing." in result.output
    assert f"flask --app buyersclub render-invoice-pdfs {approved.round.id}" in result.output
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Invoice)
                             .where(Invoice.round_id == approved.round.id)) == 4
    assert len(files_in(invoices_pdf.round_folder(approved.round.id))) == 3
