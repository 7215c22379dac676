"""The fund page: balances by restriction, grants, recording and reversing (finance)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from buyersclub.actor import Actor
from subsidies import fund
from subsidies.models import Grant
from subsidies.services.grants import record_grant

FORM = {"source": "Harm reduction trust", "amount": "750.00", "received_on": "2026-03-02",
        "restricted_to": "pipes", "note": ""}


def test_an_empty_fund_says_so_and_explains_restricted_money(sign_in, finance):
    page = sign_in(finance).get("/fund")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "The fund is empty" in text
    assert "No grants or donations have been recorded yet." in text
    assert "money restricted to naloxone only ever pays for naloxone" in text
    assert "Record a grant or donation" in text
    assert 'href="/fund"' in text  # the nav link


def test_finance_records_a_grant_from_the_page(sign_in, finance, session):
    browser = sign_in(finance)

    response = browser.post("/fund/grants", data=FORM)

    assert response.status_code == 302
    page = browser.get("/fund").get_data(as_text=True)
    assert "Recorded $750.00 from Harm reduction trust (restricted to pipes)." in page
    assert "Harm reduction trust" in page
    assert fund.available("pipes") == Decimal("750.00")
    assert fund.available(None) == Decimal("0.00")


def test_a_bad_amount_is_shown_next_to_its_field_and_nothing_is_written(sign_in, finance, session):
    response = sign_in(finance).post("/fund/grants", data={**FORM, "amount": "75.005"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert 'id="amount-error"' in text
    assert "at most two decimals" in text
    assert session.scalar(select(func.count()).select_from(Grant)) == 0


def test_admins_see_the_fund_but_no_grant_form(sign_in, admin, finance, session):
    record_grant(Actor.for_user(finance), "City grant", "100.00", date(2026, 3, 1))
    browser = sign_in(admin)
    text = browser.get("/fund").get_data(as_text=True)
    assert "City grant" in text
    assert "Record a grant or donation" not in text
    assert browser.post("/fund/grants", data=FORM).status_code == 403
    assert fund.available("pipes") == Decimal("0.00")


def test_members_cannot_see_the_fund(sign_in, member):
    browser = sign_in(member)
    assert browser.get("/fund").status_code == 403
    assert 'href="/fund"' not in browser.get("/").get_data(as_text=True)


def test_the_grants_list_filters_by_restriction(sign_in, finance, session):
    treasurer = Actor.for_user(finance)
    record_grant(treasurer, "Pipe donor", "10.00", date(2026, 3, 1), restricted_to="pipes")
    record_grant(treasurer, "General donor", "20.00", date(2026, 3, 2))
    browser = sign_in(finance)
    pipes = browser.get("/fund?restricted_to=pipes").get_data(as_text=True)
    assert "Pipe donor" in pipes and "General donor" not in pipes
    unrestricted = browser.get("/fund?restricted_to=none").get_data(as_text=True)
    assert "General donor" in unrestricted and "Pipe donor" not in unrestricted
    oxygen = browser.get("/fund?restricted_to=oxygen").get_data(as_text=True)
    assert "No grants match this restriction." in oxygen


def test_reversing_a_grant_from_its_page(sign_in, finance, session):
    grant = record_grant(Actor.for_user(finance), "Recorded twice", "40.00", date(2026, 3, 1))
    browser = sign_in(finance)
    assert "Reverse this grant" in browser.get(f"/fund/grants/{grant.id}").get_data(as_text=True)

    missing_reason = browser.post(f"/fund/grants/{grant.id}/reverse", data={"reason": ""})
    assert missing_reason.status_code == 400
    assert "Give the reason" in missing_reason.get_data(as_text=True)

    done = browser.post(f"/fund/grants/{grant.id}/reverse", data={"reason": "Recorded twice"},
                        follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "is reversed by journal entry" in text
    assert "Reverse this grant" not in text
    assert fund.available(None) == Decimal("0.00")
