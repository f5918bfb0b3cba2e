"""The outbox serves alerts in the order of urgency across alerts: live emergencies (with their
updates and all clears), then live timely warnings, then advisories, then drills and tests;
within a class the earlier alert first. Checked on SQLite and PostgreSQL, through the ledger's
own claims: the sequence of alerts the claims take, the bound that makes less urgent alerts
wait, the front of a channel, and a batch that gave way returning untried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from dispatcher.domain import (
    RANK_CLASS_SPAN,
    AlertKind,
    ChannelKind,
    Mode,
    Outcome,
    Precedence,
    Receipt,
    urgency_rank,
)
from dispatcher.store.database import Database, open_database
from dispatcher.store.ledger import DeliveryLedger, Fallback, RetryPolicy
from dispatcher.store.pauses import AlertPauses
from segments.audience import PlannedDelivery
from tests.pg import PostgresCluster, pg_cluster

__all__ = ["pg_cluster"]

SMS, EMAIL = ChannelKind.SMS, ChannelKind.EMAIL
# Sent in this order (created_at), each to the same ten people.
ALERTS = (
    ("drill", AlertKind.EMERGENCY, Mode.DRILL, 1_000),
    ("warning", AlertKind.TIMELY_WARNING, Mode.LIVE, 2_000),
    ("advisory", AlertKind.ADVISORY, Mode.LIVE, 3_000),
    ("gas-leak", AlertKind.EMERGENCY, Mode.LIVE, 4_000),
    ("all-clear", AlertKind.ALL_CLEAR, Mode.LIVE, 5_000),
    ("test", AlertKind.ADVISORY, Mode.TEST, 500),
)
PEOPLE = 10


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated store holding the six alerts of ALERTS, each with PEOPLE SMS queued."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'order.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = await cluster.create_database()
    store = await open_database(url)
    ledger = DeliveryLedger(store, RetryPolicy(1.0, 30.0))
    for alert_id, kind, mode, created in ALERTS:
        await store.execute(
            "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
            " created_at, expires_at, request_sha256, urgency) VALUES (?, ?, ?, 'dispatching',"
            " 'all', '{}', '[\"sms\"]', 't', ?, 10000000, 'x', ?)",
            (alert_id, kind.value, mode.value, created, urgency_rank(kind, mode, created)),
        )
        await ledger.enqueue(
            alert_id,
            [PlannedDelivery(SMS, f"p{i}", f"+1202555{i:04d}", "en", "student")
             for i in range(PEOPLE)],
            1,
        )
    yield store
    await store.close()


async def _claim_all(ledger: DeliveryLedger, size: int, before: int | None = None) -> list[str]:
    """Claim batches until nothing is left; the alert of each claimed row, in claim order."""
    order: list[str] = []
    while True:
        extra = {} if before is None else {"before": before}
        batch = await ledger.claim(SMS, owner="A", limit=size, now_ms=10, lease_ms=10**6, **extra)
        if not batch:
            return order
        order += [c.alert_id for c in batch]


class TestClassOrder:
    """Which alert's rows each claim takes."""

    async def test_claims_follow_the_order_of_urgency(self, db: Database) -> None:
        """Emergency, then its all clear, then the warning, the advisory, the test, the
        drill, whatever order they were sent in; batches never mix out of order."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        order = await _claim_all(ledger, size=4)
        runs = [a for i, a in enumerate(order) if i == 0 or order[i - 1] != a]
        assert runs == ["gas-leak", "all-clear", "warning", "advisory", "test", "drill"]
        assert len(order) == PEOPLE * len(ALERTS)

    async def test_within_a_class_the_earlier_alert_first(self, db: Database) -> None:
        """The drill and the technical test are one class: the earlier (the test) first."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        order = await _claim_all(ledger, size=PEOPLE * 4)
        assert order.index("test") < order.index("drill")
        assert order.index("gas-leak") < order.index("all-clear")

    async def test_a_bound_leaves_less_urgent_alerts_queued(self, db: Database) -> None:
        """With the bound of the live-emergency class, only the emergency and its all clear
        are taken; the others stay queued for later."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        order = await _claim_all(ledger, size=7, before=RANK_CLASS_SPAN)
        assert set(order) == {"gas-leak", "all-clear"}
        assert len(order) == 2 * PEOPLE
        rest = await _claim_all(ledger, size=100)
        assert "gas-leak" not in rest and len(rest) == 4 * PEOPLE


class TestFront:
    """The most urgent work on a channel, due or in flight."""

    async def test_front_is_due_or_in_flight(self, db: Database) -> None:
        """The emergency is the front while its rows wait or are out; then the next class."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        front = await ledger.front(SMS, now_ms=10)
        assert front is not None and front.alert_id == "gas-leak"
        assert front.precedence is Precedence.LIVE_EMERGENCY
        emergency = await ledger.claim(SMS, owner="A", limit=2 * PEOPLE, now_ms=10,
                                       lease_ms=10**6, before=RANK_CLASS_SPAN)
        # All of it in flight: still the front, so the others keep waiting.
        front = await ledger.front(SMS, now_ms=10)
        assert front is not None and front.precedence is Precedence.LIVE_EMERGENCY
        await ledger.settle(SMS, emergency, [Receipt(c.id, Outcome.ACCEPTED) for c in emergency],
                            now_ms=20, deadlines={"gas-leak": 10**7, "all-clear": 10**7})
        front = await ledger.front(SMS, now_ms=20)
        assert front is not None and front.alert_id == "warning"
        assert await ledger.front(EMAIL, now_ms=20) is None

    async def test_a_retry_not_yet_due_does_not_hold_the_front(self, db: Database) -> None:
        """Emergency rows waiting for a later retry leave the channel to the next class."""
        ledger = DeliveryLedger(db, RetryPolicy(100.0, 100.0))
        emergency = await ledger.claim(SMS, owner="A", limit=2 * PEOPLE, now_ms=10,
                                       lease_ms=10**6, before=RANK_CLASS_SPAN)
        await ledger.settle(SMS, emergency, [Receipt(c.id, Outcome.RETRY) for c in emergency],
                            now_ms=20, deadlines={"gas-leak": 10**9, "all-clear": 10**9})
        front = await ledger.front(SMS, now_ms=21)
        assert front is not None and front.alert_id == "warning"


class TestGivingWay:
    """A batch that gave way goes back untried."""

    async def test_deferred_rows_return_queued_without_an_attempt(self, db: Database) -> None:
        """Deferred: queued again, due now, attempts as before the claim, no receipt row."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        drill = await ledger.claim(SMS, owner="A", limit=3, now_ms=10, lease_ms=10**6,
                                   before=10**17)
        assert drill and all(c.attempts == 1 for c in drill)
        settled = await ledger.settle(
            SMS, drill, [Receipt(c.id, Outcome.DEFERRED, "gave way") for c in drill],
            now_ms=30, deadlines={c.alert_id: 10**7 for c in drill},
        )
        assert settled.deferred == 3 and settled.retried == 0
        rows = await db.fetchall(
            "SELECT state, attempts, next_attempt_at FROM deliveries WHERE id IN (?, ?, ?)",
            [c.id for c in drill],
        )
        assert [(r["state"], r["attempts"], r["next_attempt_at"]) for r in rows] == [
            ("queued", 0, 30)] * 3
        assert await db.fetchval("SELECT COUNT(*) FROM receipts") == 0
        again = await ledger.claim(SMS, owner="B", limit=100, now_ms=31, lease_ms=10**6)
        assert {c.id for c in drill} <= {c.id for c in again}

    async def test_a_fallback_keeps_its_alerts_urgency(self, db: Database) -> None:
        """A fallback delivery sits in the order where its alert does."""
        ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
        [first] = await ledger.claim(SMS, owner="A", limit=1, now_ms=10, lease_ms=10**6)
        await ledger.settle(
            SMS, [first], [Receipt(first.id, Outcome.FAILED, "no")], now_ms=11,
            deadlines={first.alert_id: 10**7},
            fallbacks=[Fallback(first.id, SMS, EMAIL, "x@example.edu", "fallback")],
        )
        urgency = await db.fetchval(
            "SELECT urgency FROM deliveries WHERE channel = 'email' AND alert_id = ?",
            (first.alert_id,),
        )
        assert first.alert_id == "gas-leak"
        assert urgency == urgency_rank(AlertKind.EMERGENCY, Mode.LIVE, 4_000)


class TestPauses:
    """Pauses are opened once and closed once, whoever asks."""

    async def test_open_is_idempotent_and_close_spares_the_kept(self, db: Database) -> None:
        """Two nodes opening the same pause make one; closing spares the alerts still kept."""
        pauses = AlertPauses(db)
        for _node in range(2):
            await pauses.open(SMS, ["drill", "warning"], behind="gas-leak", now_ms=100)
        assert len(await pauses.of("drill")) == 1
        assert await pauses.close(SMS, now_ms=400, keep=["warning"]) == 1
        [drill] = await pauses.of("drill")
        assert (drill.behind_alert_id, drill.started_at, drill.ended_at) == ("gas-leak", 100, 400)
        assert drill.seconds(10**6) == 0.3
        [warning] = await pauses.of("warning")
        assert warning.ended_at is None
        await pauses.open(SMS, ["drill"], behind="all-clear", now_ms=500)
        assert [p.behind_alert_id for p in await pauses.of("drill")] == ["gas-leak", "all-clear"]
