"""The ledger is append-only: in code on every database, and by PostgreSQL itself."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, select, update

from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.ledger import chart
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.ledger.services import LedgerIsAppendOnly, Line, post_entry, trial_balance

D = Decimal


@pytest.fixture
def entry(session):
    return post_entry(
        Actor.system("test"),
        entry_date=date(2026, 3, 1),
        memo="Grant from the city",
        kind="grant",
        lines=[Line(chart.CASH, D("500.00")), Line(chart.GRANT_INCOME, D("-500.00"))],
    )


def amounts(session, entry_id):
    return session.scalars(
        select(Posting.amount).where(Posting.entry_id == entry_id).order_by(Posting.id)
    ).all()


# --- In code, on every database --------------------------------------------------


def test_changing_a_posting_is_refused(session, entry):
    with pytest.raises(LedgerIsAppendOnly, match="append-only"), session.begin_nested():
        entry.postings[0].amount = D("5000.00")
        session.flush()
    assert amounts(session, entry.id) == [D("500.00"), D("-500.00")]


def test_moving_a_posting_to_another_account_is_refused(session, entry):
    entry.postings[0].account = session.scalars(
        select(LedgerAccount).where(LedgerAccount.code == chart.STRIPE_CLEARING)).one()
    with pytest.raises(LedgerIsAppendOnly):
        session.flush()


def test_changing_an_entry_is_refused(session, entry):
    entry.memo = "Grant from the county"
    with pytest.raises(LedgerIsAppendOnly, match=f"journal entry #{entry.id}"):
        session.flush()


def test_deleting_a_posting_or_an_entry_is_refused(session, entry):
    with pytest.raises(LedgerIsAppendOnly, match="deleting"), session.begin_nested():
        session.delete(entry.postings[1])
        session.flush()
    with pytest.raises(LedgerIsAppendOnly, match="deleting"), session.begin_nested():
        session.delete(entry)
        session.flush()
    assert amounts(session, entry.id) == [D("500.00"), D("-500.00")]


def test_adding_a_line_to_a_recorded_entry_is_refused(session, entry):
    cash = session.scalars(select(LedgerAccount).where(LedgerAccount.code == chart.CASH)).one()
    entry.postings.append(Posting(account=cash, amount=D("1.00")))
    with pytest.raises(LedgerIsAppendOnly, match="adding a line"):
        session.flush()


def test_bulk_updates_and_deletes_through_the_orm_are_refused(session, entry):
    with pytest.raises(LedgerIsAppendOnly):
        session.execute(update(Posting).where(Posting.entry_id == entry.id).values(amount=0))
    with pytest.raises(LedgerIsAppendOnly):
        session.execute(delete(JournalEntry).where(JournalEntry.id == entry.id))
    assert amounts(session, entry.id) == [D("500.00"), D("-500.00")]


def test_the_session_recovers_after_a_refusal(session, entry):
    with pytest.raises(LedgerIsAppendOnly), session.begin_nested():
        entry.memo = "changed"
        session.flush()
    assert entry.memo == "Grant from the city"
    report = trial_balance()
    assert report.balanced and report.total_debit == D("500.00")


# --- In the database, on PostgreSQL --------------------------------------------------


def _account_id(connection, code):
    return connection.execute(
        sa.text("SELECT id FROM ledger_accounts WHERE code = :code"), {"code": code}
    ).scalar_one()


@pytest.mark.postgres_only
def test_postgres_refuses_an_unbalanced_entry_written_with_raw_sql_at_commit(committing_db):
    with db.engine.connect() as connection:
        transaction = connection.begin()
        entry_id = connection.execute(sa.text(
            "INSERT INTO journal_entries (entry_date, created_at, memo, kind) "
            "VALUES ('2026-03-01', now(), 'Half an entry', 'test') RETURNING id"
        )).scalar_one()
        connection.execute(
            sa.text("INSERT INTO postings (entry_id, account_id, amount) VALUES (:e, :a, 500)"),
            {"e": entry_id, "a": _account_id(connection, chart.CASH)},
        )
        with pytest.raises(sa.exc.IntegrityError, match="does not balance"):
            transaction.commit()
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM postings")).scalar_one() == 0
        assert connection.execute(sa.text("SELECT count(*) FROM journal_entries")).scalar_one() == 0


@pytest.mark.postgres_only
def test_postgres_accepts_a_balanced_entry_written_with_raw_sql(committing_db):
    with db.engine.begin() as connection:
        entry_id = connection.execute(sa.text(
            "INSERT INTO journal_entries (entry_date, created_at, memo, kind) "
            "VALUES ('2026-03-01', now(), 'A whole entry', 'test') RETURNING id"
        )).scalar_one()
        for code, amount in ((chart.CASH, 500), (chart.GRANT_INCOME, -500)):
            connection.execute(
                sa.text("INSERT INTO postings (entry_id, account_id, amount) VALUES (:e, :a, :m)"),
                {"e": entry_id, "a": _account_id(connection, code), "m": amount},
            )
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM postings")).scalar_one() == 2


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = 5000 WHERE entry_id = :e",
        "DELETE FROM postings WHERE entry_id = :e",
        "UPDATE journal_entries SET memo = 'changed' WHERE id = :e",
        "DELETE FROM journal_entries WHERE id = :e",
    ],
)
def test_postgres_refuses_raw_updates_and_deletes(session, entry, statement):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), session.begin_nested():
        session.execute(sa.text(statement), {"e": entry.id})
    session.expire_all()
    assert amounts(session, entry.id) == [D("500.00"), D("-500.00")]
    assert session.get(JournalEntry, entry.id).memo == "Grant from the city"


def _raw_entry(connection, memo: str) -> int:
    return connection.execute(sa.text(
        "INSERT INTO journal_entries (entry_date, created_at, memo, kind) "
        "VALUES ('2026-03-01', now(), :memo, 'test') RETURNING id"), {"memo": memo}).scalar_one()


def _raw_posting(connection, entry_id: int, code: str, amount: int) -> None:
    connection.execute(sa.text("INSERT INTO postings (entry_id, account_id, amount) VALUES (:e, :a, :m)"),
                       {"e": entry_id, "a": _account_id(connection, code), "m": amount})


@pytest.mark.postgres_only
@pytest.mark.parametrize("order", ["one after the other", "interleaved"])
def test_postgres_checks_every_entry_of_a_transaction_once_each(committing_db, order):
    """A balanced entry, then an unbalanced one (in either order of lines): the commit is refused."""
    with db.engine.connect() as connection:
        transaction = connection.begin()
        whole, half = _raw_entry(connection, "whole"), _raw_entry(connection, "half")
        if order == "one after the other":
            lines = [(whole, chart.CASH, 500), (whole, chart.GRANT_INCOME, -500), (half, chart.CASH, 300),
                     (half, chart.GRANT_INCOME, -200)]
        else:
            lines = [(half, chart.CASH, 300), (whole, chart.CASH, 500), (half, chart.GRANT_INCOME, -200),
                     (whole, chart.GRANT_INCOME, -500)]
        for entry_id, code, amount in lines:
            _raw_posting(connection, entry_id, code, amount)
        with pytest.raises(sa.exc.IntegrityError, match=f"journal entry {half} does not balance"):
            transaction.commit()
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM postings")).scalar_one() == 0


@pytest.mark.postgres_only
def test_postgres_checks_a_large_entry_once_and_accepts_it(committing_db):
    with db.engine.begin() as connection:
        entry_id = _raw_entry(connection, "many lines")
        connection.execute(sa.text(
            "INSERT INTO postings (entry_id, account_id, amount) "
            "SELECT :e, :a, 1 FROM generate_series(1, 3000)"),
            {"e": entry_id, "a": _account_id(connection, chart.CASH)})
        _raw_posting(connection, entry_id, chart.GRANT_INCOME, -3000)
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM postings")).scalar_one() == 3001
