"""The close pages: options side by side, the confirmation step, the outcome, my allocations."""

from __future__ import annotations

import re

import pytest

from buyersclub.actor import Actor
from orders.models import RoundStatus
from orders.services import commitments
from tests import factories
from tests.orders.test_closing import member_of, open_round


@pytest.fixture
def example(session, admin):
    naloxone = factories.ProductFactory(supplier=factories.SupplierFactory(), name="Naloxone nasal spray")
    found = open_round(admin, naloxone)
    staff = {}
    for name, quantity, tolerance in (("A", 480, 0), ("B", 300, 0), ("C", 96, 24), ("D", 48, 0)):
        user = member_of(f"Programme {name}")
        commitments.set_commitment(Actor.for_user(user), found.id, naloxone.id, quantity=quantity,
                                   tolerance=tolerance)
        staff[name] = user
    return found, naloxone, staff


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def test_admin_previews_reviews_and_closes_with_the_jump(sign_in, admin, example):
    found, naloxone, _ = example
    client = sign_in(admin)

    assert f"/rounds/{found.id}/close" in text(client.get(f"/admin/rounds/{found.id}"))
    page = client.get(f"/rounds/{found.id}/close")
    assert page.status_code == 200
    body = text(page)
    assert "Base: 936 units" in body and "Jump to 960 units" in body
    assert "recommended" in body and "cheaper" in body
    assert "$35,568.00" in body and "$29,760.00" in body and "$7,680.00" in body
    assert re.search(rf'name="p{naloxone.id}" value="936" checked', body)  # the base by default
    assert "936 (12 from tolerance)" in body  # members receive: C's tolerance fills the 39th case
    assert f"/rounds/{found.id}/close/products/{naloxone.id}" in body and "(4 members)" in body

    review = client.get(f"/rounds/{found.id}/close/review?p{naloxone.id}=960")
    assert review.status_code == 200
    body = text(review)
    assert "Close the round" in body and "$7,680.00" in body
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', body).group(1)

    done = client.post(f"/rounds/{found.id}/close",
                       data={f"p{naloxone.id}": "960", "fingerprint": fingerprint})
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/rounds/{found.id}/outcome")
    assert found.status == RoundStatus.CLOSED
    assert "What the club bought" in text(client.get(f"/rounds/{found.id}"))
    outcome = text(client.get(f"/rounds/{found.id}/outcome"))
    assert "960 (40 cases)" in outcome and "$31.00" in outcome


def test_a_choice_that_is_no_longer_an_option_shows_the_preview_again(sign_in, admin, example):
    found, naloxone, _ = example
    client = sign_in(admin)
    response = client.get(f"/rounds/{found.id}/close/review?p{naloxone.id}=950")
    assert response.status_code == 400
    assert "950 units is not one of the options now" in text(response)


def test_a_review_made_stale_by_a_new_commitment_is_refused(sign_in, admin, example):
    found, naloxone, _ = example
    client = sign_in(admin)
    review = text(client.get(f"/rounds/{found.id}/close/review"))
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', review).group(1)
    commitments.set_commitment(Actor.for_user(member_of("Late")), found.id, naloxone.id, quantity=24)
    response = client.post(f"/rounds/{found.id}/close", data={"fingerprint": fingerprint})
    assert response.status_code == 409
    assert "Commitments changed since the preview" in text(response)
    assert found.status == RoundStatus.OPEN


def test_the_member_sees_their_allocation_and_savings(sign_in, admin, example):
    found, naloxone, staff = example
    closing_client = sign_in(admin)
    closed = closing_client.post(f"/rounds/{found.id}/close", data={f"p{naloxone.id}": "960"})
    assert closed.status_code == 302
    closing_client.post("/sign-out")
    client = sign_in(staff["C"])
    body = text(client.get(f"/rounds/{found.id}/allocations"))
    assert "My allocations" in body
    assert "Programme A" not in body
    assert "108" in body and "saves $540.00" in body
    client.post("/sign-out")
    body = text(sign_in(staff["A"]).get(f"/rounds/{found.id}/allocations"))
    assert "pays $960.00 more: to the fund" in body


def test_the_allocation_per_member_under_each_option_is_a_page_of_its_own(sign_in, admin, example):
    found, naloxone, _ = example
    page = sign_in(admin).get(f"/rounds/{found.id}/close/products/{naloxone.id}")
    assert page.status_code == 200
    rows = {name: re.findall(r'<td data-label="[^"]+" class="num">([^<]*)</td>', cells)
            for name, cells in re.findall(r'<td data-label="Member">(Programme [A-D])</td>(.*?)</tr>',
                                          page.get_data(as_text=True), re.S)}
    # Committed, tolerance, then what each option gives: C gets 108 either way, 12 of them tolerance.
    assert rows == {"Programme A": ["480", "0", "480", "480"], "Programme B": ["300", "0", "300", "300"],
                    "Programme C": ["96", "24", "108 (12 from tolerance)", "108 (12 from tolerance)"],
                    "Programme D": ["48", "0", "48", "48"]}
    assert "Base: 936 units" in text(page) and "Jump to 960 units" in text(page)
    assert "Members 1 to 4 of 4" in text(page)


def test_a_product_page_for_a_product_not_in_the_round_is_404(sign_in, admin, example):
    found, naloxone, _ = example
    assert sign_in(admin).get(f"/rounds/{found.id}/close/products/{naloxone.id + 999}").status_code == 404


def test_the_admins_allocations_are_paged(sign_in, admin, example, monkeypatch):
    found, naloxone, _ = example
    client = sign_in(admin)
    assert client.post(f"/rounds/{found.id}/close", data={f"p{naloxone.id}": "960"}).status_code == 302
    monkeypatch.setattr("orders.close_views.ALLOCATIONS_PER_PAGE", 3)
    first = text(client.get(f"/rounds/{found.id}/allocations"))
    assert "Page 1 of 2" in first
    second = text(client.get(f"/rounds/{found.id}/allocations?page=2"))
    shown = [name for name in ("Programme A", "Programme B", "Programme C", "Programme D")
             if name in first]
    assert len(shown) == 3 and [name for name in ("Programme A", "Programme B", "Programme C",
                                                   "Programme D") if name in second] == [
        name for name in ("Programme A", "Programme B", "Programme C", "Programme D") if name not in shown]
    assert "Page 2 of 2" in second


def test_members_cannot_reach_the_close_pages(sign_in, member, example):
    found, naloxone, _ = example
    client = sign_in(member)
    assert client.get(f"/rounds/{found.id}/close").status_code == 403
    assert client.get(f"/rounds/{found.id}/close/products/{naloxone.id}").status_code == 403
    assert client.post(f"/rounds/{found.id}/close", data={f"p{naloxone.id}": "936"}).status_code == 403
    assert found.status == RoundStatus.OPEN


def test_a_products_members_are_paged_and_past_the_end_is_the_last_page(sign_in, admin, example, monkeypatch):
    found, naloxone, _ = example
    monkeypatch.setattr("orders.close_views.MEMBERS_PER_PAGE", 3)
    client = sign_in(admin)
    url = f"/rounds/{found.id}/close/products/{naloxone.id}"
    first = client.get(url)
    assert "Members 1 to 3 of 4" in text(first) and "Page 1 of 2" in text(first)
    assert f'href="{url}?page=2"' in first.get_data(as_text=True)
    last = text(client.get(url + "?page=9"))
    assert "Members 4 to 4 of 4" in last and "Page 2 of 2" in last and "Programme D" in last
