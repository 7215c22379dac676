"""Immutability, numbering, payments and refunds, credit notes and voids, with the ledger kept in step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, PermissionDenied
from buyersclub.ledger import chart
from buyersclub.ledger.services import account_balance, organisation_balances, trial_balance
from invoices.models import CreditNote, Invoice, InvoiceLine, InvoiceStatus, LineKind, SeriesKind
from invoices.services import credit_notes, issuing, payments
from invoices.services.immutability import InvoiceIsImmutable
from invoices.services.numbering import next_number
from tests.invoices.conftest import issue_all, receivable_movements

D = Decimal
YEAR = utcnow().year
TODAY = utcnow().date()


@pytest.fixture
def invoiced(approved, monkeypatch, app):
    """The worked example invoiced, with 6.25% tax in Massachusetts: A owes 20,536.21."""
    monkeypatch.setitem(app.config, "INVOICE_TAX_RATES", {"US-MA": "0.0625"})
    approved.invoices = issue_all(approved)
    return approved


def agrees(ex) -> None:
    """The ledger and the documents say the same: receivable = balance due, for every member."""
    assert trial_balance().balanced
    receivables = organisation_balances(chart.RECEIVABLES)
    for key in ex.invoices:
        member = ex.members[key].id
        live = db.session.scalars(select(Invoice).where(Invoice.organisation_id == member,
                                                        Invoice.status == InvoiceStatus.ISSUED)).all()
        assert receivables.get(member, D("0.00")) == sum((payments.balance_due(i) for i in live), D("0.00"))


# --- Immutability --------------------------------------------------------------------------------


def test_an_issued_invoice_never_changes(session, invoiced):
    invoice = invoiced.invoices["A"]
    for change in (lambda: setattr(invoice, "total", D("1.00")),
                   lambda: setattr(invoice, "bill_to", {"name": "Someone else"}),
                   lambda: setattr(invoice, "status", InvoiceStatus.VOID),
                   lambda: setattr(invoice.lines[0], "amount", D("1.00")),
                   lambda: session.delete(invoice.lines[0]),
                   lambda: invoice.lines.append(InvoiceLine(position=99, kind=LineKind.GOODS,
                                                            description="Extra", amount=D("5.00")))):
        with session.begin_nested() as savepoint:
            change()
            with pytest.raises(InvoiceIsImmutable):
                session.flush()
            savepoint.rollback()
        session.expire_all()
    with pytest.raises(InvoiceIsImmutable):
        session.execute(update(InvoiceLine).values(amount=D("0.00")))
    assert session.get(Invoice, invoice.id).total == D("20536.21")


def test_reminders_may_be_noted_on_an_issued_invoice(session, invoiced):
    invoice = invoiced.invoices["A"]
    invoice.last_reminder_at = utcnow()
    session.flush()


# --- Numbering -------------------------------------------------------------------------------------


def test_numbers_are_yearly_and_a_rollback_leaves_no_gap(session):
    assert next_number(SeriesKind.INVOICE, 2031) == ("INV-2031-00001", 1)
    savepoint = session.begin_nested()
    assert next_number(SeriesKind.INVOICE, 2031) == ("INV-2031-00002", 2)
    savepoint.rollback()
    assert next_number(SeriesKind.INVOICE, 2031) == ("INV-2031-00002", 2)
    assert next_number(SeriesKind.INVOICE, 2032) == ("INV-2032-00001", 1)
    assert next_number(SeriesKind.CREDIT_NOTE, 2031) == ("CN-2031-00001", 1)


# --- Payments and refunds --------------------------------------------------------------------------


def test_partial_payments_then_paid(session, invoiced):
    invoice = invoiced.invoices["B"]  # 12,080.13 + 755.01 tax = 12,835.14
    assert invoice.total == D("12835.14")
    first = payments.record_payment(invoiced.finance, invoice.id, "bank_transfer", "BT-77", TODAY, "5000.00")
    assert (first.amount, first.applied) == (D("5000.00"), D("5000.00"))
    assert payments.balance_due(invoice) == D("7835.14")
    assert payments.status_label(invoice) == "partly paid"
    payments.record_payment(invoiced.finance, invoice.id, "cheque", "CHQ-1", TODAY, "7835.14")
    assert payments.balance_due(invoice) == D("0.00") and payments.status_label(invoice) == "paid"
    assert issuing.member_credit(invoiced.members["B"].id) == D("0.00")
    assert account_balance(chart.CASH) >= D("12835.14")
    agrees(invoiced)


def test_an_over_payment_becomes_account_credit(session, invoiced):
    invoice = invoiced.invoices["D"]  # 12.82 (exempt? no: 0.80 tax) -> 13.62
    assert invoice.total == D("13.62")
    payment = payments.record_payment(invoiced.finance, invoice.id, "bank_transfer", None, TODAY, "20.00")
    assert (payment.applied, payment.amount - payment.applied) == (D("13.62"), D("6.38"))
    assert issuing.member_credit(invoiced.members["D"].id) == D("6.38")
    assert organisation_balances(chart.MEMBER_CREDIT)[invoiced.members["D"].id] == D("-6.38")
    # Paying a paid invoice again: all of it is credit.
    again = payments.record_payment(invoiced.finance, invoice.id, "cheque", "CHQ-2", TODAY, "1.00")
    assert again.applied == D("0.00")
    assert issuing.member_credit(invoiced.members["D"].id) == D("7.38")
    agrees(invoiced)


def test_overdue_is_shown_after_the_due_date(session, invoiced):
    invoice = invoiced.invoices["A"]
    assert payments.status_label(invoice, today=invoice.due_on) == "open"
    assert payments.status_label(invoice, today=invoice.due_on + timedelta(days=1)) == "overdue"


def test_payments_are_checked(session, invoiced, member):
    invoice = invoiced.invoices["A"]
    for kwargs, field in (({"amount": "0"}, "amount"), ({"amount": "-5.00"}, "amount"),
                          ({"amount": "1.005"}, "amount"), ({"method": "card"}, "method"),
                          ({"method": "barter"}, "method"),
                          ({"received_on": TODAY + timedelta(days=1)}, "received_on")):
        values = {"method": "bank_transfer", "reference": "X", "received_on": TODAY, "amount": "10.00",
                  **kwargs}
        with pytest.raises(InvalidInput) as refused:
            payments.record_payment(invoiced.finance, invoice.id, **values)
        assert refused.value.field == field
    with pytest.raises(PermissionDenied):
        payments.record_payment(invoiced.admin, invoice.id, "cheque", "X", TODAY, "10.00")


def test_refunds_come_from_the_excess_first_then_reopen_the_invoice(session, invoiced):
    invoice = invoiced.invoices["D"]  # 13.62
    payment = payments.record_payment(invoiced.finance, invoice.id, "bank_transfer", "BT", TODAY, "20.00")
    cash = account_balance(chart.CASH)
    payments.refund_payment(invoiced.finance, payment.id, "5.00", "Asked for the excess back")
    assert issuing.member_credit(invoiced.members["D"].id) == D("1.38")
    assert payments.balance_due(invoice) == D("0.00")
    payments.refund_payment(invoiced.finance, payment.id, "3.38", "Cheque to be re-sent")
    assert issuing.member_credit(invoiced.members["D"].id) == D("0.00")
    assert payments.balance_due(invoice) == D("2.00") and payments.status_label(invoice) == "partly paid"
    assert account_balance(chart.CASH) == cash - D("8.38")
    with pytest.raises(Conflict, match="left to refund"):
        payments.refund_payment(invoiced.finance, payment.id, "11.63", "Too much")
    payments.refund_payment(invoiced.finance, payment.id, "11.62", "The rest")
    assert payments.balance_due(invoice) == D("13.62") and payments.status_label(invoice) == "open"
    agrees(invoiced)


def test_a_refund_of_credit_already_used_is_refused(session, invoiced):
    invoice = invoiced.invoices["D"]
    payment = payments.record_payment(invoiced.finance, invoice.id, "bank_transfer", "BT", TODAY, "20.00")
    other = invoiced.invoices["C"]  # the member's credit spent some other way: a credit note refund
    assert other.organisation_id != invoice.organisation_id
    issuing.lock_member_credit()
    from buyersclub.ledger.services import Line, post_entry

    post_entry(invoiced.finance, entry_date=TODAY, memo="Credit used", kind="test",
               lines=[Line(chart.MEMBER_CREDIT, D("6.00"), invoice.organisation_id),
                      Line(chart.CASH, D("-6.00"))])
    with pytest.raises(Conflict, match=r"holds 0\.38") as refused:
        payments.refund_payment(invoiced.finance, payment.id, "5.00", "Excess back")
    assert refused.value.code == "credit_already_used"


# --- Credit notes ----------------------------------------------------------------------------------


def test_a_credit_note_by_amount_shares_it_across_goods_shipping_and_tax(session, invoiced):
    invoice = invoiced.invoices["A"]  # goods 19,200.00, shipping 128.20, tax 1,208.01
    sales, tax, shipping = (account_balance(code) for code in (chart.SALES, chart.TAX_PAYABLE,
                                                                chart.SHIPPING_COSTS))
    note = credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Damaged boxes",
                                          amount="1063.00")
    assert note.number == f"CN-{YEAR}-00001" and note.amount == D("1063.00")
    parts = {row["part"]: D(row["amount"]) for row in note.lines}
    assert sum(parts.values()) == D("1063.00")
    # 1,063.00 x each part / 20,536.21, largest remainder: the tax credited follows the goods.
    assert parts == {"goods": D("993.83"), "shipping": D("6.64"), "tax": D("62.53")}
    assert account_balance(chart.SALES) - sales == D("993.83")
    assert account_balance(chart.TAX_PAYABLE) - tax == D("62.53")
    assert account_balance(chart.SHIPPING_COSTS) - shipping == D("6.64")
    assert payments.balance_due(invoice) == D("19473.21")
    assert payments.status_label(invoice) == "partly paid"
    agrees(invoiced)


def test_a_credit_note_by_line_and_the_limits(session, invoiced):
    invoice = invoiced.invoices["A"]
    shipping = next(line for line in invoice.lines if line.kind == LineKind.SHIPPING)
    note = credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Collected in person",
                                          line_ids=[shipping.id])
    assert note.amount == D("128.20") and note.lines[0]["line_id"] == shipping.id
    with pytest.raises(Conflict, match="credited in full already"):
        credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Again", line_ids=[shipping.id])
    c = invoiced.invoices["C"]
    subsidy = next(line for line in c.lines if line.kind == LineKind.SUBSIDY_CREDIT)
    with pytest.raises(InvalidInput, match="not a charge"):
        credit_notes.issue_credit_note(invoiced.finance, c.id, reason="No", line_ids=[subsidy.id])
    goods = next(line for line in c.lines if line.kind == LineKind.GOODS)
    with pytest.raises(Conflict, match="net of subsidy"):
        credit_notes.issue_credit_note(invoiced.finance, c.id, reason="No", line_ids=[goods.id])
    with pytest.raises(Conflict, match="left to credit"):
        credit_notes.issue_credit_note(invoiced.finance, c.id, reason="Too much", amount="30.66")
    payments.record_payment(invoiced.finance, invoice.id, "cheque", "CHQ", TODAY, "20000.00")
    with pytest.raises(Conflict, match=r"open amount \(408\.01\)"):
        credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Too much", amount="408.02")
    with pytest.raises(InvalidInput):
        credit_notes.issue_credit_note(invoiced.finance, c.id, reason=" ", amount="1.00")
    agrees(invoiced)


def test_a_whole_credit_note_credits_what_is_open_after_a_payment(session, invoiced):
    invoice = invoiced.invoices["B"]
    payments.record_payment(invoiced.finance, invoice.id, "cheque", "CHQ", TODAY, "835.14")
    note = credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Goods never arrived")
    assert note.amount == D("12000.00")
    assert payments.balance_due(invoice) == D("0.00") and payments.status_label(invoice) == "paid"
    with pytest.raises(Conflict):
        credit_notes.issue_credit_note(invoiced.finance, invoice.id, reason="Again", amount="0.01")
    numbers = session.scalars(select(CreditNote.number).order_by(CreditNote.id)).all()
    assert numbers == [f"CN-{YEAR}-00001"]
    agrees(invoiced)


# --- Void ------------------------------------------------------------------------------------------


def test_void_keeps_the_number_and_the_replacement_bills_the_member_again(session, invoiced, app,
                                                                          monkeypatch):
    invoice = invoiced.invoices["D"]
    member = invoiced.members["D"]
    voided = credit_notes.void_invoice(invoiced.finance, invoice.id, "Tax charged to an exempt member")
    assert voided.status == InvoiceStatus.VOID and voided.number == f"INV-{YEAR}-00004"
    assert payments.status_label(voided) == "void" and payments.balance_due(voided) == D("0.00")
    assert receivable_movements(member.id) == D("0.00")  # the member owes nothing for it
    assert trial_balance().balanced
    with pytest.raises(Conflict, match="void"):
        payments.record_payment(invoiced.finance, invoice.id, "cheque", "X", TODAY, "1.00")

    member.tax_exempt_certificate = "MA-EX-77"
    [replacement] = issuing.issue_round_invoices(invoiced.finance, invoiced.round.id)
    assert replacement.organisation_id == member.id and replacement.number == f"INV-{YEAR}-00005"
    assert replacement.total == D("12.82") and replacement.tax_exempt_certificate == "MA-EX-77"
    assert receivable_movements(member.id) == replacement.total
    invoiced.invoices["D"] = replacement
    agrees(invoiced)


def test_void_gives_back_the_account_credit_it_used(session, admin, naloxone, invoiced):
    from buyersclub.actor import Actor
    from orders.services import commitments
    from tests.invoices.conftest import close_and_receive, open_round

    d = invoiced.members["D"]
    payments.record_payment(invoiced.finance, invoiced.invoices["D"].id, "cheque", "X", TODAY, "100.00")
    credit = issuing.member_credit(d.id)
    later = open_round(admin, naloxone, name="Naloxone, autumn")
    commitments.set_commitment(Actor.for_user(d.staff[0]), later.id, naloxone.id, quantity=24)
    close_and_receive(Actor.for_user(admin), later, naloxone)
    [second] = issuing.issue_round_invoices(invoiced.finance, later.id, without_subsidy_run=True)
    assert issuing.member_credit(d.id) == D("0.00")
    credit_notes.void_invoice(invoiced.finance, second.id, "Wrong round")
    assert issuing.member_credit(d.id) == credit
    assert trial_balance().balanced


def test_void_is_refused_with_payments_or_credit_notes(session, invoiced):
    a, b = invoiced.invoices["A"], invoiced.invoices["B"]
    payments.record_payment(invoiced.finance, a.id, "cheque", "X", TODAY, "1.00")
    with pytest.raises(Conflict, match="has payments"):
        credit_notes.void_invoice(invoiced.finance, a.id, "Oops")
    credit_notes.issue_credit_note(invoiced.finance, b.id, reason="Goodwill", amount="1.00")
    with pytest.raises(Conflict, match="credit notes"):
        credit_notes.void_invoice(invoiced.finance, b.id, "Oops")
    with pytest.raises(InvalidInput):
        credit_notes.void_invoice(invoiced.finance, invoiced.invoices["C"].id, "")
    assert a.status == b.status == InvoiceStatus.ISSUED
