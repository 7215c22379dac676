"""The subsidy fund's balances, read from the ledger, and the lock that keeps it from going negative.

The fund is one equity account per restriction (``buyersclub.ledger.chart``):
unrestricted money, and money restricted to one product category. Its balance
is money available, so it is the accounts' credit balance turned positive.

Anything that takes money out of the fund (an approved run, a close whose
margin is negative, free stock) first calls ``lock_fund()`` and then checks
``available()`` inside the same transaction. On PostgreSQL the lock is a
row lock on the fund's ledger accounts, so two such transactions run one after the
other and the second sees what the first took; SQLite runs one writer at a
time anyway.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from buyersclub.db import db
from buyersclub.errors import RuleRefused
from buyersclub.ledger.chart import FUND_RESTRICTED, FUND_UNRESTRICTED
from buyersclub.ledger.models import LedgerAccount, Posting
from buyersclub.ledger.services import lock_fund_accounts
from buyersclub.money import ZERO, format_money, from_cents

# Restriction -> account code; None is unrestricted money.
FUND_ACCOUNTS: dict[str | None, str] = {None: FUND_UNRESTRICTED, **FUND_RESTRICTED}
CATEGORIES = tuple(FUND_RESTRICTED)


def account_for(restriction: str | None) -> str:
    try:
        return FUND_ACCOUNTS[restriction]
    except KeyError:
        choices = ", ".join(CATEGORIES)
        raise RuleRefused(
            f"Money can be restricted to {choices}, or not at all.", field="restricted_to"
        ) from None


def lock_fund() -> None:
    """Serialise every transaction that takes money out of the fund (PostgreSQL).

    The same lock the round close takes (``buyersclub.ledger.services``), so a
    close and an approval cannot both spend the same money either.
    """
    lock_fund_accounts()


def balances() -> dict[str | None, Decimal]:
    """Money available by restriction (None: unrestricted), from one query over postings."""
    codes = {code: restriction for restriction, code in FUND_ACCOUNTS.items()}
    cents = func.sum(func.round(Posting.amount * 100))
    rows = db.session.execute(
        select(LedgerAccount.code, cents)
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .where(LedgerAccount.code.in_(codes))
        .group_by(LedgerAccount.code)
    ).all()
    found = {codes[code]: -from_cents(int(total or 0)) for code, total in rows}
    return {restriction: found.get(restriction, ZERO) for restriction in FUND_ACCOUNTS}


def available(restriction: str | None) -> Decimal:
    return balances()[restriction]


def require_available(restriction: str | None, amount: Decimal, currency: str = "USD") -> None:
    """Refuse (422) taking ``amount`` from that part of the fund if it does not hold it."""
    have = available(restriction)
    if amount > have:
        where = f"restricted to {restriction}" if restriction else "unrestricted"
        raise RuleRefused(
            f"The fund's {where} money is {format_money(have, currency)}; "
            f"{format_money(amount, currency)} cannot be taken from it.",
            code="fund_insufficient",
        )
