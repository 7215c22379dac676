"""Exports for the accounts: CSV that cannot carry a formula, periods checked, files streamed, and
the same files from the page, the API and the command line."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from buyersclub.db import utcnow
from invoices.services import exports, payments
from invoices.services.periods import Period, default_period
from tests.invoices.test_full_cycle import export_text, hledger_balances, run_hledger

D = Decimal


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- Cells -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x.test\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\tTAB",
                                  "\rCR"])
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(text):
    assert exports.cell(text) == "'" + text


def test_money_and_dates_stay_numbers():
    assert exports.cell(D("-12.5")) == "-12.50"
    assert exports.cell(D("1234567.891")) == "1234567.89"
    assert exports.cell(utcnow().date()) == utcnow().date().isoformat()
    assert exports.cell(None) == "" and exports.cell(7) == "7"
    assert exports.cell("Programme Alder") == "Programme Alder"


def test_a_payment_reference_cannot_smuggle_a_formula_into_the_payments_csv(invoiced):
    a = invoiced.invoices["A"]
    payments.record_payment(invoiced.finance, a.id, "other", '=cmd|" /C calc"!A0, "quoted"', invoiced.today,
                            "10.00")
    text = export_text(invoiced.finance, "payments", default_period())
    [row] = rows_of(text)
    assert row["reference"] == "'=cmd|\" /C calc\"!A0, \"quoted\""
    assert row["amount"] == "10.00" and row["invoice"] == a.number


def test_a_large_export_is_written_a_batch_at_a_time(invoiced, monkeypatch):
    monkeypatch.setattr(exports, "BATCH", 2)
    chunks = list(exports.journal_csv(invoiced.finance, default_period()))
    lines = "".join(chunks).splitlines()
    assert len(chunks) >= (len(lines) - 1) // 2  # one chunk per two rows, plus the last
    assert lines[0].split(",")[:3] == ["entry_id", "date", "kind"]


# --- Periods ---------------------------------------------------------------------------------------


def test_each_export_keeps_to_its_period(invoiced):
    finance, today = invoiced.finance, invoiced.today
    a, b = invoiced.invoices["A"], invoiced.invoices["B"]
    payments.record_payment(finance, a.id, "bank_transfer", "OLD", today - timedelta(days=10), "100.00")
    payments.record_payment(finance, b.id, "bank_transfer", "NEW", today, "200.00")
    recent = Period(today - timedelta(days=1), today)
    assert [row["reference"] for row in rows_of(export_text(finance, "payments", recent))] == ["NEW"]
    older = Period(today - timedelta(days=12), today - timedelta(days=8))
    assert [row["reference"] for row in rows_of(export_text(finance, "payments", older))] == ["OLD"]
    assert rows_of(export_text(finance, "invoices", older)) == []
    journal = rows_of(export_text(finance, "journal", older))
    assert {row["kind"] for row in journal} == {"payment"} and len(journal) == 2
    assert len(rows_of(export_text(finance, "invoices", recent))) == 4


def test_the_journal_csv_has_one_row_per_posting_with_debit_and_credit(invoiced):
    rows = rows_of(export_text(invoiced.finance, "journal", default_period()))
    assert list(rows[0]) == list(exports.JOURNAL_HEADER)
    close = [row for row in rows if row["kind"] == "round_close"]
    alder = next(row for row in close if row["organisation"] == "Programme Alder")
    assert (alder["account_code"], alder["account_name"], alder["debit"], alder["credit"]) == (
        "1100", "Member receivables", "19200.00", "0.00")
    assert alder["organisation_id"] == str(invoiced.members["A"].id)
    for entry_id in {row["entry_id"] for row in rows}:
        lines = [row for row in rows if row["entry_id"] == entry_id]
        assert sum(D(row["debit"]) for row in lines) == sum(D(row["credit"]) for row in lines)


def test_a_memo_with_semicolons_and_lines_still_makes_a_valid_ledger_file(invoiced, tmp_path):
    a = invoiced.invoices["A"]
    payment = payments.record_payment(invoiced.finance, a.id, "cheque", "A;B", invoiced.today, "10.00")
    payments.refund_payment(invoiced.finance, payment.id, "10.00", "first line;\nsecond | line ; end")
    path = tmp_path / "club.journal"
    path.write_text(export_text(invoiced.finance, "ledger", default_period()))
    text = path.read_text()
    assert "first line, second / line , end" in text
    run_hledger("-f", str(path), "check", "--strict")
    assert hledger_balances(path, depth=2)["assets:bank"] == D("0.00")


# --- Page, API and command line -------------------------------------------------------------------


def test_finance_have_an_exports_page_with_a_link_per_file(client, sign_in, finance, invoiced):
    sign_in(finance)
    home = client.get("/invoices").get_data(as_text=True)
    assert 'href="/exports"' in home
    response = client.get("/exports?from=2026-01-01&to=2026-03-31")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name in ("invoices.csv", "payments.csv", "journal.csv", "journal.ledger"):
        assert f'href="/exports/{name}?from=2026-01-01&amp;to=2026-03-31"' in html
    bad = client.get("/exports?from=2026-04-01&to=2026-03-31")
    assert bad.status_code == 400
    assert 'id="period-from-error"' in bad.get_data(as_text=True)
    assert "/exports/invoices.csv" not in bad.get_data(as_text=True)


def test_the_page_download_streams_the_file(client, sign_in, finance, invoiced):
    sign_in(finance)
    today = invoiced.today.isoformat()
    response = client.get(f"/exports/invoices.csv?from={today}&to={today}")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="invoices-{today}_{today}.csv"'
    rows = rows_of(response.get_data(as_text=True))
    assert sorted(row["number"] for row in rows) == sorted(i.number for i in invoiced.invoices.values())
    assert client.get("/exports/secrets.txt").status_code == 404


@pytest.mark.usefixtures("invoiced")
def test_member_staff_and_admins_cannot_export(client, sign_in, auth, admin, member):
    sign_in(member)
    assert client.get("/exports").status_code == 403
    assert client.get("/exports/journal.csv").status_code == 403
    assert client.get("/api/v1/exports/journal.csv", headers=auth(member)).status_code == 403
    assert client.get("/api/v1/exports/journal.ledger", headers=auth(admin)).status_code == 403


@pytest.mark.parametrize("name", ["journal.csv", "invoices.csv", "payments.csv", "journal.ledger"])
def test_the_api_serves_each_export_and_names_a_bad_date(client, auth, finance, invoiced, name):
    a = invoiced.invoices["A"]
    payments.record_payment(invoiced.finance, a.id, "bank_transfer", "API-1", invoiced.today, "10.00")
    headers = auth(finance)
    response = client.get(f"/api/v1/exports/{name}", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == ("text/plain" if name.endswith(".ledger") else "text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert a.number in text
    for query, field in (("from=2026-02-30", "from"), ("to=tomorrow", "to"),
                         ("from=2026-05-01&to=2026-04-30", "from")):
        error = client.get(f"/api/v1/exports/{name}?{query}", headers=headers)
        assert error.status_code == 400, query
        assert error.get_json()["error"]["field"] == field


def test_the_command_line_writes_an_export_to_a_file_or_standard_output(app, invoiced, tmp_path):
    runner = app.test_cli_runner()
    today = invoiced.today.isoformat()
    target = tmp_path / "journal.csv"
    result = runner.invoke(args=["export", "journal", "--from", today, "--to", today,
                                 "--output", str(target)])
    assert result.exit_code == 0, result.output
    rows = rows_of(target.read_text())
    assert rows and {row["date"] for row in rows} == {today}
    assert list(tmp_path.iterdir()) == [target]  # the temporary file was moved into place

    printed = runner.invoke(args=["export", "invoices"])
    assert printed.exit_code == 0, printed.output
    assert sorted(row["number"] for row in rows_of(printed.stdout)) == sorted(
        i.number for i in invoiced.invoices.values())

    bad = runner.invoke(args=["export", "payments", "--from", "31/12/2026"])
    assert bad.exit_code != 0
    assert "“from” must be a date written YYYY-MM-DD" in bad.output and "(from)" in bad.output
    unknown = runner.invoke(args=["export", "everything"])
    assert unknown.exit_code != 0 and "invoices" in unknown.output
