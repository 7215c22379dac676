"""Time the subsidy engine on 10,000 random members (the budget is 50 ms).

Run: ``.venv/bin/python scripts/bench_subsidies.py [members] [repeats]``.

Prints the best and median time of ``allocate_subsidies`` alone (the members are
built beforehand), for one category and for two with priorities. On a shared
machine wall-clock time says little, so each run is paired with a plain-float
water-filling of the same members (what NOTES.md measured at about 17 ms for
10,000 members), and the engine's best time is also given as a multiple of
the reference's best.

The engine keeps its result column by column and builds a member's award
lines when they are read; a run reads every one of them once to store them.
That reading is timed too, on its own line, so that no work hides in it.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from decimal import Decimal
from fractions import Fraction

from subsidies.engine import Allocation, CategoryPolicy, Funds, Member, Policy, allocate_subsidies


def random_members(count: int, rng: random.Random, categories: tuple[str, ...]) -> list[Member]:
    """Members in random key order, built in the order listed (as a query's rows would be)."""
    numbers = list(range(count))
    rng.shuffle(numbers)
    members = []
    for number in numbers:
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


def float_water_filling(members: list[Member], category: str, policy: CategoryPolicy, money: float) -> float:
    """The reference: λ by sorting breakpoints and sweeping, in floats (no cents, no explanation)."""
    share = float(policy.max_share)  # type: ignore[arg-type]
    rows = []
    for member in members:
        bill = member.bills.get(category, 0)
        if member.eligible and bill:
            cap = bill * share if policy.cap_cents is None else min(bill * share, policy.cap_cents)
            rows.append((float(member.weight) * bill, cap, min(policy.floor_cents, cap)))
    events = sorted([(floor / product, product, -floor) for product, _, floor in rows]
                    + [(cap / product, -product, cap) for product, cap, _ in rows])  # fmt: skip
    fixed, slope = sum(floor for _, _, floor in rows), 0.0
    level = 0.0
    for level, product_change, fixed_change in events:
        if fixed + slope * level >= money:
            break
        fixed += fixed_change
        slope += product_change
    else:
        return level
    return (money - fixed) / slope if slope else level


def bench(count: int, repeats: int, categories: tuple[str, ...], policy: Policy, funds: Funds) -> None:
    rng = random.Random(20261122)
    members = random_members(count, rng, categories)
    first = categories[0]
    wall, cpu, reference, reading = [], [], [], []
    allocation = None
    for _ in range(repeats):
        allocation = None  # free the previous result before the clock starts
        started, started_cpu = time.perf_counter(), time.process_time()
        allocation = allocate_subsidies(members, funds, policy)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        started_cpu = time.process_time()
        read_every_line(allocation)
        reading.append(time.process_time() - started_cpu)
        started_cpu = time.process_time()
        float_water_filling(members, first, policy.categories[first], funds.unrestricted)
        reference.append(time.process_time() - started_cpu)
    assert allocation is not None
    levels = ", ".join(f"{name} λ≈{float(o.level):.6f}" for name, o in allocation.categories.items())
    ratio = min(cpu) / min(reference)
    print(
        f"{count} members, {len(categories)} categor{'y' if len(categories) == 1 else 'ies'}: "
        f"wall best {min(wall) * 1000:.1f} ms, median {statistics.median(wall) * 1000:.1f} ms; "
        f"CPU best {min(cpu) * 1000:.1f} ms, median {statistics.median(cpu) * 1000:.1f} ms; "
        f"float reference (one category) CPU best {min(reference) * 1000:.1f} ms; "
        f"engine/reference (best/best) {ratio:.2f} (paid {allocation.paid} cents; {levels})"
    )
    print(
        f"  then reading every member's award lines once, as a run does to store them: "
        f"CPU best {min(reading) * 1000:.1f} ms, median {statistics.median(reading) * 1000:.1f} ms"
    )


def read_every_line(allocation: Allocation) -> int:
    """What a run does with the result: every member's lines, with their exact awards."""
    total = 0
    for award in allocation.members.values():
        for line in award.lines.values():
            total += line.cents + line.exact_numerator // line.exact_denominator
    return total


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 11
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
