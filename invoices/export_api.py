"""Exports for the accounts in the JSON API (finance): CSV files and the (h)ledger journal.

Each takes ``from`` and ``to`` (YYYY-MM-DD, both included; by default the
last twelve months to today); a bad date is a 400 naming the field. The body
is the file itself, streamed, with a ``Content-Disposition`` naming it.
"""

from __future__ import annotations

from flask import request

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint
from invoices.export_views import export_response
from invoices.services.exports import EXPORTS
from invoices.services.periods import parse_period

bp = ApiBlueprint("exports_api", __name__, tag="exports")

FINANCE = (Role.FINANCE,)
PERIOD = {"from": "The first day (YYYY-MM-DD); default a year before `to`",
          "to": "The last day, included (YYYY-MM-DD); default today"}


def _download(actor: Actor, kind: str):
    period = parse_period(request.args.get("from"), request.args.get("to"))
    return export_response(EXPORTS[kind], actor, period)


@bp.endpoint("/exports/journal.csv", "GET", summary="Journal lines for accounting (CSV)", roles=FINANCE,
             query=PERIOD)
def journal_csv(actor: Actor):
    """`text/csv`: one row per posting of the entries dated in the period -- entry_id, date, kind, memo,
    account_code, account_name, organisation_id, organisation, debit, credit (two decimals)."""
    return _download(actor, "journal")


@bp.endpoint("/exports/invoices.csv", "GET", summary="Invoices issued in a period (CSV)", roles=FINANCE,
             query=PERIOD)
def invoices_csv(actor: Actor):
    """`text/csv`: number, issued, due, member, round, total, paid, credited, balance_due, status."""
    return _download(actor, "invoices")


@bp.endpoint("/exports/payments.csv", "GET", summary="Payments received in a period (CSV)", roles=FINANCE,
             query=PERIOD)
def payments_csv(actor: Actor):
    """`text/csv`: date, invoice, member, method, reference, amount, applied, refunded."""
    return _download(actor, "payments")


@bp.endpoint("/exports/journal.ledger", "GET", summary="The journal as an hledger/ledger file",
             roles=FINANCE, query=PERIOD)
def journal_ledger(actor: Actor):
    """`text/plain`: account and commodity declarations, the opening balances of the day before the
    period, and one balanced transaction per journal entry; `hledger -f FILE check` passes."""
    return _download(actor, "ledger")
