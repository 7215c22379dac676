"""The catalogue: suppliers and products with their price breaks and rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from buyersclub.audit.models import AuditEvent
from orders.models import PriceBreak, Product, Supplier
from tests import factories


def product_body(supplier, **overrides):
    body = {
        "supplier_id": supplier,
        "sku": "NAL-4MG",
        "name": "Naloxone nasal spray 4 mg",
        "category": "naloxone",
        "unit": "box of 2 nasal doses",
        "pack_size": 24,
        "price_breaks": [
            {"min_units": 1, "unit_cost": "45.00"},
            {"min_units": 240, "unit_cost": "38.00"},
            {"min_units": 960, "unit_cost": "31.00"},
        ],
        "restricted_jurisdictions": [{"country": "US", "region": "ID"}],
        "required_document": "prescriber_order",
        "lot_tracked": True,
    }
    body.update(overrides)
    return body


@pytest.fixture
def auth(auth, session):
    """Headers for a user, with everything so far committed: a refused request rolls back
    only its own work, not the test's set-up."""

    def _headers(user):
        headers = auth(user)
        session.commit()
        return headers

    return _headers


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_admin_adds_a_supplier_and_lists_it(client, admin, auth, session):
    response = client.post("/api/v1/suppliers", json={"name": "Remedy Wholesale",
                                                      "contact_email": "orders@remedy.test"},
                           headers=auth(admin))
    assert response.status_code == 201, response.get_json()
    listing = client.get("/api/v1/suppliers", headers=auth(admin)).get_json()
    assert [item["name"] for item in listing["items"]] == ["Remedy Wholesale"]
    assert session.scalar(select(AuditEvent.action).where(AuditEvent.entity_type == "supplier")) == (
        "supplier.created")


def test_a_duplicate_supplier_name_is_a_conflict(client, admin, auth):
    factories.SupplierFactory(name="Remedy Wholesale")
    response = client.post("/api/v1/suppliers", json={"name": "remedy wholesale"}, headers=auth(admin))
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "name"


def test_members_cannot_see_or_add_suppliers(client, member, auth):
    assert client.get("/api/v1/suppliers", headers=auth(member)).status_code == 403
    assert client.post("/api/v1/suppliers", json={"name": "X"}, headers=auth(member)).status_code == 403


def test_admin_adds_a_product_with_breaks_and_rules(client, admin, auth, session):
    supplier = factories.SupplierFactory()
    response = client.post("/api/v1/products", json=product_body(supplier.id), headers=auth(admin))
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["price_breaks"] == [
        {"min_units": 1, "unit_cost": "45.00"},
        {"min_units": 240, "unit_cost": "38.00"},
        {"min_units": 960, "unit_cost": "31.00"},
    ]
    assert data["restricted_jurisdictions"] == [{"country": "US", "region": "ID"}]
    assert data["required_document"] == "prescriber_order"
    assert data["lot_tracked"] is True
    assert response.headers["Location"].endswith(f"/api/v1/products/{data['id']}")


def test_members_browse_the_catalogue_but_cannot_change_it(client, admin, member, auth):
    supplier = factories.SupplierFactory()
    product = factories.ProductFactory(supplier=supplier, name="Safer-smoking pipe")
    factories.ProductFactory(supplier=supplier, name="Withdrawn pipe", is_active=False)
    listing = client.get("/api/v1/products", headers=auth(member)).get_json()
    assert [item["name"] for item in listing["items"]] == ["Safer-smoking pipe"]
    assert client.get(f"/api/v1/products/{product.id}", headers=auth(member)).status_code == 200
    response = client.post("/api/v1/products", json=product_body(supplier.id), headers=auth(member))
    assert response.status_code == 403
    response = client.patch(f"/api/v1/products/{product.id}", json={"name": "Mine"}, headers=auth(member))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("breaks", "field", "words"),
    [
        ([{"min_units": 10, "unit_cost": "45.00"}], "price_breaks.0.min_units", "start at 1 unit"),
        ([{"min_units": 1, "unit_cost": "45.00"}, {"min_units": 240, "unit_cost": "38.00"},
          {"min_units": 100, "unit_cost": "31.00"}], "price_breaks.2.min_units", "more units"),
        ([{"min_units": 1, "unit_cost": "45.00"}, {"min_units": 1, "unit_cost": "38.00"}],
         "price_breaks.1.min_units", "more units"),
        ([{"min_units": 1, "unit_cost": "45.00"}, {"min_units": 240, "unit_cost": "46.00"}],
         "price_breaks.1.unit_cost", "must not cost more"),
        ([{"min_units": 1, "unit_cost": "0.00"}], "price_breaks.0.unit_cost", "more than zero"),
        ([{"min_units": 1, "unit_cost": "-3.00"}], "price_breaks.0.unit_cost", "more than zero"),
        ([{"min_units": 1, "unit_cost": "4.505"}], "price_breaks.0.unit_cost", "two decimals"),
        ([{"min_units": 1, "unit_cost": 45.0}], "price_breaks.0.unit_cost", ""),
        ([], "price_breaks", "at least one"),
    ],
)
def test_bad_price_breaks_are_refused_naming_the_field(client, admin, auth, session, breaks, field, words):
    supplier = factories.SupplierFactory()
    response = client.post("/api/v1/products", json=product_body(supplier.id, price_breaks=breaks),
                           headers=auth(admin))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == field
    assert words in error["message"]
    assert count(session, Product) == 0
    assert count(session, PriceBreak) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pack_size": 0}, "pack_size"),
        ({"pack_size": 2.5}, "pack_size"),
        ({"category": "vitamins"}, "category"),
        ({"required_document": "driving_licence"}, "required_document"),
        ({"restricted_jurisdictions": [{"country": "USA", "region": None}]},
         "restricted_jurisdictions.0.country"),
        ({"sku": "  "}, "sku"),
        ({"supplier_id": 999999}, "supplier_id"),
    ],
)
def test_bad_product_fields_are_refused_naming_the_field(client, admin, auth, session, overrides, field):
    supplier = factories.SupplierFactory()
    response = client.post("/api/v1/products", json=product_body(supplier.id, **overrides),
                           headers=auth(admin))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert count(session, Product) == 0


def test_a_sku_is_unique_per_supplier(client, admin, auth):
    supplier = factories.SupplierFactory()
    factories.ProductFactory(supplier=supplier, sku="NAL-4MG")
    response = client.post("/api/v1/products", json=product_body(supplier.id), headers=auth(admin))
    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "sku"
    other = factories.SupplierFactory()
    response = client.post("/api/v1/products", json=product_body(other.id), headers=auth(admin))
    assert response.status_code == 201


def test_patching_price_breaks_replaces_them_and_is_audited(client, admin, auth, session):
    product = factories.ProductFactory()
    response = client.patch(
        f"/api/v1/products/{product.id}",
        json={"price_breaks": [{"min_units": 1, "unit_cost": "44.00"},
                               {"min_units": 240, "unit_cost": "38.00"}],
              "restricted_jurisdictions": [{"country": "GB", "region": None}]},
        headers=auth(admin),
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["price_breaks"] == [{"min_units": 1, "unit_cost": "44.00"},
                                    {"min_units": 240, "unit_cost": "38.00"}]
    assert data["restricted_jurisdictions"] == [{"country": "GB", "region": None}]
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "product.updated")).one()
    assert event.before["price_breaks"][0] == {"min_units": 1, "unit_cost": "45.00"}
    assert event.after["price_breaks"][0] == {"min_units": 1, "unit_cost": "44.00"}


def test_a_bad_patch_changes_nothing(client, admin, auth, session):
    product = factories.ProductFactory(name="Naloxone")
    response = client.patch(
        f"/api/v1/products/{product.id}",
        json={"name": "Renamed", "price_breaks": [{"min_units": 2, "unit_cost": "44.00"}]},
        headers=auth(admin),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "price_breaks.0.min_units"
    session.expire_all()
    assert session.get(Product, product.id).name == "Naloxone"
    assert [pb.min_units for pb in session.get(Product, product.id).price_breaks] == [1, 240, 960]


def test_unknown_product_is_404(client, member, auth):
    response = client.get("/api/v1/products/424242", headers=auth(member))
    assert response.status_code == 404


def test_catalogue_page_for_members_and_admin_pages(client, admin, member, sign_in, session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")
    sign_in(member)
    page = client.get("/catalogue").get_data(as_text=True)
    assert "Naloxone nasal spray" in page
    assert "45.00" in page
    assert client.get("/admin/suppliers").status_code == 403
    client.post("/sign-out")
    sign_in(admin)
    assert "Remedy Wholesale" in client.get("/admin/suppliers").get_data(as_text=True)
    assert count(session, Supplier) == 1
