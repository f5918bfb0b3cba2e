"""Progress counters (`delivery_counts`, kept by triggers, migration 0007) equal a recount of
the deliveries after every kind of state change: fan-out, claims, failures, retries,
fallbacks, diverts, late receipts, a lease taken over, expiry, a cancel, a renew,
and a restart; on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from dispatcher.domain import ChannelKind, LateReceipt, Outcome, Receipt
from dispatcher.store.alerts import AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, open_database
from dispatcher.store.ledger import DeliveryLedger, Fallback, RetryPolicy
from segments.audience import PlannedDelivery
from tests.pg import PostgresCluster, pg_cluster

__all__ = ["pg_cluster"]

SMS, EMAIL, PUSH = ChannelKind.SMS, ChannelKind.EMAIL, ChannelKind.PUSH
ALERTS = ("a1", "a2", "a3")
Opener = Callable[[], Awaitable[Database]]


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the same store again and again (a restart reopens it)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'counts.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = await cluster.create_database()

    async def open_store() -> Database:
        return await open_database(url)

    yield open_store


async def _alert(db: Database, alert_id: str, expires_at: int = 10_000_000) -> None:
    await db.execute(
        "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
        " created_at, expires_at, request_sha256) VALUES (?, 'emergency', 'live', 'dispatching',"
        " 'all', '{}', '[]', 't', 0, ?, 'x')",
        (alert_id, expires_at),
    )


async def _assert_exact(ledger: DeliveryLedger, fold: bool = False) -> None:
    for alert_id in ALERTS:
        assert await ledger.counts(alert_id) == await ledger.recount(alert_id), alert_id
    if fold:
        await ledger.fold_counts()
        for alert_id in ALERTS:
            assert await ledger.counts(alert_id) == await ledger.recount(alert_id), alert_id


def _planned(n: int) -> list[PlannedDelivery]:
    out = []
    for i in range(n):
        out.append(PlannedDelivery(SMS, f"p{i}", f"+1202555{i:04d}", "en", "student"))
        out.append(PlannedDelivery(PUSH, f"p{i}", f"json://x/{i}", "en", "student"))
        if i % 2:
            out.append(PlannedDelivery(EMAIL, f"p{i}", f"p{i}@x.edu", "en", "student",
                                       suppressed="opted out" if i % 7 == 0 else None))
    return out


async def test_counters_equal_a_recount(opener: Opener) -> None:
    """Every change keeps the counters equal to a GROUP BY over the deliveries."""
    db = await opener()
    ledger = DeliveryLedger(db, RetryPolicy(1.0, 2.0))
    await _alert(db, "a1")
    await _alert(db, "a2")
    await _alert(db, "a3", expires_at=5_000)
    await ledger.enqueue("a1", _planned(60), 1)
    await ledger.enqueue("a1", _planned(60), 1)  # re-planning is a no-op
    await ledger.enqueue("a2", _planned(20), 1)
    await ledger.enqueue("a3", _planned(10), 1)
    await _assert_exact(ledger)
    assert (await ledger.counts("a1"))["sms"]["queued"] == 60

    # A batch: accepted, failed (with a fallback to e-mail for people without one), retried.
    batch = await ledger.claim(SMS, owner="A", limit=40, now_ms=10, lease_ms=1000)
    await _assert_exact(ledger)
    receipts, fallbacks = [], []
    for n, c in enumerate(batch):
        if n % 3 == 0:
            receipts.append(Receipt(c.id, Outcome.ACCEPTED, provider_ref=f"SM{c.id}"))
        elif n % 3 == 1:
            receipts.append(Receipt(c.id, Outcome.FAILED, "unreachable"))
            fallbacks.append(Fallback(c.id, SMS, EMAIL, f"{c.recipient}@x.edu", "sms failed"))
        else:
            receipts.append(Receipt(c.id, Outcome.RETRY, "busy"))
    settled = await ledger.settle(SMS, batch, receipts, now_ms=20,
                                  deadlines={a: 10_000_000 for a in ALERTS}, fallbacks=fallbacks)
    assert settled.fallbacks > 0 and settled.retried > 0
    await _assert_exact(ledger, fold=True)

    # Late receipts: by provider ref, by delivery id, by alert and recipient (a device ack).
    accepted = [r for r in receipts if r.outcome is Outcome.ACCEPTED]
    late = [LateReceipt(SMS, Outcome.DELIVERED, provider_ref=r.provider_ref) for r in accepted]
    late.append(LateReceipt(SMS, Outcome.FAILED, delivery_id=accepted[0].delivery_id))
    pushes = await ledger.claim(PUSH, owner="A", limit=15, now_ms=30, lease_ms=1000)
    await ledger.settle(PUSH, pushes, [Receipt(c.id, Outcome.ACCEPTED) for c in pushes],
                        now_ms=31, deadlines={a: 10_000_000 for a in ALERTS})
    late += [LateReceipt(PUSH, Outcome.DELIVERED, alert_id=c.alert_id, recipient=c.recipient)
             for c in pushes[:5]]
    results = await ledger.record_late_many(late, 40)
    assert sum(1 for r in results if r is not None and r.changed) == len(accepted) + 5
    await _assert_exact(ledger)

    # A lease taken over: owner B claims what A held past its lease, and settles it.
    held = await ledger.claim(PUSH, owner="A", limit=10, now_ms=50, lease_ms=100)
    taken = await ledger.claim(PUSH, owner="B", limit=10, now_ms=500, lease_ms=1000)
    assert {c.id for c in taken} == {c.id for c in held}
    await ledger.settle(PUSH, taken, [Receipt(c.id, Outcome.DELIVERED) for c in taken],
                        now_ms=510, deadlines={a: 10_000_000 for a in ALERTS})
    await _assert_exact(ledger)

    # An unavailable channel's waiting deliveries diverted to their fallback.
    waiting = await ledger.waiting(EMAIL, now_ms=600, limit=8)
    moved = await ledger.divert(
        EMAIL, [Fallback(w.id, EMAIL, SMS, "+12025559999", "email down") for w in waiting],
        detail="email unavailable", now_ms=600,
    )
    assert waiting and moved == 0  # everyone already has an SMS delivery: origins still fail
    await _assert_exact(ledger)

    # Expiry, a cancel, a retry requeued after the cancel, a renew and a hand-back.
    assert await ledger.expire_overdue(6_000) > 0
    audit = AuditLog(db)
    alerts = AlertStore(db, audit)
    inflight = await ledger.claim(SMS, owner="C", limit=5, now_ms=6_000, lease_ms=1000)
    assert await ledger.renew("C", [c.id for c in inflight], 7_000) == len(inflight)
    assert await alerts.cancel("a2", actor="ops", reason="test", now_ms=6_001) > 0
    await ledger.settle(SMS, inflight, [Receipt(c.id, Outcome.RETRY, "busy") for c in inflight],
                        now_ms=6_002, deadlines={a: 10_000_000 for a in ALERTS})
    await ledger.suppress_cancelled(6_003)
    await ledger.claim(SMS, owner="D", limit=7, now_ms=9_000, lease_ms=1000)
    await _assert_exact(ledger, fold=True)
    await db.close()

    # A restart: the counters were written with the rows, and the hand-back keeps them.
    db = await opener()
    ledger = DeliveryLedger(db, RetryPolicy(1.0, 2.0))
    await _assert_exact(ledger)
    assert await ledger.release_all() > 0
    await _assert_exact(ledger, fold=True)
    counts = await ledger.counts("a1")
    assert counts["sms"]["sending"] == 0 and counts["email"]["queued"] > 0
    assert counts["email"]["suppressed"] > 0
    assert counts["email"]["total"] == sum(
        v for k, v in counts["email"].items() if k not in ("total", "suppressed")
    )
    await db.close()
