"""The delivery ledger: the outbox every send is claimed from and every receipt is written to.

A delivery row exists before its send and is updated after it, so a crash re-sends only what
was claimed and not yet settled (at least once, never silently lost).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.domain import (
    RANK_CLASS_SPAN,
    ChannelKind,
    DeliveryState,
    LateReceipt,
    Outcome,
    Precedence,
    Receipt,
)
from dispatcher.store.database import Database, Row, Session
from segments.audience import PlannedDelivery

STATES = tuple(s.value for s in DeliveryState)
# A claim's urgency bound that bounds nothing.
NO_BOUND = 2**62
# The receipt status that records a fallback, on the failed delivery and on its replacement.
FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery row claimed for sending."""

    id: int
    alert_id: str
    recipient: str
    address: str
    language: str
    attempts: int
    urgency: int = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff, bounded by the alert's deadline, not by a count."""

    base_s: float
    max_s: float

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before the next attempt."""
        cap = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        jittered = rng.uniform(0, cap)
        return max(jittered, retry_after_s or 0.0)


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling a batch did, for metrics and progress."""

    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    failed_ids: tuple[int, ...] = ()
    fallbacks: int = 0
    deferred: int = 0
    """Given back to the queue untried: they gave way to a more urgent alert."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """A delivery to make on another channel because `origin` failed on its own."""

    origin: int
    origin_channel: ChannelKind
    channel: ChannelKind
    address: str
    detail: str


@dataclass(frozen=True, slots=True)
class LateResult:
    """What a late receipt found and did."""

    alert_id: str
    delivery_id: int
    recipient: str
    state: DeliveryState
    changed: bool
    """True when the receipt moved the delivery to `state`."""
    early: bool = False
    """A device's ack for a delivery its class has not published yet (the device saw the
    alert on the shared event stream): not applied; the engine applies it once the class's
    batch is settled, so that class still publishes its part of the zone's state."""


@dataclass(frozen=True, slots=True, order=True)
class Front:
    """The most urgent work on a channel: its urgency and the alert it belongs to."""

    urgency: int
    alert_id: str

    @property
    def precedence(self) -> Precedence:
        """The class of that alert."""
        return Precedence.of_rank(self.urgency)


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A delivery the provider accepted and said nothing more of."""

    id: int
    alert_id: str
    provider_ref: str
    accepted_at: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued delivery, as the fallback of an unavailable channel sees it."""

    id: int
    alert_id: str
    recipient: str


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """One delivery as a provider callback names it: whose it is, on what, in which language."""

    id: int
    alert_id: str
    channel: ChannelKind
    recipient: str
    language: str
    state: DeliveryState


class DeliveryLedger:
    """Outbox operations over the shared store (one SQL path for SQLite and PostgreSQL)."""

    def __init__(self, db: Database, retry: RetryPolicy, rng: random.Random | None = None) -> None:
        self._db = db
        self._retry = retry
        self._rng = rng or random.Random()
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call `listener(alert_id)` after each committed change of an alert's deliveries
        (enqueue, claim, settle, late receipts, diversion; not the sweep's bulk updates), once
        per alert and change; listeners must be quick and must not raise."""
        self._listeners.append(listener)

    def _changed(self, alert_ids: Iterable[str]) -> None:
        for alert_id in dict.fromkeys(alert_ids):
            for listener in self._listeners:
                listener(alert_id)

    async def enqueue(
        self, alert_id: str, planned: Sequence[PlannedDelivery], now_ms: int, *,
        urgent: bool = False,
    ) -> None:
        """Insert planned deliveries; re-planning the same ones is a no-op. A live emergency's
        are `urgent`: they go ahead of other writers waiting, as receipts do."""
        rows = [
            (
                alert_id,
                p.channel.value,
                p.recipient,
                p.address,
                p.language,
                p.role,
                DeliveryState.SUPPRESSED.value if p.suppressed else DeliveryState.QUEUED.value,
                p.suppressed,
                now_ms,
            )
            for p in planned
        ]
        if not rows:
            return
        if self._db.dialect == "postgres":
            # One statement per chunk, so its trigger appends one count row per channel and
            # state, not one per delivery.
            columns = [list(c) for c in zip(*(r[1:8] for r in rows), strict=True)]
            await self._db.execute(
                "INSERT INTO deliveries (alert_id, channel, recipient, address, language, role,"
                " state, detail, updated_at, urgency) SELECT ?, u.channel, u.recipient,"
                f" u.address, u.language, u.role, u.state, u.detail, ?, {_URGENCY_OF}"
                " FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
                " ?::text[]) AS u (channel, recipient, address, language, role, state, detail)"
                " ON CONFLICT (alert_id, channel, recipient) DO NOTHING",
                (alert_id, now_ms, alert_id, *columns),
            )
            self._changed((alert_id,))
            return
        async with self._db.transaction(urgent=urgent) as tx:
            await tx.executemany(
                "INSERT INTO deliveries (alert_id, channel, recipient, address, language, role,"
                " state, detail, updated_at, urgency)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {_URGENCY_OF})"
                " ON CONFLICT (alert_id, channel, recipient) DO NOTHING",
                [(*r, alert_id) for r in rows],
            )
        self._changed((alert_id,))

    async def claim(
        self,
        channel: ChannelKind,
        *,
        owner: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
        before: int = NO_BOUND,
        urgent: bool = False,
    ) -> list[Claimed]:
        """Take up to `limit` due deliveries (queued, or claimed by someone whose lease ran out)
        of urgency below `before`, most urgent first.

        Deliveries of a cancelled alert are never taken, whichever process cancelled it.
        Leases that ran out are taken first, then queued rows in the order of urgency (the
        alert's class, then the earlier alert), each alert's earliest due first; each is a
        range scan of a partial index holding only such rows, so a claim costs the batch, not
        the alert (`hot_statements`, tests/foundation/test_query_plans.py). An `urgent` claim
        (for a live emergency) goes ahead of other writers waiting.
        """
        async with self._db.transaction(urgent=urgent) as tx:
            sql, params = self._claim_sql(
                "sending", channel, owner, limit, now_ms, lease_ms, before
            )
            rows = list(await tx.fetchall(sql, params))
            if len(rows) < limit:
                sql, params = self._claim_sql(
                    "queued", channel, owner, limit - len(rows), now_ms, lease_ms, before
                )
                rows += await tx.fetchall(sql, params)
        claimed = [
            Claimed(
                r["id"], r["alert_id"], r["recipient"], r["address"], r["language"], r["attempts"],
                int(r["urgency"]),
            )
            for r in rows
        ]
        # The most urgent alert's rows first: the engine sends a batch's alerts in this order.
        claimed.sort(key=lambda c: (c.urgency, c.id))
        self._changed(c.alert_id for c in claimed)
        return claimed

    def _claim_sql(
        self,
        state: str,
        channel: ChannelKind,
        owner: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
        before: int = NO_BOUND,
    ) -> tuple[str, tuple[Any, ...]]:
        """The claim of `queued` rows that are due, or of `sending` rows whose lease ran out:
        its WHERE and ORDER BY follow the partial index of that state (migrations 0007 and
        0013): queued rows by urgency, then due time."""
        # Queued rows: one class of urgency per claim, the most urgent that has a due row (the
        # first entry of the same index), so a batch never carries a less urgent alert's rows
        # behind a more urgent one's.
        due, order = {
            "queued": (f"d.urgency < ? AND d.urgency < COALESCE(({_FRONT_CLASS_END}), 0)"
                       " AND d.next_attempt_at <= ?", "d.urgency, d.next_attempt_at, d.id"),
            "sending": ("d.lease_until < ? AND d.urgency < ?", "d.lease_until, d.id"),
        }[state]
        bounds = (
            (before, channel.value, now_ms, now_ms) if state == "queued" else (now_ms, before)
        )
        # The alert's state is a per-row probe of its primary key, not an anti-join:
        # PostgreSQL would price an anti-join against a store of one or two alerts as if it
        # removed every row, and then sort the whole due range instead of reading it in order.
        pick = (
            f"SELECT d.id FROM deliveries d WHERE d.channel = ? AND d.state = '{state}'"
            f" AND {due} AND (SELECT a.state FROM alerts a WHERE a.id = d.alert_id)"
            f" <> 'cancelled' ORDER BY {order} LIMIT ?"
        )
        if self._db.dialect == "postgres":
            # SKIP LOCKED: concurrent claimers on other nodes take other rows instead of waiting.
            sql = (
                f"WITH c AS ({pick} FOR UPDATE OF d SKIP LOCKED)"
                " UPDATE deliveries d SET state = 'sending', lease_owner = ?, lease_until = ?,"
                " attempts = d.attempts + 1, updated_at = ? FROM c WHERE d.id = c.id"
                " RETURNING d.id, d.alert_id, d.recipient, d.address, d.language, d.attempts,"
                " d.urgency"
            )
            params: tuple[Any, ...] = (
                channel.value, *bounds, limit, owner, now_ms + lease_ms, now_ms,
            )
        else:
            sql = (
                "UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_until = ?,"
                f" attempts = attempts + 1, updated_at = ? WHERE id IN ({pick})"
                " RETURNING id, alert_id, recipient, address, language, attempts, urgency"
            )
            params = (owner, now_ms + lease_ms, now_ms, channel.value, *bounds, limit)
        return sql, params

    async def front(self, channel: ChannelKind, now_ms: int) -> Front | None:
        """The most urgent work on a channel: the due queued or in-flight delivery of the most
        urgent live alert (two index probes); None when the channel has nothing to do."""
        found: list[Front] = []
        for sql in (_FRONT_QUEUED_SQL, _FRONT_SENDING_SQL):
            params = (channel.value, now_ms) if sql is _FRONT_QUEUED_SQL else (channel.value,)
            row = await self._db.fetchone(sql, params)
            if row is not None:
                found.append(Front(int(row["urgency"]), row["alert_id"]))
        return min(found, default=None)

    async def unsettled(
        self, channel: ChannelKind, *, older_than_ms: int, limit: int
    ) -> list[Unsettled]:
        """Deliveries a provider accepted before `older_than_ms` and has said no more of,
        oldest first: the ones to ask the provider about."""
        rows = await self._db.fetchall(_UNSETTLED_SQL, (channel.value, older_than_ms, limit))
        return [
            Unsettled(int(r["id"]), r["alert_id"], r["provider_ref"] or "", int(r["updated_at"]))
            for r in rows
        ]

    async def touch(self, ids: Sequence[int], now_ms: int) -> None:
        """Mark accepted deliveries as asked about now, so the next round asks others first."""
        for part in _chunks(sorted(ids)):
            await self._db.execute(
                f"UPDATE deliveries SET updated_at = ? WHERE state = 'accepted'"
                f" AND id IN ({_marks(part)})",
                (now_ms, *part),
            )

    def hot_statements(self) -> tuple[tuple[str, str, tuple[Any, ...]], ...]:
        """(name, SQL, sample parameters) of every statement run per batch or per receipt, or
        by the sweep, in the very form the ledger runs it: their query plans are under test."""
        sms = ChannelKind.SMS
        return (
            ("claim queued", *self._claim_sql("queued", sms, "o", 50, 10, 1000)),
            ("claim queued below an urgency",
             *self._claim_sql("queued", sms, "o", 50, 10, 1000, RANK_CLASS_SPAN)),
            ("claim expired leases", *self._claim_sql("sending", sms, "o", 50, 10, 1000)),
            ("front queued", _FRONT_QUEUED_SQL, ("sms", 10)),
            ("front in flight", _FRONT_SENDING_SQL, ("sms",)),
            ("unsettled", _UNSETTLED_SQL, ("sms", 10, 100)),
            ("settle", _SETTLE_SQL, ("delivered", "ref", None, 0, 10, 1)),
            ("late receipt by id", f"{_LATE_COLUMNS} WHERE id IN (?, ?)", (1, 2)),
            ("late receipt by provider ref",
             f"{_LATE_COLUMNS} WHERE provider_ref IN (?, ?)", ("SM1", "SM2")),
            ("late receipt by recipient",
             f"{_LATE_COLUMNS} WHERE alert_id = ? AND channel = ? AND recipient IN (?, ?)",
             ("a1", "push", "p1", "p2")),
            ("late receipt write", _LATE_SQL, ("delivered", None, None, 10, 1, 3)),
            ("fallback insert", _FALLBACK_SQL, ("email", "x@example.edu", "", 10, 1)),
            ("renew", self._renew_sql(2), (20, 1, 2, "o")),
            ("release owner", _RELEASE_OWNER_SQL, ("o",)),
            # A page smaller than the engine's 500: PostgreSQL sorts a due range it expects
            # to be no bigger than the page instead of reading it in order (still one page).
            ("waiting", _WAITING_SQL, ("sms", 0, 10, 100)),
            ("divert", self._divert_sql(2), ("gone", 10, 1, 2, "sms")),
            ("expire overdue", self._expire_sql(), (10, 10)),
            ("suppress cancelled", self._suppress_sql(), (10,)),
            ("counts", _COUNTS_SQL, ("a1",)),
        )

    async def renew(self, owner: str, ids: Sequence[int], until_ms: int) -> int:
        """Extend the lease on deliveries this owner is still sending; returns how many."""
        if not ids:
            return 0
        # Rows a settle is writing right now are skipped, not waited for: waiting while holding
        # the rows renewed so far could deadlock with that settle.
        return await self._db.execute(self._renew_sql(len(ids)), (until_ms, *sorted(ids), owner))

    def _renew_sql(self, n: int) -> str:
        marks = ",".join("?" * n)
        return "UPDATE deliveries SET lease_until = ? WHERE " + self._unlocked(
            f"id IN ({marks}) AND lease_owner = ? AND state = 'sending'"
        )

    def _unlocked(self, where: str) -> str:
        """A multi-row UPDATE's condition that skips rows another transaction is writing.

        PostgreSQL locks rows one by one as an UPDATE finds them, so two multi-row writers
        could each wait for the other; skipping what is locked avoids that (the skipped rows
        are being sent or settled, and the next sweep sees them). SQLite has one writer.
        """
        if self._db.dialect != "postgres":
            return where
        # ARRAY(...) runs the locking SELECT once, through the indexes of `where`, and the
        # UPDATE then finds each row by its primary key: never a scan of the table.
        return f"id = ANY(ARRAY(SELECT id FROM deliveries WHERE {where} FOR UPDATE SKIP LOCKED))"

    async def release_owner(self, owner: str) -> int:
        """Hand back (as queued) everything an owner still holds: graceful shutdown or restart."""
        return await self._db.execute(_RELEASE_OWNER_SQL, (owner,))

    async def release_all(self) -> int:
        """Hand back every claim: for a store only this process uses (SQLite) at start."""
        return await self._db.execute(
            "UPDATE deliveries SET state = 'queued', lease_owner = NULL, lease_until = NULL"
            " WHERE state = 'sending'"
        )

    async def settle(
        self,
        channel: ChannelKind,
        claimed: Sequence[Claimed],
        receipts: Sequence[Receipt],
        *,
        now_ms: int,
        deadlines: dict[str, int],
        fallbacks: Sequence[Fallback] = (),
    ) -> Settled:
        """Write the receipts of a sent batch and schedule retries inside each alert's deadline.

        `fallbacks` are queued in the same transaction, for the origins that end failed, so no
        process can see the alert finished between the failure and its fallback.
        """
        by_id = {c.id: c for c in claimed}
        updates: list[tuple[Any, ...]] = []
        deferred: list[tuple[Any, ...]] = []
        log_rows: list[tuple[Any, ...]] = []
        counts = {"accepted": 0, "delivered": 0, "failed": 0, "retried": 0}
        failed_ids: list[int] = []
        for receipt in receipts:
            c = by_id[receipt.delivery_id]
            outcome, detail, next_at = receipt.outcome, receipt.detail, 0
            if outcome is Outcome.DEFERRED:
                # Never handed over: back to the queue as it was, the try not counted.
                deferred.append((now_ms, c.id))
                continue
            if outcome is Outcome.RETRY:
                wait_ms = int(
                    self._retry.delay_s(c.attempts, receipt.retry_after_s, self._rng) * 1000
                )
                next_at = now_ms + wait_ms
                if next_at >= deadlines[c.alert_id]:
                    outcome = Outcome.FAILED
                    detail = f"deadline passed after {c.attempts} attempts: {detail}"
            state = {
                Outcome.ACCEPTED: DeliveryState.ACCEPTED,
                Outcome.DELIVERED: DeliveryState.DELIVERED,
                Outcome.FAILED: DeliveryState.FAILED,
                Outcome.RETRY: DeliveryState.QUEUED,
            }[outcome]
            counts["retried" if outcome is Outcome.RETRY else outcome.value] += 1
            if outcome is Outcome.FAILED:
                failed_ids.append(c.id)
            updates.append(
                (state.value, receipt.provider_ref or None, detail or None, next_at, now_ms, c.id)
            )
            status = "retry_scheduled" if outcome is Outcome.RETRY else outcome.value
            log_rows.append(
                (c.id, c.alert_id, channel.value, status, detail, receipt.provider_ref, now_ms)
            )
        # Rows are written in id order: two settles of the same rows (a lease taken over while
        # its batch was still out) lock them alike and never deadlock.
        updates.sort(key=lambda u: int(u[-1]))
        deferred.sort(key=lambda u: int(u[-1]))
        async with self._db.transaction() as tx:
            # Only rows still 'sending' move: a callback that already said more wins.
            await tx.executemany(_SETTLE_SQL, updates)
            if deferred:
                await tx.executemany(_DEFER_SQL, deferred)
            await _insert_receipts(tx, log_rows)
            added = await _insert_fallbacks(tx, fallbacks, now_ms)
        self._changed(c.alert_id for c in claimed)
        return Settled(
            failed_ids=tuple(failed_ids), fallbacks=added, deferred=len(deferred), **counts
        )

    async def record_late(
        self,
        channel: ChannelKind,
        outcome: Outcome,
        *,
        delivery_id: int | None = None,
        provider_ref: str | None = None,
        alert_id: str | None = None,
        recipient: str | None = None,
        detail: str = "",
        now_ms: int,
    ) -> LateResult | None:
        """Record a receipt that came after the send (a callback, a device ack): which delivery
        it was and whether its state moved; None when no delivery matches."""
        receipt = LateReceipt(channel, outcome, delivery_id, provider_ref, alert_id, recipient,
                              detail)
        (found,) = await self.record_late_many([receipt], now_ms)
        return found

    async def record_late_many(
        self, receipts: Sequence[LateReceipt], now_ms: int
    ) -> list[LateResult | None]:
        """Record many late receipts in one transaction (a group commit), in order.

        Returns, for each receipt, what it found and did (None: no such delivery). A state
        only ever advances (see `_RANK`), also against a concurrent writer on another node.
        Receipts go ahead of the other writers waiting (a resolver's large enqueues among
        them), so a device's ack is not held up by an audience being written.
        """
        async with self._db.transaction(urgent=True) as tx:
            rows = await _find_late(tx, receipts)
            states: dict[int, DeliveryState] = {}
            changes: dict[int, tuple[Any, ...]] = {}
            log_rows: list[tuple[Any, ...]] = []
            results: list[LateResult | None] = []
            for receipt, row in zip(receipts, rows, strict=True):
                if row is None:
                    results.append(None)
                    continue
                did = int(row["id"])
                current = states.get(did) or DeliveryState(row["state"])
                if receipt.channel.is_device and current is DeliveryState.QUEUED:
                    results.append(LateResult(row["alert_id"], did, row["recipient"], current,
                                              False, early=True))
                    continue
                target = _LATE_STATE.get(receipt.outcome, current)
                changed = _advances(current, target)
                if changed:
                    states[did] = target
                    ref = receipt.provider_ref or (changes[did][1] if did in changes else None)
                    changes[did] = (target.value, ref, receipt.detail or None, now_ms, did,
                                    _RANK[target])
                log_rows.append((did, row["alert_id"], receipt.channel.value,
                                 receipt.outcome.value, receipt.detail,
                                 receipt.provider_ref or "", now_ms))
                results.append(LateResult(row["alert_id"], did, row["recipient"],
                                          target if changed else current, changed))
            if changes:
                # In id order, so two nodes writing the same rows lock them alike.
                await tx.executemany(_LATE_SQL, [changes[did] for did in sorted(changes)])
            await _insert_receipts(tx, log_rows)
        self._changed(r.alert_id for r in results if r is not None and r.changed)
        return results

    async def add_fallbacks(self, fallbacks: Sequence[Fallback], now_ms: int) -> int:
        """Queue fallback deliveries for origins that failed; returns how many were new."""
        if not fallbacks:
            return 0
        async with self._db.transaction() as tx:
            return await _insert_fallbacks(tx, fallbacks, now_ms)

    async def waiting(
        self, channel: ChannelKind, *, now_ms: int, after: int = 0, limit: int = 500
    ) -> list[Waiting]:
        """Queued deliveries of a channel for live alerts, in id order after a cursor."""
        rows = await self._db.fetchall(_WAITING_SQL, (channel.value, after, now_ms, limit))
        return [Waiting(r["id"], r["alert_id"], r["recipient"]) for r in rows]

    async def divert(
        self, channel: ChannelKind, fallbacks: Sequence[Fallback], *, detail: str, now_ms: int
    ) -> int:
        """Give queued deliveries up to their fallbacks (their own channel is unavailable).

        Only origins still queued move, so a batch another process claimed meanwhile is left
        alone; returns how many fallback deliveries were queued.
        """
        if not fallbacks:
            return 0
        ids = [f.origin for f in fallbacks]
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                self._divert_sql(len(ids)), (detail, now_ms, *ids, channel.value)
            )
            moved = {r["id"]: r["alert_id"] for r in rows}
            await _insert_receipts(
                tx,
                [(i, a, channel.value, DeliveryState.FAILED.value, detail, "", now_ms)
                 for i, a in moved.items()],
            )
            added = await _insert_fallbacks(
                tx, [f for f in fallbacks if f.origin in moved], now_ms
            )
        self._changed(moved.values())
        return added

    def _divert_sql(self, n: int) -> str:
        marks = ",".join("?" * n)
        return (
            "UPDATE deliveries SET state = 'failed', detail = ?, updated_at = ? WHERE "
            + self._unlocked(f"id IN ({marks}) AND state = 'queued' AND channel = ?")
            + " RETURNING id, alert_id"
        )

    async def expire_overdue(self, now_ms: int) -> int:
        """Fail queued deliveries whose alert's deadline passed: nothing will send them now."""
        return await self._db.execute(self._expire_sql(), (now_ms, now_ms))

    def _expire_sql(self) -> str:
        return (
            "UPDATE deliveries SET state = 'failed', detail = 'deadline passed before sending',"
            " updated_at = ? WHERE "
            + self._unlocked(
                "state = 'queued' AND alert_id IN (SELECT id FROM alerts"
                " WHERE state != 'cancelled' AND expires_at <= ?)"
            )
        )

    async def suppress_cancelled(self, now_ms: int) -> int:
        """Suppress deliveries requeued for a retry after their alert was cancelled."""
        return await self._db.execute(self._suppress_sql(), (now_ms,))

    def _suppress_sql(self) -> str:
        return (
            "UPDATE deliveries SET state = 'suppressed', detail = 'alert cancelled',"
            " updated_at = ? WHERE "
            + self._unlocked(
                "state = 'queued' AND alert_id IN (SELECT id FROM alerts WHERE state = 'cancelled')"
            )
        )

    async def contacts(self, recipients: Iterable[str]) -> dict[str, Row]:
        """People by id with their addresses and preferences (for choosing a fallback)."""
        ids = sorted(set(recipients))
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        rows = await self._db.fetchall(
            "SELECT id, email, phone, push, role, channels, opt_out, quiet_hours"
            f" FROM people WHERE id IN ({marks})",
            ids,
        )
        return {r["id"]: r for r in rows}

    async def counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        """Per channel: a count per state, and `total`, the deliveries to make (not suppressed)."""
        rows = await self._db.fetchall(_COUNTS_SQL, (alert_id,))
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            n = int(r["n"])
            if n == 0:
                continue
            entry = out.setdefault(r["channel"], {"total": 0, **dict.fromkeys(STATES, 0)})
            entry[r["state"]] += n
            if r["state"] != DeliveryState.SUPPRESSED.value:
                entry["total"] += n
        return out

    async def recount(self, alert_id: str) -> dict[str, dict[str, int]]:
        """`counts` computed from the deliveries themselves (O(alert)): for checks, not for
        the hot path."""
        rows = await self._db.fetchall(
            "SELECT channel, state, COUNT(*) AS n FROM deliveries WHERE alert_id = ?"
            " GROUP BY channel, state",
            (alert_id,),
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            entry = out.setdefault(r["channel"], {"total": 0, **dict.fromkeys(STATES, 0)})
            entry[r["state"]] += int(r["n"])
            if r["state"] != DeliveryState.SUPPRESSED.value:
                entry["total"] += int(r["n"])
        return out

    async def fold_counts(self, limit: int = 200) -> int:
        """Sum each alert's appended count rows into one per (channel, state) (PostgreSQL,
        where triggers append them; SQLite keeps one row each already). Returns how many
        alerts were folded; the sweep calls it, so `counts` reads a few rows per alert."""
        if self._db.dialect != "postgres":
            return 0
        async with self._db.transaction() as tx:
            # One folder at a time: two would delete the same rows in different orders.
            await tx.lock("delivery_counts")
            rows = await tx.fetchall(
                "SELECT DISTINCT alert_id FROM delivery_counts WHERE NOT folded LIMIT ?",
                (limit,),
            )
            alerts = sorted(r["alert_id"] for r in rows)
            if alerts:
                # Rows appended by transactions that commit meanwhile are not seen by the
                # DELETE, so they stay, and the sum stays exact.
                await tx.execute(
                    f"WITH gone AS (DELETE FROM delivery_counts WHERE alert_id IN"
                    f" ({_marks(alerts)}) RETURNING alert_id, channel, state, n)"
                    " INSERT INTO delivery_counts (alert_id, channel, state, n, folded)"
                    " SELECT alert_id, channel, state, SUM(n), TRUE FROM gone"
                    " GROUP BY alert_id, channel, state HAVING SUM(n) <> 0",
                    alerts,
                )
        return len(alerts)

    async def page(
        self,
        alert_id: str,
        *,
        after: int = 0,
        limit: int = 100,
        channel: ChannelKind | None = None,
        state: DeliveryState | None = None,
    ) -> list[dict[str, Any]]:
        """Deliveries of an alert in id order, after a cursor; contact details are not returned."""
        sql = (
            "SELECT id, channel, recipient, role, language, state, attempts, provider_ref, detail,"
            " updated_at FROM deliveries WHERE alert_id = ? AND id > ?"
        )
        params: list[Any] = [alert_id, after]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel.value)
        if state is not None:
            sql += " AND state = ?"
            params.append(state.value)
        rows = await self._db.fetchall(sql + " ORDER BY id LIMIT ?", (*params, limit))
        found: list[Any] = rows
        return [dict(zip(r.keys(), tuple(r), strict=True)) for r in found]

    async def delivery(self, delivery_id: int) -> DeliveryRef | None:
        """One delivery by id (no contact details), None when there is none."""
        row = await self._db.fetchone(
            "SELECT id, alert_id, channel, recipient, language, state FROM deliveries"
            " WHERE id = ?",
            (delivery_id,),
        )
        if row is None:
            return None
        return DeliveryRef(
            int(row["id"]), row["alert_id"], ChannelKind(row["channel"]), row["recipient"],
            row["language"] or "en", DeliveryState(row["state"]),
        )

    async def receipts(self, delivery_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Receipt history for some deliveries."""
        ids = list(delivery_ids)
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        rows = await self._db.fetchall(
            f"SELECT delivery_id, status, detail, at FROM receipts WHERE delivery_id IN ({marks})"
            " ORDER BY id",
            ids,
        )
        out: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["delivery_id"], []).append(
                {"status": r["status"], "detail": r["detail"], "at": r["at"]}
            )
        return out


_RANK = {
    DeliveryState.QUEUED: 0,
    DeliveryState.SENDING: 0,
    DeliveryState.ACCEPTED: 1,
    DeliveryState.FAILED: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.SUPPRESSED: 4,
}


# The same ranks in SQL, so an UPDATE never moves a row another writer has advanced.
_RANK_SQL = "(CASE state {} ELSE {} END)".format(
    " ".join(f"WHEN '{state.value}' THEN {rank}" for state, rank in _RANK.items()),
    max(_RANK.values()),
)
_SETTLE_SQL = (
    "UPDATE deliveries SET state = ?, provider_ref = COALESCE(?, provider_ref),"
    " detail = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL,"
    " updated_at = ? WHERE id = ? AND state = 'sending'"
)
# A new delivery takes its alert's urgency (0, the most urgent, for an alert not stored).
_URGENCY_OF = "COALESCE((SELECT a.urgency FROM alerts a WHERE a.id = ?), 0)"
_DEFER_SQL = (
    "UPDATE deliveries SET state = 'queued',"
    " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,"
    " next_attempt_at = ?, lease_owner = NULL, lease_until = NULL"
    " WHERE id = ? AND state = 'sending'"
)
# The most urgent due queued row of a live alert, and the most urgent row in flight: the
# first entry of each partial index (the in-flight one is as small as the batches out).
# The most urgent due queued row of a live alert on a channel: the first entry of the queued
# index (channel, urgency, next_attempt_at, id), read by `front` and inside every claim.
_FIRST_DUE_QUEUED = (
    " FROM deliveries f WHERE f.channel = ? AND f.state = 'queued' AND f.next_attempt_at <= ?"
    " AND (SELECT a.state FROM alerts a WHERE a.id = f.alert_id) <> 'cancelled'"
    " ORDER BY f.urgency, f.next_attempt_at, f.id LIMIT 1"
)
_FRONT_QUEUED_SQL = "SELECT f.urgency, f.alert_id" + _FIRST_DUE_QUEUED
# Where the class of that row ends (its first urgency past it); NULL when none is due.
_FRONT_CLASS_END = (
    f"SELECT (f.urgency / {RANK_CLASS_SPAN} + 1) * {RANK_CLASS_SPAN}" + _FIRST_DUE_QUEUED
)
_FRONT_SENDING_SQL = (
    "SELECT d.urgency, d.alert_id FROM deliveries d WHERE d.channel = ? AND d.state = 'sending'"
    " ORDER BY d.urgency LIMIT 1"
)
_UNSETTLED_SQL = (
    "SELECT id, alert_id, provider_ref, updated_at FROM deliveries WHERE channel = ?"
    " AND state = 'accepted' AND updated_at < ? ORDER BY updated_at, id LIMIT ?"
)
_LATE_COLUMNS = "SELECT id, alert_id, channel, recipient, state, provider_ref FROM deliveries"
_LATE_SQL = (
    "UPDATE deliveries SET state = ?, provider_ref = COALESCE(?, provider_ref),"
    " detail = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?"
    f" WHERE id = ? AND {_RANK_SQL} < ?"
)
_FALLBACK_SQL = (
    "INSERT INTO deliveries (alert_id, channel, recipient, address, language, role,"
    " state, detail, updated_at, urgency) SELECT o.alert_id, ?, o.recipient, ?, o.language,"
    " o.role, 'queued', ?, ?, o.urgency FROM deliveries o WHERE o.id = ? AND o.state = 'failed'"
    " ON CONFLICT (alert_id, channel, recipient) DO NOTHING RETURNING id, alert_id"
)
_RELEASE_OWNER_SQL = (
    "UPDATE deliveries SET state = 'queued', lease_owner = NULL, lease_until = NULL"
    " WHERE state = 'sending' AND lease_owner = ?"
)
# The alert is probed per row by its primary key rather than joined, for the reason given in
# `_claim_sql`: the page is then read in index order, never sorted.
_WAITING_SQL = (
    "SELECT d.id, d.alert_id, d.recipient FROM deliveries d WHERE d.channel = ?"
    " AND d.state = 'queued' AND d.id > ? AND (SELECT a.state <> 'cancelled'"
    " AND a.expires_at > ? FROM alerts a WHERE a.id = d.alert_id) ORDER BY d.id LIMIT ?"
)
# Progress from the counters the triggers of migration 0007 keep, never from the deliveries.
_COUNTS_SQL = (
    "SELECT channel, state, SUM(n) AS n FROM delivery_counts WHERE alert_id = ?"
    " GROUP BY channel, state"
)
_LATE_STATE = {
    Outcome.ACCEPTED: DeliveryState.ACCEPTED,
    Outcome.DELIVERED: DeliveryState.DELIVERED,
    Outcome.FAILED: DeliveryState.FAILED,
}
# Values per IN (...) list: well under both drivers' limits on parameters.
_IN_CHUNK = 500


async def _find_late(tx: Session, receipts: Sequence[LateReceipt]) -> list[Row | None]:
    """Each receipt's delivery row (id, alert_id, recipient, state), None when there is none:
    one query per kind of key and per chunk, not one per receipt."""
    columns = _LATE_COLUMNS
    by_id: dict[int, Row] = {}
    by_ref: dict[tuple[str, str], Row] = {}
    by_recipient: dict[tuple[str, str, str], Row] = {}
    ids = sorted({r.delivery_id for r in receipts if r.delivery_id is not None})
    refs = sorted({r.provider_ref for r in receipts
                   if r.delivery_id is None and r.provider_ref})
    people: dict[tuple[str, str], set[str]] = {}
    for r in receipts:
        if r.delivery_id is None and not r.provider_ref and r.alert_id and r.recipient:
            people.setdefault((r.alert_id, r.channel.value), set()).add(r.recipient)
    for part in _chunks(ids):
        for row in await tx.fetchall(f"{columns} WHERE id IN ({_marks(part)})", part):
            by_id[int(row["id"])] = row
    for part in _chunks(refs):
        for row in await tx.fetchall(f"{columns} WHERE provider_ref IN ({_marks(part)})", part):
            by_ref.setdefault((row["provider_ref"], row["channel"]), row)
    for (alert_id, channel), recipients in sorted(people.items()):
        for part in _chunks(sorted(recipients)):
            # The whole unique key (alert, channel, recipient): one probe per person.
            for row in await tx.fetchall(
                f"{columns} WHERE alert_id = ? AND channel = ? AND recipient IN ({_marks(part)})",
                [alert_id, channel, *part],
            ):
                by_recipient[(row["alert_id"], row["channel"], row["recipient"])] = row
    found: list[Row | None] = []
    for r in receipts:
        channel = r.channel.value
        if r.delivery_id is not None:
            hit = by_id.get(r.delivery_id)
            found.append(hit if hit is not None and hit["channel"] == channel else None)
        elif r.provider_ref:
            found.append(by_ref.get((r.provider_ref, channel)))
        elif r.alert_id and r.recipient:
            found.append(by_recipient.get((r.alert_id, channel, r.recipient)))
        else:
            found.append(None)
    return found


def _chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield list(values[start : start + _IN_CHUNK])


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _advances(current: DeliveryState, target: DeliveryState) -> bool:
    # delivered outranks failed: a device ack after its ack timeout still proves delivery.
    return _RANK[target] > _RANK[current]


async def _insert_fallbacks(tx: Session, fallbacks: Sequence[Fallback], now_ms: int) -> int:
    """Queue each fallback whose origin ended failed, unless the person already has a delivery
    on that channel for the alert; both get a receipt saying what happened."""
    added = 0
    receipts: list[tuple[Any, ...]] = []
    for f in fallbacks:
        rows = await tx.fetchall(
            _FALLBACK_SQL, (f.channel.value, f.address, f.detail, now_ms, f.origin)
        )
        for row in rows:
            added += 1
            receipts.append(
                (row["id"], row["alert_id"], f.channel.value, FALLBACK, f.detail, "", now_ms)
            )
            receipts.append(
                (f.origin, row["alert_id"], f.origin_channel.value, FALLBACK,
                 f"fell back to {f.channel.value}", "", now_ms)
            )
    await _insert_receipts(tx, receipts)
    return added


async def _insert_receipts(tx: Session, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    await tx.executemany(
        "INSERT INTO receipts (delivery_id, alert_id, channel, status, detail, provider_ref, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )

