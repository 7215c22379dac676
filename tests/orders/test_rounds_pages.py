"""The pages: members' rounds, round page and commitments; the admin round builder and catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from buyersclub import mail
from buyersclub.actor import Actor
from orders.models import Commitment, PriceBreak, Product, ProductRestriction, Round, RoundStatus
from orders.services import commitments, rounds
from tests import factories


def open_round(admin, product) -> Round:
    actor = Actor.for_user(admin)
    found = rounds.create_round(actor, supplier_id=product.supplier_id, name="Naloxone, spring",
                                deadline=datetime.now(UTC) + timedelta(days=7),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    return rounds.open_round(actor, found.id)


def test_members_see_an_empty_state_when_no_round_is_open(client, member, sign_in):
    sign_in(member)
    page = client.get("/rounds").get_data(as_text=True)
    assert "No round is open right now" in page
    assert 'href="/rounds"' in page  # the nav link


def test_a_member_commits_from_the_round_page_and_sees_the_history(client, admin, member, sign_in, session):
    product = factories.ProductFactory(name="Naloxone nasal spray")
    found = open_round(admin, product)
    session.commit()
    sign_in(member)
    page = client.get(f"/rounds/{found.id}").get_data(as_text=True)
    assert "Naloxone nasal spray" in page
    assert "24 more reach" in page  # nothing yet: the first case
    field = f"p{product.id}"
    response = client.post(f"/rounds/{found.id}/commitments/{product.id}",
                           data={f"{field}-quantity": "200", f"{field}-tolerance": "10"})
    assert response.status_code == 302
    page = client.get(f"/rounds/{found.id}").get_data(as_text=True)
    assert "Your commitment is saved." in page
    assert "200 firm, plus 10 tolerance" in page
    # 200 = 8 cases + 8 (8 + 10 tolerance do not fill a case): 192 at 45.00. At 230 firm, 9 cases + 14
    # and the tolerance fills the tenth: 240 units reach 38.00.
    assert "30 more reach $38.00 a unit (10 cases of 24)" in page
    client.post(f"/rounds/{found.id}/commitments/{product.id}", data={f"{field}-quantity": "0"})
    history = client.get("/my/commitments").get_data(as_text=True)
    assert "(withdrawn)" in history
    assert history.count("<tr><td") == 2


def test_a_refused_commitment_shows_why_and_writes_nothing(client, admin, member, sign_in, session):
    product = factories.ProductFactory(name="Safer-smoking pipe")
    product.restrictions.append(ProductRestriction(country="US", region="MA"))
    found = open_round(admin, product)
    session.commit()
    sign_in(member)
    field = f"p{product.id}"
    response = client.post(f"/rounds/{found.id}/commitments/{product.id}", data={f"{field}-quantity": "24"})
    assert response.status_code == 422
    assert "may not be shipped to MA, US" in response.get_data(as_text=True)
    response = client.post(f"/rounds/{found.id}/commitments/{product.id}", data={f"{field}-quantity": "-4"})
    assert response.status_code == 400
    assert session.scalar(select(func.count()).select_from(Commitment)) == 0


def test_members_cannot_open_admin_pages(client, member, sign_in):
    sign_in(member)
    for path in ("/admin/suppliers", "/admin/products", "/admin/products/new", "/admin/rounds/new"):
        assert client.get(path).status_code == 403, path


def test_admin_builds_opens_extends_and_cancels_a_round(client, admin, member, sign_in, session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    product = factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")
    session.commit()
    sign_in(admin)
    deadline = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    response = client.post("/admin/rounds/new", data={
        "supplier_id": supplier.id, "name": "Spring naloxone", "deadline": deadline,
        "minimum_order": "500.00", "allocation_policy": "proportional", "operating_share": "0.05"})
    assert response.status_code == 302, response.get_data(as_text=True)
    found = session.scalar(select(Round).where(Round.name == "Spring naloxone"))
    assert found.status == RoundStatus.DRAFT

    response = client.post(f"/admin/rounds/{found.id}/items",
                           data={"product_id": product.id, "club_price": "0", "member_cap": ""})
    assert response.status_code == 400
    assert "more than zero" in response.get_data(as_text=True)
    response = client.post(f"/admin/rounds/{found.id}/items",
                           data={"product_id": product.id, "club_price": "40.00", "member_cap": "240"})
    assert response.status_code == 302

    assert client.post(f"/admin/rounds/{found.id}/open").status_code == 302
    later = (datetime.now(UTC) + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(f"/admin/rounds/{found.id}/extend", data={"deadline": later}).status_code == 302
    commitments.set_commitment(Actor.for_user(member), found.id, product.id, quantity=48)
    session.commit()

    confirm = client.get(f"/admin/rounds/{found.id}/cancel").get_data(as_text=True)
    assert "1 member has committed" in confirm
    assert client.post(f"/admin/rounds/{found.id}/cancel", data={"reason": ""}).status_code == 400
    response = client.post(f"/admin/rounds/{found.id}/cancel", data={"reason": "Supplier recall"})
    assert response.status_code == 302
    session.expire_all()
    assert session.get(Round, found.id).status == RoundStatus.CANCELLED
    assert [message["To"] for message in mail.outbox()] == [member.email]


def test_admin_product_form_shows_price_break_errors_by_row(client, admin, sign_in, session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    session.commit()
    sign_in(admin)
    data = {"supplier_id": supplier.id, "sku": "PIPE-1", "name": "Glass pipe", "category": "pipes",
            "unit": "pipe", "pack_size": "100",
            "break_0-min_units": "1", "break_0-unit_cost": "2.00",
            "break_1-min_units": "500", "break_1-unit_cost": "2.50",
            "restrictions": "US/ID\nGB", "required_document": ""}
    response = client.post("/admin/products/new", data=data)
    assert response.status_code == 400
    assert "must not cost more per unit" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Product)) == 0
    data["break_1-unit_cost"] = "1.50"
    assert client.post("/admin/products/new", data=data).status_code == 302
    product = session.scalar(select(Product).where(Product.sku == "PIPE-1"))
    assert [(pb.min_units, str(pb.unit_cost)) for pb in product.price_breaks] == [(1, "2.00"), (500, "1.50")]
    assert sorted((r.country, r.region) for r in product.restrictions) == [("GB", None), ("US", "ID")]
    edit = client.get(f"/admin/products/{product.id}").get_data(as_text=True)
    assert 'value="500"' in edit and "US/ID" in edit
    assert session.scalar(select(func.count()).select_from(PriceBreak)) == 2


def test_after_the_deadline_the_page_says_so_and_refuses_the_form(client, admin, member, sign_in, session):
    product = factories.ProductFactory()
    found = open_round(admin, product)
    found.deadline = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    sign_in(member)
    assert "commitments can no longer be changed" in client.get(f"/rounds/{found.id}").get_data(as_text=True)
    response = client.post(f"/rounds/{found.id}/commitments/{product.id}",
                           data={f"p{product.id}-quantity": "24"})
    assert response.status_code == 409
    assert "has passed" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Commitment)) == 0


def test_a_service_error_lands_next_to_the_field_it_names(app):
    """A price break's error goes to its cell and above the form; a restriction's to the restrictions
    box; a field the form lacks, above the form."""
    from buyersclub.errors import InvalidInput
    from orders.forms import ProductForm, attach_error

    with app.test_request_context(method="POST", data={}):
        form = ProductForm(meta={"csrf": False})
        attach_error(form, InvalidInput("must not cost more per unit", field="price_breaks.1.unit_cost"))
        attach_error(form, InvalidInput("USA is not a country code",
                                        field="restricted_jurisdictions.0.country"))
        attach_error(form, InvalidInput("Somebody else changed it", field="version"))
        attach_error(form, InvalidInput("Which supplier?", field="supplier"), {"supplier": "supplier_id"})
        assert form.break_1.form.unit_cost.errors == ["must not cost more per unit"]
        assert form.restrictions.errors == ["USA is not a country code"]
        assert form.supplier_id.errors == ["Which supplier?"]
        assert form.form_errors == ["Price break 2: must not cost more per unit", "Somebody else changed it"]
