"""Fictional demo data. Filled in by the demo-data work."""

from __future__ import annotations

from collections.abc import Iterator

from buyersclub.actor import Actor


def load_demo(actor: Actor) -> Iterator[str]:
    yield "No demo data yet."
