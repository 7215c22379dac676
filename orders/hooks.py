"""Hooks that later layers fill, so ``orders`` can ask them without importing them.

``orders`` sits below ``subsidies`` (STYLE rule 2), yet packing needs to know
one thing that ``subsidies`` decides: the fund's free units given to members.
A provider registered here answers it; ``subsidies.services.free_stock``
registers its own when imported, and the application factory imports that
module, so every running app has it.

A **free units provider** takes a round id and gives the free units each
member receives from that round, as ``(organisation_id, product_id, units)``.
Packing at receipt hands those units out of the fund's free stock, and the
packing list shows them on their own lines. With no provider registered,
nobody receives free units.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

FreeUnitsProvider = Callable[[int], Iterable[tuple[int, int, int]]]

_free_units_providers: list[FreeUnitsProvider] = []


def register_free_units(provider: FreeUnitsProvider) -> FreeUnitsProvider:
    """Register ``provider`` (once, however often its module is imported); usable as a decorator."""
    if provider not in _free_units_providers:
        _free_units_providers.append(provider)
    return provider


def free_units(round_id: int) -> dict[tuple[int, int], int]:
    """(organisation id, product id) -> free units given from the round, every provider summed."""
    found: dict[tuple[int, int], int] = defaultdict(int)
    for provider in _free_units_providers:
        for organisation_id, product_id, units in provider(round_id):
            if units > 0:
                found[(organisation_id, product_id)] += units
    return dict(found)
