"""Audience resolution benchmark: time to first chunk, total time and peak memory of `plan`.

    python -m bench.audience [--people 50000] [--chunk 500] [--store sqlite|URL]

Generates a synthetic campus in a temporary folder, imports it, then streams several
audiences through `AudienceResolver.plan` the way the engine does (chunk by chunk, nothing
kept). Timings are taken without tracing; peak memory is measured in a second pass under
tracemalloc, so it counts Python allocations made while planning.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.database import Database, open_database
from segments.audience import AudienceResolver, load_campus
from segments.directory import DirectoryImporter
from segments.settings import DirectorySettings
from segments.synthetic import write_campus

CASES: tuple[tuple[str, Sequence[str], AlertKind], ...] = (
    ("all", (), AlertKind.EMERGENCY),
    ("all", ("b",), AlertKind.EMERGENCY),
    ("role:student and not group:athletics", (), AlertKind.TIMELY_WARNING),
    ("group:band or department:chemistry", (), AlertKind.ADVISORY),
)


async def _plan(
    resolver: AudienceResolver, audience: str, zones: Sequence[str], kind: AlertKind, chunk: int
) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = 0.0
    deliveries = 0
    async for planned in resolver.plan(audience, zones, kind, list(ChannelKind), chunk=chunk):
        if not first:
            first = time.perf_counter() - started
        deliveries += len(planned)
    return first, time.perf_counter() - started, deliveries


async def _peak(
    resolver: AudienceResolver, audience: str, zones: Sequence[str], kind: AlertKind, chunk: int
) -> int:
    tracemalloc.start()
    try:
        async for _planned in resolver.plan(audience, zones, kind, list(ChannelKind), chunk=chunk):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _run(people: int, chunk: int, store: str, folder: Path) -> None:
    paths = write_campus(folder, people, 12)
    settings = DirectorySettings(people="people.csv", devices="devices.csv",
                                 buildings="buildings.csv")
    url = f"sqlite:///{folder / 'bench.db'}" if store == "sqlite" else store
    db: Database = await open_database(url)
    try:
        importer = DirectoryImporter(db, settings, load_campus(settings, folder))
        started = time.perf_counter()
        report = await importer.import_people(paths["people"])
        await importer.import_devices(paths["devices"])
        print(f"store: {db.dialect}; import of {report.added:,} people: "
              f"{time.perf_counter() - started:.1f} s")
        resolver = AudienceResolver(db, settings, folder)
        # Every number of a second pass, so the first pass warms the caches and the planner.
        await _plan(resolver, "all", (), AlertKind.EMERGENCY, chunk)
        print(f"{'audience':<42} {'first chunk':>11} {'total':>9} {'deliveries':>11} {'peak':>9}")
        for audience, zones, kind in CASES:
            first, total, deliveries = await _plan(resolver, audience, zones, kind, chunk)
            peak = await _peak(resolver, audience, zones, kind, chunk)
            label = audience + (f" zones={','.join(zones)}" if zones else "") + f" ({kind})"
            print(f"{label:<42} {first * 1000:>8.1f} ms {total:>7.2f} s {deliveries:>11,}"
                  f" {peak / 2**20:>6.1f} MiB")
    finally:
        await db.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.audience")
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--store", default="sqlite", help="sqlite, or a postgresql:// URL")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as folder:
        asyncio.run(_run(args.people, args.chunk, args.store, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
