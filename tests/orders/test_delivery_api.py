"""The delivery API: purchase order, ordering, receipts, completion, delivery summary, recall."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from buyersclub.audit.models import AuditEvent
from orders.models import Allocation, LotShipment, Receipt, RoundStatus
from tests import factories
from tests.orders.test_delivery import TODAY, Member, closed_round, worked_example


def body(setup, *lines, **extra) -> dict:
    return {"received_on": TODAY.isoformat(), "lines": list(lines), **extra}


def lot(setup, quantity, name="LOT-1", days=400) -> dict:
    return {"product_id": setup.product_id, "quantity": quantity, "lot": name,
            "expiry": (TODAY + timedelta(days=days)).isoformat()}


def test_the_purchase_order_is_a_pdf_for_admins_only(client, session, admin, member, auth):
    setup = worked_example(status=RoundStatus.CLOSED)
    admin_headers, member_headers = auth(admin), auth(member)
    response = client.get(f"/api/v1/rounds/{setup.round.id}/purchase-order", headers=admin_headers)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert client.get(f"/api/v1/rounds/{setup.round.id}/purchase-order",
                      headers=member_headers).status_code == 403


def test_marking_ordered_is_409_unless_closed(client, session, admin, auth):
    setup = worked_example(status=RoundStatus.CLOSED)
    headers = auth(admin)
    response = client.post(f"/api/v1/rounds/{setup.round.id}/order", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": setup.round.id, "status": "ordered"}
    again = client.post(f"/api/v1/rounds/{setup.round.id}/order", headers=headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "wrong_state"
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "round.ordered")) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"lot": None}, "lines.0.lot"),
    ({"expiry": None}, "lines.0.expiry"),
    ({"expiry": "next year"}, "lines.0.expiry"),
    ({"quantity": 0}, "lines.0.quantity"),
    ({"quantity": "ten"}, "lines.0.quantity"),
    ({"product_id": 999999}, "lines.0.product_id"),
])
def test_a_bad_receipt_is_400_naming_the_field_and_writes_nothing(client, session, admin, auth, change,
                                                                   field):
    setup = worked_example()
    headers = auth(admin)
    response = client.post(f"/api/v1/rounds/{setup.round.id}/receipts", headers=headers,
                           json=body(setup, {**lot(setup, 900), **change}, lot(setup, 36, "LOT-2")))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0
    assert session.scalar(select(func.count()).select_from(LotShipment)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action.like("receipt%"))) == 0


def test_the_receipt_date_is_required(client, session, admin, auth):
    setup = worked_example()
    response = client.post(f"/api/v1/rounds/{setup.round.id}/receipts", headers=auth(admin),
                           json={"lines": [lot(setup, 936)]})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "received_on"


def test_a_short_delivery_through_the_api(client, session, admin, auth):
    setup = worked_example()
    headers = auth(admin)
    response = client.post(f"/api/v1/rounds/{setup.round.id}/receipts", headers=headers,
                           json=body(setup, lot(setup, 500, "L1"), lot(setup, 400, "L2", days=500),
                                     note="Two cases crushed"))
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["round_status"] == "received" and data["completed"] is True
    assert [(line["lot"], line["quantity"]) for line in data["lines"]] == [("L1", 500), ("L2", 400)]
    product = data["products"][0]
    assert (product["kind"], product["bought"], product["delivered"], product["members_after"]) == (
        "short", 936, 900, 900)
    names = {org_id: name for name, org_id in setup.orgs.items()}
    assert {names[c["organisation_id"]]: c["after"] for c in product["changes"]} == {
        "A": 468, "B": 292, "C": 93, "D": 47}

    summary = client.get(f"/api/v1/rounds/{setup.round.id}/delivery", headers=headers).get_json()
    members = {m["organisation_name"].split()[0]: (m["units_at_close"], m["units_now"])
               for m in summary["products"][0]["members"]}
    assert members == {"A": (480, 468), "B": (300, 292), "C": (108, 93), "D": (48, 47)}
    assert summary["products"][0]["delivered"] == 900
    assert summary["products"][0]["free_stock"] == 0


def test_several_deliveries_then_complete(client, session, admin, auth):
    setup = worked_example()
    headers = auth(admin)
    url = f"/api/v1/rounds/{setup.round.id}/receipts"
    first = client.post(url, headers=headers, json=body(setup, lot(setup, 900), last_delivery=False))
    assert first.status_code == 201
    assert first.get_json()["completed"] is False and first.get_json()["round_status"] == "ordered"
    second = client.post(url, headers=headers, json=body(setup, lot(setup, 60, "LOT-2"), last_delivery=False))
    assert second.status_code == 201
    done = client.post(f"/api/v1/rounds/{setup.round.id}/received", headers=headers)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["products"][0]["kind"] == "surplus"
    assert done.get_json()["products"][0]["free_stock"] == 12
    late = client.post(url, headers=headers, json=body(setup, lot(setup, 1, "LOT-3")))
    assert late.status_code == 409


def test_a_receipt_replays_with_the_same_idempotency_key(client, session, admin, auth):
    setup = worked_example()
    headers = {**auth(admin), "Idempotency-Key": "delivery-1"}
    url = f"/api/v1/rounds/{setup.round.id}/receipts"
    first = client.post(url, headers=headers, json=body(setup, lot(setup, 936)))
    again = client.post(url, headers=headers, json=body(setup, lot(setup, 936)))
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(Receipt)) == 1


def test_recall_through_the_api(client, session, admin, member, auth):
    setup = closed_round([Member("A", 24), Member("B", 24)], units=48)
    headers = auth(admin)
    client.post(f"/api/v1/rounds/{setup.round.id}/receipts", headers=headers,
                json=body(setup, lot(setup, 30, "NX-1/A", days=300), lot(setup, 18, "NX-2", days=500)))
    response = client.get("/api/v1/lots/NX-1/A/recipients", headers=headers)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["lot"] == "NX-1/A" and data["units"] == 30
    names = {org_id: name for name, org_id in setup.orgs.items()}
    assert [(names[r["organisation_id"]], r["units"], r["round_id"]) for r in data["recipients"]] == [
        ("A", 24, setup.round.id), ("B", 6, setup.round.id)]
    assert data["recipients"][0]["expiry"] == (TODAY + timedelta(days=300)).isoformat()
    assert client.get("/api/v1/lots/NX-1/A/recipients", headers=auth(member)).status_code == 403
    assert client.get("/api/v1/lots/UNKNOWN/recipients", headers=headers).get_json()["recipients"] == []


def test_allocations_superseded_by_the_receipt_are_not_current(client, session, admin, auth):
    setup = worked_example()
    client.post(f"/api/v1/rounds/{setup.round.id}/receipts", headers=auth(admin),
                json=body(setup, lot(setup, 900)))
    current = session.scalar(select(func.sum(Allocation.firm_units + Allocation.tolerance_units))
                             .where(Allocation.round_id == setup.round.id,
                                    Allocation.superseded_at.is_(None)))
    assert current == 900


def test_members_cannot_use_the_delivery_endpoints(client, session, member, auth):
    setup = worked_example()
    other = factories.OrganisationFactory()
    headers = auth(member)
    assert other.id
    for method, path in (("POST", f"/api/v1/rounds/{setup.round.id}/receipts"),
                         ("POST", f"/api/v1/rounds/{setup.round.id}/received"),
                         ("POST", f"/api/v1/rounds/{setup.round.id}/order"),
                         ("GET", f"/api/v1/rounds/{setup.round.id}/delivery")):
        response = client.open(path, method=method, headers=headers, json=body(setup, lot(setup, 1)))
        assert response.status_code == 403, path
