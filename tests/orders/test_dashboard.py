"""The open-rounds panel on the dashboard."""

from buyersclub.db import db, utcnow
from orders.models import Commitment, RoundStatus
from tests import factories


def _open_round(name):
    opened = factories.RoundFactory(name=name, status=RoundStatus.OPEN, opened_at=utcnow())
    item = factories.RoundItemFactory(round=opened)
    return item.round, item.product


def test_members_see_open_rounds_and_whether_they_committed(client, member, sign_in):
    committed_round, product = _open_round("Winter naloxone")
    _open_round("Pipes, January")
    factories.RoundFactory(name="Still a draft")
    other = factories.OrganisationFactory(name="Elsewhere Outreach")
    for organisation_id, quantity in ((member.organisation_id, 48), (other.id, 96)):
        db.session.add(Commitment(round_id=committed_round.id, product_id=product.id,
                                  organisation_id=organisation_id, quantity=quantity))
    sign_in(member)
    page = client.get("/").get_data(as_text=True)
    assert "Open buying rounds" in page
    assert "Winter naloxone" in page and "you have committed to 1 product" in page
    assert "Pipes, January" in page and "you have not committed yet" in page
    assert "Still a draft" not in page


def test_the_panel_says_when_no_round_is_open(client, member, sign_in):
    sign_in(member)
    assert "No round is open right now." in client.get("/").get_data(as_text=True)


def test_finance_sees_no_rounds_panel(client, finance, sign_in):
    sign_in(finance)
    assert "Open buying rounds" not in client.get("/").get_data(as_text=True)
