"""The PostgreSQL store behind the same interface: the foundation's end-to-end tests on it, and
the outbox's claim, lease and hand-over on both stores, with several claimers at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind, DeliveryState, Outcome, Receipt
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, migrations, open_database
from dispatcher.store.ledger import DeliveryLedger, Fallback, LateReceipt, RetryPolicy
from segments.audience import PlannedDelivery
from tests.conftest import SettingsFactory
from tests.foundation import test_restart as restart
from tests.foundation import test_webhook as webhook
from tests.pg import PostgresCluster
from tests.support import Running


@pytest.fixture
def make_settings(make_settings: SettingsFactory, campus_pg: str) -> SettingsFactory:
    """The foundation's settings, with the store on PostgreSQL."""

    def make(*args: Any, **kwargs: Any) -> Settings:
        settings = make_settings(*args, **kwargs)
        return settings.model_copy(
            update={"store": settings.store.model_copy(update={"url": campus_pg})}
        )

    return make


class TestWebhookOnPostgres(webhook.TestEndToEnd):
    """The webhook end to end, on PostgreSQL."""

    async def test_store_is_postgres(self, running: Running) -> None:
        """These tests really run on PostgreSQL, several nodes' mode."""
        assert running.service.db.dialect == "postgres"
        assert not running.service.engine._single_node

    @pytest.mark.heavy
    async def test_receipts_and_audit_are_stored(self, running: Running) -> None:
        """Each delivery has an accepted receipt; the audit log names who sent what."""
        await super().test_receipts_and_audit_are_stored(running)

    @pytest.mark.heavy
    async def test_deliveries_are_paged_and_masked(self, running: Running) -> None:
        """The deliveries listing pages by cursor and never shows an address."""
        await super().test_deliveries_are_paged_and_masked(running)

    @pytest.mark.heavy
    async def test_events_stream_reports_progress_then_done(self, running: Running) -> None:
        """The SSE stream sends progress events and ends with `done`."""
        await super().test_events_stream_reports_progress_then_done(running)


class TestIdempotencyOnPostgres(webhook.TestIdempotency):
    """Idempotency-Key on PostgreSQL."""


class TestRestartOnPostgres(restart.TestRestart):
    """A restart resumes pending deliveries and unresolved alerts on PostgreSQL."""


# --- the ledger on both stores ------------------------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, list[Database]]]:
    """A migrated store and a second connection pool to it (a second node), on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = await cluster.create_database()
    first = await open_database(url)
    second = await open_database(url)
    try:
        yield url, [first, second]
    finally:
        await second.close()
        await first.close()


async def _alert(db: Database, alert_id: str = "a1", *, expires: int = 10_000_000) -> None:
    await db.execute(
        "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
        " created_at, expires_at, request_sha256) VALUES (?, 'emergency', 'live', 'dispatching',"
        " 'all', '{}', '[]', 't', 0, ?, 'x')",
        (alert_id, expires),
    )


async def _person(db: Database, pid: str, **columns: str) -> None:
    row = {"email": f"{pid}@x.edu", "phone": "", "push": "", "role": "staff", **columns}
    await db.execute(
        "INSERT INTO people (id, email, phone, push, role, opt_out, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 0)",
        (pid, row["email"], row["phone"], row["push"], row["role"], row.get("opt_out", "")),
    )


def _planned(n: int, channel: ChannelKind = ChannelKind.EMAIL) -> list[PlannedDelivery]:
    return [PlannedDelivery(channel, f"p{i}", f"p{i}@x.edu", "en", "staff") for i in range(n)]


class TestOutboxOnBothStores:
    """Claims, leases and hand-overs behave alike on SQLite and PostgreSQL."""

    async def test_concurrent_claimers_never_share_a_delivery(
        self, store: tuple[str, list[Database]]
    ) -> None:
        """Two nodes claiming at once, over and over, take disjoint sets covering everything."""
        _, (one, two) = store
        await _alert(one)
        await DeliveryLedger(one, RetryPolicy(1, 10)).enqueue("a1", _planned(600), 0)
        ledgers = [DeliveryLedger(db, RetryPolicy(1, 10)) for db in (one, two)]

        async def drain(ledger: DeliveryLedger, owner: str) -> list[int]:
            taken: list[int] = []
            while batch := await ledger.claim(
                ChannelKind.EMAIL, owner=owner, limit=25, now_ms=1, lease_ms=60_000
            ):
                taken += [c.id for c in batch]
            return taken

        results = await asyncio.gather(
            *(drain(ledgers[i % 2], f"node{i}") for i in range(6))
        )
        everything = [i for r in results for i in r]
        assert len(everything) == len(set(everything)) == 600

    async def test_lease_renewal_and_takeover(self, store: tuple[str, list[Database]]) -> None:
        """A renewed lease holds; an expired one is taken by another node, one attempt more."""
        _, (one, two) = store
        await _alert(one)
        a, b = DeliveryLedger(one, RetryPolicy(1, 10)), DeliveryLedger(two, RetryPolicy(1, 10))
        await a.enqueue("a1", _planned(4), 0)
        held = await a.claim(ChannelKind.EMAIL, owner="A", limit=4, now_ms=100, lease_ms=1000)
        assert await a.renew("A", [c.id for c in held], 3000) == 4
        assert await b.renew("B", [c.id for c in held], 9000) == 0
        assert await b.claim(ChannelKind.EMAIL, owner="B", limit=4, now_ms=2000,
                             lease_ms=1000) == []
        taken = await b.claim(ChannelKind.EMAIL, owner="B", limit=4, now_ms=3001, lease_ms=1000)
        assert {c.id for c in taken} == {c.id for c in held}
        assert {c.attempts for c in taken} == {2}
        # The first node's late settle still lands (at least once), and the hand-back of its
        # claims on shutdown leaves the other node's claims alone.
        assert await a.release_owner("A") == 0
        assert await b.release_owner("B") == 4

    async def test_cancelled_alert_is_never_claimed(
        self, store: tuple[str, list[Database]]
    ) -> None:
        """Requeued for a retry after a cancel on another node: not claimed, then suppressed."""
        _, (one, two) = store
        await _alert(one)
        a, b = DeliveryLedger(one, RetryPolicy(1, 10)), DeliveryLedger(two, RetryPolicy(1, 10))
        await a.enqueue("a1", _planned(3), 0)
        held = await a.claim(ChannelKind.EMAIL, owner="A", limit=3, now_ms=1, lease_ms=1000)
        await two.execute("UPDATE alerts SET state = 'cancelled' WHERE id = 'a1'")
        await a.settle(ChannelKind.EMAIL, held,
                       [Receipt(c.id, Outcome.RETRY, "451 busy") for c in held],
                       now_ms=2, deadlines={"a1": 10_000_000})
        assert await b.claim(ChannelKind.EMAIL, owner="B", limit=3, now_ms=10**9,
                             lease_ms=1000) == []
        assert await b.suppress_cancelled(3) == 3
        assert (await b.counts("a1"))["email"]["suppressed"] == 3

    async def test_deadline_fails_what_waits(self, store: tuple[str, list[Database]]) -> None:
        """Queued deliveries of an alert past its deadline are failed, with the reason."""
        _, (one, _two) = store
        await _alert(one, expires=5000)
        ledger = DeliveryLedger(one, RetryPolicy(1, 10))
        await ledger.enqueue("a1", _planned(2), 0)
        assert await ledger.expire_overdue(4999) == 0
        assert await ledger.expire_overdue(5000) == 2
        row = await one.fetchone("SELECT state, detail FROM deliveries LIMIT 1")
        assert row is not None and row["state"] == "failed"
        assert row["detail"] == "deadline passed before sending"

    async def test_retry_honours_retry_after_within_the_deadline(
        self, store: tuple[str, list[Database]]
    ) -> None:
        """A 429's Retry-After sets the earliest next attempt; past the deadline it fails."""
        _, (one, _two) = store
        await _alert(one, expires=100_000)
        ledger = DeliveryLedger(one, RetryPolicy(0.01, 0.02))
        await ledger.enqueue("a1", _planned(2), 0)
        held = await ledger.claim(ChannelKind.EMAIL, owner="A", limit=2, now_ms=1000,
                                  lease_ms=1000)
        settled = await ledger.settle(
            ChannelKind.EMAIL, held,
            [Receipt(held[0].id, Outcome.RETRY, "429", retry_after_s=30),
             Receipt(held[1].id, Outcome.RETRY, "429", retry_after_s=120)],
            now_ms=1000, deadlines={"a1": 100_000},
        )
        assert (settled.retried, settled.failed) == (1, 1)
        due = await one.fetchval(
            "SELECT next_attempt_at FROM deliveries WHERE id = ?", (held[0].id,)
        )
        assert due >= 31_000

    async def test_fallback_is_queued_with_the_failure(
        self, store: tuple[str, list[Database]]
    ) -> None:
        """A permanent failure and its fallback are one write; a second fallback is not made."""
        _, (one, _two) = store
        await _alert(one)
        await _person(one, "p1", push="json://h/push/p1")
        ledger = DeliveryLedger(one, RetryPolicy(1, 10))
        await ledger.enqueue("a1", [PlannedDelivery(ChannelKind.SMS, "p1", "+12025550101", "en",
                                                    "staff")], 0)
        [held] = await ledger.claim(ChannelKind.SMS, owner="A", limit=1, now_ms=1, lease_ms=9)
        fallback = Fallback(held.id, ChannelKind.SMS, ChannelKind.PUSH, "json://h/push/p1",
                            "fallback from sms: twilio 21610")
        settled = await ledger.settle(
            ChannelKind.SMS, [held], [Receipt(held.id, Outcome.FAILED, "twilio 21610")],
            now_ms=2, deadlines={"a1": 10_000_000}, fallbacks=[fallback],
        )
        assert settled.fallbacks == 1
        assert await ledger.add_fallbacks([fallback], 3) == 0
        counts = await ledger.counts("a1")
        assert counts["sms"]["failed"] == 1 and counts["push"]["queued"] == 1
        rows = await one.fetchall(
            "SELECT channel, status, detail FROM receipts WHERE status = 'fallback' ORDER BY id"
        )
        assert [(r["channel"], r["detail"]) for r in rows] == [
            ("push", "fallback from sms: twilio 21610"), ("sms", "fell back to push"),
        ]

    async def test_late_failure_says_it_moved(self, store: tuple[str, list[Database]]) -> None:
        """A late `failed` after `accepted` moves the delivery; after `delivered` it does not."""
        _, (one, two) = store
        await _alert(one)
        a, b = DeliveryLedger(one, RetryPolicy(1, 10)), DeliveryLedger(two, RetryPolicy(1, 10))
        await a.enqueue("a1", _planned(2, ChannelKind.SMS), 0)
        held = await a.claim(ChannelKind.SMS, owner="A", limit=2, now_ms=1, lease_ms=9)
        await a.settle(ChannelKind.SMS, held,
                       [Receipt(c.id, Outcome.ACCEPTED, provider_ref=f"SM{c.id}") for c in held],
                       now_ms=2, deadlines={"a1": 10_000_000})
        await b.record_late(ChannelKind.SMS, Outcome.DELIVERED, provider_ref=f"SM{held[1].id}",
                             now_ms=3)
        first = await b.record_late(ChannelKind.SMS, Outcome.FAILED,
                                    provider_ref=f"SM{held[0].id}", now_ms=4)
        second = await b.record_late(ChannelKind.SMS, Outcome.FAILED,
                                     provider_ref=f"SM{held[1].id}", now_ms=4)
        assert first is not None and first.changed and first.state is DeliveryState.FAILED
        assert second is not None and not second.changed
        assert second.state is DeliveryState.DELIVERED


    async def test_late_receipts_in_one_group(self, store: tuple[str, list[Database]]) -> None:
        """A group of late receipts, keyed every way, in order: each finds its delivery, a
        second receipt for the same delivery builds on the first, unknown ones find nothing,
        and a state never moves back, not even against a write from another node."""
        _, (one, two) = store
        await _alert(one)
        a, b = DeliveryLedger(one, RetryPolicy(1, 10)), DeliveryLedger(two, RetryPolicy(1, 10))
        await a.enqueue("a1", _planned(4, ChannelKind.SMS), 0)
        held = await a.claim(ChannelKind.SMS, owner="A", limit=4, now_ms=1, lease_ms=9)
        await a.settle(ChannelKind.SMS, held,
                       [Receipt(c.id, Outcome.ACCEPTED, provider_ref=f"SM{c.id}") for c in held],
                       now_ms=2, deadlines={"a1": 10_000_000})
        d0, d1, d2, d3 = (c.id for c in held)
        # Another node has already recorded d3 as delivered.
        await b.record_late(ChannelKind.SMS, Outcome.DELIVERED, delivery_id=d3, now_ms=3)
        sms = ChannelKind.SMS
        group = [
            LateReceipt(sms, Outcome.ACCEPTED, delivery_id=d0, detail="sent"),
            LateReceipt(sms, Outcome.DELIVERED, provider_ref=f"SM{d0}", detail="delivered"),
            LateReceipt(sms, Outcome.FAILED, alert_id="a1", recipient="p1", detail="30003"),
            LateReceipt(sms, Outcome.DELIVERED, delivery_id=d1, detail="too late"),
            LateReceipt(sms, Outcome.FAILED, delivery_id=d3, detail="after delivered"),
            LateReceipt(sms, Outcome.DELIVERED, delivery_id=d2 + 10_000),
            LateReceipt(ChannelKind.EMAIL, Outcome.DELIVERED, delivery_id=d2),
            LateReceipt(sms, Outcome.DELIVERED, provider_ref="SMnothing"),
        ]
        found = await a.record_late_many(group, now_ms=4)
        moved = [(f.delivery_id, f.state.value, f.changed) if f else None for f in found]
        assert moved == [
            (d0, "accepted", False), (d0, "delivered", True), (d1, "failed", True),
            (d1, "delivered", True), (d3, "delivered", False), None, None, None,
        ]
        states = {r["id"]: r["state"] for r in await one.fetchall(
            "SELECT id, state FROM deliveries ORDER BY id")}
        assert states == {d0: "delivered", d1: "delivered", d2: "accepted", d3: "delivered"}
        logged = await one.fetchval(
            "SELECT COUNT(*) FROM receipts WHERE at = 4 AND delivery_id IN (?, ?, ?)",
            (d0, d1, d3),
        )
        assert logged == 5


class TestMigrationsOnPostgres:
    """Several nodes starting at once on an empty database migrate it once."""

    async def test_concurrent_first_start(self, pg_url: str) -> None:
        """Four pools opening together all succeed, and each migration is recorded once."""
        dbs = await asyncio.gather(*(open_database(pg_url) for _ in range(4)))
        try:
            rows = await dbs[0].fetchall("SELECT version FROM schema_migrations")
        finally:
            for db in dbs:
                await db.close()
        assert sorted(r["version"] for r in rows) == [m[0] for m in migrations("postgres")]


class TestSharedRecordsOnBothStores:
    """Writes that several nodes make at once stay consistent on either store."""

    async def test_audit_chain_stays_linear(self, store: tuple[str, list[Database]]) -> None:
        """Two nodes appending at once leave one chain that verifies, not two forks."""
        _, (one, two) = store
        logs = [AuditLog(one), AuditLog(two)]
        await asyncio.gather(
            *(logs[i % 2].record(at=i, actor=f"node{i % 2}", action="test.append")
              for i in range(80))
        )
        check = await logs[0].verify()
        assert check.ok and check.entries == 80, check

    async def test_same_idempotency_key_on_two_nodes(
        self, store: tuple[str, list[Database]]
    ) -> None:
        """A retried webhook landing on two nodes at once makes one alert, not two."""
        _, (one, two) = store
        request = AlertRequest.model_validate({
            "kind": "emergency", "channels": ["email"],
            "text": "Gas leak at Carver Hall. Evacuate the building now.",
        })
        stores = [AlertStore(db, AuditLog(db)) for db in (one, two)]
        results = await asyncio.gather(
            *(stores[i % 2].create(
                request, {}, actor="t", now_ms=i + 1, expires_ms=3_600_000,
                channels=[ChannelKind.EMAIL], idempotency_key="retry-1", audience_counts={},
                clery={}, audit_detail={},
            ) for i in range(6))
        )
        assert len({alert_id for alert_id, _ in results}) == 1
        assert sum(created for _, created in results) == 1
