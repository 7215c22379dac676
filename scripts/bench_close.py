"""Time closing a large round: 5,000 members x 20 products (100,000 commitments).

Run: ``.venv/bin/python scripts/bench_close.py [members] [products] [runs]`` or
``make bench`` (5,000 members, 20 products, 3 runs).

For each database -- SQLite (a fresh file in a temporary folder) and PostgreSQL
(``BUYERSCLUB_BENCH_DATABASE_URL``, or a database ``bc_bench_close`` it creates
on 127.0.0.1; its schema is dropped and rebuilt) -- the script builds the
schema with the migrations, seeds the members and products, then for each run
seeds one more open round they all committed to (bulk inserts, printing its
progress) and times:

* the preview (``closing.preview_close``: one aggregate query per round, the
  engine's options for each product from its totals);
* the allocation per member of one product under each of its options
  (``closing.product_allocations``: what the preview shows on demand);
* the commit of the close (``closing.commit_close`` plus the database commit:
  product closings, 100,000 allocation rows, one journal entry with a line per
  member, the audit event);
* one aggregate SQL query over the same commitments (SUM and COUNT per product),
  the least any close must do.

It prints the figures of each run, the ratios preview/aggregate and
commit/aggregate, and the minimum and median over the runs. Targets on a
2-core machine: commit at most 5 s, preview/aggregate at most 10. Wall-clock
time on a shared machine varies with what else runs: read the median.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402

from buyersclub import create_app  # noqa: E402
from buyersclub.actor import Actor  # noqa: E402
from buyersclub.config import normalise_database_url  # noqa: E402
from buyersclub.db import db  # noqa: E402
from buyersclub.organisations.models import (  # noqa: E402
    BudgetBand,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    PeopleReachedBand,
)
from orders.models import Commitment, PriceBreak, Product, ProductCategory, Supplier  # noqa: E402
from orders.services import closing, rounds  # noqa: E402

BATCH = 10_000
ACTOR = Actor.system("bench")
BREAKS = ((1, "45.00"), (240, "38.00"), (960, "31.00"), (20_000, "29.50"))


def _app(url: str, instance: Path):
    return create_app({
        "ENVIRON": {"BUYERSCLUB_ENV": "testing", "BUYERSCLUB_SECRET_KEY": "bench-secret-not-for-production"},
        "SQLALCHEMY_DATABASE_URI": url,
        "MAIL_BACKEND": "memory",
    })


def _postgres_url() -> str:
    given = os.environ.get("BUYERSCLUB_BENCH_DATABASE_URL", "").strip()
    if given:
        return normalise_database_url(given)
    admin = sa.create_engine(normalise_database_url("postgresql://postgres@127.0.0.1/postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = 'bc_bench_close'")):
            connection.execute(sa.text("CREATE DATABASE bc_bench_close"))
    admin.dispose()
    return normalise_database_url("postgresql://postgres@127.0.0.1/bc_bench_close")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _bulk(model, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        db.session.execute(sa.insert(model), rows[start:start + BATCH])


def seed_club(members: int, products: int) -> tuple[int, list[int], list[int]]:
    """A supplier, ``products`` products and ``members`` approved organisations: their ids."""
    started = time.perf_counter()
    supplier = Supplier(name="Bench Wholesale")
    db.session.add(supplier)
    db.session.flush()
    catalogue = []
    for number in range(products):
        product = Product(supplier_id=supplier.id, sku=f"B-{number:03d}", name=f"Product {number}",
                          category=ProductCategory.NALOXONE, unit="box", pack_size=24)
        product.price_breaks = [PriceBreak(min_units=units, unit_cost=Decimal(cost))
                                for units, cost in BREAKS]
        catalogue.append(product)
    db.session.add_all(catalogue)
    db.session.flush()
    _bulk(Organisation, [
        {"name": f"Programme {number:05d}", "kind": OrganisationKind.SYRINGE_SERVICES,
         "status": MembershipStatus.APPROVED, "country": "US", "region": "MA",
         "site_address_line1": f"{number} Harbour Street", "site_city": "Boston", "site_postal_code": "02110",
         "site_is_not_a_home": True, "budget_band": BudgetBand.UNDER_50K,
         "people_reached_band": PeopleReachedBand.FROM_100_TO_500}
        for number in range(members)])
    organisation_ids = list(db.session.scalars(sa.select(Organisation.id).order_by(Organisation.id)))
    db.session.commit()
    seconds = time.perf_counter() - started
    print(f"  seeded {members} organisations and {products} products in {seconds:.1f} s", flush=True)
    return supplier.id, [product.id for product in catalogue], organisation_ids


def seed_round(supplier_id: int, catalogue: list[int], organisation_ids: list[int], number: int) -> int:
    """An open round every organisation committed to, for every product: its id."""
    started = time.perf_counter()
    found = rounds.create_round(ACTOR, supplier_id=supplier_id, name=f"Bench round {number}",
                                deadline=datetime.now(UTC) + timedelta(days=1),
                                operating_share="0.05",
                                items=[{"product_id": each, "club_price": "40.00"} for each in catalogue])
    rounds.open_round(ACTOR, found.id)
    db.session.commit()
    now = datetime.now(UTC)
    rows: list[dict] = []
    total = len(organisation_ids) * len(catalogue)
    done = 0
    for index, product_id in enumerate(catalogue):
        for position, organisation_id in enumerate(organisation_ids):
            placed = now - timedelta(seconds=total - done)
            rows.append({"round_id": found.id, "product_id": product_id, "organisation_id": organisation_id,
                         "quantity": 1 + (position * 7 + index) % 30, "tolerance": (position + index) % 5,
                         "first_committed_at": placed, "updated_at": placed})
            done += 1
        if len(rows) >= BATCH or index == len(catalogue) - 1:
            db.session.execute(sa.insert(Commitment), rows)
            rows = []
    db.session.commit()
    seconds = time.perf_counter() - started
    print(f"  seeded round {number}: {total:,} commitments in {seconds:.1f} s", flush=True)
    return found.id


def _timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def _aggregate_seconds(round_id: int) -> float:
    """The best of five runs of the least a close must read: SUM and COUNT per product."""
    aggregate_sql = (sa.select(Commitment.product_id, sa.func.sum(Commitment.quantity),
                               sa.func.sum(Commitment.tolerance), sa.func.count())
                     .where(Commitment.round_id == round_id, Commitment.quantity > 0)
                     .group_by(Commitment.product_id))
    db.session.execute(aggregate_sql).all()  # warm the cache like the others get warmed
    db.session.rollback()
    aggregates = []
    for _ in range(5):
        _, seconds = _timed(lambda: db.session.execute(aggregate_sql).all())
        aggregates.append(seconds)
        db.session.rollback()
    return min(aggregates)


def run_once(round_id: int) -> dict[str, float]:
    aggregate = _aggregate_seconds(round_id)
    previews = []
    for _ in range(3):
        preview, seconds = _timed(lambda: closing.preview_close(ACTOR, round_id))
        previews.append(seconds)
        db.session.rollback()
    preview_seconds = statistics.median(previews)
    # The recommended option of each product, as an admin following the advice would choose.
    choices = {each.product_id: each.closing.recommended.units
               for each in preview.products if each.closing.recommended is not None}
    first = preview.products[0].product_id
    del preview
    shown, allocation_seconds = _timed(lambda: closing.product_allocations(ACTOR, round_id, first))
    members = shown.closing.members
    del shown
    db.session.rollback()

    def close():
        result = closing.commit_close(ACTOR, round_id, choices)
        db.session.commit()
        return result

    result, commit_seconds = _timed(close)
    print(f"  closed: {result.allocations:,} allocations, {result.totals.units:,} units, "
          f"margin {result.totals.margin:,.2f}, {result.totals.free_units:,} free units", flush=True)
    print(f"  aggregate query {aggregate * 1000:.1f} ms; preview {preview_seconds * 1000:.0f} ms "
          f"(median of 3); one product's allocation per member ({members:,} members, every option) "
          f"{allocation_seconds * 1000:.0f} ms; commit {commit_seconds:.2f} s (target 5 s); "
          f"preview/aggregate {preview_seconds / aggregate:.1f} (target 10), "
          f"commit/aggregate {commit_seconds / aggregate:.1f}", flush=True)
    db.session.remove()
    return {"aggregate": aggregate, "preview": preview_seconds, "commit": commit_seconds,
            "ratio": preview_seconds / aggregate}


def bench(label: str, url: str, members: int, products: int, runs: int, instance: Path) -> None:
    print(f"== {label}", flush=True)
    app = _app(url, instance)
    with app.app_context():
        upgrade()
        club = seed_club(members, products)
        db.session.remove()
        figures = []
        for number in range(1, runs + 1):
            print(f" run {number} of {runs}", flush=True)
            round_id = seed_round(*club, number)
            db.session.remove()
            figures.append(run_once(round_id))
        if runs > 1:
            summary = {name: (min(each[name] for each in figures),
                              statistics.median(each[name] for each in figures))
                       for name in ("aggregate", "preview", "commit", "ratio")}
            print(f"  {label} over {runs} runs, min / median: aggregate "
                  f"{summary['aggregate'][0] * 1000:.1f} / {summary['aggregate'][1] * 1000:.1f} ms; preview "
                  f"{summary['preview'][0] * 1000:.0f} / {summary['preview'][1] * 1000:.0f} ms; commit "
                  f"{summary['commit'][0]:.2f} / {summary['commit'][1]:.2f} s; preview/aggregate "
                  f"{summary['ratio'][0]:.1f} / {summary['ratio'][1]:.1f}", flush=True)
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    members = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    products = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(f"Closing a round of {members:,} members x {products} products "
          f"({members * products:,} commitments), {runs} run{'s' if runs != 1 else ''} per database",
          flush=True)
    # The figures, not every migration and business event the seeding and closing log.
    logging.basicConfig(level=logging.WARNING)
    for name in ("alembic", "buyersclub.business"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder)
        bench("SQLite", f"sqlite:///{instance / 'bench.sqlite3'}", members, products, runs, instance)
        url = _postgres_url()
        _reset_postgres(url)
        bench("PostgreSQL", url, members, products, runs, instance)


if __name__ == "__main__":
    main()
