"""A member's statement of account in the JSON API.

``GET /api/v1/organisations/{id}/statement?from=&to=``: member staff for their
own organisation (another's is 404), finance and administrators for any. The
period defaults to the last twelve months to today; a bad date is a 400
naming ``from`` or ``to``. See ``invoices.services.statements`` for what the
balances mean.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from flask import request
from pydantic import BaseModel, Field

from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint
from buyersclub.organisations.services import get_organisation
from invoices.services import statements
from invoices.services.periods import parse_period

bp = ApiBlueprint("statements_api", __name__, tag="invoices")


class PositionOut(BaseModel):
    owed: Decimal = Field(description="The receivable: what the member owes on its invoices")
    account_credit: Decimal = Field(description="Account credit the club holds for the member")
    balance: Decimal = Field(description="owed - account_credit; negative is in the member's favour")


class StatementLineOut(BaseModel):
    date: datetime.date
    kind: str = Field(description="invoice, payment, credit_note, refund, refund_failed or void")
    document: str = Field(description="The invoice or credit note number, or the payment or refund")
    description: str
    invoice_id: int | None
    invoice_number: str | None
    method: str | None = Field(description="How a payment was made (payments and refunds)")
    reference: str | None
    amount: Decimal = Field(description="The document's own amount: invoice total, payment, credit "
                                        "note or refund")
    owed_change: Decimal
    account_credit_change: Decimal
    change: Decimal = Field(description="How the line moves the balance: positive charges, negative "
                                        "pays or credits")
    balance: Decimal = Field(description="The balance after this line")


class StatementOut(BaseModel):
    organisation_id: int
    organisation: str
    period_from: datetime.date
    period_to: datetime.date
    currency: str
    opening: PositionOut
    lines: list[StatementLineOut]
    charges: Decimal
    payments_and_credits: Decimal
    closing: PositionOut
    not_invoiced: Decimal = Field(description="Goods of closed rounds (net of subsidy) on the ledger whose "
                                              "invoice is not issued yet; not in the balance")
    ledger_balance: Decimal = Field(description="The ledger's receivable minus account credit on the last "
                                                "day: closing balance + not_invoiced")
    agrees: bool = Field(description="The documents and the ledger agree")


def _position(position: statements.Position) -> PositionOut:
    return PositionOut(owed=position.owed, account_credit=position.credit, balance=position.balance)


def statement_out(found: statements.Statement) -> StatementOut:
    return StatementOut(
        organisation_id=found.organisation.id, organisation=found.organisation.name,
        period_from=found.period.start, period_to=found.period.end, currency=found.currency,
        opening=_position(found.opening),
        lines=[StatementLineOut(date=line.on, kind=line.kind, document=line.document,
                                description=line.description, invoice_id=line.invoice_id,
                                invoice_number=line.invoice_number, method=line.method,
                                reference=line.reference, amount=line.amount, owed_change=line.owed,
                                account_credit_change=line.credit, change=line.change,
                                balance=line.balance)
               for line in found.lines],
        charges=found.charges, payments_and_credits=found.payments_and_credits,
        closing=_position(found.closing), not_invoiced=found.not_invoiced,
        ledger_balance=found.ledger_balance, agrees=found.agrees,
    )


@bp.endpoint("/organisations/<int:organisation_id>/statement", "GET",
             summary="A member's statement of account for a period", response=StatementOut,
             query={"from": "The first day (YYYY-MM-DD); default a year before `to`",
                    "to": "The last day, included (YYYY-MM-DD); default today"})
def get_statement(actor: Actor, organisation_id: int) -> StatementOut:
    """The opening balance, every invoice, payment, credit note, refund and void of the period in date
    order with the running balance, and the closing balance, which equals the ledger's receivable minus
    account credit for the member (less anything not invoiced yet)."""
    get_organisation(actor, organisation_id)  # another organisation's is 404, whatever the dates
    period = parse_period(request.args.get("from"), request.args.get("to"))
    return statement_out(statements.statement_for(actor, organisation_id, period))
