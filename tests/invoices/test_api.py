"""The invoices API: roles, isolation, issuing, reading, payments, credit notes, void; and the command."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.db import db, utcnow
from invoices.models import Invoice, Payment
from orders.models import Round, RoundStatus
from tests import factories

YEAR = utcnow().year
TODAY = utcnow().date().isoformat()


@pytest.fixture
def api(client, auth, approved, finance, admin):
    ex = approved
    ex.client = client
    ex.fin = auth(finance)
    ex.adm = auth(admin)
    ex.staff = {key: auth(org.staff[0]) for key, org in ex.members.items()}
    return ex


def issue(api):
    response = api.client.post(f"/api/v1/rounds/{api.round.id}/invoices", headers=api.fin)
    assert response.status_code == 201, response.get_json()
    return {item["organisation_id"]: item for item in response.get_json()["issued"]}


def test_finance_issues_and_reads_invoices_with_money_as_strings(api):
    issued = issue(api)
    a = issued[api.members["A"].id]
    assert (a["number"], a["total"], a["balance_due"], a["status_label"]) == (
        f"INV-{YEAR}-00001", "19328.20", "19328.20", "open")
    again = api.client.post(f"/api/v1/rounds/{api.round.id}/invoices", json={"without_subsidy_run": False},
                            headers=api.fin)
    assert again.status_code == 201 and again.get_json()["issued"] == []

    listed = api.client.get("/api/v1/invoices?per_page=2", headers=api.fin).get_json()
    assert (listed["total"], listed["pages"], len(listed["items"])) == (4, 2, 2)
    detail = api.client.get(f"/api/v1/invoices/{a['id']}", headers=api.fin).get_json()
    assert [line["kind"] for line in detail["lines"]] == ["goods", "shipping"]
    assert detail["lines"][0]["amount"] == "19200.00" and detail["lines"][0]["unit_price"] == "40.00"
    c = api.client.get(f"/api/v1/invoices/{issued[api.members['C'].id]['id']}", headers=api.fin).get_json()
    kinds = {line["kind"]: line for line in c["lines"]}
    assert kinds["subsidy_credit"]["amount"] == "-4320.00"
    assert kinds["free_goods"]["note"] == "supplied free by the club fund, value $372.00"


def test_issuing_waits_for_the_subsidy_run_unless_told(client, auth, example, finance):
    headers = auth(finance)
    refused = client.post(f"/api/v1/rounds/{example.round.id}/invoices", headers=headers)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "subsidy_run_not_approved"
    bad = client.post(f"/api/v1/rounds/{example.round.id}/invoices", json={"without_subsidy_run": "yes"},
                      headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "without_subsidy_run"
    done = client.post(f"/api/v1/rounds/{example.round.id}/invoices", json={"without_subsidy_run": True},
                       headers=headers)
    assert done.status_code == 201 and len(done.get_json()["issued"]) == 4


def test_roles(api):
    assert api.client.post(f"/api/v1/rounds/{api.round.id}/invoices", headers=api.adm).status_code == 403
    assert api.client.post(f"/api/v1/rounds/{api.round.id}/invoices",
                           headers=api.staff["A"]).status_code == 403
    assert api.client.post(f"/api/v1/rounds/{api.round.id}/invoices").status_code == 401
    issued = issue(api)
    a = issued[api.members["A"].id]["id"]
    payment = {"method": "cheque", "reference": "1", "received_on": TODAY, "amount": "1.00"}
    for path, body in ((f"/api/v1/invoices/{a}/payments", payment),
                       (f"/api/v1/invoices/{a}/credit-notes", {"reason": "x", "amount": "1.00"}),
                       (f"/api/v1/invoices/{a}/void", {"reason": "x"})):
        assert api.client.post(path, json=body, headers=api.staff["A"]).status_code == 403
        assert api.client.post(path, json=body, headers=api.adm).status_code == 403
    # Administrators read every invoice.
    assert api.client.get("/api/v1/invoices", headers=api.adm).get_json()["total"] == 4


def test_member_staff_see_only_their_own_invoices(api):
    issued = issue(api)
    mine, theirs = issued[api.members["A"].id], issued[api.members["B"].id]
    listed = api.client.get("/api/v1/invoices", headers=api.staff["A"]).get_json()
    assert [item["id"] for item in listed["items"]] == [mine["id"]]
    assert api.client.get(f"/api/v1/invoices/{mine['id']}", headers=api.staff["A"]).status_code == 200
    response = api.client.get(f"/api/v1/invoices/{theirs['id']}", headers=api.staff["A"])
    assert response.status_code == 404 and "Birch" not in response.get_data(as_text=True)
    other = api.client.get(f"/api/v1/invoices?organisation_id={api.members['B'].id}", headers=api.staff["A"])
    assert other.status_code == 404


def test_filters(api):
    issued = issue(api)
    a, d = issued[api.members["A"].id]["id"], issued[api.members["D"].id]["id"]
    api.client.post(f"/api/v1/invoices/{d}/payments", headers=api.fin, json={
        "method": "bank_transfer", "received_on": TODAY, "amount": "12.82"})
    api.client.post(f"/api/v1/invoices/{a}/payments", headers=api.fin, json={
        "method": "bank_transfer", "received_on": TODAY, "amount": "100.00"})

    def ids(query):
        response = api.client.get(f"/api/v1/invoices?{query}", headers=api.fin)
        assert response.status_code == 200, response.get_json()
        return {item["id"] for item in response.get_json()["items"]}

    assert ids("status=paid") == {d}
    assert ids("status=partly_paid") == {a}
    assert ids("status=open") == {issued[api.members[k].id]["id"] for k in ("B", "C")}
    assert ids(f"organisation_id={api.members['A'].id}") == {a}
    assert ids(f"round_id={api.round.id}") == {item["id"] for item in issued.values()}
    assert ids("overdue=true") == set()
    # Time passes (behind the session's back: the session itself refuses to change an invoice).
    db.session.connection().execute(Invoice.__table__.update().where(Invoice.__table__.c.id == a)
                                    .values(due_on=date(2020, 1, 1)))
    assert ids("overdue=true") == {a} == ids("status=overdue")
    assert api.client.get("/api/v1/invoices?status=lost", headers=api.fin).status_code == 400


def test_payment_credit_note_and_void_through_the_api(api):
    issued = issue(api)
    b, c = issued[api.members["B"].id]["id"], issued[api.members["C"].id]["id"]
    body = {"method": "bank_transfer", "reference": "BT-9", "received_on": TODAY, "amount": "12100.13"}
    headers = {**api.fin, "Idempotency-Key": "pay-b-1"}
    first = api.client.post(f"/api/v1/invoices/{b}/payments", json=body, headers=headers)
    replay = api.client.post(f"/api/v1/invoices/{b}/payments", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert first.get_json()["applied"] == "12080.13" and first.get_json()["account_credit"] == "20.00"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    refund = api.client.post(f"/api/v1/payments/{first.get_json()['id']}/refunds", headers=api.fin,
                             json={"amount": "20.00", "reason": "Excess returned"})
    assert refund.status_code == 201 and refund.get_json()["refunded"] == "20.00"

    bad = api.client.post(f"/api/v1/invoices/{b}/payments", headers=api.fin,
                          json={**body, "amount": "1.005"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "amount"
    void = api.client.post(f"/api/v1/invoices/{b}/void", json={"reason": "Oops"}, headers=api.fin)
    assert void.status_code == 409 and void.get_json()["error"]["code"] == "has_payments"

    note = api.client.post(f"/api/v1/invoices/{c}/credit-notes", headers=api.fin,
                           json={"reason": "Shipping waived", "amount": "10.00"})
    assert note.status_code == 201 and note.get_json()["number"] == f"CN-{YEAR}-00001"
    too_much = api.client.post(f"/api/v1/invoices/{c}/credit-notes", headers=api.fin,
                               json={"reason": "More", "amount": "100.00"})
    assert too_much.status_code == 409
    detail = api.client.get(f"/api/v1/invoices/{c}", headers=api.fin).get_json()
    assert detail["balance_due"] == "18.85" and detail["credit_notes"][0]["amount"] == "10.00"

    d = issued[api.members["D"].id]["id"]
    voided = api.client.post(f"/api/v1/invoices/{d}/void", json={"reason": "Wrong member"}, headers=api.fin)
    assert voided.status_code == 200
    assert voided.get_json()["status"] == "void" and voided.get_json()["balance_due"] == "0.00"
    assert voided.get_json()["number"] == f"INV-{YEAR}-00004"


def test_the_command_issues_with_a_progress_line_per_invoice(committing_db):
    app = committing_db
    now = datetime.now(UTC)
    found = factories.RoundFactory(status=RoundStatus.RECEIVED, opened_at=now, closed_at=now)
    item = factories.RoundItemFactory(round=found)
    closing = factories.ProductClosingFactory(round_item=item, units=48)
    for name in ("Alder", "Birch"):
        organisation = factories.OrganisationFactory(name=f"Programme {name}")
        factories.AllocationFactory(closing=closing, organisation_id=organisation.id, firm_units=24)
    round_id = found.id
    db.session.commit()
    runner = app.test_cli_runner()

    refused = runner.invoke(args=["issue-invoices", str(round_id)])
    assert refused.exit_code != 0 and "subsidy run is not approved" in refused.output
    result = runner.invoke(args=["issue-invoices", str(round_id), "--without-subsidy-run"])
    assert result.exit_code == 0, result.output
    assert f"INV-{YEAR}-00001\tProgramme Alder\t960.00 USD" in result.output
    assert f"INV-{YEAR}-00002\tProgramme Birch" in result.output and "Issued 2 invoices." in result.output
    again = runner.invoke(args=["issue-invoices", str(round_id), "--without-subsidy-run"])
    assert "No invoices to issue" in again.output
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 2
    assert db.session.get(Round, round_id).status == RoundStatus.INVOICED
    assert Decimal("960.00") == db.session.scalar(select(Invoice.total).where(Invoice.number.like("%00001")))


def test_the_invoice_list_reads_balances_in_bulk(api, count_queries):
    issue(api)
    with count_queries() as one:
        assert len(api.client.get("/api/v1/invoices?per_page=1", headers=api.fin).get_json()["items"]) == 1
    with count_queries() as four:
        assert len(api.client.get("/api/v1/invoices?per_page=4", headers=api.fin).get_json()["items"]) == 4
    assert four.count == one.count
