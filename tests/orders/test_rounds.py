"""The round lifecycle up to the close: draft, open, extend, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from buyersclub import mail
from buyersclub.audit.models import AuditEvent
from orders.models import Commitment, Round, RoundStatus
from tests import factories


@pytest.fixture
def auth(auth, session):
    """Headers for a user, with the set-up committed so a refused request keeps it."""

    def _headers(user):
        headers = auth(user)
        session.commit()
        return headers

    return _headers


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def round_body(supplier, products, **overrides):
    body = {
        "supplier_id": supplier.id,
        "name": "Naloxone, spring",
        "deadline": iso(timedelta(days=7)),
        "minimum_order": "1000.00",
        "allocation_policy": "proportional",
        "operating_share": "0.05",
        "items": [{"product_id": product.id, "club_price": "40.00", "member_cap": None}
                  for product in products],
    }
    body.update(overrides)
    return body


@pytest.fixture
def catalogue(session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    return supplier, factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")


def test_admin_creates_a_draft_and_opens_it_copying_the_breaks(client, admin, auth, session, catalogue):
    supplier, product = catalogue
    headers = auth(admin)
    response = client.post("/api/v1/rounds", json=round_body(supplier, [product]), headers=headers)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["status"] == "draft"
    assert data["minimum_order"] == "1000.00"
    assert data["operating_share"] == "0.0500"
    assert data["accepting_commitments"] is False
    round_id = data["id"]

    opened = client.post(f"/api/v1/rounds/{round_id}/open", headers=headers)
    assert opened.status_code == 200, opened.get_json()
    assert opened.get_json()["status"] == "open"
    assert opened.get_json()["accepting_commitments"] is True

    # A later catalogue edit does not change the round in progress.
    client.patch(f"/api/v1/products/{product.id}", headers=headers,
                 json={"pack_size": 12, "price_breaks": [{"min_units": 1, "unit_cost": "50.00"}]})
    item = client.get(f"/api/v1/rounds/{round_id}", headers=headers).get_json()["items"][0]
    assert item["pack_size"] == 24
    assert item["price_breaks"][0] == {"min_units": 1, "unit_cost": "45.00"}
    assert item["club_price"] == "40.00"
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "round")
                              .order_by(AuditEvent.id)).all()
    assert actions == ["round.created", "round.opened"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"deadline": "2030-01-01T12:00:00"}, "deadline"),
        ({"deadline": iso(-timedelta(hours=1))}, "deadline"),
        ({"minimum_order": "12.345"}, "minimum_order"),
        ({"minimum_order": 1000}, "minimum_order"),
        ({"operating_share": "1.2"}, "operating_share"),
        ({"allocation_policy": "lottery"}, "allocation_policy"),
        ({"supplier_id": 424242}, "supplier_id"),
    ],
)
def test_bad_round_fields_are_refused_naming_the_field(client, admin, auth, session, catalogue,
                                                       overrides, field):
    supplier, product = catalogue
    response = client.post("/api/v1/rounds", json=round_body(supplier, [product], **overrides),
                           headers=auth(admin))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert session.scalar(select(func.count()).select_from(Round)) == 0


def test_items_must_be_the_suppliers_once_each_with_a_positive_price(client, admin, auth, session,
                                                                     catalogue):
    supplier, product = catalogue
    stranger = factories.ProductFactory()
    headers = auth(admin)
    cases = [
        ([{"product_id": stranger.id, "club_price": "40.00"}], "items.0.product_id"),
        ([{"product_id": product.id, "club_price": "40.00"},
          {"product_id": product.id, "club_price": "41.00"}], "items.1.product_id"),
        ([{"product_id": product.id, "club_price": "0.00"}], "items.0.club_price"),
        ([{"product_id": product.id, "club_price": "40.00", "member_cap": 0}], "items.0.member_cap"),
        ([{"product_id": 424242, "club_price": "40.00"}], "items.0.product_id"),
    ]
    for items, field in cases:
        response = client.post("/api/v1/rounds", json=round_body(supplier, [], items=items), headers=headers)
        assert response.status_code == 400, items
        assert response.get_json()["error"]["field"] == field
    assert session.scalar(select(func.count()).select_from(Round)) == 0


def make_round(admin, supplier, products, *, open_it=True, **values):
    from buyersclub.actor import Actor
    from orders.services import rounds

    actor = Actor.for_user(admin)
    items = [{"product_id": product.id, "club_price": "40.00", "member_cap": None} for product in products]
    found = rounds.create_round(actor, supplier_id=supplier.id, name=values.pop("name", "Round"),
                                deadline=values.pop("deadline", datetime.now(UTC) + timedelta(days=7)),
                                items=items, **values)
    if open_it:
        rounds.open_round(actor, found.id)
    return found


def test_wrong_state_transitions_are_409(client, admin, auth, catalogue):
    supplier, product = catalogue
    draft = make_round(admin, supplier, [product], open_it=False)
    opened = make_round(admin, supplier, [product])
    headers = auth(admin)
    later = {"deadline": iso(timedelta(days=30))}
    assert client.post(f"/api/v1/rounds/{draft.id}/extend", json=later, headers=headers).status_code == 409
    assert client.post(f"/api/v1/rounds/{opened.id}/open", headers=headers).status_code == 409
    cancelled = client.post(f"/api/v1/rounds/{opened.id}/cancel", json={"reason": "Supplier out of stock"},
                            headers=headers)
    assert cancelled.status_code == 200
    for action, body in (("open", None), ("extend", later), ("cancel", {"reason": "again"})):
        response = client.post(f"/api/v1/rounds/{opened.id}/{action}", json=body, headers=headers)
        assert response.status_code == 409, action
        assert "cancelled" in response.get_json()["error"]["message"]


def test_opening_refuses_a_deadline_in_the_past(client, admin, auth, session, catalogue):
    supplier, product = catalogue
    draft = make_round(admin, supplier, [product], open_it=False)
    draft.deadline = datetime.now(UTC) - timedelta(minutes=1)
    session.flush()
    response = client.post(f"/api/v1/rounds/{draft.id}/open", headers=auth(admin))
    assert response.status_code == 409
    assert "deadline" in response.get_json()["error"]["message"]
    session.expire_all()
    assert session.get(Round, draft.id).status == RoundStatus.DRAFT


def test_opening_needs_a_product(client, admin, auth, catalogue):
    supplier, _ = catalogue
    draft = make_round(admin, supplier, [], open_it=False)
    response = client.post(f"/api/v1/rounds/{draft.id}/open", headers=auth(admin))
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "items"


def test_extend_must_be_later_than_the_current_deadline(client, admin, auth, catalogue):
    supplier, product = catalogue
    opened = make_round(admin, supplier, [product])
    headers = auth(admin)
    earlier = iso(timedelta(days=3))
    response = client.post(f"/api/v1/rounds/{opened.id}/extend", json={"deadline": earlier}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "deadline"
    later = datetime.now(UTC) + timedelta(days=14)
    response = client.post(f"/api/v1/rounds/{opened.id}/extend", json={"deadline": later.isoformat()},
                           headers=headers)
    assert response.status_code == 200
    assert datetime.fromisoformat(response.get_json()["deadline"]) == later


def test_cancel_needs_a_reason_and_mails_the_members_that_committed(client, admin, auth, session,
                                                                    catalogue):
    supplier, product = catalogue
    opened = make_round(admin, supplier, [product])
    harbour = factories.OrganisationFactory(name="Harbour Outreach")
    factories.UserFactory(roles=["member"], organisation=harbour, email="sam@harbour.test")
    factories.UserFactory(roles=["member"], organisation=harbour, email="kim@harbour.test")
    quiet = factories.OrganisationFactory(name="Quiet Collective")
    factories.UserFactory(roles=["member"], organisation=quiet, email="lee@quiet.test")
    session.add(Commitment(round_id=opened.id, product_id=product.id, organisation_id=harbour.id,
                           quantity=48, tolerance=0))
    session.flush()
    headers = auth(admin)

    response = client.post(f"/api/v1/rounds/{opened.id}/cancel", json={"reason": "  "}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "reason"
    assert mail.outbox() == []

    response = client.post(f"/api/v1/rounds/{opened.id}/cancel",
                           json={"reason": "The supplier cannot deliver before summer."}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["cancel_reason"] == "The supplier cannot deliver before summer."
    sent = mail.outbox()
    assert sorted(message["To"] for message in sent) == ["kim@harbour.test", "sam@harbour.test"]
    assert "cannot deliver before summer" in sent[0].get_content()
    # The commitments stay on record.
    assert session.scalar(select(Commitment.quantity).where(Commitment.round_id == opened.id)) == 48


def test_members_see_open_rounds_but_never_drafts(client, admin, member, auth, catalogue):
    supplier, product = catalogue
    draft = make_round(admin, supplier, [product], open_it=False, name="Draft round")
    opened = make_round(admin, supplier, [product], name="Open round")
    headers = auth(member)
    names = [item["name"] for item in client.get("/api/v1/rounds", headers=headers).get_json()["items"]]
    assert names == ["Open round"]
    assert client.get(f"/api/v1/rounds/{draft.id}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/rounds/{opened.id}", headers=headers).status_code == 200
    assert client.post(f"/api/v1/rounds/{opened.id}/cancel", json={"reason": "x"},
                       headers=headers).status_code == 403


def test_a_draft_is_built_item_by_item(client, admin, auth, catalogue):
    supplier, product = catalogue
    other = factories.ProductFactory(supplier=supplier, name="Naloxone injectable")
    draft = make_round(admin, supplier, [], open_it=False)
    headers = auth(admin)
    response = client.put(f"/api/v1/rounds/{draft.id}/items/{product.id}",
                          json={"club_price": "40.00", "member_cap": 200}, headers=headers)
    assert response.status_code == 200, response.get_json()
    response = client.put(f"/api/v1/rounds/{draft.id}/items/{other.id}",
                          json={"club_price": "0"}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "club_price"
    items = client.get(f"/api/v1/rounds/{draft.id}", headers=headers).get_json()["items"]
    assert [(item["name"], item["member_cap"]) for item in items] == [("Naloxone nasal spray", 200)]
    assert client.delete(f"/api/v1/rounds/{draft.id}/items/{product.id}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/rounds/{draft.id}", headers=headers).get_json()["items"] == []
