"""Time the subsidy engine on 10,000 random members (the budget is 50 ms).

Run: ``.venv/bin/python scripts/bench_subsidies.py [members] [repeats]``.
Prints the best and median time of ``allocate_subsidies`` alone (the members
are built beforehand), for one category and for two with priorities: wall-clock
time, and the process's CPU time, which is the fairer figure on a busy machine.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from decimal import Decimal
from fractions import Fraction

from subsidies.engine import CategoryPolicy, Funds, Member, Policy, allocate_subsidies


def random_members(count: int, rng: random.Random, categories: tuple[str, ...]) -> list[Member]:
    members = []
    for number in range(count):
        weight: int | Decimal | Fraction = rng.choice(
            [
                rng.randint(1, 5),
                Decimal(rng.randint(50, 400)) / 100,
                Fraction(rng.randint(1, 9), rng.randint(1, 4)),
            ]
        )
        bills = {category: rng.randint(0, 500_000) for category in categories}
        members.append(Member(f"org-{number:05d}", weight, bills, eligible=rng.random() < 0.9))
    return members


def bench(count: int, repeats: int, categories: tuple[str, ...], policy: Policy, funds: Funds) -> None:
    rng = random.Random(20261122)
    members = random_members(count, rng, categories)
    wall, cpu = [], []
    for _ in range(repeats):
        rng.shuffle(members)
        started, started_cpu = time.perf_counter(), time.process_time()
        allocation = allocate_subsidies(members, funds, policy)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    levels = ", ".join(f"{name} λ≈{float(o.level):.6f}" for name, o in allocation.categories.items())
    print(
        f"{count} members, {len(categories)} categor{'y' if len(categories) == 1 else 'ies'}: "
        f"wall best {min(wall) * 1000:.1f} ms, median {statistics.median(wall) * 1000:.1f} ms; "
        f"CPU best {min(cpu) * 1000:.1f} ms, median {statistics.median(cpu) * 1000:.1f} ms "
        f"(paid {allocation.paid} cents; {levels})"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    one = Policy({"naloxone": CategoryPolicy(max_share=Fraction(1, 2), cap_cents=40_000, floor_cents=2_500)})
    bench(count, repeats, ("naloxone",), one, Funds(count * 10_000))
    two = Policy(
        {
            "naloxone": CategoryPolicy(max_share=1, floor_cents=1_000),
            "pipes": CategoryPolicy(max_share=Fraction(3, 4), cap_cents=100_000),
        },
        priority=("naloxone",),
    )
    bench(count, repeats, ("naloxone", "pipes"), two, Funds(count * 20_000, {"pipes": count * 5_000}))


if __name__ == "__main__":
    main()
