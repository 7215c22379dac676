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

from buyersclub.errors import RuleRefused
from buyersclub.ledger.chart import FUND_RESTRICTED, FUND_UNRESTRICTED
from buyersclub.ledger.services import account_balances, lock_fund_accounts
from buyersclub.money import ZERO, format_money

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
    """Money available by restriction (None: unrestricted): the fund accounts' credit balances."""
    held = account_balances(FUND_ACCOUNTS.values())
    # ZERO - x, not -x: a fund without money reads 0.00, never -0.00.
    return {restriction: ZERO - held[code] for restriction, code in FUND_ACCOUNTS.items()}


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
