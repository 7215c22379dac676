"""Ledger pages: trial balance, journal, an entry, and reversing it."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, account_balance, post_entry, reverse_entry

D = Decimal


def text(response) -> str:
    """The page's visible text, tags removed and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


@pytest.fixture
def books(session, member):
    system = Actor.system("test")
    grant = post_entry(system, entry_date=date(2026, 1, 10), memo="City grant", kind="grant",
                       lines=[Line(chart.CASH, D("1000.00")),
                              Line(chart.FUND_UNRESTRICTED, D("-1000.00"))])
    invoice = post_entry(system, entry_date=date(2026, 2, 3), memo="Invoice 2026-0001",
                         kind="invoice", lines=[
        Line(chart.RECEIVABLES, D("960.00"), organisation_id=member.organisation_id),
        Line(chart.SALES, D("-960.00")),
    ])
    return grant, invoice


def entry_count(session) -> int:
    return session.scalar(select(func.count()).select_from(JournalEntry))


# --- Who may see it ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ledger", "/ledger/journal", "/ledger/entries/1"])
def test_members_are_refused(client, member, sign_in, path):
    sign_in(member)
    assert client.get(path).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/ledger")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


def test_admins_see_the_ledger_but_cannot_reverse(client, admin, sign_in, books):
    grant, _ = books
    sign_in(admin)
    assert client.get("/ledger").status_code == 200
    page = client.get(f"/ledger/entries/{grant.id}")
    assert page.status_code == 200
    assert "Reverse this entry" not in text(page)
    response = client.post(f"/ledger/entries/{grant.id}/reverse",
                           data={"reason": "Mine", "confirmed": "yes"})
    assert response.status_code == 403
    assert account_balance(chart.CASH) == D("1000.00")


# --- Trial balance -------------------------------------------------------------------


def test_trial_balance_page(client, finance, sign_in, books):
    sign_in(finance)
    page = text(client.get("/ledger"))
    assert "Balanced: total debits equal total credits, $1,960.00" in page
    assert "1000 Bank asset $1,000.00 — $1,000.00 Dr" in page
    assert "4000 Sales to members at club price income — $960.00 $960.00 Cr" in page
    assert "Totals $1,960.00 $1,960.00 —" in page


def test_trial_balance_as_of_a_date(client, finance, sign_in, books):
    sign_in(finance)
    page = text(client.get("/ledger?as_of=2026-01-31"))
    assert "total debits equal total credits, $1,000.00, as of 2026-01-31" in page
    assert "Nothing was posted on or before 2025-12-31" in text(
        client.get("/ledger?as_of=2025-12-31"))


def test_trial_balance_with_a_bad_date(client, finance, sign_in, books):
    sign_in(finance)
    response = client.get("/ledger?as_of=31/01/2026")
    assert response.status_code == 400
    assert "as_of must be a date written YYYY-MM-DD" in text(response)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)


def test_empty_ledger(client, finance, sign_in):
    sign_in(finance)
    assert "Nothing has been posted to the ledger yet" in text(client.get("/ledger"))
    assert "Nothing has been posted to the ledger yet" in text(client.get("/ledger/journal"))


# --- Journal ---------------------------------------------------------------------------


def test_journal_newest_first_and_filtered_by_kind(client, finance, sign_in, books):
    grant, invoice = books
    sign_in(finance)
    page = text(client.get("/ledger/journal"))
    assert page.index(f"#{invoice.id} 2026-02-03 invoice Invoice 2026-0001 $960.00") < page.index(
        f"#{grant.id} 2026-01-10 grant City grant $1,000.00")
    filtered = text(client.get("/ledger/journal?kind=grant"))
    assert "City grant" in filtered
    assert "Invoice 2026-0001" not in filtered
    assert "No entries of the kind “refund”" in text(client.get("/ledger/journal?kind=refund"))


def test_journal_is_paginated_without_a_query_per_entry(client, finance, sign_in, count_queries):
    system = Actor.system("test")
    for day in range(1, 31):
        post_entry(system, entry_date=date(2026, 3, day), memo=f"Donation {day}", kind="grant",
                   lines=[Line(chart.CASH, D("5.00")), Line(chart.GRANT_INCOME, D("-5.00"))])
    sign_in(finance)
    with count_queries() as first:
        page = text(client.get("/ledger/journal"))
    assert "Donation 30" in page and "Donation 5" not in page
    assert "Page 1 of 2" in page
    second = text(client.get("/ledger/journal?page=2"))
    assert "Donation 5" in second and "Donation 30" not in second
    with count_queries() as again:
        client.get("/ledger/journal?kind=grant")
    assert again.count <= first.count


# --- One entry and its reversal ----------------------------------------------------


def test_entry_page_shows_postings(client, finance, sign_in, books, member):
    _, invoice = books
    sign_in(finance)
    page = text(client.get(f"/ledger/entries/{invoice.id}"))
    assert "1100 Member receivables Harbour Outreach $960.00" in page
    assert "4000 Sales to members at club price — $960.00" in page
    assert "by the system" in page
    assert "Reverse this entry" in page


def test_unknown_entry_is_404(client, finance, sign_in):
    sign_in(finance)
    assert client.get("/ledger/entries/999999").status_code == 404


def test_reversal_asks_for_a_reason_then_confirmation_then_posts(client, finance, sign_in, books,
                                                                 session):
    grant, _ = books
    sign_in(finance)
    before = entry_count(session)

    no_reason = client.post(f"/ledger/entries/{grant.id}/reverse", data={"reason": "  "})
    assert no_reason.status_code == 400
    assert "Give the reason" in text(no_reason)

    confirm = client.post(f"/ledger/entries/{grant.id}/reverse",
                          data={"reason": "Grant withdrawn by the city"})
    assert confirm.status_code == 200
    page = text(confirm)
    assert f"Reverse entry #{grant.id}?" in page
    # The cash debit becomes a credit.
    assert re.search(r'1000 Bank</td>\s*<td data-label="Debit" class="num"></td>\s*'
                     r'<td data-label="Credit" class="num">\$1,000.00</td>',
                     confirm.get_data(as_text=True))
    assert 'name="confirmed" value="yes"' in confirm.get_data(as_text=True)
    assert entry_count(session) == before  # nothing posted yet

    done = client.post(f"/ledger/entries/{grant.id}/reverse",
                       data={"reason": "Grant withdrawn by the city", "confirmed": "yes"})
    assert done.status_code == 302
    reversal = session.scalars(
        select(JournalEntry).where(JournalEntry.reverses_id == grant.id)).one()
    assert done.headers["Location"].endswith(f"/ledger/entries/{reversal.id}")
    assert account_balance(chart.CASH) == D("0.00")

    shown = text(client.get(done.headers["Location"]))
    assert f"Entry #{grant.id} is reversed by entry #{reversal.id}" in shown
    assert "Grant withdrawn by the city" in shown
    assert f"Reverses entry #{grant.id}" in shown
    assert "by Fin Ance" in shown
    original = text(client.get(f"/ledger/entries/{grant.id}"))
    assert f"Reversed by entry #{reversal.id}" in original
    assert "An entry is reversed only once" in original


def test_reversing_twice_is_refused(client, finance, sign_in, books, session):
    grant, _ = books
    reverse_entry(Actor.for_user(finance), grant.id, "First time")
    sign_in(finance)
    before = entry_count(session)
    for data in ({"reason": "Again"}, {"reason": "Again", "confirmed": "yes"}):
        response = client.post(f"/ledger/entries/{grant.id}/reverse", data=data)
        assert response.status_code == 409
        assert "already reversed" in text(response)
    assert entry_count(session) == before
    assert account_balance(chart.CASH) == D("0.00")


def test_finance_finds_the_ledger_in_the_navigation(client, finance, sign_in):
    sign_in(finance)
    assert 'href="/ledger"' in client.get("/").get_data(as_text=True)


def test_an_entry_a_document_posted_offers_no_reversal_here(client, finance, sign_in, session):
    owned = post_entry(Actor.for_user(finance), entry_date=date(2026, 3, 1), memo="Grant", kind="grant",
                       source=("grant", 3), lines=[Line(chart.CASH, Decimal("50.00")),
                                                   Line(chart.FUND_UNRESTRICTED, Decimal("-50.00"))])
    sign_in(finance)
    page = text(client.get(f"/ledger/entries/{owned.id}"))
    assert "This entry belongs to grant #3" in page
    assert "Reverse this entry…" not in page
    refused = client.post(f"/ledger/entries/{owned.id}/reverse", data={"reason": "x", "confirmed": "yes"})
    assert refused.status_code == 409
