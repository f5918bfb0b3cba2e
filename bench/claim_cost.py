"""The cost of one outbox claim and one progress read, by size of the alert.

    python -m bench.claim_cost [--sizes 10000,50000,200000] [--store sqlite|postgres]
                               [--claims 20] [--batch 50]

For each size, a fresh store gets one alert with that many SMS deliveries, of which the first
90 % are already delivered and the last 10 % still queued (an alert nine tenths through its
fan-out). Then it times `DeliveryLedger.claim` (a batch of `--batch`, as the engine claims) and
`DeliveryLedger.counts` (the progress and completion read), `--claims` times each, and prints
the median and the worst in ms, with the claim's query plan.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dispatcher.domain import ChannelKind
from dispatcher.store.database import Database, open_database
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from segments.audience import PlannedDelivery

ALERT = "bench-claim"


async def _seed(db: Database, ledger: DeliveryLedger, size: int) -> None:
    await db.execute(
        "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
        " created_at, expires_at, request_sha256) VALUES (?, 'emergency', 'live', 'dispatching',"
        " 'all', '{}', '[]', 'bench', 0, 9000000000000, 'x')",
        (ALERT,),
    )
    chunk = 10_000
    for start in range(0, size, chunk):
        planned = [
            PlannedDelivery(ChannelKind.SMS, f"p{i:07d}", f"+1555{i:07d}", "en", "student")
            for i in range(start, min(size, start + chunk))
        ]
        await ledger.enqueue(ALERT, planned, 1)
    done = size - size // 10
    await db.execute(
        "UPDATE deliveries SET state = 'delivered', attempts = 1 WHERE id IN"
        " (SELECT id FROM deliveries ORDER BY id LIMIT ?)",
        (done,),
    )
    # What autovacuum does on a live server: without it the partial indexes still hold the
    # rows that left them, and PostgreSQL's planner prices them by that size.
    await db.execute("VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE")


async def _plan(db: Database, ledger: DeliveryLedger) -> str:
    """The plans of the claim statements and of the progress read, as the store runs them."""
    prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
    plans = []
    for name, sql, params in ledger.hot_statements():
        if not name.startswith(("claim", "counts")):
            continue
        # EXPLAIN plans a statement without running it.
        rows = await db.fetchall(prefix + sql, params)
        lines = [str(r["detail"] if db.dialect == "sqlite" else r[0]).strip() for r in rows]
        plans.append(f"{name}: " + " / ".join(lines))
    return "\n  ".join(plans)


async def _measure(url: str, size: int, claims: int, batch: int) -> dict[str, object]:
    db = await open_database(url)
    try:
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        await _seed(db, ledger, size)
        plan = await _plan(db, ledger)
        claim_ms: list[float] = []
        count_ms: list[float] = []
        for n in range(claims):
            t0 = time.perf_counter()
            got = await ledger.claim(
                ChannelKind.SMS, owner="bench", limit=batch, now_ms=10 + n, lease_ms=60_000
            )
            claim_ms.append((time.perf_counter() - t0) * 1000)
            if len(got) != batch:
                raise RuntimeError(f"claimed {len(got)} of {batch}")
            t0 = time.perf_counter()
            await ledger.counts(ALERT)
            count_ms.append((time.perf_counter() - t0) * 1000)
        return {
            "size": size,
            "queued": size // 10,
            "claim_median": statistics.median(claim_ms),
            "claim_max": max(claim_ms),
            "counts_median": statistics.median(count_ms),
            "counts_max": max(count_ms),
            "plan": plan,
        }
    finally:
        await db.close()


async def _run(sizes: list[int], store: str, claims: int, batch: int) -> list[dict[str, object]]:
    results = []
    if store == "postgres":
        from channels.sandbox.postgres import ThrowawayPostgres

        server = ThrowawayPostgres.start("fsync=off", "synchronous_commit=off")
        try:
            for size in sizes:
                results.append(await _measure(await server.create_database(), size, claims, batch))
        finally:
            server.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="clarion-claim-") as folder:
            for size in sizes:
                url = f"sqlite:///{Path(folder) / f'{size}.db'}"
                results.append(await _measure(url, size, claims, batch))
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--claims", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(_run(sizes, args.store, args.claims, args.batch))
    print(f"store: {args.store}, batch {args.batch}, {args.claims} claims per size")
    print(f"{'deliveries':>10} {'queued':>7} {'claim ms (median / max)':>24}"
          f" {'counts ms (median / max)':>25}")
    for r in results:
        print(f"{r['size']:>10} {r['queued']:>7} "
              f"{r['claim_median']:>11.2f} / {r['claim_max']:>8.2f}  "
              f"{r['counts_median']:>11.2f} / {r['counts_max']:>8.2f}")
    for r in results:
        print(f"plans at {r['size']}:\n  {r['plan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
