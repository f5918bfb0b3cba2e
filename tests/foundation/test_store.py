"""The store: migrations, the audit chain, the outbox's claim and lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dispatcher.domain import ChannelKind, Outcome, Receipt
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import migrations, open_database
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from segments.audience import PlannedDelivery


async def _alert(db, alert_id: str = "a1") -> None:  # type: ignore[no-untyped-def]
    await db.execute(
        "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
        " created_at, expires_at, request_sha256) VALUES (?, 'emergency', 'live', 'dispatching',"
        " 'all', '{}', '[]', 't', 0, 10000000, 'x')",
        (alert_id,),
    )


class TestMigrations:
    """Migrations apply once, in order."""

    async def test_reopen_is_a_no_op(self, tmp_path: Path) -> None:
        """Opening the same file twice keeps one row per migration."""
        url = f"sqlite:///{tmp_path / 'x.db'}"
        db = await open_database(url)
        await db.close()
        db = await open_database(url)
        n = await db.fetchval("SELECT COUNT(*) FROM schema_migrations")
        await db.close()
        assert n == len(migrations("sqlite")) > 0

    def test_both_dialects_have_the_same_migrations(self) -> None:
        """SQLite and PostgreSQL schemas move in step."""
        assert [m[0] for m in migrations("sqlite")] == [m[0] for m in migrations("postgres")]


class TestAudit:
    """The audit log is a hash chain; changing an entry breaks it."""

    async def test_tampering_is_detected(self, tmp_path: Path) -> None:
        """An edited entry is found, with its sequence number."""
        db = await open_database(f"sqlite:///{tmp_path / 'a.db'}")
        audit = AuditLog(db)
        for i in range(5):
            await audit.record(at=i, actor="ops", action="alert.created", detail={"n": i})
        assert (await audit.verify()).ok
        await db.execute("UPDATE audit SET detail = '{\"n\": 99}' WHERE seq = 3")
        check = await audit.verify()
        await db.close()
        assert not check.ok and check.broken_at == 3 and check.entries == 2

    async def test_deleted_entry_is_detected(self, tmp_path: Path) -> None:
        """Removing an entry breaks the link of the next one."""
        db = await open_database(f"sqlite:///{tmp_path / 'b.db'}")
        audit = AuditLog(db)
        for i in range(4):
            await audit.record(at=i, actor="ops", action="x")
        await db.execute("DELETE FROM audit WHERE seq = 2")
        check = await audit.verify()
        await db.close()
        assert check.broken_at == 3


class TestLedger:
    """Claims lease rows; expired leases are taken over; receipts never go backwards."""

    async def test_claim_lease_and_takeover(self, tmp_path: Path) -> None:
        """A second owner gets nothing until the first owner's lease runs out."""
        db = await open_database(f"sqlite:///{tmp_path / 'l.db'}")
        await _alert(db)
        ledger = DeliveryLedger(db, RetryPolicy(1, 10))
        planned = [
            PlannedDelivery(ChannelKind.EMAIL, f"p{i}", f"p{i}@x.edu", "en", "student")
            for i in range(10)
        ]
        await ledger.enqueue("a1", planned, 0)
        await ledger.enqueue("a1", planned, 0)
        first = await ledger.claim(ChannelKind.EMAIL, owner="A", limit=6, now_ms=100, lease_ms=1000)
        second = await ledger.claim(
            ChannelKind.EMAIL, owner="B", limit=10, now_ms=200, lease_ms=1000
        )
        third = await ledger.claim(
            ChannelKind.EMAIL, owner="B", limit=10, now_ms=1150, lease_ms=1000
        )
        await db.close()
        assert len(first) == 6 and len(second) == 4
        assert {c.id for c in third} == {c.id for c in first}
        assert all(c.attempts == 2 for c in third)

    async def test_late_receipt_never_goes_backwards(self, tmp_path: Path) -> None:
        """A callback's `delivered` survives the send's own `accepted` settling after it."""
        db = await open_database(f"sqlite:///{tmp_path / 'r.db'}")
        await _alert(db)
        ledger = DeliveryLedger(db, RetryPolicy(1, 10))
        await ledger.enqueue(
            "a1", [PlannedDelivery(ChannelKind.SMS, "p1", "+12025550100", "en", "student")], 0
        )
        [claimed] = await ledger.claim(ChannelKind.SMS, owner="A", limit=1, now_ms=1, lease_ms=1000)
        await ledger.record_late(
            ChannelKind.SMS, Outcome.DELIVERED, delivery_id=claimed.id, provider_ref="SM1", now_ms=2
        )
        await ledger.settle(
            ChannelKind.SMS,
            [claimed],
            [Receipt(claimed.id, Outcome.ACCEPTED, provider_ref="SM1")],
            now_ms=3,
            deadlines={"a1": 10_000},
        )
        counts = await ledger.counts("a1")
        await db.close()
        assert counts["sms"]["delivered"] == 1 and counts["sms"]["accepted"] == 0

    async def test_a_device_ack_before_its_class_published_waits(self, tmp_path: Path) -> None:
        """A siren's ack for a delivery still queued (it heard the alert on the shared event
        stream) is early: nothing changes, so the siren channel still claims and publishes;
        once claimed, the same ack applies."""
        db = await open_database(f"sqlite:///{tmp_path / 'r.db'}")
        await _alert(db)
        ledger = DeliveryLedger(db, RetryPolicy(1, 10))
        await ledger.enqueue(
            "a1", [PlannedDelivery(ChannelKind.SIREN, "siren-1", "a", "en", "device")], 0
        )
        early = await ledger.record_late(
            ChannelKind.SIREN, Outcome.DELIVERED, alert_id="a1", recipient="siren-1", now_ms=1
        )
        assert early is not None and early.early and not early.changed
        [claimed] = await ledger.claim(
            ChannelKind.SIREN, owner="A", limit=1, now_ms=2, lease_ms=1000
        )
        applied = await ledger.record_late(
            ChannelKind.SIREN, Outcome.DELIVERED, alert_id="a1", recipient="siren-1", now_ms=3
        )
        await db.close()
        assert claimed.recipient == "siren-1"
        assert applied is not None and applied.changed and not applied.early

    async def test_retry_past_deadline_fails(self, tmp_path: Path) -> None:
        """A transient failure with no time left before the deadline is a failure, with why."""
        db = await open_database(f"sqlite:///{tmp_path / 'd.db'}")
        await _alert(db)
        ledger = DeliveryLedger(db, RetryPolicy(1, 10))
        await ledger.enqueue(
            "a1", [PlannedDelivery(ChannelKind.EMAIL, "p1", "p1@x.edu", "en", "staff")], 0
        )
        [claimed] = await ledger.claim(
            ChannelKind.EMAIL, owner="A", limit=1, now_ms=1, lease_ms=1000
        )
        settled = await ledger.settle(
            ChannelKind.EMAIL,
            [claimed],
            [Receipt(claimed.id, Outcome.RETRY, "451 busy", retry_after_s=60)],
            now_ms=5,
            deadlines={"a1": 1000},
        )
        row = await db.fetchone("SELECT state, detail FROM deliveries WHERE id = ?", (claimed.id,))
        await db.close()
        assert settled.failed == 1
        assert row is not None and row["state"] == "failed"
        assert "deadline passed" in row["detail"]


class TestWriterTurns:
    """SQLite's one writer serves urgent transactions (receipts, acks) first."""

    async def test_urgent_transactions_go_ahead_of_waiting_ones(self, tmp_path: Path) -> None:
        """While a transaction holds the writer, three ordinary ones and then an urgent one
        queue: the urgent one commits next, the others after it in their order."""
        db = await open_database(f"sqlite:///{tmp_path / 'turns.db'}")
        order: list[str] = []
        release = asyncio.Event()

        async def write(name: str, *, urgent: bool = False) -> None:
            async with db.transaction(urgent=urgent) as tx:
                await tx.execute("SELECT 1")
                if name == "holder":
                    await release.wait()
                order.append(name)

        try:
            holder = asyncio.create_task(write("holder"))
            await asyncio.sleep(0.05)
            plain = [asyncio.create_task(write(f"enqueue{i}")) for i in range(3)]
            await asyncio.sleep(0.01)
            urgent = asyncio.create_task(write("receipt", urgent=True))
            await asyncio.sleep(0.01)
            release.set()
            await asyncio.gather(holder, *plain, urgent)
        finally:
            await db.close()
        assert order == ["holder", "receipt", "enqueue0", "enqueue1", "enqueue2"]

    async def test_a_cancelled_waiter_hands_its_turn_on(self, tmp_path: Path) -> None:
        """A waiter cancelled while queued (or just handed the turn) never stalls the next."""
        db = await open_database(f"sqlite:///{tmp_path / 'turns.db'}")
        release = asyncio.Event()

        async def hold() -> None:
            async with db.transaction() as tx:
                await tx.execute("SELECT 1")
                await release.wait()

        try:
            holder = asyncio.create_task(hold())
            await asyncio.sleep(0.05)
            doomed = asyncio.create_task(db.execute("SELECT 1"))
            after = asyncio.create_task(db.execute("SELECT 1"))
            await asyncio.sleep(0.01)
            doomed.cancel()
            release.set()
            await asyncio.wait_for(asyncio.gather(holder, after), 5)
            assert doomed.cancelled()
            await asyncio.wait_for(db.execute("SELECT 1"), 5)
        finally:
            await db.close()
