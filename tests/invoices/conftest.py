"""Set-up for the invoices tests: the SPEC's worked example, closed and subsidised through the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db, utcnow
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.money import ZERO
from invoices.models import Invoice
from invoices.services import issuing
from orders.models import ProductClosing
from orders.services import closing, commitments, delivery, rounds
from subsidies.services import runs
from tests import factories
from tests.invoices.stripe_helpers import FakeStripe, stripe_configured

D = Decimal


def open_round(admin, product, *, shipping="0.00", name="Naloxone, spring"):
    actor = Actor.for_user(admin)
    found = rounds.create_round(actor, supplier_id=product.supplier_id, name=name,
                                deadline=datetime.now(UTC) + timedelta(days=7), shipping_cost=shipping,
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    return rounds.open_round(actor, found.id)


def member(name, **profile):
    organisation = factories.OrganisationFactory(name=name, **profile)
    factories.UserFactory(roles=["member"], organisation=organisation,
                          email=f"staff@{name.split()[-1].lower()}.test")
    return organisation


def receivable_movements(organisation_id: int) -> Decimal:
    """Every movement of the member's receivable (account 1100), summed."""
    total = db.session.scalar(
        select(db.func.coalesce(db.func.sum(Posting.amount), 0)).join(LedgerAccount)
        .where(LedgerAccount.code == chart.RECEIVABLES, Posting.organisation_id == organisation_id))
    return D(str(total)).quantize(D("0.01")) if total else ZERO


def entries_of_kind(kind: str) -> list[JournalEntry]:
    return list(db.session.scalars(select(JournalEntry).where(JournalEntry.kind == kind)))


def receive_in_full(actor, found, product, units: int) -> None:
    """The supplier delivers everything bought: invoices follow the delivery (SPEC lifecycle)."""
    today = datetime.now(UTC).date()
    delivery.mark_ordered(actor, found.id)
    delivery.record_receipt(actor, found.id, received_on=today.isoformat(), lines=[
        {"product_id": product.id, "quantity": units, "lot": "NX-1",
         "expiry": (today + timedelta(days=700)).isoformat()}])


def close_and_receive(actor, found, product) -> None:
    """Close a one-product round with its default options and receive all it bought."""
    closing.commit_close(actor, found.id)
    bought = db.session.scalar(select(ProductClosing.units).where(ProductClosing.round_id == found.id,
                                                                 ProductClosing.product_id == product.id))
    receive_in_full(actor, found, product, bought)


@pytest.fixture
def pdf_instance(app, tmp_path, monkeypatch):
    """The test keeps the PDFs it stores in an instance folder of its own."""
    folder = tmp_path / "instance"
    monkeypatch.setattr(app, "instance_path", str(folder))
    return folder


@pytest.fixture
def naloxone(session):
    supplier = factories.SupplierFactory(name="Remedy Wholesale")
    return factories.ProductFactory(supplier=supplier, name="Naloxone nasal spray")


@pytest.fixture
def example(session, admin, finance, naloxone):
    """SPEC worked example: A 480, B 300, C 96 (+24), D 48; closed with the jump to 960 boxes,
    all delivered; C and D assessed low-resource; shipping $250.00."""
    found = open_round(admin, naloxone, shipping="250.00")
    members = {
        "A": member("Programme Alder"),
        "B": member("Programme Birch"),
        "C": member("Programme Cedar", low_resource=True),
        "D": member("Programme Dune", low_resource=True),
    }
    for key, quantity, tolerance in (("A", 480, 0), ("B", 300, 0), ("C", 96, 24), ("D", 48, 0)):
        staff = members[key].staff[0]
        commitments.set_commitment(Actor.for_user(staff), found.id, naloxone.id, quantity=quantity,
                                   tolerance=tolerance)
    admin_actor = Actor.for_user(admin)
    closing.commit_close(admin_actor, found.id, {naloxone.id: 960})
    receive_in_full(admin_actor, found, naloxone, 960)
    return SimpleNamespace(round=found, product=naloxone, members=members, admin=admin_actor,
                           finance=Actor.for_user(finance))


@pytest.fixture
def approved(example):
    run = runs.start_run(example.admin, example.round.id)
    runs.approve_run(example.admin, run.id)
    example.run = run
    return example


def by_member(invoices, members) -> dict[str, Invoice]:
    """Invoices keyed as the example keys its members ("A" to "D")."""
    keys = {organisation.id: key for key, organisation in members.items()}
    return {keys[invoice.organisation_id]: invoice for invoice in invoices}


def issue_all(fixture) -> dict[str, Invoice]:
    """Issue the fixture round's invoices; by member key."""
    return by_member(issuing.issue_round_invoices(fixture.finance, fixture.round.id), fixture.members)


@pytest.fixture
def invoiced(approved):
    """The approved example with its invoices issued (``.invoices`` by member key, ``.today``)."""
    approved.invoices = issue_all(approved)
    approved.today = utcnow().date()
    return approved


@pytest.fixture
def fake(app):
    """Stripe configured, answered by a :class:`FakeStripe` that records what it was sent."""
    fake = FakeStripe()
    with stripe_configured(app, STRIPE_HTTP_CLIENT=fake):
        yield fake
