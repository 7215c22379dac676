"""Members' commitments: input, caps, compliance gates, history, scoping, the read model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.organisations.models import DocumentKind, MembershipStatus
from orders.models import Commitment, CommitmentChange, ProductRestriction, Round, RoundItem
from orders.services import rounds
from tests import factories


@pytest.fixture
def auth(auth, session):
    """Headers for a user, with the set-up committed so a refused request keeps it."""

    def _headers(user):
        headers = auth(user)
        session.commit()
        return headers

    return _headers


def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def naloxone(session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    return factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")


def open_round(admin, *products, cap=None, deadline=None) -> Round:
    actor = Actor.for_user(admin)
    found = rounds.create_round(
        actor, supplier_id=products[0].supplier_id, name="Naloxone, spring",
        deadline=deadline or datetime.now(UTC) + timedelta(days=7),
        items=[{"product_id": p.id, "club_price": "40.00", "member_cap": cap} for p in products],
    )
    return rounds.open_round(actor, found.id)


def put(client, headers, found, product, **body):
    return client.put(f"/api/v1/rounds/{found.id}/commitments/{product.id}", json=body, headers=headers)


def commitments_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Commitment))


def test_a_member_commits_changes_and_withdraws_with_history(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(member)
    first = put(client, headers, found, naloxone, quantity=96, tolerance=24)
    assert first.status_code == 200, first.get_json()
    data = first.get_json()
    assert (data["quantity"], data["tolerance"], data["organisation_id"]) == (96, 24, member.organisation_id)
    assert put(client, headers, found, naloxone, quantity=48).status_code == 200
    withdrawn = put(client, headers, found, naloxone, quantity=0)
    assert withdrawn.status_code == 200
    history = withdrawn.get_json()["history"]
    assert [(change["quantity"], change["tolerance"]) for change in history] == [(96, 24), (48, 0), (0, 0)]
    assert all(change["changed_by_id"] == member.id for change in history)
    assert history[0]["changed_at"] <= history[1]["changed_at"] <= history[2]["changed_at"]


def test_lowering_keeps_the_place_in_line_and_raising_loses_it(client, admin, member, auth, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(member)
    placed = put(client, headers, found, naloxone, quantity=96).get_json()["first_committed_at"]
    assert put(client, headers, found, naloxone, quantity=48).get_json()["first_committed_at"] == placed
    assert put(client, headers, found, naloxone, quantity=48, tolerance=10).get_json()[
        "first_committed_at"] == placed
    assert put(client, headers, found, naloxone, quantity=72).get_json()["first_committed_at"] > placed


def test_the_same_values_again_add_no_history(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(member)
    put(client, headers, found, naloxone, quantity=48)
    again = put(client, headers, found, naloxone, quantity=48)
    assert len(again.get_json()["history"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": -1}, "quantity"),
        ({"quantity": 2.5}, "quantity"),
        ({"quantity": "12"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": 12, "tolerance": -2}, "tolerance"),
        ({"quantity": 12, "tolerance": 1.5}, "tolerance"),
        ({"tolerance": 12}, "quantity"),
        ({"quantity": 0, "tolerance": 12}, "tolerance"),
        ({"quantity": 12, "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(client, admin, member, auth, session,
                                                                       naloxone, body, field):
    found = open_round(admin, naloxone)
    response = put(client, auth(member), found, naloxone, **body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert commitments_count(session) == 0


def test_an_unknown_product_or_round_is_404(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    elsewhere = factories.ProductFactory(supplier=naloxone.supplier)
    headers = auth(member)
    response = put(client, headers, found, elsewhere, quantity=10)
    assert response.status_code == 404
    assert response.get_json()["error"]["field"] == "product_id"
    response = client.put(f"/api/v1/rounds/424242/commitments/{naloxone.id}", json={"quantity": 1},
                          headers=headers)
    assert response.status_code == 404
    assert commitments_count(session) == 0


def test_the_member_cap_limits_the_quantity(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone, cap=120)
    headers = auth(member)
    response = put(client, headers, found, naloxone, quantity=121)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "quantity"
    assert "at most 120" in response.get_json()["error"]["message"]
    assert commitments_count(session) == 0
    assert put(client, headers, found, naloxone, quantity=120, tolerance=12).status_code == 200


def test_after_the_deadline_nothing_is_accepted_though_the_round_is_still_open(
        client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(member)
    assert put(client, headers, found, naloxone, quantity=48).status_code == 200
    found.deadline = datetime.now(UTC) - timedelta(seconds=1)
    session.commit()
    response = put(client, headers, found, naloxone, quantity=96)
    assert response.status_code == 409
    assert "deadline" in response.get_json()["error"]["message"]
    session.expire_all()
    assert session.get(Round, found.id).status.value == "open"
    assert session.scalar(select(Commitment.quantity)) == 48


def test_a_draft_or_cancelled_round_takes_no_commitments(client, admin, member, auth, session, naloxone):
    actor = Actor.for_user(admin)
    draft = rounds.create_round(actor, supplier_id=naloxone.supplier_id, name="Draft",
                                deadline=datetime.now(UTC) + timedelta(days=3),
                                items=[{"product_id": naloxone.id, "club_price": "40.00"}])
    cancelled = open_round(admin, naloxone)
    rounds.cancel_round(actor, cancelled.id, "Supplier out of stock")
    headers = auth(member)
    assert put(client, headers, draft, naloxone, quantity=1).status_code == 404
    assert put(client, headers, cancelled, naloxone, quantity=1).status_code == 409
    assert commitments_count(session) == 0


def test_a_product_restricted_in_the_members_region_is_refused(client, admin, member, auth, session,
                                                               naloxone):
    naloxone.restrictions.append(ProductRestriction(country="US", region="MA", note="state law"))
    found = open_round(admin, naloxone)
    response = put(client, auth(member), found, naloxone, quantity=24)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "restricted_jurisdiction"
    assert "may not be shipped to MA, US" in error["message"]
    assert commitments_count(session) == 0


def test_a_product_restricted_in_the_whole_country_is_refused_elsewhere_allowed(
        client, admin, member, auth, session, naloxone):
    naloxone.restrictions.append(ProductRestriction(country="US", region=None))
    found = open_round(admin, naloxone)
    canadian = factories.OrganisationFactory(country="CA", region="BC")
    staff = factories.UserFactory(roles=["member"], organisation=canadian)
    assert put(client, auth(member), found, naloxone, quantity=24).status_code == 422
    assert put(client, auth(staff), found, naloxone, quantity=24).status_code == 200


def test_a_required_document_missing_or_expired_is_refused(client, admin, member, auth, session):
    injectable = factories.ProductFactory(name="Naloxone injectable",
                                          required_document=DocumentKind.PRESCRIBER_ORDER)
    found = open_round(admin, injectable)
    headers = auth(member)

    missing = put(client, headers, found, injectable, quantity=24)
    assert missing.status_code == 422
    assert missing.get_json()["error"]["code"] == "document_missing"
    assert "prescriber or standing order" in missing.get_json()["error"]["message"]

    factories.DocumentFactory(organisation=member.organisation, kind=DocumentKind.PRESCRIBER_ORDER,
                              expires_on=today() - timedelta(days=1))
    session.commit()
    expired = put(client, headers, found, injectable, quantity=24)
    assert expired.status_code == 422
    assert expired.get_json()["error"]["code"] == "document_expired"
    assert "expired on" in expired.get_json()["error"]["message"]

    # Valid today but not on the deadline date: refused too, saying so.
    factories.DocumentFactory(organisation=member.organisation, kind=DocumentKind.PRESCRIBER_ORDER,
                              expires_on=today() + timedelta(days=2))
    session.commit()
    short = put(client, headers, found, injectable, quantity=24)
    assert short.status_code == 422
    assert "before this round's deadline" in short.get_json()["error"]["message"]
    assert commitments_count(session) == 0

    factories.DocumentFactory(organisation=member.organisation, kind=DocumentKind.PRESCRIBER_ORDER,
                              expires_on=today() + timedelta(days=365))
    session.commit()
    assert put(client, headers, found, injectable, quantity=24).status_code == 200


def test_an_organisation_not_yet_approved_cannot_commit(client, admin, auth, session, naloxone):
    applicant = factories.OrganisationFactory(status=MembershipStatus.APPLIED)
    staff = factories.UserFactory(roles=["member"], organisation=applicant)
    found = open_round(admin, naloxone)
    response = put(client, auth(staff), found, naloxone, quantity=24)
    assert response.status_code == 422
    assert "not an approved member" in response.get_json()["error"]["message"]


def test_an_admin_commits_for_a_named_organisation(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(admin)
    refused = put(client, headers, found, naloxone, quantity=24)
    assert refused.get_json()["error"]["field"] == "organisation_id"
    response = put(client, headers, found, naloxone, quantity=24, organisation_id=member.organisation_id)
    assert response.status_code == 200
    assert response.get_json()["history"][0]["changed_by_id"] == admin.id


def test_members_see_only_their_own_commitments(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    other_org = factories.OrganisationFactory(name="Quiet Collective")
    other = factories.UserFactory(roles=["member"], organisation=other_org)
    mine, theirs = auth(member), auth(other)
    put(client, mine, found, naloxone, quantity=48)
    put(client, theirs, found, naloxone, quantity=96)
    listing = client.get(f"/api/v1/rounds/{found.id}/commitments", headers=mine).get_json()
    assert [(item["organisation_id"], item["quantity"]) for item in listing["items"]] == [
        (member.organisation_id, 48)]
    response = client.get(f"/api/v1/rounds/{found.id}/commitments?organisation_id={other_org.id}",
                          headers=mine)
    assert response.status_code == 404
    everyone = client.get(f"/api/v1/rounds/{found.id}/commitments", headers=auth(admin)).get_json()
    assert everyone["total"] == 2
    # A member cannot commit for another organisation either.
    response = put(client, mine, found, naloxone, quantity=1, organisation_id=other_org.id)
    assert response.status_code == 404
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(CommitmentChange)) == 2


def test_the_read_model_shows_totals_the_break_reached_and_the_next(client, admin, auth, session, naloxone):
    """The worked example: firm 924 and tolerance 24 buy 39 cases (936) at $38.00; 13 more firm
    units make 38 full cases plus 13, which C's tolerance fills to 40 cases = 960 at $31.00."""
    found = open_round(admin, naloxone)
    for name, quantity, tolerance in (("A", 480, 0), ("B", 300, 0), ("C", 96, 24), ("D", 48, 0)):
        organisation = factories.OrganisationFactory(name=f"Programme {name}")
        session.add(Commitment(round_id=found.id, product_id=naloxone.id, organisation_id=organisation.id,
                               quantity=quantity, tolerance=tolerance))
    session.flush()
    response = client.get(f"/api/v1/rounds/{found.id}/progress", headers=auth(admin))
    row = response.get_json()["products"][0]
    assert (row["firm"], row["tolerance"], row["cases"], row["units"]) == (924, 24, 39, 936)
    assert row["price_reached"] == "38.00"
    assert row["next_break"] == {"unit_cost": "31.00", "min_units": 960, "more_units": 13, "cases": 40}
    assert row["hint"].startswith("13 more reach $31.00")


def test_the_read_model_counts_whole_cases_without_tolerance(client, admin, member, auth, session, naloxone):
    found = open_round(admin, naloxone)
    headers = auth(member)
    put(client, headers, found, naloxone, quantity=10)
    row = client.get(f"/api/v1/rounds/{found.id}/progress", headers=headers).get_json()["products"][0]
    # 10 boxes do not fill a case of 24: nothing would be bought yet; 14 more buy the first case.
    assert (row["cases"], row["price_reached"], row["my_quantity"]) == (0, None, 10)
    assert row["next_break"]["more_units"] == 14
    assert row["next_break"]["unit_cost"] == "45.00"


def test_the_round_page_query_count_does_not_grow_with_members(client, admin, member, sign_in, session,
                                                                naloxone, count_queries):
    found = open_round(admin, naloxone)
    session.commit()
    sign_in(member)
    client.get(f"/rounds/{found.id}")  # warm-up
    with count_queries() as few:
        assert client.get(f"/rounds/{found.id}").status_code == 200
    for _ in range(5):
        organisation = factories.OrganisationFactory()
        session.add(Commitment(round_id=found.id, product_id=naloxone.id, organisation_id=organisation.id,
                               quantity=24, tolerance=0))
    session.commit()
    with count_queries() as many:
        assert client.get(f"/rounds/{found.id}").status_code == 200
    assert many.count == few.count


def test_round_items_snapshot_is_used_by_the_read_model(session, admin, naloxone):
    found = open_round(admin, naloxone)
    item = session.scalar(select(RoundItem).where(RoundItem.round_id == found.id))
    assert item.pack_size == 24
    assert item.price_breaks[1] == {"min_units": 240, "unit_cost": "38.00"}
