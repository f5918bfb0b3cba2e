"""One progress stream per alert: fed by the stores' change notifications, read once per change
whatever the number of viewers, and kept for the viewers that stay when one leaves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from dispatcher.alerting.request import AlertRequest
from dispatcher.answers.responses import Responses
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, LateReceipt, Outcome, Receipt
from dispatcher.store.alerts import AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import SQLiteDatabase
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from dispatcher.store.pauses import AlertPauses
from dispatcher.store.responses import ResponseStore
from dispatcher.store.users import ConsoleReads
from dispatcher.views.alerts import AlertViews
from dispatcher.views.progress import Progress, ProgressStreams, ProgressWatch
from segments.audience import PlannedDelivery

SMS = ChannelKind.SMS
# The statement that reads one alert (`AlertStore.get`), one per progress read, as SQLite's
# trace shows it.
ALERT_READ = "WHERE a.id = '{}'"
# Long enough that no periodic refresh happens during a test: only notifications read.
NO_REFRESH_S = 3600.0
# A bound on waiting for what must happen, so a broken stream fails instead of hanging.
WITHIN_S = 10.0


@dataclass
class Rig:
    """A real SQLite store, its stores and the progress streams, wired as the service does."""

    db: SQLiteDatabase
    alerts: AlertStore
    ledger: DeliveryLedger
    streams: ProgressStreams
    statements: list[str]

    def alert_reads(self, alert_id: str) -> int:
        """How many times the store read this alert (the trace shows parameters bound)."""
        return sum(ALERT_READ.format(alert_id) in s for s in self.statements)

    async def store_alert(self) -> str:
        """An alert as intake stores it, still dispatching."""
        now = int(time.time() * 1000)
        alert_id, _ = await self.alerts.create(
            AlertRequest.model_validate({"kind": "advisory", "text": "Water main break."}),
            {}, actor="test", now_ms=now, expires_ms=now + 3_600_000, channels=[SMS],
            idempotency_key=None, audience_counts={"people": 3}, clery={}, audit_detail={},
        )
        return alert_id

    async def enqueue(self, alert_id: str, n: int) -> None:
        """Plan n SMS deliveries for the alert."""
        planned = [PlannedDelivery(SMS, f"p{i}", f"+1202555{i:04d}", "en", "student")
                   for i in range(n)]
        await self.ledger.enqueue(alert_id, planned, int(time.time() * 1000))


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Progress streams over a fresh SQLite store, every statement of its reader traced."""
    db = await SQLiteDatabase.open(tmp_path / "progress.db")
    await db.migrate()
    audit = AuditLog(db)
    alerts = AlertStore(db, audit)
    ledger = DeliveryLedger(db, RetryPolicy(1.0, 2.0))
    clock = Clock()
    views = AlertViews(ledger, AlertPauses(db), ConsoleReads(db), {})
    streams = ProgressStreams(alerts, views, Responses(ResponseStore(db, audit), clock=clock),
                              clock, refresh_s=NO_REFRESH_S)
    alerts.subscribe(streams.changed, progress=True)
    ledger.subscribe(streams.changed)
    statements: list[str] = []
    # SQLite's own trace of the connection that serves reads: what the store was asked.
    await db._reader.set_trace_callback(statements.append)
    yield Rig(db, alerts, ledger, streams, statements)
    await streams.close()
    await db.close()


async def _next(watch: ProgressWatch) -> Progress:
    progress = await asyncio.wait_for(watch.next(), WITHIN_S)
    assert progress is not None
    return progress


class TestSharedStream:
    """Several viewers of one alert share one stream and one read per change."""

    async def test_viewers_get_the_same_progress_from_one_read_per_change(self, rig: Rig) -> None:
        """Three viewers see the same progress after each change; the store read it once."""
        alert_id = await rig.store_alert()
        async with contextlib.AsyncExitStack() as stack:
            watches = [await stack.enter_async_context(rig.streams.watch(alert_id))
                       for _ in range(3)]
            first = [await _next(w) for w in watches]
            assert first[0] is first[1] is first[2]
            assert first[0].status.channels == {}
            assert rig.alert_reads(alert_id) == 1

            await rig.enqueue(alert_id, 4)
            queued = [await _next(w) for w in watches]
            assert queued[0] is queued[1] is queued[2]
            assert queued[0].status.channels["sms"]["queued"] == 4
            assert rig.alert_reads(alert_id) == 2

            claimed = await rig.ledger.claim(SMS, owner="t", limit=4, now_ms=_now(),
                                             lease_ms=60_000)
            sending = [await _next(w) for w in watches]
            assert sending[0] is sending[1] is sending[2]
            assert rig.alert_reads(alert_id) == 3

            await rig.ledger.settle(
                SMS, claimed, [Receipt(c.id, Outcome.DELIVERED) for c in claimed],
                now_ms=_now(), deadlines={alert_id: _now() + 60_000},
            )
            settled = [await _next(w) for w in watches]
            assert settled[0] is settled[1] is settled[2]
            assert settled[0].status.channels["sms"]["delivered"] == 4
            assert rig.alert_reads(alert_id) == 4

    async def test_a_viewer_leaving_does_not_stop_the_others(self, rig: Rig) -> None:
        """When one of two viewers leaves, the other still gets every change."""
        alert_id = await rig.store_alert()
        await rig.enqueue(alert_id, 2)
        async with rig.streams.watch(alert_id) as staying:
            async with rig.streams.watch(alert_id) as leaving:
                assert await _next(staying) is await _next(leaving)
            claimed = await rig.ledger.claim(SMS, owner="t", limit=2, now_ms=_now(),
                                             lease_ms=60_000)
            await _next(staying)
            await rig.ledger.record_late_many(
                [LateReceipt(SMS, Outcome.DELIVERED, delivery_id=c.id) for c in claimed],
                _now(),
            )
            delivered = await _next(staying)
            assert delivered.status.channels["sms"]["delivered"] == 2
            assert rig.streams.watched == frozenset({alert_id})

    async def test_the_last_viewer_leaving_ends_the_stream(self, rig: Rig) -> None:
        """With nobody watching an alert, it has no stream; a new viewer starts a fresh one."""
        alert_id = await rig.store_alert()
        async with rig.streams.watch(alert_id) as watch:
            await _next(watch)
        assert rig.streams.watched == frozenset()
        await rig.enqueue(alert_id, 3)
        async with rig.streams.watch(alert_id) as watch:
            assert (await _next(watch)).status.channels["sms"]["queued"] == 3
        assert rig.alert_reads(alert_id) == 2

    async def test_each_alert_has_its_own_stream(self, rig: Rig) -> None:
        """A change to one alert does not read the other."""
        one, other = await rig.store_alert(), await rig.store_alert()
        async with rig.streams.watch(one) as a, rig.streams.watch(other) as b:
            await _next(a)
            await _next(b)
            await rig.enqueue(one, 2)
            assert (await _next(a)).status.channels["sms"]["queued"] == 2
            assert rig.alert_reads(other) == 1


class TestEnd:
    """A stream ends with the alert's final state, and says so to every viewer."""

    async def test_done_is_the_last_progress(self, rig: Rig) -> None:
        """Once the alert is done every viewer gets that progress, then nothing more."""
        alert_id = await rig.store_alert()
        async with rig.streams.watch(alert_id) as a, rig.streams.watch(alert_id) as b:
            await _next(a)
            await _next(b)
            await rig.alerts.mark_resolved(alert_id, _now(), {"people": 0})
            assert (await _next(a)).status.audience == {"people": 0}
            await _next(b)
            assert await rig.alerts.mark_done(alert_id, _now())
            done = await _next(a)
            assert done is await _next(b)
            assert done.final and done.ended and done.status.state == "done"
            assert await asyncio.wait_for(a.next(), WITHIN_S) is None
            assert a.over

    async def test_a_cancel_is_final(self, rig: Rig) -> None:
        """A cancelled alert's viewers get the cancelled state."""
        alert_id = await rig.store_alert()
        async with rig.streams.watch(alert_id) as watch:
            await _next(watch)
            await rig.alerts.cancel(alert_id, actor="t", reason="", now_ms=_now())
            assert (await _next(watch)).status.state == "cancelled"

    async def test_no_such_alert(self, rig: Rig) -> None:
        """A stream of an alert that does not exist gives nothing and ends."""
        async with rig.streams.watch("nope") as watch:
            assert await asyncio.wait_for(watch.first(), WITHIN_S) is None
            assert watch.over


def _now() -> int:
    return int(time.time() * 1000)
