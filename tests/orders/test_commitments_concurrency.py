"""Commitments under concurrency, on PostgreSQL with real commits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.db import db
from orders.models import Commitment, CommitmentChange
from orders.services import rounds
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.postgres_only


def _run_together(app, calls):
    """Run each (path, body, headers) PUT in its own thread, all released at once."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[int, dict]] = [None] * len(calls)  # type: ignore[list-item]

    def worker(index, path, body, headers):
        client = app.test_client()
        barrier.wait()
        response = client.put(path, json=body, headers=headers)
        results[index] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=worker, args=(index, *call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_twenty_members_and_one_member_twice_over_commit_at_once(committing_db):
    app = committing_db
    admin = factories.UserFactory(roles=["admin"])
    product = factories.ProductFactory()
    found = rounds.create_round(Actor.for_user(admin), supplier_id=product.supplier_id, name="Rush",
                                deadline=datetime.now(UTC) + timedelta(days=1),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    rounds.open_round(Actor.for_user(admin), found.id)
    members = []
    for _ in range(10):
        organisation = factories.OrganisationFactory()
        members.append((organisation.id, factories.UserFactory(roles=["member"], organisation=organisation)))
    eager = factories.OrganisationFactory(name="Eager Outreach")
    eager_staff = [factories.UserFactory(roles=["member"], organisation=eager) for _ in range(10)]
    headers = [bearer(user) for _, user in members] + [bearer(user) for user in eager_staff]
    round_id, product_id = found.id, product.id
    db.session.commit()

    path = f"/api/v1/rounds/{round_id}/commitments/{product_id}"
    calls = [(path, {"quantity": 24 + index}, headers[index]) for index in range(10)]
    calls += [(path, {"quantity": 100 + index, "tolerance": index}, headers[10 + index])
              for index in range(10)]
    results = _run_together(app, calls)

    assert [status for status, _ in results] == [200] * 20, results
    db.session.expire_all()
    rows = db.session.scalars(select(Commitment).where(Commitment.round_id == round_id)).all()
    assert len(rows) == 11
    by_org = {row.organisation_id: row for row in rows}
    for index, (organisation_id, _) in enumerate(members):
        assert by_org[organisation_id].quantity == 24 + index
    # The same organisation: one commitment, one history row per request, the last one current.
    mine = by_org[eager.id]
    changes = db.session.scalars(select(CommitmentChange).where(CommitmentChange.commitment_id == mine.id)
                                 .order_by(CommitmentChange.id)).all()
    assert len(changes) == 10
    assert (changes[-1].quantity, changes[-1].tolerance) == (mine.quantity, mine.tolerance)
    assert sorted(change.quantity for change in changes) == list(range(100, 110))
    assert db.session.scalar(select(func.count()).select_from(CommitmentChange)) == 20


def test_commitments_racing_a_cancel_are_either_kept_before_it_or_refused(committing_db):
    app = committing_db
    admin = factories.UserFactory(roles=["admin"])
    product = factories.ProductFactory()
    found = rounds.create_round(Actor.for_user(admin), supplier_id=product.supplier_id, name="Race",
                                deadline=datetime.now(UTC) + timedelta(days=1),
                                items=[{"product_id": product.id, "club_price": "40.00"}])
    rounds.open_round(Actor.for_user(admin), found.id)
    staff = [factories.UserFactory(roles=["member"], organisation=factories.OrganisationFactory())
             for _ in range(10)]
    headers = [bearer(user) for user in staff]
    admin_headers = bearer(admin)
    round_id, product_id = found.id, product.id
    db.session.commit()

    barrier = threading.Barrier(11)
    cancel_result = {}

    def cancel():
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/api/v1/rounds/{round_id}/cancel", json={"reason": "Supplier closed"},
                               headers=admin_headers)
        cancel_result["status"] = response.status_code

    results: list = [None] * 10

    def commit(index):
        client = app.test_client()
        barrier.wait()
        response = client.put(f"/api/v1/rounds/{round_id}/commitments/{product_id}",
                              json={"quantity": 24}, headers=headers[index])
        results[index] = response.status_code

    threads = [threading.Thread(target=cancel)] + [threading.Thread(target=commit, args=(i,))
                                                    for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert cancel_result["status"] == 200
    assert set(results) <= {200, 409}, results
    db.session.expire_all()
    kept = db.session.scalar(select(func.count()).select_from(Commitment)
                             .where(Commitment.round_id == round_id))
    assert kept == results.count(200)
