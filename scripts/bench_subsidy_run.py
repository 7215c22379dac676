"""Time a subsidy allocation run for a large club: the engine alone, then a whole preview.

Run: ``.venv/bin/python scripts/bench_subsidy_run.py [members]`` (default 10,000).

1. The engine on random members (``scripts/bench_subsidies.py``; budget 50 ms).
2. A whole preview run, as an admin starts it, on a fresh, migrated SQLite
   database in a temporary folder: reading the round's allocations, the
   members' profiles and the fund, the engine, and writing every award with
   its explanation (budget 2 s). The club is seeded with bulk inserts first:
   ``members`` organisations, two products (naloxone and pipes), a closed round
   where every member was allocated naloxone and half of them pipes, and a
   grant into the fund.

It prints; it is not a test (wall-clock time on a shared machine says little).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_subsidies

from subsidies.engine import CategoryPolicy, Funds, Policy


def bench_engine(count: int) -> None:
    print("== The engine alone (budget 50 ms for 10,000 members)")
    one = Policy({"naloxone": CategoryPolicy(max_share=Fraction(1, 2), cap_cents=40_000, floor_cents=2_500)})
    bench_subsidies.bench(count, 11, ("naloxone",), one, Funds(count * 10_000))


def progress(message: str) -> None:
    print(f"  … {message}", flush=True)


def seed(count: int) -> int:
    """A closed round with ``count`` members' allocations, by bulk inserts; returns the round id."""
    from sqlalchemy import insert

    from buyersclub.actor import Actor
    from buyersclub.db import db
    from buyersclub.ledger import chart
    from buyersclub.ledger.services import Line, post_entry
    from buyersclub.organisations.models import (
        BudgetBand,
        MembershipStatus,
        Organisation,
        OrganisationKind,
        PeopleReachedBand,
    )
    from orders.models import (
        Allocation,
        AllocationSource,
        OptionKind,
        Product,
        ProductCategory,
        ProductClosing,
        Round,
        RoundItem,
        RoundStatus,
        Supplier,
    )

    rng = random.Random(20261122)
    now = datetime.now(UTC)
    bands, people = list(BudgetBand), list(PeopleReachedBand)
    rows = [
        {
            "name": f"Programme {number:05d}", "kind": OrganisationKind.OUTREACH,
            "status": MembershipStatus.APPROVED, "country": "US", "region": "MA",
            "site_address_line1": f"{number} Harbour Street", "site_city": "Boston",
            "site_postal_code": "02110", "site_is_not_a_home": True,
            "budget_band": rng.choice(bands), "people_reached_band": rng.choice(people),
            "receives_public_funding": rng.random() < 0.5, "low_resource": rng.random() < 0.7,
            "deprivation_decile": rng.choice([None, *range(1, 11)]),
        }
        for number in range(count)
    ]
    db.session.execute(insert(Organisation), rows)
    progress(f"{count} organisations")
    organisation_ids = list(range(1, count + 1))

    supplier = Supplier(name="Bench Wholesale")
    naloxone = Product(supplier=supplier, sku="NAL-1", name="Naloxone nasal spray",
                       category=ProductCategory.NALOXONE, unit="box of 2 nasal doses", pack_size=24)
    pipes = Product(supplier=supplier, sku="PIPE-1", name="Glass pipe", category=ProductCategory.PIPES,
                    unit="pipe", pack_size=100)
    found = Round(name="Bench round", supplier=supplier, status=RoundStatus.CLOSED, deadline=now,
                  opened_at=now, closed_at=now)
    items = [RoundItem(round=found, product=naloxone, club_price=Decimal("40.00")),
             RoundItem(round=found, product=pipes, club_price=Decimal("2.00"))]
    db.session.add_all([supplier, naloxone, pipes, found, *items])
    db.session.flush()
    closings = {}
    for item, unit_cost in zip(items, (Decimal("31.00"), Decimal("1.50")), strict=True):
        closing = ProductClosing(round_id=found.id, round_item_id=item.id, product_id=item.product_id,
                                 option_kind=OptionKind.BASE, firm_total=0, tolerance_total=0, cases=0,
                                 units=0,
                                 unit_cost=unit_cost, supplier_cost=Decimal("0.00"), revenue=Decimal("0.00"),
                                 operating_recovery=Decimal("0.00"), margin=Decimal("0.00"))
        db.session.add(closing)
        closings[item.product_id] = closing
    db.session.flush()
    allocations = [
        {"round_id": found.id, "product_id": naloxone.id, "organisation_id": organisation_id,
         "product_closing_id": closings[naloxone.id].id, "firm_units": rng.randint(1, 20) * 12,
         "tolerance_units": 0, "source": AllocationSource.CLOSE}
        for organisation_id in organisation_ids
    ] + [
        {"round_id": found.id, "product_id": pipes.id, "organisation_id": organisation_id,
         "product_closing_id": closings[pipes.id].id, "firm_units": rng.randint(1, 10) * 100,
         "tolerance_units": 0, "source": AllocationSource.CLOSE}
        for organisation_id in organisation_ids[::2]
    ]
    db.session.execute(insert(Allocation), allocations)
    progress(f"{len(allocations)} allocations")
    money = Decimal(count * 50)
    post_entry(Actor.system("bench"), entry_date=now.date(), memo="Grant", kind="grant",
               lines=[Line(chart.CASH, money), Line(chart.FUND_UNRESTRICTED, -money)])
    db.session.commit()
    progress(f"a grant of {money} into the fund")
    return found.id


def bench_preview(count: int) -> None:
    print(f"== A whole preview run on SQLite, {count} members (budget 2 s)")
    from flask_migrate import upgrade

    from buyersclub import create_app
    from buyersclub.actor import Actor
    from buyersclub.db import db
    from subsidies.services import runs

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({
            "ENVIRON": {"BUYERSCLUB_ENV": "testing", "BUYERSCLUB_SECRET_KEY": "bench-not-a-secret"},
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3",
            "MAIL_BACKEND": "memory",
        })
        with app.app_context():
            import logging

            logging.getLogger("buyersclub.business").setLevel(logging.WARNING)
            upgrade()
            progress("migrated")
            round_id = seed(count)
            actor = Actor.system("bench")
            timings = []
            for attempt in range(3):
                started = time.perf_counter()
                run = runs.start_run(actor, round_id)
                db.session.flush()
                timings.append(time.perf_counter() - started)
                awards = len(run.awards)  # loaded after the clock stops
                db.session.rollback()
                progress(f"run {attempt + 1}: {timings[-1]:.3f} s, {awards} awards, "
                         f"{run.total_awarded} awarded")
            inputs_started = time.perf_counter()
            from orders.models import Round
            from subsidies.services.policies import current_policy

            inputs = runs.build_inputs(db.session.get(Round, round_id), current_policy())
            reading = time.perf_counter() - inputs_started
            engine_started = time.perf_counter()
            from subsidies.engine import allocate_subsidies

            allocate_subsidies(*runs.engine_inputs(inputs))
            engine = time.perf_counter() - engine_started
            db.session.rollback()
            db.session.remove()
            db.engine.dispose()
    best = min(timings)
    print(f"{count} members: whole preview best {best:.3f} s (reading inputs {reading:.3f} s, "
          f"engine {engine:.3f} s, the rest writing awards); "
          f"{'within' if best <= 2 else 'OVER'} the 2 s budget")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    bench_engine(count)
    bench_preview(count)


if __name__ == "__main__":
    main()
