"""A round's invoice PDFs, rendered in a pool of processes to files under the instance folder.

``render_round`` writes every live invoice of a round to
``<instance>/invoices/<round_id>/<NUMBER>.pdf`` (see ``invoices.pdf``). It only
reads the database: a PDF that fails is reported by its number, the others
are written all the same, and running it again renders just the missing ones
(``force`` renders them all again). Each file is written whole to a temporary
file beside it, then renamed into place, so a reader never sees half a PDF.

How the work is shared: this process reads the invoices (lines and
settlements in bulk) and builds each one's HTML with the templates, a few
milliseconds each; the worker processes only run WeasyPrint on that HTML and
write the file. Workers need neither the application nor the database, so
they start the same under ``spawn`` and ``forkserver``, and the batch works
inside a transaction no other connection can see. (Workers that each build
the application once and render by invoice id were measured about 15% slower
with two workers: each repeats the queries per invoice, and they cannot see
uncommitted data.)

``PDF_WORKERS`` processes (default 2) are started with ``forkserver`` (the
server imports WeasyPrint once, so a worker starts in a fraction of a second;
each worker keeps one ``FontConfiguration``) and replaced after about
``MAX_TASKS_PER_CHILD`` documents each, so memory WeasyPrint holds on to does
not grow without bound. They are replaced by starting a new pool, not with
``ProcessPoolExecutor(max_tasks_per_child=...)``: on Python 3.11 to 3.13 that
stops handing out work once a worker has retired while documents are queued
(CPython issue 115634), and the batch would hang. With one worker the
documents are rendered in this process: no pool to start.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import multiprocessing.util
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.db import db
from invoices import pdf as invoice_pdf
from invoices.models import Invoice, InvoiceStatus
from invoices.services import payments
from orders import pdf
from orders.services.rounds import get_round

# Worker processes are replaced after about this many documents each (see the module's docstring).
MAX_TASKS_PER_CHILD = 200
# Documents handed to the pool ahead of the workers: enough to keep them busy, few enough in memory.
AHEAD_PER_WORKER = 4
# How many invoices are read from the database at a time.
CHUNK = 200


@dataclass
class BatchResult:
    """What a batch did, by invoice number; ``on_progress(number)`` hears of each as it is done."""

    folder: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # number -> why
    on_progress: Callable[[str], None] | None = field(default=None, repr=False)

    def wrote(self, number: str) -> None:
        self.written.append(number)
        self._tell(number)

    def skip(self, number: str) -> None:
        self.skipped.append(number)
        self._tell(number)

    def fail(self, number: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failed[number] = reason[:500]
        self._tell(number)

    def _tell(self, number: str) -> None:
        if self.on_progress is not None:
            self.on_progress(number)


# --- In the worker processes ---------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def render_to_file(html: str, target: str) -> int:
    """Run WeasyPrint on one invoice's HTML and write the file; returns its size in bytes."""
    data = pdf.html_to_pdf(html)
    write_atomically(Path(target), data)
    return len(data)


# Rendering makes a few hundred thousand short-lived objects per document, and the collector's
# default young-generation threshold (700) has it scan them many times per document.
RENDERING_GC_THRESHOLDS = (20_000, 20, 100)


def _collector_for_rendering() -> tuple[int, int, int]:
    """Keep the collector off what is already alive (modules, fonts, the application: ``gc.freeze``)
    and let it run less often; returns the thresholds it replaced. Memory stays bounded: cycles
    are still collected. About a tenth off each document."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*RENDERING_GC_THRESHOLDS)
    return thresholds


@contextlib.contextmanager
def _rendering_here() -> Iterator[None]:
    """The collector set for rendering while this process renders a batch, then as it was."""
    thresholds = _collector_for_rendering()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _start_worker() -> None:
    """Pay WeasyPrint's import and the font set-up once per worker, not in its first document; then
    set the collector for rendering for the worker's life (workers are replaced now and then)."""
    pdf.html_to_pdf("<html><body><p>.</p><p><b>.</b></p></body></html>")
    _collector_for_rendering()
    multiprocessing.util.Finalize(None, _stop_worker, exitpriority=10)


def _stop_worker() -> None:
    """As a worker exits: let its fonts' temporary folder be removed (``orders.pdf.forget_fonts``);
    what ``gc.freeze`` set aside must be collectable again for that."""
    gc.unfreeze()
    pdf.forget_fonts()


# --- In this process -----------------------------------------------------------------------------


def workers() -> int:
    return max(1, int(current_app.config.get("PDF_WORKERS", 2) or 1))


def round_invoices(round_id: int) -> list[int]:
    """The ids of the round's live invoices, by number."""
    return list(db.session.scalars(select(Invoice.id).where(
        Invoice.round_id == round_id, Invoice.status == InvoiceStatus.ISSUED).order_by(
        Invoice.sequence_number)))


def _prepared(ids: list[int], round_name: str, result: BatchResult,
              force: bool) -> Iterator[invoice_pdf.Prepared]:
    """Each invoice's HTML, read a chunk at a time; existing files are skipped unless ``force``."""
    for start in range(0, len(ids), CHUNK):
        chunk = list(db.session.scalars(select(Invoice).where(Invoice.id.in_(ids[start:start + CHUNK]))
                                        .options(selectinload(Invoice.lines))
                                        .order_by(Invoice.sequence_number)))
        settlements = payments.settlements(chunk)
        for invoice in chunk:
            path = invoice_pdf.stored_path(invoice)
            if not force and path.exists():
                result.skip(invoice.number)
                continue
            try:
                yield invoice_pdf.prepare(invoice, settlements[invoice.id], round_name)
            except Exception as error:  # a template or data problem: this invoice only
                result.fail(invoice.number, error)


def render_round(actor: Actor, round_id: int, *, force: bool = False, processes: int | None = None,
                 on_progress: Callable[[str], None] | None = None) -> BatchResult:
    """Render the round's live invoices to PDF files (finance and administrators).

    ``processes`` defaults to ``PDF_WORKERS``. ``on_progress(number)`` is called
    once per invoice, written, skipped or failed. Nothing in the database changes.
    """
    actor.require(Role.FINANCE, Role.ADMIN)
    found = get_round(actor, round_id)
    ids = round_invoices(found.id)
    result = BatchResult(folder=invoice_pdf.round_folder(found.id), on_progress=on_progress)
    count = processes if processes is not None else workers()
    documents = _prepared(ids, found.name, result, force)
    if count <= 1:
        _render_here(documents, result)
    else:
        _render_in_pool(documents, result, count)
    return result


def _render_here(documents: Iterator[invoice_pdf.Prepared], result: BatchResult) -> None:
    with _rendering_here():
        for document in documents:
            try:
                render_to_file(document.html, str(document.path))
            except Exception as error:
                result.fail(document.number, error)
            else:
                result.wrote(document.number)


def _render_in_pool(documents: Iterator[invoice_pdf.Prepared], result: BatchResult, count: int) -> None:
    """Render in ``count`` worker processes, a fresh set of them every ``MAX_TASKS_PER_CHILD`` each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["invoices.batch", "weasyprint"])
    documents = iter(documents)
    while (first := next(documents, None)) is not None:
        share = itertools.chain([first], itertools.islice(documents, count * MAX_TASKS_PER_CHILD - 1))
        with ProcessPoolExecutor(max_workers=count, mp_context=context, initializer=_start_worker) as pool:
            pending: dict[Future, str] = {}
            for document in share:
                while len(pending) >= count * AHEAD_PER_WORKER:
                    _collect(pending, result)
                try:
                    future = pool.submit(render_to_file, document.html, str(document.path))
                except BrokenProcessPool as broken:  # a worker died (killed, out of memory)
                    result.fail(document.number, broken)
                    continue
                pending[future] = document.number
            while pending:
                _collect(pending, result)


def _collect(pending: dict[Future, str], result: BatchResult) -> None:
    """Wait for at least one document and account for every finished one."""
    for future in wait(pending, return_when=FIRST_COMPLETED).done:
        number = pending.pop(future)
        error = future.exception()
        if error is not None:
            result.fail(number, error)
        else:
            result.wrote(number)
