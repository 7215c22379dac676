"""The fund under concurrency, on PostgreSQL with real commits.

Anything that takes money out of the fund locks it (``fund.lock_fund``),
checks ``require_available`` and posts, in one transaction. These tests run
that pattern from many threads at once against a fund that can cover only
some of them: no restriction ever goes below zero, and every accepted
withdrawal is in the ledger. Approving a subsidy run relies on the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from buyersclub.accounts.models import User
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.errors import DomainError
from buyersclub.ledger.chart import CASH
from buyersclub.ledger.models import JournalEntry
from buyersclub.ledger.services import Line, post_entry
from subsidies import fund
from subsidies.models import SubsidyPolicy
from subsidies.policy import DEFAULT_MAX_SHARE, DEFAULT_PRIORITY, DEFAULT_WEIGHTS
from subsidies.services.grants import record_grant, reverse_grant
from tests import factories
from tests.conftest import bearer

pytestmark = pytest.mark.postgres_only

D = Decimal
DAY = date(2026, 3, 2)
WITHDRAWAL = "test_withdrawal"


def withdraw(actor: Actor, restriction: str | None, amount: Decimal) -> JournalEntry:
    """Take money out of one part of the fund, as an approved run does."""
    fund.lock_fund()
    fund.require_available(restriction, amount)
    return post_entry(actor, entry_date=DAY, memo="Paid out", kind=WITHDRAWAL,
                      lines=[Line(fund.account_for(restriction), amount), Line(CASH, -amount)])


def _together(app, user_id: int, calls: list[Callable[[Actor], object]]) -> list[str]:
    """Run each call in its own thread, transaction and session, all released at once.

    Each result is "ok", the refusal's code, or the unexpected exception's name.
    """
    barrier = threading.Barrier(len(calls))
    results: list[str] = [""] * len(calls)

    def worker(index: int, call: Callable[[Actor], object]) -> None:
        with app.app_context():
            try:
                # Released before touching the database: threads holding pooled
                # connections at the barrier could starve the ones still waiting.
                barrier.wait(timeout=30)
                actor = Actor.for_user(db.session.get(User, user_id))
                call(actor)
                db.session.commit()
                results[index] = "ok"
            except DomainError as error:
                db.session.rollback()
                results[index] = error.code
            except Exception as exc:  # reported, so the assertion shows it
                db.session.rollback()
                results[index] = type(exc).__name__
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _finance_user() -> int:
    user = factories.UserFactory(roles=["finance"])
    db.session.commit()
    return user.id


def _entries(kind: str) -> list[JournalEntry]:
    db.session.expire_all()
    return list(db.session.scalars(select(JournalEntry).where(JournalEntry.kind == kind)))


def test_parallel_withdrawals_never_overdraw_a_restriction(committing_db):
    user_id = _finance_user()
    record_grant(Actor.for_user(db.session.get(User, user_id)), "Naloxone grant", "350.00", DAY,
                 restricted_to="naloxone")
    record_grant(Actor.for_user(db.session.get(User, user_id)), "General", "5000.00", DAY)
    db.session.commit()

    results = _together(committing_db, user_id,
                        [lambda actor: withdraw(actor, "naloxone", D("100.00"))] * 10)

    assert sorted(results) == ["fund_insufficient"] * 7 + ["ok"] * 3, results
    assert len(_entries(WITHDRAWAL)) == 3
    balances = fund.balances()
    assert balances["naloxone"] == D("50.00")
    assert balances[None] == D("5000.00")  # unrestricted money was never touched


def test_parallel_grants_and_withdrawals_keep_the_fund_whole(committing_db):
    user_id = _finance_user()
    grants = [lambda actor, n=n: record_grant(actor, f"Donor {n}", "50.00", DAY) for n in range(10)]
    withdrawals = [lambda actor: withdraw(actor, None, D("80.00"))] * 10

    results = _together(committing_db, user_id, grants + withdrawals)

    assert results[:10] == ["ok"] * 10, results  # money coming in is never refused
    assert set(results[10:]) <= {"ok", "fund_insufficient"}, results
    accepted = results[10:].count("ok")
    assert len(_entries("grant")) == 10
    assert len(_entries(WITHDRAWAL)) == accepted
    assert fund.available(None) == D("500.00") - accepted * D("80.00") >= 0


def test_a_reversal_and_an_award_racing_for_the_same_money(committing_db):
    user_id = _finance_user()
    grant = record_grant(Actor.for_user(db.session.get(User, user_id)), "Pipes donor", "100.00", DAY,
                         restricted_to="pipes")
    db.session.commit()
    grant_id = grant.id

    results = _together(committing_db, user_id, [
        lambda actor: reverse_grant(actor, grant_id, "Recorded by mistake"),
        lambda actor: withdraw(actor, "pipes", D("100.00")),
    ])

    assert sorted(results) == ["fund_insufficient", "ok"], results
    assert fund.available("pipes") == D("0.00")


def test_a_grant_reversed_twice_at_once_is_reversed_once(committing_db):
    user_id = _finance_user()
    grant = record_grant(Actor.for_user(db.session.get(User, user_id)), "Twice", "100.00", DAY)
    db.session.commit()
    grant_id = grant.id

    results = _together(committing_db, user_id,
                        [lambda actor: reverse_grant(actor, grant_id, "mistake")] * 5)

    assert sorted(results) == ["already_reversed"] * 4 + ["ok"], results
    assert fund.available(None) == D("0.00")
    assert len(_entries("reversal")) == 1


def test_policy_saves_at_once_make_one_version_each_or_a_conflict(committing_db):
    admin = factories.UserFactory(roles=["admin"])
    headers = bearer(admin)
    db.session.commit()
    body = {"weights": DEFAULT_WEIGHTS, "max_share": DEFAULT_MAX_SHARE, "priority": DEFAULT_PRIORITY,
            "note": "saved at once"}
    barrier = threading.Barrier(6)
    statuses: list[int] = [0] * 6

    def save(index: int) -> None:
        client = committing_db.test_client()
        barrier.wait(timeout=30)
        statuses[index] = client.post("/api/v1/subsidy-policies", json=body, headers=headers).status_code

    threads = [threading.Thread(target=save, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert set(statuses) <= {201, 409}, statuses
    assert 201 in statuses
    versions = sorted(db.session.scalars(select(SubsidyPolicy.version)))
    assert versions == list(range(1, statuses.count(201) + 2))
    assert db.session.scalar(select(func.count()).select_from(SubsidyPolicy)) == len(versions)
