"""A member's statement of account: the page with its period form, and the same as a PDF.

Member staff see their own organisation's statement (another organisation's
is 404, as if it did not exist); finance and administrators any member's.
The period comes from the ``from`` and ``to`` query parameters (YYYY-MM-DD;
by default the last twelve months to today); a bad date is shown next to its
field with a 400.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import login_required

from buyersclub.accounts.views import current_actor
from buyersclub.organisations.services import get_organisation
from invoices.services import statements
from invoices.services.periods import default_period, parse_period, read_period
from orders import pdf

bp = Blueprint("statements", __name__, template_folder="templates")

STATEMENT = "/organisations/<int:organisation_id>/statement"


@bp.get(STATEMENT)
@login_required
def statement(organisation_id: int):
    actor = current_actor()
    organisation = get_organisation(actor, organisation_id)  # 404 before anything else
    raw = {"from": request.args.get("from", "").strip(), "to": request.args.get("to", "").strip()}
    period, errors = read_period(raw["from"], raw["to"])
    found = statements.statement_for(actor, organisation.id, period) if period else None
    shown = period or default_period()
    values = {"from": raw["from"] or shown.start.isoformat(), "to": raw["to"] or shown.end.isoformat()}
    return render_template("invoices/statement.html", organisation=organisation, statement=found,
                           values=values, errors=errors), 400 if errors else 200


@bp.get(STATEMENT + ".pdf")
@login_required
def statement_pdf(organisation_id: int):
    actor = current_actor()
    organisation = get_organisation(actor, organisation_id)
    period = parse_period(request.args.get("from"), request.args.get("to"))
    found = statements.statement_for(actor, organisation.id, period)
    data = pdf.render_pdf("invoices/pdf/statement.html", statement=found,
                          club_address=current_app.config.get("CLUB_ADDRESS"),
                          bank_details=current_app.config.get("CLUB_BANK_DETAILS"))
    return pdf.pdf_response(data, f"statement-{organisation.id}-{period.slug()}.pdf")
