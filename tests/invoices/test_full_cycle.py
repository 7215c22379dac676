"""The whole money cycle of a round, checked against the ledger and against a real accounting tool.

The SPEC's worked example is closed with the jump, delivered and subsidised
(the ``approved`` fixture); finance issues the invoices; then a partial
payment and a credit note (A), a full payment (B), an over-payment (C), and
a refund of part of C's over-payment. Afterwards the trial balance balances,
each member's receivable is its invoice's balance due and its account credit
what it over-paid less the refund, every member's statement closes on its
ledger balance, and the journal exported for hledger passes ``hledger check``
and gives, account by account, the trial balance.

The real ``/usr/bin/hledger`` is used (``make test`` installs it). Where it is
missing the hledger checks are skipped with the reason, except under
``CI=true``, where a missing hledger fails.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from buyersclub.db import utcnow
from buyersclub.ledger import chart
from buyersclub.ledger.services import organisation_balances, trial_balance
from buyersclub.money import ZERO
from invoices.services import credit_notes, exports, issuing, payments, statements
from invoices.services.periods import Period, default_period
from tests.conftest import IN_CI

D = Decimal


def hledger() -> str:
    """The hledger program; a skip with the reason where it is missing, a failure under CI."""
    found = shutil.which("hledger") or ("/usr/bin/hledger" if os.access("/usr/bin/hledger", os.X_OK)
                                        else None)
    if found is None:
        message = ("hledger is not installed: `make test` installs Debian's hledger, or run "
                   "`sudo apt-get install -y hledger`")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_a_missing_hledger_fails_under_ci_and_is_skipped_with_the_reason_elsewhere(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="hledger is not installed"):
        hledger()
    monkeypatch.setattr(module, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y hledger"):
        hledger()


def run_hledger(*args: str) -> str:
    result = subprocess.run([hledger(), *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "LEDGER_FILE": os.devnull})
    assert result.returncode == 0, f"hledger {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def hledger_balances(path: Path, depth: int | None = None) -> dict[str, Decimal]:
    """``hledger bal`` per account (flat, zero balances shown), as Decimals in the club's currency."""
    args = ["-f", str(path), "bal", "--flat", "--no-total", "-E", "-O", "csv"]
    if depth is not None:
        args.append(f"--depth={depth}")
    rows = list(csv.reader(io.StringIO(run_hledger(*args))))
    assert rows[0] == ["account", "balance"], rows[:2]
    balances = {}
    for account, amount in rows[1:]:
        text = amount.replace("USD", "").replace(",", "").strip()
        balances[account] = D(text).quantize(D("0.01")) if text else ZERO
    return balances


def export_text(actor, kind: str, period: Period) -> str:
    return "".join(exports.EXPORTS[kind].produce(actor, period))


@pytest.fixture
def cycle(approved):
    """The round invoiced, then paid, over-paid, credited and refunded as the module says."""
    finance = approved.finance
    issued = issuing.issue_round_invoices(finance, approved.round.id)
    by_member = {key: next(invoice for invoice in issued if invoice.organisation_id == org.id)
                 for key, org in approved.members.items()}
    today = utcnow().date()
    due = {key: payments.balance_due(invoice) for key, invoice in by_member.items()}
    a, b, c = (by_member[key] for key in "ABC")
    partial = payments.record_payment(finance, a.id, "bank_transfer", "ALDER-1", today, "5000.00")
    payments.record_payment(finance, b.id, "cheque", "000123", today, str(due["B"]))
    over = payments.record_payment(finance, c.id, "bank_transfer", "CEDAR-1", today,
                                  str(due["C"] + D("75.00")))
    note = credit_notes.issue_credit_note(finance, a.id, reason="Two boxes arrived crushed", amount="80.00")
    refund = payments.refund_payment(finance, over.id, "25.00", "Part of the over-payment sent back")
    return SimpleNamespace(**vars(approved), invoices=by_member, due=due, partial=partial, over=over,
                           note=note, refund=refund, today=today)


def test_the_cycle_leaves_the_ledger_balanced_and_in_step_with_the_documents(cycle):
    invoices = cycle.invoices
    assert payments.balance_due(invoices["A"]) == cycle.due["A"] - D("5000.00") - D("80.00")
    assert payments.balance_due(invoices["B"]) == ZERO
    assert payments.balance_due(invoices["C"]) == ZERO
    assert payments.balance_due(invoices["D"]) == cycle.due["D"] > 0  # D has not paid yet
    assert cycle.over.amount - cycle.over.applied == D("75.00")

    report = trial_balance()
    assert report.balanced and report.difference == ZERO
    assert report.total_debit > 0

    receivables = organisation_balances(chart.RECEIVABLES)
    credit = organisation_balances(chart.MEMBER_CREDIT)
    for key, invoice in invoices.items():
        member = cycle.members[key].id
        assert receivables.get(member, ZERO) == payments.balance_due(invoice), key
    # C over-paid 75.00 and got 25.00 of it back: the club holds 50.00 for it (a credit balance).
    assert -credit[cycle.members["C"].id] == D("50.00") == issuing.member_credit(cycle.members["C"].id)
    assert all(credit.get(cycle.members[key].id, ZERO) == ZERO for key in "ABD")


def test_each_statement_closes_on_the_ledger_balance_of_its_member(cycle):
    for key, organisation in cycle.members.items():
        found = statements.statement_for(cycle.finance, organisation.id, default_period())
        receivable = organisation_balances(chart.RECEIVABLES).get(organisation.id, ZERO)
        held = -organisation_balances(chart.MEMBER_CREDIT).get(organisation.id, ZERO)
        assert found.agrees, key
        assert found.not_invoiced == ZERO
        assert found.closing.balance == receivable - held, key
        assert found.closing.owed == receivable and found.closing.credit == held
        assert found.opening.balance == ZERO
        assert found.lines[-1].balance == found.closing.balance
    c = statements.statement_for(cycle.finance, cycle.members["C"].id, default_period())
    assert [line.kind for line in c.lines] == ["invoice", "payment", "refund"]
    assert c.closing.balance == D("-50.00")  # in C's favour: the account credit left


def test_the_exported_journal_passes_hledger_check(cycle, tmp_path):
    path = tmp_path / "club.journal"
    path.write_text(export_text(cycle.finance, "ledger", default_period()), encoding="utf-8")
    run_hledger("-f", str(path), "check")
    run_hledger("-f", str(path), "check", "--strict")  # every account and the currency declared


def test_hledger_gives_the_trial_balance_account_by_account(cycle, tmp_path):
    path = tmp_path / "club.journal"
    path.write_text(export_text(cycle.finance, "ledger", default_period()), encoding="utf-8")
    report = trial_balance()
    by_chart = hledger_balances(path, depth=2)
    names = {row.code: exports.account_name(row.code, row.name, row.type.value) for row in report.accounts}
    assert len(set(names.values())) == len(names)
    for row in report.accounts:
        assert by_chart.get(names[row.code], ZERO) == row.balance, (row.code, row.name)
    assert set(by_chart) <= set(names.values())
    # And member by member: each receivable and account credit sub-account is the ledger's.
    flat = hledger_balances(path)
    for code in (chart.RECEIVABLES, chart.MEMBER_CREDIT):
        for key, organisation in cycle.members.items():
            account = exports.member_account(names[code], organisation.id, organisation.name)
            expected = organisation_balances(code).get(organisation.id, ZERO)
            assert flat.get(account, ZERO) == expected, (code, key)


def test_a_later_period_opens_with_the_balances_before_it(cycle, tmp_path):
    """An export of a later period: its opening balances carry everything before it."""
    tomorrow = cycle.today.fromordinal(cycle.today.toordinal() + 1)
    path = tmp_path / "later.journal"
    path.write_text(export_text(cycle.finance, "ledger", Period(tomorrow, tomorrow)), encoding="utf-8")
    text = path.read_text()
    assert "Opening balances" in text
    run_hledger("-f", str(path), "check", "--strict")
    by_chart = hledger_balances(path, depth=2)
    for row in trial_balance().accounts:
        name = exports.account_name(row.code, row.name, row.type.value)
        assert by_chart.get(name, ZERO) == row.balance, row.code


def test_the_csv_exports_parse_back_with_the_right_totals(cycle):
    period = default_period()
    invoices = list(csv.DictReader(io.StringIO(export_text(cycle.finance, "invoices", period))))
    assert [row["number"] for row in invoices] == sorted(i.number for i in cycle.invoices.values())
    by_number = {row["number"]: row for row in invoices}
    for key, invoice in cycle.invoices.items():
        row = by_number[invoice.number]
        settled = payments.settlement(invoice)
        assert D(row["total"]) == invoice.total
        assert D(row["paid"]) == settled.paid and D(row["credited"]) == settled.credited
        assert D(row["balance_due"]) == settled.balance_due
        assert row["member"] == cycle.members[key].name
        assert row["status"] == payments.status_label(invoice)
    assert sum(D(row["total"]) for row in invoices) == sum(i.total for i in cycle.invoices.values())

    rows = list(csv.DictReader(io.StringIO(export_text(cycle.finance, "payments", period))))
    assert len(rows) == 3
    assert sum(D(row["amount"]) for row in rows) == (D("5000.00") + cycle.due["B"] + cycle.due["C"]
                                                     + D("75.00"))
    assert sum(D(row["refunded"]) for row in rows) == D("25.00")
    cedar = next(row for row in rows if row["reference"] == "CEDAR-1")
    assert D(cedar["amount"]) - D(cedar["applied"]) == D("75.00")

    lines = list(csv.DictReader(io.StringIO(export_text(cycle.finance, "journal", period))))
    assert sum(D(row["debit"]) for row in lines) == sum(D(row["credit"]) for row in lines)
    assert sum(D(row["debit"]) for row in lines) == trial_balance().total_debit
    for row in lines:
        assert row["debit"] == "0.00" or row["credit"] == "0.00"
    receivable = sum(D(row["debit"]) - D(row["credit"]) for row in lines
                     if row["account_code"] == chart.RECEIVABLES)
    assert receivable == sum(payments.balance_due(invoice) for invoice in cycle.invoices.values())
