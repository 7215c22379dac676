"""Statements of account: the balance from the ledger, each document with the running balance, the
page with its period form, the PDF and the API."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from buyersclub.actor import Actor
from buyersclub.ledger import chart
from buyersclub.ledger.services import account_balance
from buyersclub.money import ZERO
from invoices.services import credit_notes, issuing, payments, statements
from invoices.services.periods import Period, default_period
from orders.services import closing, commitments
from tests.invoices.conftest import open_round, receive_in_full

D = Decimal


def ledger_balance(organisation_id: int, as_of=None) -> Decimal:
    """The ledger's receivable minus the account credit held, for one member."""
    return (account_balance(chart.RECEIVABLES, organisation_id, as_of)
            + account_balance(chart.MEMBER_CREDIT, organisation_id, as_of))


def statement(fixture, key: str, period: Period | None = None) -> statements.Statement:
    return statements.statement_for(fixture.finance, fixture.members[key].id, period or default_period())


# --- What the statement says -----------------------------------------------------------------------


def test_before_invoicing_the_rounds_goods_wait_apart_as_not_yet_invoiced(approved):
    found = statement(approved, "A")
    assert found.lines == []
    assert found.closing.balance == ZERO
    assert found.not_invoiced == D("19200.00")  # 480 boxes at $40.00, on the receivable since the close
    assert found.ledger_balance == ledger_balance(approved.members["A"].id) == D("19200.00")
    assert found.agrees
    # C's goods are fully subsidised: nothing waits.
    assert statement(approved, "C").not_invoiced == ZERO


def test_every_document_moves_the_running_balance_and_the_close_is_the_ledgers(invoiced):
    finance, today = invoiced.finance, invoiced.today
    a = invoiced.invoices["A"]
    payment = payments.record_payment(finance, a.id, "bank_transfer", "ALDER-7", today, "5000.00")
    credit_notes.issue_credit_note(finance, a.id, reason="Two boxes crushed", amount="80.00")
    payments.refund_payment(finance, payment.id, "100.00", "Paid twice by mistake")

    found = statement(invoiced, "A")
    assert [(line.kind, line.document, line.change, line.balance) for line in found.lines] == [
        ("invoice", a.number, a.total, a.total),
        ("payment", f"Payment #{payment.id}", D("-5000.00"), a.total - D("5000.00")),
        ("credit_note", "CN-" + str(today.year) + "-00001", D("-80.00"), a.total - D("5080.00")),
        ("refund", found.lines[3].document, D("100.00"), a.total - D("4980.00")),
    ]
    assert "ALDER-7" in found.lines[1].description and found.lines[1].method == "bank_transfer"
    assert found.closing.balance == a.total - D("4980.00") == payments.balance_due(a)
    assert found.closing.balance == ledger_balance(invoiced.members["A"].id)
    assert found.charges == a.total + D("100.00")
    assert found.payments_and_credits == D("5080.00")
    assert found.agrees


def test_account_credit_moves_are_shown_and_the_next_invoice_uses_the_credit(invoiced, admin):
    """C over-pays by 75.00, gets 25.00 back, and its next round's invoice uses the 50.00 left."""
    finance, today = invoiced.finance, invoiced.today
    cedar = invoiced.members["C"]
    c = invoiced.invoices["C"]
    over = payments.record_payment(finance, c.id, "cheque", "0042", today, str(c.total + D("75.00")))
    payments.refund_payment(finance, over.id, "25.00", "Over-payment partly returned")
    assert statement(invoiced, "C").closing == statements.Position(ZERO, D("50.00"))

    summer = open_round(admin, invoiced.product, name="Naloxone, summer")
    commitments.set_commitment(Actor.for_user(cedar.staff[0]), summer.id, invoiced.product.id,
                               quantity=24, tolerance=0)
    closing.commit_close(invoiced.admin, summer.id, {invoiced.product.id: 24})
    middle = statement(invoiced, "C")
    assert middle.not_invoiced == D("960.00") and middle.agrees  # closed, not invoiced yet
    receive_in_full(invoiced.admin, summer, invoiced.product, 24)
    [second] = issuing.issue_round_invoices(finance, summer.id, without_subsidy_run=True)
    assert second.total == D("910.00")  # 960.00 less the 50.00 of account credit

    found = statement(invoiced, "C")
    kinds = [line.kind for line in found.lines]
    assert kinds == ["invoice", "payment", "refund", "invoice"]
    paid, refund, invoice = found.lines[1:]
    assert (paid.owed, paid.credit, paid.change) == (-c.total, D("75.00"), -(c.total + D("75.00")))
    assert "75.00 over the balance due became account credit" in paid.description
    assert (refund.owed, refund.credit, refund.change) == (ZERO, D("-25.00"), D("25.00"))
    assert (invoice.owed, invoice.credit, invoice.amount) == (D("910.00"), D("-50.00"), D("910.00"))
    assert "50.00 of account credit applied" in invoice.description
    assert found.closing == statements.Position(D("910.00"), ZERO)
    assert found.closing.balance == ledger_balance(cedar.id) and found.agrees and found.not_invoiced == ZERO


def test_a_void_takes_the_invoice_off_and_its_replacement_puts_it_back(invoiced):
    d = invoiced.invoices["D"]
    credit_notes.void_invoice(invoiced.finance, d.id, "Issued to the wrong address")
    voided = statement(invoiced, "D")
    assert [(line.kind, line.change) for line in voided.lines] == [("invoice", d.total), ("void", -d.total)]
    assert voided.closing.balance == ZERO == ledger_balance(invoiced.members["D"].id) and voided.agrees
    [replacement] = issuing.issue_round_invoices(invoiced.finance, invoiced.round.id)
    again = statement(invoiced, "D")
    assert again.lines[-1].document == replacement.number
    assert again.closing.balance == replacement.total == ledger_balance(invoiced.members["D"].id)
    assert again.agrees


def test_the_opening_balance_is_the_ledgers_on_the_day_before_the_period(invoiced):
    """A payment dated three days ago is before a period starting yesterday: in the opening balance."""
    finance, today = invoiced.finance, invoiced.today
    b = invoiced.invoices["B"]
    payments.record_payment(finance, b.id, "bank_transfer", "EARLY", today - timedelta(days=3), "1000.00")
    found = statement(invoiced, "B", Period(today - timedelta(days=1), today))
    assert found.opening.balance == D("-1000.00") == ledger_balance(invoiced.members["B"].id,
                                                                     today - timedelta(days=1))
    assert found.documents_opening == found.opening
    assert [line.kind for line in found.lines] == ["invoice"]
    assert found.closing.balance == b.total - D("1000.00") == ledger_balance(invoiced.members["B"].id)
    assert found.agrees

    before = statement(invoiced, "B", Period(today - timedelta(days=10), today - timedelta(days=5)))
    assert before.lines == [] and before.opening.balance == before.closing.balance == ZERO

    later = statement(invoiced, "B", Period(today + timedelta(days=1), today + timedelta(days=2)))
    assert later.lines == [] and later.opening.balance == found.closing.balance and later.agrees


def test_a_statement_that_disagrees_with_the_ledger_says_so(invoiced):
    found = statement(invoiced, "A")
    broken = statements.Statement(**{**found.__dict__, "ledger_closing": statements.Position(ZERO, ZERO)})
    assert not broken.agrees and broken.difference == found.closing.balance


# --- The page, the PDF and the API ------------------------------------------------------------------


@pytest.fixture
def paid_a(invoiced):
    a = invoiced.invoices["A"]
    payments.record_payment(invoiced.finance, a.id, "cheque", "CHQ-9", invoiced.today, "1000.00")
    return SimpleNamespace(fixture=invoiced, invoice=a, organisation=invoiced.members["A"],
                           staff=invoiced.members["A"].staff[0], balance=a.total - D("1000.00"))


def test_member_staff_see_their_statement_with_a_period_form(client, sign_in, paid_a):
    sign_in(paid_a.staff)
    response = client.get(f"/organisations/{paid_a.organisation.id}/statement")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Statement of account: Programme Alder" in html
    assert paid_a.invoice.number in html and "CHQ-9" in html
    assert f"${paid_a.balance:,.2f}" in html
    assert 'name="from"' in html and 'name="to"' in html
    assert f"/organisations/{paid_a.organisation.id}/statement.pdf?from=" in html
    # Another organisation's statement does not exist for them.
    other = paid_a.fixture.members["B"].id
    assert client.get(f"/organisations/{other}/statement").status_code == 404


def test_my_invoices_links_to_the_statement(client, sign_in, paid_a):
    sign_in(paid_a.staff)
    html = client.get("/invoices").get_data(as_text=True)
    assert f'href="/organisations/{paid_a.organisation.id}/statement"' in html


def test_finance_reach_any_members_statement_from_the_invoice_list(client, sign_in, finance, paid_a):
    sign_in(finance)
    member_id = paid_a.organisation.id
    html = client.get(f"/invoices?organisation_id={member_id}").get_data(as_text=True)
    assert f'href="/organisations/{member_id}/statement"' in html
    assert client.get(f"/organisations/{member_id}/statement").status_code == 200


@pytest.mark.parametrize(("query", "field", "message"), [
    ("from=2026-13-01", "from", "“from” must be a date written YYYY-MM-DD"),
    ("to=yesterday", "to", "“to” must be a date written YYYY-MM-DD"),
    ("from=2026-03-31&to=2026-03-01", "from", "must be on or before"),
])
def test_a_bad_period_is_a_400_next_to_its_field(client, sign_in, paid_a, query, field, message):
    sign_in(paid_a.staff)
    response = client.get(f"/organisations/{paid_a.organisation.id}/statement?{query}")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'id="period-{field}-error"' in html and message in html
    assert paid_a.invoice.number not in html


def test_the_statement_pdf_says_what_the_page_says(client, sign_in, paid_a, tmp_path):
    sign_in(paid_a.staff)
    today = paid_a.fixture.today
    response = client.get(f"/organisations/{paid_a.organisation.id}/statement.pdf"
                          f"?from={today.isoformat()}&to={today.isoformat()}")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert "attachment" not in response.headers["Content-Disposition"]
    path = tmp_path / "statement.pdf"
    path.write_bytes(response.data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Statement of account" in text and "Programme Alder" in text
    assert paid_a.invoice.number in text and "CHQ-9" in text
    assert f"${paid_a.balance:,.2f}" in text
    assert f"{today.isoformat()} to {today.isoformat()}" in text
    bad = client.get(f"/organisations/{paid_a.organisation.id}/statement.pdf?from=soon")
    assert bad.status_code == 400


def test_the_api_gives_the_statement_and_checks_the_period(client, auth, finance, paid_a):
    headers = auth(finance)
    url = f"/api/v1/organisations/{paid_a.organisation.id}/statement"
    body = client.get(url, headers=headers).get_json()
    assert body["organisation"] == "Programme Alder"
    assert body["closing"]["balance"] == f"{paid_a.balance:.2f}"
    assert body["ledger_balance"] == f"{ledger_balance(paid_a.organisation.id):.2f}"
    assert body["agrees"] is True
    assert [line["kind"] for line in body["lines"]] == ["invoice", "payment"]
    assert body["lines"][1]["reference"] == "CHQ-9" and body["lines"][1]["change"] == "-1000.00"
    for query, field in (("from=31/03/2026", "from"), ("to=2026-02-30", "to"),
                         ("from=2026-03-02&to=2026-03-01", "from")):
        error = client.get(f"{url}?{query}", headers=headers)
        assert error.status_code == 400
        assert error.get_json()["error"]["field"] == field

    staff_headers = auth(paid_a.fixture.members["B"].staff[0])
    assert client.get(url, headers=staff_headers).status_code == 404
    own = f"/api/v1/organisations/{paid_a.fixture.members['B'].id}/statement"
    assert client.get(own, headers=staff_headers).get_json()["closing"]["balance"] == (
        f"{paid_a.fixture.invoices['B'].total:.2f}")
