"""Upstream feed relaying: each upstream message claimed once in `feed_messages` (INSERT ...
ON CONFLICT DO NOTHING), the thread of one upstream alert and its campus alert in
`feed_threads`, every decision in `feed_events` (audited too), and `feed_proposals`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row


class ThreadState(StrEnum):
    """Where the campus side of one upstream alert stands."""

    ACTIVE = "active"
    PROPOSED = "proposed"
    IGNORED = "ignored"
    CLEARED = "cleared"


class ProposalState(StrEnum):
    """A draft alert from a feed: waiting, sent by a dispatcher, or dismissed."""

    PENDING = "pending"
    SENT = "sent"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class FeedThread:
    """One upstream alert and the messages that updated it, with the campus alert made of it."""

    thread_key: str
    feed: str
    event: str
    area_key: str
    instruction_key: str
    zones: tuple[str, ...] | None
    alert_id: str | None
    proposal_id: str | None
    state: ThreadState
    expires_at: int | None
    updated_at: int
    approval_id: str | None = None
    """The held request when the campus alert waits for a second person's approval."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One relay decision: what came in, what was done, and why."""

    id: int
    at: int
    feed: str
    message_key: str
    thread_key: str
    event: str
    outcome: str
    reason: str
    alert_id: str | None
    proposal_id: str | None

    def as_json(self) -> dict[str, Any]:
        """The decision as `GET /v1/feeds/events` shows it."""
        return {
            "id": self.id, "at": self.at, "feed": self.feed, "message": self.message_key,
            "thread": self.thread_key, "event": self.event, "outcome": self.outcome,
            "reason": self.reason, "alert_id": self.alert_id, "proposal_id": self.proposal_id,
        }


@dataclass(frozen=True, slots=True)
class FeedProposal:
    """A draft campus alert from a feed, waiting for one click by a dispatcher."""

    id: str
    thread_key: str
    feed: str
    message_key: str
    event: str
    request: dict[str, Any]
    source: str
    state: ProposalState
    created_at: int
    decided_by: str | None
    decided_at: int | None
    alert_id: str | None

    def as_json(self, *, source: bool = True) -> dict[str, Any]:
        """The proposal as the API shows it, with the upstream document unless asked not to."""
        out: dict[str, Any] = {
            "id": self.id, "feed": self.feed, "event": self.event, "upstream": self.message_key,
            "state": self.state.value, "created_at": self.created_at, "request": self.request,
            "decided_by": self.decided_by, "decided_at": self.decided_at,
            "alert_id": self.alert_id,
        }
        if source:
            out["source"] = self.source
        return out


_THREAD = ("thread_key, feed, event, area_key, instruction_key, zones, alert_id, proposal_id,"
           " state, expires_at, updated_at, approval_id")
_EVENT = ("id, at, feed, message_key, thread_key, event, outcome, reason, alert_id,"
          " proposal_id")
_PROPOSAL = ("id, thread_key, feed, message_key, event, request, source, state, created_at,"
             " decided_by, decided_at, alert_id")


def _thread(row: Row) -> FeedThread:
    zones = row["zones"]
    return FeedThread(
        row["thread_key"], row["feed"], row["event"], row["area_key"], row["instruction_key"],
        tuple(json.loads(zones)) if zones is not None else None, row["alert_id"],
        row["proposal_id"], ThreadState(row["state"]), row["expires_at"], int(row["updated_at"]),
        row["approval_id"],
    )


def _event(row: Row) -> FeedEvent:
    return FeedEvent(
        int(row["id"]), int(row["at"]), row["feed"], row["message_key"], row["thread_key"],
        row["event"], row["outcome"], row["reason"], row["alert_id"], row["proposal_id"],
    )


def _proposal(row: Row) -> FeedProposal:
    return FeedProposal(
        row["id"], row["thread_key"], row["feed"], row["message_key"], row["event"],
        json.loads(row["request"]), row["source"], ProposalState(row["state"]),
        int(row["created_at"]), row["decided_by"], row["decided_at"], row["alert_id"],
    )


class FeedStore:
    """What the feed relay remembers, shared by every node on one store."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def claim_message(
        self, message_key: str, thread_key: str, feed: str, *, owner: str, now_ms: int
    ) -> bool:
        """Take an upstream message to decide; False when it was decided (here or elsewhere)."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO feed_messages (message_key, thread_key, feed, claimed_by, claimed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_key) DO NOTHING"
                " RETURNING message_key",
                (message_key, thread_key, feed, owner, now_ms),
            )
        return bool(rows)

    async def seen(self, message_key: str) -> bool:
        """Whether an upstream message was already claimed."""
        return await self._db.fetchval(
            "SELECT 1 FROM feed_messages WHERE message_key = ?", (message_key,)
        ) is not None

    async def thread_of(self, message_keys: list[str]) -> str | None:
        """The thread an earlier message (one this one references) belongs to."""
        for key in message_keys:
            found = await self._db.fetchval(
                "SELECT thread_key FROM feed_messages WHERE message_key = ?", (key,)
            )
            if found is not None:
                return str(found)
        return None

    async def thread(self, thread_key: str) -> FeedThread | None:
        """One thread by key."""
        row = await self._db.fetchone(
            f"SELECT {_THREAD} FROM feed_threads WHERE thread_key = ?", (thread_key,)
        )
        return _thread(row) if row is not None else None

    async def save_thread(self, thread: FeedThread) -> None:
        """Write a thread's current state."""
        zones = json.dumps(list(thread.zones)) if thread.zones is not None else None
        await self._db.execute(
            f"INSERT INTO feed_threads ({_THREAD}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (thread_key) DO UPDATE SET event = excluded.event,"
            " area_key = excluded.area_key, instruction_key = excluded.instruction_key,"
            " zones = excluded.zones, alert_id = excluded.alert_id,"
            " proposal_id = excluded.proposal_id, state = excluded.state,"
            " expires_at = excluded.expires_at, updated_at = excluded.updated_at,"
            " approval_id = excluded.approval_id",
            (thread.thread_key, thread.feed, thread.event, thread.area_key,
             thread.instruction_key, zones, thread.alert_id, thread.proposal_id,
             thread.state.value, thread.expires_at, thread.updated_at, thread.approval_id),
        )

    async def expired_threads(self, now_ms: int) -> list[FeedThread]:
        """Threads still sent or waiting whose upstream alert has expired: to be cleared."""
        rows = await self._db.fetchall(
            f"SELECT {_THREAD} FROM feed_threads WHERE state IN (?, ?) AND expires_at IS NOT NULL"
            " AND expires_at <= ?",
            (ThreadState.ACTIVE.value, ThreadState.PROPOSED.value, now_ms),
        )
        return [_thread(r) for r in rows]

    async def take_expired(self, thread: FeedThread, now_ms: int) -> bool:
        """Mark an expired thread cleared if it is still as read; False when another node (or
        an upstream cancel) got there first, so each expiry is cleared and recorded once."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE feed_threads SET state = ?, updated_at = ? WHERE thread_key = ?"
                " AND state = ? AND updated_at = ? RETURNING thread_key",
                (ThreadState.CLEARED.value, now_ms, thread.thread_key, thread.state.value,
                 thread.updated_at),
            )
        return bool(rows)

    async def recent_relay(
        self, event: str, area_key: str, since_ms: int, other_than: str
    ) -> FeedEvent | None:
        """The latest relay (sent or proposed) of this event for this area since a moment."""
        row = await self._db.fetchone(
            f"SELECT {_EVENT} FROM feed_events WHERE event = ? AND area_key = ? AND at >= ?"
            " AND outcome IN ('sent', 'proposed') AND thread_key <> ? ORDER BY at DESC LIMIT 1",
            (event, area_key, since_ms, other_than),
        )
        return _event(row) if row is not None else None

    async def record(
        self,
        *,
        at: int,
        feed: str,
        message_key: str,
        thread_key: str,
        event: str,
        area_key: str,
        outcome: str,
        reason: str,
        alert_id: str | None = None,
        proposal_id: str | None = None,
    ) -> FeedEvent:
        """Record one decision, with its audit entry, in one transaction."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO feed_events (at, feed, message_key, thread_key, event, area_key,"
                " outcome, reason, alert_id, proposal_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {_EVENT}",
                (at, feed, message_key, thread_key, event, area_key, outcome, reason[:2000],
                 alert_id, proposal_id),
            )
            await self._audit.append(
                tx, at=at, actor=f"feed:{feed}", action=f"feed.{outcome}", alert_id=alert_id,
                detail={"upstream": message_key, "event": event, "reason": reason[:2000],
                        "proposal_id": proposal_id},
            )
        return _event(rows[0])

    async def events(self, *, limit: int = 100, before_id: int | None = None) -> list[FeedEvent]:
        """Decisions, newest first, a page at a time."""
        rows = await self._db.fetchall(
            f"SELECT {_EVENT} FROM feed_events WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        )
        return [_event(r) for r in rows]

    async def propose(
        self,
        *,
        thread_key: str,
        feed: str,
        message_key: str,
        event: str,
        request: dict[str, Any],
        source: str,
        now_ms: int,
    ) -> FeedProposal:
        """Store a draft alert waiting for a dispatcher."""
        proposal_id = f"fp_{secrets.token_hex(8)}"
        await self._db.execute(
            f"INSERT INTO feed_proposals ({_PROPOSAL}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (proposal_id, thread_key, feed, message_key, event, json.dumps(request), source,
             ProposalState.PENDING.value, now_ms, None, None, None),
        )
        found = await self.proposal(proposal_id)
        assert found is not None
        return found

    async def proposal(self, proposal_id: str) -> FeedProposal | None:
        """One proposal by id."""
        row = await self._db.fetchone(
            f"SELECT {_PROPOSAL} FROM feed_proposals WHERE id = ?", (proposal_id,)
        )
        return _proposal(row) if row is not None else None

    async def proposals(self, state: ProposalState | None = ProposalState.PENDING,
                        limit: int = 100) -> list[FeedProposal]:
        """Proposals in a state (all with None), newest first."""
        if state is None:
            rows = await self._db.fetchall(
                f"SELECT {_PROPOSAL} FROM feed_proposals ORDER BY created_at DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_PROPOSAL} FROM feed_proposals WHERE state = ?"
                " ORDER BY created_at DESC LIMIT ?",
                (state.value, limit),
            )
        return [_proposal(r) for r in rows]

    async def decide_proposal(
        self, proposal_id: str, state: ProposalState, *, actor: str, now_ms: int
    ) -> bool:
        """Move a pending proposal to sent or dismissed; False when it was not pending."""
        changed = await self._db.execute(
            "UPDATE feed_proposals SET state = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ? AND state = ?",
            (state.value, actor, now_ms, proposal_id, ProposalState.PENDING.value),
        )
        return changed > 0

    async def proposal_sent(self, proposal_id: str, alert_id: str) -> None:
        """The campus alert a sent proposal became."""
        await self._db.execute(
            "UPDATE feed_proposals SET alert_id = ? WHERE id = ?", (alert_id, proposal_id)
        )

    async def reopen_proposal(self, proposal_id: str) -> None:
        """Back to pending: sending it was refused."""
        await self._db.execute(
            "UPDATE feed_proposals SET state = ?, decided_by = NULL, decided_at = NULL"
            " WHERE id = ?",
            (ProposalState.PENDING.value, proposal_id),
        )
