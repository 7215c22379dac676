"""Invoices under concurrency, on PostgreSQL with real commits: gapless numbers, racing payments."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger.services import trial_balance
from invoices.models import Invoice, Payment
from invoices.services import issuing, payments
from orders.models import RoundStatus
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.postgres_only

FINANCE = Actor.system("test")
THREADS = 10


class Deliberate(Exception):
    """A thread that issues, then fails before committing."""


def closed_round_with_a_member():
    now = datetime.now(UTC)
    found = factories.RoundFactory(status=RoundStatus.RECEIVED, opened_at=now, closed_at=now)
    item = factories.RoundItemFactory(round=found)
    closing = factories.ProductClosingFactory(round_item=item, units=24)
    organisation = factories.OrganisationFactory()
    factories.AllocationFactory(closing=closing, organisation_id=organisation.id, firm_units=24)
    return found.id


def test_invoices_issued_in_parallel_get_unique_gapless_numbers(committing_db):
    app = committing_db
    round_ids = [closed_round_with_a_member() for _ in range(THREADS)]
    db.session.commit()
    barrier = threading.Barrier(THREADS)
    outcomes: dict[int, str] = {}

    def issue(index: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                issuing.issue_round_invoices(FINANCE, round_ids[index], without_subsidy_run=True)
                if index % 3 == 0:
                    raise Deliberate
                db.session.commit()
                outcomes[index] = "committed"
            except Deliberate:
                db.session.rollback()
                outcomes[index] = "rolled back"
            except Exception as exc:  # pragma: no cover - shown in the assertion below
                db.session.rollback()
                outcomes[index] = repr(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=issue, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    committed = sorted(index for index, outcome in outcomes.items() if outcome == "committed")
    assert len(outcomes) == THREADS and set(outcomes.values()) == {"committed", "rolled back"}, outcomes
    db.session.expire_all()
    year = datetime.now(UTC).year
    numbers = db.session.scalars(select(Invoice.number).order_by(Invoice.sequence_number)).all()
    assert numbers == [f"INV-{year}-{n:05d}" for n in range(1, len(committed) + 1)]
    assert sorted(db.session.scalars(select(Invoice.round_id))) == sorted(round_ids[i] for i in committed)


def test_payments_racing_on_one_invoice_never_pay_it_twice(committing_db):
    app = committing_db
    round_id = closed_round_with_a_member()
    finance = factories.UserFactory(roles=["finance"])
    [invoice] = issuing.issue_round_invoices(FINANCE, round_id, without_subsidy_run=True)
    headers = bearer(finance)
    invoice_id, total = invoice.id, invoice.total
    db.session.commit()
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def pay(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        # Threads 0-2 are one double-clicked payment (same key); 3-5 are separate payments.
        key = "pay-once" if index < 3 else f"pay-{index}"
        response = client.post(f"/api/v1/invoices/{invoice_id}/payments", headers={
            **headers, "Idempotency-Key": key}, json={
            "method": "bank_transfer", "reference": f"BT-{key}",
            "received_on": datetime.now(UTC).date().isoformat(), "amount": f"{total:.2f}"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=pay, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 6
    db.session.expire_all()
    recorded = db.session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).all()
    assert len(recorded) == 4  # the double click was recorded once
    assert sum(payment.applied for payment in recorded) == total
    assert sum(payment.amount - payment.applied for payment in recorded) == 3 * total
    assert payments.balance_due(db.session.get(Invoice, invoice_id)) == Decimal("0.00")
    assert issuing.member_credit(recorded[0].organisation_id) == 3 * total
    assert trial_balance().balanced
