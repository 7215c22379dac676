"""Two administrators approving two preview runs of one round at the same moment (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger.models import JournalEntry
from subsidies import fund
from subsidies.models import RunStatus, SubsidyRun
from subsidies.services import runs
from tests import factories
from tests.conftest import bearer
from tests.subsidies.test_runs import allocate, closed_round, give, product_in, small_programme

pytestmark = pytest.mark.postgres_only


def test_two_parallel_approvals_one_wins_the_other_gets_409(committing_db):
    app = committing_db
    admins = [factories.UserFactory(roles=["admin"]) for _ in range(2)]
    found = closed_round()
    naloxone = product_in(found)
    for index in range(3):
        allocate(naloxone, small_programme(f"Programme {index}"), 24)
    give("500.00")
    first = runs.start_run(Actor.for_user(admins[0]), found.id)
    second = runs.start_run(Actor.for_user(admins[1]), found.id)
    run_ids = [first.id, second.id]
    headers = [bearer(admin) for admin in admins]
    db.session.commit()

    barrier = threading.Barrier(2)
    results: list = [None, None]

    def approve(index):
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/api/v1/subsidy-runs/{run_ids[index]}/approve", headers=headers[index])
        results[index] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=approve, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(status for status, _ in results) == [200, 409], results
    db.session.expire_all()
    statuses = db.session.scalars(select(SubsidyRun.status).where(SubsidyRun.round_id == found.id)).all()
    assert sorted(statuses) == sorted([RunStatus.APPROVED, RunStatus.PREVIEW])
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)
                             .where(JournalEntry.kind == "subsidy_award")) == 1
    assert fund.balances()[None] == 0
