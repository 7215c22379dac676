"""Where a delivered round stands with its invoices: received, invoiced or settled.

Issuing moves a received round to invoiced. Every change to what its invoices
ask for -- a payment, a credit note, a refund, a void -- calls
:func:`refresh_round_status`, which settles the round once none of its live
invoices has anything left to pay, and reopens it (invoiced) when a refund or a
replacement invoice asks for money again. A round whose invoices were all
voided is back to received: they can be issued again.
"""

from __future__ import annotations

from buyersclub.actor import Actor
from buyersclub.db import db
from invoices.models import Invoice, InvoiceStatus
from invoices.services import payments, queries
from orders.models import Round, RoundStatus
from orders.services.rounds import BILLING_STATES, set_billing_status


def refresh_round_status(actor: Actor, changed: Invoice) -> RoundStatus:
    """After ``changed`` was paid, credited, refunded or voided: settle its round when nothing is left
    to pay on the round's live invoices; reopen it otherwise."""
    found = db.session.get(Round, changed.round_id)
    if found is None or found.status not in BILLING_STATES:
        return found.status if found else RoundStatus.RECEIVED
    if changed.status == InvoiceStatus.ISSUED and payments.balance_due(changed) > 0:
        # Money is still due on this one: no need to read the round's other invoices.
        set_billing_status(actor, found, RoundStatus.INVOICED, because="money is due on an invoice")
        return RoundStatus.INVOICED
    due = queries.round_due(found.id)
    if not due.live:
        wanted, because = RoundStatus.RECEIVED, "no live invoices"
    elif not due.with_money_due:
        wanted, because = RoundStatus.SETTLED, "every invoice is paid or credited"
    else:
        wanted, because = RoundStatus.INVOICED, "money is due on an invoice"
    set_billing_status(actor, found, wanted, because=because)
    return wanted
