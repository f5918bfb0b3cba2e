"""Two `clarion serve` nodes on one PostgreSQL database fire each scheduled occurrence once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from channels.sandbox.server import Sandbox
from dispatcher.domain import AlertState
from dispatcher.drills.scheduler import RunStatus
from dispatcher.records import CleryRecords, purge
from dispatcher.service import Service
from dispatcher.settings import Settings
from tests.drills.conftest import MovableClock, drill, utc
from tests.pg import PostgresCluster, server_binary, start_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for this module."""
    if server_binary("initdb") is None:
        pytest.skip("PostgreSQL's initdb is not installed (Debian package `postgresql`)")
    found = start_cluster()
    try:
        yield found
    finally:
        found.stop()


@pytest_asyncio.fixture
async def pg_settings(
    cluster: PostgresCluster, drill_settings: Callable[..., Settings]
) -> AsyncIterator[Settings]:
    """Three scheduled drills, the store on a fresh PostgreSQL database."""
    url = await cluster.create_database()
    settings = drill_settings({
        "noon": drill(),
        "noon-too": drill(description="A second exercise at the same minute"),
        "quarter-past": drill(cron="15 12 * * *"),
    })
    yield settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})


async def node(settings: Settings, clock: MovableClock) -> Service:
    """One `clarion serve` process's service (no HTTP needed here)."""
    service = await Service.open(settings, clock=clock)
    await service.start()
    return service


async def all_done(service: Service) -> None:
    """Wait until no alert is dispatching."""
    async with asyncio.timeout(30):
        while await service.db.fetchval(
            "SELECT COUNT(*) FROM alerts WHERE state = ?", (AlertState.DISPATCHING.value,)
        ):
            await asyncio.sleep(0.05)


class TestTwoNodes:
    """Claims in the shared store decide which node sends; the other sends nothing."""

    async def test_each_occurrence_fires_once(
        self, pg_settings: Settings, sandbox: Sandbox
    ) -> None:
        """Both nodes look at the same moments, concurrently, for three days: one alert per
        occurrence, each delivered once; a third node started later fires nothing again."""
        clocks = [MovableClock(utc(2026, 3, 4, 11, 59, 50)) for _ in range(2)]
        first = await node(pg_settings, clocks[0])
        second = await node(pg_settings, clocks[1])
        nodes = [first, second]
        try:
            assert first.db.dialect == "postgres"
            for day in (4, 5, 6):
                for moment in (utc(2026, 3, day, 12, 0, 1), utc(2026, 3, day, 12, 15, 1)):
                    for clock in clocks:
                        clock.set(moment)
                    results = await asyncio.gather(*(n.scheduler.tick() for n in nodes))
                    fired = [r for found in results for r in found]
                    assert all(r.status is RunStatus.FIRED for r in fired)
                    expected = 2 if moment.minute == 0 else 1
                    assert len(fired) == expected, (moment, fired)
                    # Sent before the clocks jump on: a jump would expire the engines' leases.
                    await all_done(first)
            alerts = await first.db.fetchall(
                "SELECT id, idempotency_key FROM alerts ORDER BY created_at"
            )
            assert len(alerts) == 9
            assert len({a["idempotency_key"] for a in alerts}) == 9
            runs = await first.db.fetchall("SELECT status FROM drill_runs")
            assert [r["status"] for r in runs] == ["fired"] * 9

            third = await node(pg_settings, MovableClock(utc(2026, 3, 6, 12, 15, 20)))
            nodes.append(third)
            assert await third.scheduler.tick() == []
            assert await first.db.fetchval("SELECT COUNT(*) FROM alerts") == 9

            total = await first.db.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE channel = 'email' AND state = 'accepted'"
            )
            email = sandbox.stats.snapshot()["email"]
            assert email == {"received": total, "unique": total}

            # Every node appended to one audit chain, and it is still one unbroken chain.
            chain = await first.audit.verify()
            assert chain.ok and chain.entries >= 9, chain

            # The records' SQL on this dialect too: the report, then a purge of all of it.
            records = CleryRecords(first.db, first.alerts, first.ledger, first.audit,
                                   first.scheduler.settings)
            report = await records.report(2026, now_ms=first.clock.now_ms())
            assert sorted(r.scheduled_drill or "" for r in report.records) == sorted(
                ["noon", "noon-too", "quarter-past"] * 3
            )
            assert all(r.timeline.reached["email"][-1].count == 33 for r in report.records)
            later = int(utc(2026, 3, 20).timestamp() * 1000)
            purged = await purge(first.db, first.audit, retention_days=7, now_ms=later)
            assert len(purged.alert_ids) == 9 and purged.counts["drill_runs"] == 9
            assert await first.db.fetchval("SELECT COUNT(*) FROM alerts") == 0
            purges = await first.db.fetchval(
                "SELECT COUNT(*) FROM audit WHERE action = 'records.purged'"
            )
            assert purges == 1
        finally:
            for service in nodes:
                await service.stop()
