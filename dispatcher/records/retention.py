"""Retention: alerts older than `store.retention_days` go, with everything that hangs off them.

The audit log is never purged: each entry hashes the one before it, so removing any entry
would break `clarion audit verify` from there on. Its entries carry decisions (who, what kind,
which audience), not message text or contact details, and each purge appends an entry of its
own naming the alerts it removed, so the chain also shows when and what was purged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dispatcher.records.model import iso
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database
from dispatcher.store.records import DependentCounts, RecordStore

log = structlog.get_logger("clarion.records")

PURGE_CHUNK = 200
PURGE_ACTOR = "retention"


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge removed (or, dry, would remove)."""

    cutoff_ms: int
    retention_days: int
    dry_run: bool
    alert_ids: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """For the CLI and the log."""
        return {
            "cutoff": iso(self.cutoff_ms, ZoneInfo("UTC")),
            "retention_days": self.retention_days,
            "dry_run": self.dry_run,
            "alerts": len(self.alert_ids),
            **self.counts,
        }


async def purge(
    db: Database,
    audit: AuditLog,
    *,
    retention_days: int,
    now_ms: int,
    dry_run: bool = False,
    chunk: int = PURGE_CHUNK,
) -> PurgeResult:
    """Remove finished alerts created before the retention cutoff, with their versions,
    deliveries, receipts, notes and drill runs; never an audit entry.

    Each chunk is removed in one transaction together with a `records.purged` audit entry
    naming its alerts, so the chain records every purge and stays intact.
    """
    store = RecordStore(db, audit)
    cutoff = now_ms - retention_days * 86_400_000
    totals = DependentCounts().as_dict()
    purged: list[str] = []
    after = ""
    while True:
        ids = await store.purgeable(cutoff, after=after, limit=chunk)
        if not ids:
            break
        after = ids[-1]
        if dry_run:
            counts = await store.count_dependents(ids)
        else:
            counts = await store.delete_alerts(
                ids, now_ms=now_ms, actor=PURGE_ACTOR,
                audit_detail={"cutoff": cutoff, "retention_days": retention_days},
            )
        for key, n in counts.as_dict().items():
            totals[key] += n
        purged.extend(ids)
    # Skipped occurrences have no alert: they go by their own time.
    if dry_run:
        totals["drill_runs"] += await store.count_unrun_before(cutoff)
    else:
        totals["drill_runs"] += await store.delete_unrun_before(cutoff)
    result = PurgeResult(cutoff, retention_days, dry_run, tuple(purged), totals)
    event = "records.purge_planned" if dry_run else "records.purged"
    log.info(event, **result.as_json())
    return result
