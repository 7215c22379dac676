"""The exports page for finance: a period form and a download link per export.

``GET /exports`` shows the form (``from``/``to``, by default the last twelve
months); each link downloads one file for that period, streamed as it is
written: ``/exports/invoices.csv``, ``payments.csv``, ``journal.csv`` and
``journal.ledger`` (see ``invoices.services.exports``).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_login import login_required

from buyersclub.accounts.models import Role
from buyersclub.accounts.views import current_actor
from invoices.services.exports import EXPORTS, Export
from invoices.services.periods import Period, default_period, parse_period, read_period

bp = Blueprint("exports", __name__, template_folder="templates")

# The file names under /exports (and /api/v1/exports) and the export each one is.
FILES = {"invoices.csv": "invoices", "payments.csv": "payments", "journal.csv": "journal",
         "journal.ledger": "ledger"}


def export_response(export: Export, actor, period: Period) -> Response:
    """The export as a download, written out as it is produced."""
    chunks = export.produce(actor, period)  # checks the role before the first byte
    mimetype = f"{export.mimetype}; charset=utf-8"
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename(period)}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/exports")
@login_required
def index():
    current_actor().require(Role.FINANCE)
    raw = {"from": request.args.get("from", "").strip(), "to": request.args.get("to", "").strip()}
    period, errors = read_period(raw["from"], raw["to"])
    shown = period or default_period()
    values = {"from": raw["from"] or shown.start.isoformat(), "to": raw["to"] or shown.end.isoformat()}
    files = [(name, EXPORTS[kind]) for name, kind in FILES.items()]
    return render_template("invoices/exports.html", period=period, values=values, errors=errors,
                           files=files), 400 if errors else 200


@bp.get("/exports/<filename>")
@login_required
def download(filename: str):
    actor = current_actor()
    actor.require(Role.FINANCE)
    if filename not in FILES:
        abort(404)
    period = parse_period(request.args.get("from"), request.args.get("to"))
    return export_response(EXPORTS[FILES[filename]], actor, period)
