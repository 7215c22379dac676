"""The delivery pages: ordering, the receiving form, packing lists and the recall search."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from sqlalchemy import func, select

from orders.models import LotShipment, Receipt, RoundStatus
from tests import factories
from tests.orders.test_delivery import TODAY, Member, closed_round, line, receive, worked_example


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_an_admin_orders_a_closed_round_from_its_delivery_page(client, session, admin, sign_in):
    setup = worked_example(status=RoundStatus.CLOSED)
    sign_in(admin)
    page = client.get(f"/rounds/{setup.round.id}/delivery").get_data(as_text=True)
    assert "Mark as ordered" in page
    assert f"/rounds/{setup.round.id}/purchase-order.pdf" in page
    assert "936" in page

    po = client.get(f"/rounds/{setup.round.id}/purchase-order.pdf")
    assert po.status_code == 200 and po.mimetype == "application/pdf"

    response = client.post(f"/rounds/{setup.round.id}/order")
    assert response.status_code == 302
    page = client.get(f"/rounds/{setup.round.id}/delivery").get_data(as_text=True)
    assert "The round is marked ordered" in page
    assert "Record a delivery" in page
    assert client.post(f"/rounds/{setup.round.id}/order").status_code == 409


def receiving_form(setup, rows: dict[int, list[tuple[str, str, str]]], **extra) -> dict:
    data = {"received_on": TODAY.isoformat(), "last_delivery": "y", **extra}
    for product_id, product_rows in rows.items():
        data[f"rows-{product_id}"] = str(len(product_rows))
        for index, (quantity, lot, expiry) in enumerate(product_rows):
            data[f"l-{product_id}-{index}-quantity"] = quantity
            data[f"l-{product_id}-{index}-lot"] = lot
            data[f"l-{product_id}-{index}-expiry"] = expiry
    return data


def test_the_receiving_form_adds_a_lot_row_without_saving(client, session, admin, sign_in):
    setup = worked_example()
    sign_in(admin)
    page = client.get(f"/rounds/{setup.round.id}/receipts/new").get_data(as_text=True)
    pid = setup.product_id
    assert f'name="l-{pid}-1-lot"' in page and f'name="l-{pid}-2-lot"' not in page
    response = client.post(f"/rounds/{setup.round.id}/receipts/new", data={
        **receiving_form(setup, {pid: [("500", "L1", ""), ("", "", "")]}), "add": str(pid)})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'name="l-{pid}-2-lot"' in page
    assert 'value="L1"' in page  # what was typed stays
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_a_bad_row_is_shown_next_to_its_field_and_nothing_is_saved(client, session, admin, sign_in):
    setup = worked_example()
    sign_in(admin)
    pid = setup.product_id
    expiry = (TODAY + timedelta(days=400)).isoformat()
    response = client.post(f"/rounds/{setup.round.id}/receipts/new", data=receiving_form(
        setup, {pid: [("500", "L1", expiry), ("436", "", expiry)]}))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="l-{pid}-1-lot-error"' in page
    assert "Enter the lot number." in page
    assert session.scalar(select(func.count()).select_from(Receipt)) == 0


def test_recording_the_last_delivery_re_allocates_and_packs(client, session, admin, sign_in):
    setup = worked_example()
    sign_in(admin)
    pid = setup.product_id
    expiry = (TODAY + timedelta(days=400)).isoformat()
    response = client.post(f"/rounds/{setup.round.id}/receipts/new", data=receiving_form(
        setup, {pid: [("500", "L1", expiry), ("400", "L2", expiry)]}, note="Short by 36"))
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "receiving completed" in page
    assert "36 short" in page
    assert "<strong>468</strong> (re-allocated)" in page
    assert "Packing lists" in page
    assert session.scalar(select(func.sum(LotShipment.units))) == 900


def test_an_unticked_last_delivery_leaves_the_round_open_for_more(client, session, admin, sign_in):
    setup = worked_example()
    sign_in(admin)
    pid = setup.product_id
    expiry = (TODAY + timedelta(days=400)).isoformat()
    data = receiving_form(setup, {pid: [("500", "L1", expiry)]})
    del data["last_delivery"]
    assert client.post(f"/rounds/{setup.round.id}/receipts/new", data=data).status_code == 302
    page = client.get(f"/rounds/{setup.round.id}/delivery").get_data(as_text=True)
    assert "Complete receiving" in page
    assert client.post(f"/rounds/{setup.round.id}/received").status_code == 302
    session.expire_all()
    assert setup.round.status == RoundStatus.RECEIVED


def test_packing_lists_for_admins_and_the_members_own_staff_only(client, session, admin, sign_in,
                                                                 tmp_path):
    setup = closed_round([Member("A", 24), Member("B", 24)], units=48)
    receive(admin, setup, line(setup, 24, "NX-0042", days=500), line(setup, 24, "NX-0043", days=90))
    staff_a = factories.UserFactory(roles=["member"], organisation_id=setup.orgs["A"])
    session.commit()

    sign_in(staff_a)
    own = client.get(f"/rounds/{setup.round.id}/packing-lists/{setup.orgs['A']}.pdf")
    assert own.status_code == 200 and own.mimetype == "application/pdf"
    text = pdf_text(own.data, tmp_path)
    assert "NX-0043" in text and "(short-dated)" in text and "24" in text  # A: earliest expiry
    assert "NX-0042" not in text
    assert "Harbour Street" in text  # the site address
    assert client.get(f"/rounds/{setup.round.id}/packing-lists/{setup.orgs['B']}.pdf").status_code == 404
    assert client.get(f"/rounds/{setup.round.id}/delivery").status_code == 403
    assert client.get("/recall").status_code == 403

    client.post("/sign-out")
    sign_in(admin)
    theirs = client.get(f"/rounds/{setup.round.id}/packing-lists/{setup.orgs['B']}.pdf")
    assert theirs.status_code == 200
    assert "NX-0042" in pdf_text(theirs.data, tmp_path)
    assert client.get(f"/rounds/{setup.round.id}/packing-lists/999999.pdf").status_code == 404


def test_the_recall_page_finds_the_members_that_received_a_lot(client, session, admin, sign_in):
    setup = closed_round([Member("Alder", 24), Member("Birch", 24)], units=48)
    receive(admin, setup, line(setup, 30, "NX-0042", days=300), line(setup, 18, "NX-0043", days=500))
    sign_in(admin)
    page = client.get("/recall").get_data(as_text=True)
    assert 'name="lot"' in page
    page = client.get("/recall?lot=NX-0042").get_data(as_text=True)
    assert "30 units of lot NX-0042 went to 2 member(s)" in page
    assert page.count("packing-lists/") == 2
    assert "No member received lot NX-9999" in client.get("/recall?lot=NX-9999").get_data(as_text=True)
