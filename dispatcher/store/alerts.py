"""Alerts and every version of their content, written with their audit entry in one transaction."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dispatcher.alerting.rendering import Rendered
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import AlertKind, AlertState, ChannelKind, Message, Mode, urgency_rank
from dispatcher.refusals import Conflict
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row
from dispatcher.store.incidents import link_alert_in

# The completion check, run after every batch and receipt group: it reads the alert's
# delivery counters (kept by triggers in the transaction of each change, migration 0007), a
# few rows whatever the size of the alert (its plan is in test_query_plans.py).
MARK_DONE_SQL = (
    "UPDATE alerts SET state = ?, done_at = ? WHERE id = ? AND state = ?"
    " AND resolved_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM delivery_counts"
    " WHERE alert_id = ? AND state IN ('queued', 'sending') GROUP BY channel, state"
    " HAVING SUM(n) > 0)"
)

class IdempotencyConflict(Conflict):
    """The Idempotency-Key was used before with another body."""

    def __init__(self, alert_id: str) -> None:
        super().__init__(
            f"Idempotency-Key already used for alert {alert_id} with another body",
            existing_id=alert_id,
        )
        self.alert_id = alert_id


def new_alert_id(now_ms: int) -> str:
    """Time-ordered, unguessable: 12 hex digits of milliseconds and 8 random."""
    return f"{now_ms:012x}{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as stored."""

    id: str
    kind: AlertKind
    mode: Mode
    state: AlertState
    audience: str
    zones: tuple[str, ...]
    exclude_zones: tuple[str, ...]
    channels: tuple[ChannelKind, ...]
    content_version: int
    references_id: str | None
    created_by: str
    created_at: int
    expires_at: int
    request: AlertRequest
    rendered: Rendered
    confirmed_at: int | None = None
    sending_at: int | None = None
    resolved_at: int | None = None
    done_at: int | None = None
    audience_counts: dict[str, Any] = field(default_factory=dict)
    clery: dict[str, Any] = field(default_factory=dict)

    @property
    def urgency(self) -> int:
        """The alert's place in the order of urgency across alerts: lower goes first."""
        return urgency_rank(self.kind, self.mode, self.created_at)


@dataclass(frozen=True, slots=True)
class ContentVersion:
    """One version of an alert's content: the request as it was sent, and who wrote it."""

    version: int
    created_at: int
    created_by: str
    request: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Supersession:
    """A stored alert that replaces or clears others: an update, or an all clear."""

    id: str
    references_id: str | None
    kind: AlertKind
    mode: Mode
    created_at: int


def rendered_to_json(rendered: Rendered) -> str:
    """Serialize per-channel, per-language renderings."""
    return json.dumps(
        {
            ch.value: {lang: asdict(m) for lang, m in by_lang.items()}
            for ch, by_lang in rendered.items()
        }
    )


def rendered_from_json(text: str) -> Rendered:
    """Read back what rendered_to_json wrote."""
    raw = json.loads(text)
    return {
        ChannelKind(ch): {lang: Message(**m) for lang, m in by_lang.items()}
        for ch, by_lang in raw.items()
    }


_COLUMNS = (
    "a.id, a.kind, a.mode, a.state, a.audience, a.zones, a.channels, a.content_version,"
    " a.references_id, a.created_by, a.created_at, a.confirmed_at, a.sending_at,"
    " a.resolved_at, a.done_at, a.expires_at, a.audience_counts, a.clery,"
    " v.request, v.rendered"
)
_FROM = (
    " FROM alerts a JOIN alert_versions v ON v.alert_id = a.id AND v.version = a.content_version"
)


def _record(row: Row) -> AlertRecord:
    zones = json.loads(row["zones"])
    return AlertRecord(
        id=row["id"],
        kind=AlertKind(row["kind"]),
        mode=Mode(row["mode"]),
        state=AlertState(row["state"]),
        audience=row["audience"],
        zones=tuple(zones.get("include", ())),
        exclude_zones=tuple(zones.get("exclude", ())),
        channels=tuple(ChannelKind(c) for c in json.loads(row["channels"])),
        content_version=row["content_version"],
        references_id=row["references_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        request=AlertRequest.model_validate_json(row["request"]),
        rendered=rendered_from_json(row["rendered"]),
        confirmed_at=row["confirmed_at"],
        sending_at=row["sending_at"],
        resolved_at=row["resolved_at"],
        done_at=row["done_at"],
        audience_counts=json.loads(row["audience_counts"]),
        clery=json.loads(row["clery"]),
    )


class AlertStore:
    """Reads and writes alerts; every write that matters carries its audit entry."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._listeners: list[Callable[[str], None]] = []
        self._progress_listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None], *, progress: bool = False) -> None:
        """Call `listener(alert_id)` after each committed create or cancel (the public
        snapshot rebuilds on it), and with `progress` also after each step of dispatching
        (sending began, audience resolved, done); listeners must be quick and must not raise."""
        self._listeners.append(listener)
        if progress:
            self._progress_listeners.append(listener)

    def _changed(self, alert_id: str) -> None:
        for listener in self._listeners:
            listener(alert_id)

    def _progressed(self, alert_id: str) -> None:
        for listener in self._progress_listeners:
            listener(alert_id)

    async def create(
        self,
        request: AlertRequest,
        rendered: Rendered,
        *,
        actor: str,
        now_ms: int,
        expires_ms: int,
        channels: list[ChannelKind],
        idempotency_key: str | None,
        audience_counts: dict[str, Any],
        clery: dict[str, Any],
        audit_detail: dict[str, Any],
        incident: str | None = None,
    ) -> tuple[str, bool]:
        """Store a new alert durably, linked to its `incident` in the same transaction;
        returns (id, created). Raises IdempotencyConflict, or Invalid when the incident is
        unknown or closed (nothing is stored)."""
        fingerprint = request.fingerprint()
        async with self._db.transaction() as tx:
            if idempotency_key is not None:
                # Two nodes taking the same retried webhook: the second waits, then finds it.
                await tx.lock(f"idempotency:{idempotency_key}")
                row = await tx.fetchone(
                    "SELECT id, request_sha256 FROM alerts WHERE idempotency_key = ?",
                    (idempotency_key,),
                )
                if row is not None:
                    if row["request_sha256"] != fingerprint:
                        raise IdempotencyConflict(row["id"])
                    return row["id"], False
            alert_id = new_alert_id(now_ms)
            zones = {"include": request.zones, "exclude": request.exclude_zones}
            await tx.execute(
                "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels,"
                " content_version, references_id, created_by, created_at, confirmed_at,"
                " expires_at, idempotency_key, request_sha256, audience_counts, clery, urgency)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert_id,
                    request.kind.value,
                    request.mode.value,
                    AlertState.DISPATCHING.value,
                    request.audience,
                    json.dumps(zones),
                    json.dumps([c.value for c in channels]),
                    request.references,
                    actor,
                    now_ms,
                    now_ms if request.confirmed_by else None,
                    expires_ms,
                    idempotency_key,
                    fingerprint,
                    json.dumps(audience_counts),
                    json.dumps(clery),
                    urgency_rank(request.kind, request.mode, now_ms),
                ),
            )
            await tx.execute(
                "INSERT INTO alert_versions (alert_id, version, created_at, created_by, request,"
                " rendered) VALUES (?, 1, ?, ?, ?, ?)",
                (alert_id, now_ms, actor, request.model_dump_json(), rendered_to_json(rendered)),
            )
            await self._audit.append(
                tx,
                at=now_ms,
                actor=actor,
                action="alert.created",
                alert_id=alert_id,
                detail=audit_detail,
            )
            if incident is not None:
                await link_alert_in(tx, self._audit, incident, alert_id, actor=actor, at=now_ms)
        self._changed(alert_id)
        return alert_id, True

    async def get(self, alert_id: str) -> AlertRecord | None:
        """One alert with its current content, or None."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS}{_FROM} WHERE a.id = ?", (alert_id,))
        return None if row is None else _record(row)

    async def versions(self, alert_id: str) -> list[ContentVersion]:
        """Every content version of an alert, oldest first."""
        rows = await self._db.fetchall(
            "SELECT version, created_at, created_by, request FROM alert_versions"
            " WHERE alert_id = ? ORDER BY version",
            (alert_id,),
        )
        return [
            ContentVersion(
                int(r["version"]), int(r["created_at"]), r["created_by"], json.loads(r["request"])
            )
            for r in rows
        ]

    async def in_state(self, state: AlertState) -> list[AlertRecord]:
        """Alerts in one state, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}{_FROM} WHERE a.state = ? ORDER BY a.created_at", (state.value,)
        )
        return [_record(r) for r in rows]

    async def active(self, now_ms: int) -> list[AlertRecord]:
        """Alerts not cancelled and not expired, newest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}{_FROM} WHERE a.state != ? AND a.expires_at > ?"
            " ORDER BY a.created_at DESC",
            (AlertState.CANCELLED.value, now_ms),
        )
        return [_record(r) for r in rows]

    async def in_year(self, start_ms: int, end_ms: int) -> list[AlertRecord]:
        """Alerts created in [start, end), oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}{_FROM} WHERE a.created_at >= ? AND a.created_at < ?"
            " ORDER BY a.created_at",
            (start_ms, end_ms),
        )
        return [_record(r) for r in rows]

    async def supersessions_since(self, since_ms: int) -> list[Supersession]:
        """Updates and all clears stored from `since_ms` on that were not cancelled."""
        rows = await self._db.fetchall(
            "SELECT id, references_id, kind, mode, created_at FROM alerts"
            " WHERE state != ? AND created_at >= ? AND (references_id IS NOT NULL OR kind = ?)",
            (AlertState.CANCELLED.value, since_ms, AlertKind.ALL_CLEAR.value),
        )
        return [
            Supersession(r["id"], r["references_id"], AlertKind(r["kind"]), Mode(r["mode"]),
                         int(r["created_at"]))
            for r in rows
        ]

    async def mark_sending(self, alert_id: str, now_ms: int) -> None:
        """Record when sending began (the first time only)."""
        if await self._db.execute(
            "UPDATE alerts SET sending_at = ? WHERE id = ? AND sending_at IS NULL",
            (now_ms, alert_id),
        ):
            self._progressed(alert_id)

    async def mark_resolved(self, alert_id: str, now_ms: int, counts: dict[str, Any]) -> None:
        """The audience is fully in the outbox; keep its counts."""
        await self._db.execute(
            "UPDATE alerts SET resolved_at = ?, audience_counts = ? WHERE id = ?",
            (now_ms, json.dumps(counts), alert_id),
        )
        self._progressed(alert_id)

    async def mark_done(self, alert_id: str, now_ms: int) -> bool:
        """Dispatching -> done, once nothing is left to send; True when it changed."""
        changed = await self._db.execute(
            MARK_DONE_SQL,
            (AlertState.DONE.value, now_ms, alert_id, AlertState.DISPATCHING.value, alert_id),
        )
        if changed > 0:
            self._progressed(alert_id)
        return changed > 0

    async def cancel(self, alert_id: str, *, actor: str, reason: str, now_ms: int) -> int:
        """Cancel: queued deliveries become suppressed; returns how many were stopped."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE alerts SET state = ?, done_at = ? WHERE id = ? AND state != ?",
                (AlertState.CANCELLED.value, now_ms, alert_id, AlertState.CANCELLED.value),
            )
            if not changed:
                return 0
            stopped: int = await tx.execute(
                "UPDATE deliveries SET state = 'suppressed', detail = 'alert cancelled',"
                " updated_at = ? WHERE alert_id = ? AND state = 'queued'",
                (now_ms, alert_id),
            )
            await self._audit.append(
                tx,
                at=now_ms,
                actor=actor,
                action="alert.cancelled",
                alert_id=alert_id,
                detail={"reason": reason, "deliveries_stopped": stopped},
            )
        self._changed(alert_id)
        return stopped
