"""What the Clery records read beyond the alert rows, their follow-up notes, and retention.

The purge removes alerts with everything that hangs off them, over six tables (alerts,
alert_versions, deliveries, receipts, alert_notes, drill_runs), one chunk of alerts per
transaction together with the audit entry that names them. The audit log itself is never
purged: each entry hashes the one before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dispatcher.domain import AlertState
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Session

# Receipt statuses that mean a delivery reached the provider or the device.
REACHED = ("accepted", "delivered")
# Scheduled occurrences that did not send.
UNRUN_STATUSES = ("skipped", "failed", "held")


@dataclass(frozen=True, slots=True)
class StoredNote:
    """A follow-up note as stored."""

    id: int
    alert_id: str
    at: int
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class UnrunOccurrence:
    """A scheduled drill occurrence that did not send, and why."""

    drill_name: str
    scheduled_for: int
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class RunOrigin:
    """The drill run that fired an alert: which drill, for when, from where (schedule, cli)."""

    drill_name: str
    scheduled_for: int
    source: str


@dataclass(frozen=True, slots=True)
class ReceiptSpan:
    """The first and last time a delivery of an alert reached the provider or device."""

    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class ReceiptBucket:
    """How many of a channel's deliveries first reached (or were confirmed) in one bucket."""

    channel: str
    bucket: int
    count: int


@dataclass(frozen=True, slots=True)
class DependentCounts:
    """Rows that hang off a set of alerts, per table."""

    versions: int = 0
    deliveries: int = 0
    receipts: int = 0
    notes: int = 0
    drill_runs: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts by name, for the log, the CLI and the audit entry."""
        return asdict(self)


class RecordStore:
    """Reads for the Clery records, follow-up notes, and the retention purge."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # -- notes ---------------------------------------------------------------------------------

    async def add_note(self, alert_id: str, *, author: str, text: str, now_ms: int) -> StoredNote:
        """Append a follow-up note, audited with a hash of its text in the same transaction."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO alert_notes (alert_id, at, author, text) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (alert_id, now_ms, author, text),
            )
            note_id = int(rows[0]["id"])
            # The hash, not the text: the note is purged with its alert, the audit entry stays.
            await self._audit.append(
                tx, at=now_ms, actor=author, action="alert.note_added", alert_id=alert_id,
                detail={"note_id": note_id, "sha256": digest, "chars": len(text)},
            )
        return StoredNote(note_id, alert_id, now_ms, author, text)

    async def notes(self, alert_id: str) -> list[StoredNote]:
        """The alert's follow-up notes, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, alert_id, at, author, text FROM alert_notes WHERE alert_id = ?"
            " ORDER BY id",
            (alert_id,),
        )
        return [StoredNote(int(r["id"]), r["alert_id"], int(r["at"]), r["author"], r["text"])
                for r in rows]

    # -- what the records read -----------------------------------------------------------------

    async def unrun_occurrences(self, start_ms: int, end_ms: int) -> list[UnrunOccurrence]:
        """Scheduled occurrences in [start, end) that were skipped, failed or held."""
        marks = ", ".join("?" for _ in UNRUN_STATUSES)
        rows = await self._db.fetchall(
            "SELECT drill_name, scheduled_for, status, detail FROM drill_runs"
            f" WHERE scheduled_for >= ? AND scheduled_for < ? AND status IN ({marks})"
            " ORDER BY scheduled_for",
            (start_ms, end_ms, *UNRUN_STATUSES),
        )
        return [UnrunOccurrence(r["drill_name"], int(r["scheduled_for"]), r["status"],
                                r["detail"]) for r in rows]

    async def run_origin(self, alert_id: str) -> RunOrigin | None:
        """The first drill run that fired this alert, if one did."""
        row = await self._db.fetchone(
            "SELECT drill_name, scheduled_for, source FROM drill_runs WHERE alert_id = ?"
            " ORDER BY id LIMIT 1",
            (alert_id,),
        )
        if row is None:
            return None
        return RunOrigin(row["drill_name"], int(row["scheduled_for"]), row["source"])

    async def receipt_span(self, alert_id: str) -> ReceiptSpan | None:
        """When the alert's deliveries first and last reached a provider or device."""
        marks = ", ".join("?" for _ in REACHED)
        row = await self._db.fetchone(
            "SELECT MIN(at) AS lo, MAX(at) AS hi FROM receipts WHERE alert_id = ?"
            f" AND status IN ({marks})",
            (alert_id, *REACHED),
        )
        if row is None or row["lo"] is None:
            return None
        return ReceiptSpan(int(row["lo"]), int(row["hi"]))

    async def receipt_buckets(
        self, alert_id: str, *, base_ms: int, bucket_ms: int, confirmed: bool
    ) -> list[ReceiptBucket]:
        """Per channel and bucket of `bucket_ms` after `base_ms`, how many deliveries first
        reached the provider or device (or, `confirmed`, were first confirmed delivered).

        Bucketed in SQL: an alert can have tens of thousands of receipts.
        """
        marks = ", ".join("?" for _ in REACHED)
        per_delivery = (
            "SELECT channel, delivery_id, MIN(at) AS reached_at,"
            " MIN(CASE WHEN status = 'delivered' THEN at END) AS confirmed_at"
            f" FROM receipts WHERE alert_id = ? AND status IN ({marks})"
            " GROUP BY channel, delivery_id"
        )
        column = "confirmed_at" if confirmed else "reached_at"
        rows = await self._db.fetchall(
            f"SELECT channel, ({column} - ?) / ? AS b, COUNT(*) AS n FROM ({per_delivery}) d"
            f" WHERE {column} IS NOT NULL GROUP BY channel, b ORDER BY channel, b",
            (base_ms, bucket_ms, alert_id, *REACHED),
        )
        return [ReceiptBucket(r["channel"], max(int(r["b"]), 0), int(r["n"])) for r in rows]

    # -- retention -----------------------------------------------------------------------------

    async def purgeable(self, cutoff_ms: int, *, after: str, limit: int) -> list[str]:
        """Ids of finished alerts created before the cutoff, in id order after `after`."""
        rows = await self._db.fetchall(
            "SELECT id FROM alerts WHERE created_at < ? AND state != ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (cutoff_ms, AlertState.DISPATCHING.value, after, limit),
        )
        return [r["id"] for r in rows]

    async def count_dependents(self, alert_ids: Sequence[str]) -> DependentCounts:
        """What a purge of these alerts would remove from each table."""
        marks = _marks(alert_ids)
        queries = {
            "versions": f"SELECT COUNT(*) FROM alert_versions WHERE alert_id IN ({marks})",
            "deliveries": f"SELECT COUNT(*) FROM deliveries WHERE alert_id IN ({marks})",
            "receipts": f"SELECT COUNT(*) FROM receipts WHERE alert_id IN ({marks})",
            "notes": f"SELECT COUNT(*) FROM alert_notes WHERE alert_id IN ({marks})",
            "drill_runs": f"SELECT COUNT(*) FROM drill_runs WHERE alert_id IN ({marks})",
        }
        counts = {key: int(await self._db.fetchval(sql, alert_ids) or 0)
                  for key, sql in queries.items()}
        return DependentCounts(**counts)

    async def delete_alerts(
        self,
        alert_ids: Sequence[str],
        *,
        now_ms: int,
        actor: str,
        audit_detail: Mapping[str, Any],
    ) -> DependentCounts:
        """Remove the alerts and everything hanging off them, in one transaction with a
        `records.purged` audit entry naming them (with `audit_detail` and the counts)."""
        params = list(alert_ids)
        async with self._db.transaction() as tx:
            counts = await _delete_dependents(tx, params)
            await tx.execute(f"DELETE FROM alerts WHERE id IN ({_marks(params)})", params)
            await self._audit.append(
                tx, at=now_ms, actor=actor, action="records.purged",
                detail={**audit_detail, "alerts": params, **counts.as_dict()},
            )
        return counts

    async def count_unrun_before(self, cutoff_ms: int) -> int:
        """Drill runs with no alert (skipped occurrences) scheduled before the cutoff."""
        found = await self._db.fetchval(
            "SELECT COUNT(*) FROM drill_runs WHERE alert_id IS NULL AND scheduled_for < ?",
            (cutoff_ms,),
        )
        return int(found or 0)

    async def delete_unrun_before(self, cutoff_ms: int) -> int:
        """Remove drill runs with no alert scheduled before the cutoff; how many."""
        return await self._db.execute(
            "DELETE FROM drill_runs WHERE alert_id IS NULL AND scheduled_for < ?", (cutoff_ms,)
        )


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" for _ in values)


async def _delete_dependents(tx: Session, ids: list[str]) -> DependentCounts:
    marks = _marks(ids)
    return DependentCounts(
        receipts=await tx.execute(
            f"DELETE FROM receipts WHERE alert_id IN ({marks}) OR delivery_id IN"
            f" (SELECT id FROM deliveries WHERE alert_id IN ({marks}))",
            ids + ids,
        ),
        deliveries=await _delete_deliveries(tx, ids),
        versions=await tx.execute(f"DELETE FROM alert_versions WHERE alert_id IN ({marks})", ids),
        notes=await tx.execute(f"DELETE FROM alert_notes WHERE alert_id IN ({marks})", ids),
        drill_runs=await tx.execute(f"DELETE FROM drill_runs WHERE alert_id IN ({marks})", ids),
    )


async def _delete_deliveries(tx: Session, ids: list[str]) -> int:
    marks = _marks(ids)
    deleted = await tx.execute(f"DELETE FROM deliveries WHERE alert_id IN ({marks})", ids)
    # Their progress counters (kept by triggers, migration 0007) go with them.
    await tx.execute(f"DELETE FROM delivery_counts WHERE alert_id IN ({marks})", ids)
    # And the webhook subscribers' log of their tries (migration 0018).
    await tx.execute(f"DELETE FROM webhook_attempts WHERE alert_id IN ({marks})", ids)
    return deleted
