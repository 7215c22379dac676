"""Printable documents: a Jinja template rendered to PDF with WeasyPrint.

Purchase orders, packing lists, invoices and statements use it. A document
template extends ``orders/pdf/base.html``, which sets the paper size, the page
numbers ("Page 2 of 3"), a table header repeated on every page and the PDF's
metadata (``<title>``, author, description, keywords).

Safety: WeasyPrint fetches whatever a document refers to (images, stylesheets,
fonts). :class:`PackageURLFetcher` allows only ``data:`` URLs and files inside
this package's PDF assets folder; anything else -- a remote image, a file
elsewhere on the disk -- stops the rendering with :class:`PdfRefused` before a
single byte is fetched. The fonts (DejaVu Sans, regular and bold) ship in
the assets folder and are loaded by ``@font-face``: documents look the same on
any host, and nothing is downloaded.

The paper size comes from the configuration (``PAPER_SIZE``: ``A4`` or
``Letter``; A4 by default). WeasyPrint is imported on first use (it takes about
half a second), and one ``FontConfiguration`` is kept per process.

The shared stylesheets (:data:`STYLESHEETS`: the fonts and ``print.css``) are
not linked from the documents: each process parses them once, with its
``FontConfiguration``, and hands them to every rendering. Parsing them per
document cost about an eighth of a one-page invoice's rendering. WeasyPrint
applies them as user stylesheets, so a document's own ``<style>`` (the paper
size) still wins over them.
"""

from __future__ import annotations

import atexit
import functools
import gc
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template

ASSETS = (Path(__file__).resolve().parent / "pdf_assets").resolve()
# Applied to every document, in this order (see the module's docstring).
STYLESHEETS = (ASSETS / "fonts" / "fonts.css", ASSETS / "print.css")
PAPER_SIZES = {"a4": "A4", "letter": "Letter"}
DEFAULT_PAPER_SIZE = "A4"

_font_config = None
_stylesheets: list | None = None
_font_lock = threading.Lock()
_render_lock = threading.Lock()
# WeasyPrint logs every rendering step at INFO: keep the application's log for business events.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


class PdfError(RuntimeError):
    """The document could not be rendered; nothing was written, it can be retried."""


class PdfRefused(PdfError):
    """The document referred to a resource outside the allowed ones."""


def paper_size() -> str:
    """``A4`` or ``Letter`` from the configuration; anything else falls back to A4."""
    configured = str(current_app.config.get("PAPER_SIZE", DEFAULT_PAPER_SIZE) or DEFAULT_PAPER_SIZE)
    return PAPER_SIZES.get(configured.strip().lower(), DEFAULT_PAPER_SIZE)


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


@functools.cache
def _fetcher_class() -> type:
    """Build the fetcher class on first use, so importing this module stays cheap."""
    from weasyprint import URLFetcher
    from weasyprint.urls import FatalURLFetchingError

    class Refused(FatalURLFetchingError):
        """Raised inside WeasyPrint to stop the rendering at once."""

    class PackageURLFetcher(URLFetcher):
        """Fetch only ``data:`` URLs and files inside the allowed folders; refuse the rest."""

        refused = Refused

        def __init__(self, roots: tuple[Path, ...] = (ASSETS,)):
            super().__init__(allowed_protocols={"file", "data"}, allow_redirects=False, timeout=5)
            self.roots = tuple(root.resolve() for root in roots)

        def fetch(self, url, headers=None):
            scheme = urlsplit(url).scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = Path(unquote(urlsplit(url).path)).resolve()
                if any(_is_inside(path, root) for root in self.roots) and path.is_file():
                    return super().fetch(url, headers)
            raise Refused(f"The document may not load {url[:200]!r}: only its own files and data: URLs.")

    return PackageURLFetcher


def url_fetcher(roots: tuple[Path, ...] = (ASSETS,)):
    """A WeasyPrint fetcher allowing ``data:`` and files under ``roots`` (this package's assets)."""
    return _fetcher_class()(roots)


def _fonts():
    global _font_config
    with _font_lock:
        if _font_config is None:
            from weasyprint.text.fonts import FontConfiguration

            _font_config = FontConfiguration()
        return _font_config


@atexit.register
def forget_fonts() -> None:
    """Drop this process's ``FontConfiguration`` so that it removes its temporary folder of fonts.

    Run at exit (and by the batch's workers as they stop): the parsed stylesheets refer back to
    the configuration, so left to the interpreter's teardown it would outlive the modules its
    clean-up needs, and the folder would stay behind."""
    global _font_config, _stylesheets
    with _font_lock:
        if _font_config is None:
            return
        _font_config = _stylesheets = None
    gc.collect()


def shared_stylesheets() -> list:
    """:data:`STYLESHEETS` parsed once per process, their fonts registered with this process's
    ``FontConfiguration``."""
    global _stylesheets
    fonts = _fonts()
    with _font_lock:
        if _stylesheets is None:
            from weasyprint import CSS

            fetcher = url_fetcher()
            _stylesheets = [CSS(filename=str(path), url_fetcher=fetcher, font_config=fonts)
                            for path in STYLESHEETS]
        return _stylesheets


def html_to_pdf(html: str, *, base_dir: Path = ASSETS) -> bytes:
    """Render an HTML document to PDF bytes; relative links resolve inside ``base_dir``.

    Raises :class:`PdfRefused` when the document refers to anything but its own
    files or ``data:`` URLs, and :class:`PdfError` when WeasyPrint fails.
    """
    from weasyprint import HTML

    fetcher = url_fetcher((base_dir,))
    try:
        stylesheets = shared_stylesheets()
        document = HTML(string=html, base_url=base_dir.as_uri() + "/", url_fetcher=fetcher)
        # One rendering at a time per process: threads sharing a FontConfiguration have corrupted
        # memory (NOTES.md), and they are no faster. Run PDFs in several processes for throughput.
        with _render_lock:
            return document.write_pdf(stylesheets=stylesheets, font_config=_fonts())
    except fetcher.refused as refused:
        raise PdfRefused(str(refused)) from None
    except (OSError, ValueError) as error:
        raise PdfError(f"The PDF could not be made: {error}") from error


def render_pdf(template: str, **context: Any) -> bytes:
    """Render a document template (extending ``orders/pdf/base.html``) to PDF bytes."""
    html = render_template(template, paper_size=paper_size(), **context)
    return html_to_pdf(html)


def pdf_response(data: bytes, filename: str, *, inline: bool = True):
    """A Flask response carrying a PDF, not cached by shared caches."""
    from flask import Response

    disposition = "inline" if inline else "attachment"
    safe_name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in filename)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'{disposition}; filename="{safe_name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
