"""The club's chart of accounts.

The first migration writes these rows; code refers to accounts by code. The
subsidy fund is one account per restriction, so restricted money can never be
spent outside its category.
"""

from __future__ import annotations

from typing import NamedTuple


class ChartAccount(NamedTuple):
    code: str
    name: str
    type: str
    restricted_to: str | None = None


CASH = "1000"
STRIPE_CLEARING = "1010"
RECEIVABLES = "1100"
FREE_STOCK = "1200"
SUPPLIER_PAYABLES = "2000"
MEMBER_CREDIT = "2100"
TAX_PAYABLE = "2200"
FUND_UNRESTRICTED = "3000"
FUND_RESTRICTED = {
    "pipes": "3010",
    "naloxone": "3020",
    "oxygen": "3030",
    "other": "3040",
}
SALES = "4000"
OPERATING_INCOME = "4100"
GRANT_INCOME = "4200"
SUPPLIER_COSTS = "5000"
SUBSIDIES_GIVEN = "5100"
SHIPPING_COSTS = "5200"

CHART: tuple[ChartAccount, ...] = (
    ChartAccount(CASH, "Bank", "asset"),
    ChartAccount(STRIPE_CLEARING, "Card payments clearing", "asset"),
    ChartAccount(RECEIVABLES, "Member receivables", "asset"),
    ChartAccount(FREE_STOCK, "Fund free stock", "asset"),
    ChartAccount(SUPPLIER_PAYABLES, "Supplier payables", "liability"),
    ChartAccount(MEMBER_CREDIT, "Member account credit", "liability"),
    ChartAccount(TAX_PAYABLE, "Sales tax payable", "liability"),
    ChartAccount(FUND_UNRESTRICTED, "Subsidy fund — unrestricted", "equity"),
    *(
        ChartAccount(code, f"Subsidy fund — restricted to {category}", "equity", category)
        for category, code in FUND_RESTRICTED.items()
    ),
    ChartAccount(SALES, "Sales to members at club price", "income"),
    ChartAccount(OPERATING_INCOME, "Operating cost recovery", "income"),
    ChartAccount(GRANT_INCOME, "Grants and donations", "income"),
    ChartAccount(SUPPLIER_COSTS, "Cost of supplies", "expense"),
    ChartAccount(SUBSIDIES_GIVEN, "Subsidies awarded", "expense"),
    ChartAccount(SHIPPING_COSTS, "Shipping", "expense"),
)
