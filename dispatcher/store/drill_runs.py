"""Drill runs and schedule watermarks: each occurrence of a drill claimed once in `drill_runs`
(INSERT ... ON CONFLICT DO NOTHING), its outcome recorded, a dead holder's claim taken over
after its lease; and in `drill_schedule`, how far each schedule has been looked at."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatcher.drills.schedule import iso
from dispatcher.store.database import Database, Row


class RunStatus(StrEnum):
    """Where one occurrence of a drill stands."""

    PENDING = "pending"
    MISSED = "missed"
    FIRED = "fired"
    FIRED_LATE = "fired_late"
    SKIPPED = "skipped"
    FAILED = "failed"
    HELD = "held"

    @property
    def open(self) -> bool:
        """Claimed, and its outcome not recorded yet."""
        return self in (RunStatus.PENDING, RunStatus.MISSED)


class RunSource(StrEnum):
    """Why an occurrence exists: the schedule, or someone asking for a run now."""

    SCHEDULE = "schedule"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class DrillRun:
    """One occurrence of a drill as recorded in `drill_runs`."""

    id: int
    drill: str
    scheduled_for: int
    source: RunSource
    status: RunStatus
    missed: bool
    claimed_at: int
    fired_at: int | None
    alert_id: str | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The run as the API and the CLI show it."""
        return {
            "id": self.id,
            "drill": self.drill,
            "scheduled_for": iso(self.scheduled_for),
            "scheduled_for_ms": self.scheduled_for,
            "source": self.source.value,
            "status": self.status.value,
            "missed": self.missed,
            "fired_at": iso(self.fired_at) if self.fired_at is not None else None,
            "alert_id": self.alert_id,
            "detail": self.detail,
        }


_RUN_COLUMNS = (
    "id, drill_name, scheduled_for, source, status, missed, claimed_at, fired_at, alert_id, detail"
)


def _run(row: Row) -> DrillRun:
    return DrillRun(
        id=int(row["id"]),
        drill=row["drill_name"],
        scheduled_for=int(row["scheduled_for"]),
        source=RunSource(row["source"]),
        status=RunStatus(row["status"]),
        missed=bool(row["missed"]),
        claimed_at=int(row["claimed_at"]),
        fired_at=row["fired_at"],
        alert_id=row["alert_id"],
        detail=row["detail"],
    )


class DrillRunStore:
    """The record of every drill run, and how far each schedule has been looked at."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- runs ----------------------------------------------------------------------------------

    async def recent(self, name: str | None = None, limit: int = 10) -> list[DrillRun]:
        """Recent runs, newest first: of one drill, or of all."""
        if name is None:
            rows = await self._db.fetchall(
                f"SELECT {_RUN_COLUMNS} FROM drill_runs ORDER BY scheduled_for DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_RUN_COLUMNS} FROM drill_runs WHERE drill_name = ?"
                " ORDER BY scheduled_for DESC LIMIT ?",
                (name, limit),
            )
        return [_run(r) for r in rows]

    async def get(self, run_id: int) -> DrillRun:
        """One run by id (it exists: runs are only removed with their alert, by retention)."""
        row = await self._db.fetchone(
            f"SELECT {_RUN_COLUMNS} FROM drill_runs WHERE id = ?", (run_id,)
        )
        if row is None:
            raise LookupError(f"drill run {run_id} is not in the store")
        return _run(row)

    async def claim(
        self,
        name: str,
        scheduled_for: int,
        *,
        source: RunSource,
        status: RunStatus,
        missed: bool,
        owner: str,
        now_ms: int,
        lease_until: int,
    ) -> int | None:
        """Insert the occurrence's row; its id, or None when another process (or run) has it."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO drill_runs (drill_name, scheduled_for, source, status, missed,"
                " claimed_by, claimed_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (drill_name, scheduled_for) DO NOTHING RETURNING id",
                (name, scheduled_for, source.value, status.value, int(missed), owner, now_ms,
                 lease_until),
            )
        return int(rows[0]["id"]) if rows else None

    async def alert_made_with(self, idempotency_key: str) -> str | None:
        """The id of the alert intake stored under an occurrence's Idempotency-Key, if any."""
        found = await self._db.fetchval(
            "SELECT id FROM alerts WHERE idempotency_key = ?", (idempotency_key,)
        )
        return None if found is None else str(found)

    async def set_detail(self, run_id: int, detail: str) -> None:
        """Say why a run came out as it did (a skip's reason)."""
        await self._db.execute("UPDATE drill_runs SET detail = ? WHERE id = ?", (detail, run_id))

    async def record_outcome(
        self,
        run_id: int,
        status: RunStatus,
        *,
        alert_id: str | None,
        fired_at: int | None,
        detail: str,
    ) -> None:
        """What came of sending the run: its status, alert, when it fired, and why."""
        await self._db.execute(
            "UPDATE drill_runs SET status = ?, alert_id = ?, fired_at = ?, detail = ?"
            " WHERE id = ?",
            (status.value, alert_id, fired_at, detail, run_id),
        )

    async def settle(
        self,
        run_id: int,
        status: RunStatus,
        *,
        alert_id: str | None,
        detail: str,
        fired_at: int | None,
    ) -> None:
        """Close a taken-over run; a fired time already on file is kept."""
        await self._db.execute(
            "UPDATE drill_runs SET status = ?, alert_id = ?, detail = ?,"
            " fired_at = COALESCE(fired_at, ?) WHERE id = ?",
            (status.value, alert_id, detail, fired_at, run_id),
        )

    async def take_over(
        self, *, owner: str, lease_until: int, expired_before: int
    ) -> list[DrillRun]:
        """Claim every open run whose lease ran out before `expired_before`, in one
        statement, so two processes never take the same run."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE drill_runs SET claimed_by = ?, lease_until = ?"
                " WHERE status IN (?, ?) AND lease_until < ?"
                f" RETURNING {_RUN_COLUMNS}",
                (owner, lease_until, RunStatus.PENDING.value, RunStatus.MISSED.value,
                 expired_before),
            )
        return [_run(r) for r in rows]

    # -- watermarks ----------------------------------------------------------------------------

    async def watermarks(self) -> dict[str, int]:
        """How far each schedule has been looked at, by drill name."""
        rows = await self._db.fetchall("SELECT drill_name, checked_until FROM drill_schedule")
        return {r["drill_name"]: int(r["checked_until"]) for r in rows}

    async def advance(self, name: str, checked_until: int) -> None:
        """Record that a schedule was looked at up to `checked_until`; never moves back, as
        the clocks of several processes differ."""
        await self._db.execute(
            "INSERT INTO drill_schedule (drill_name, checked_until) VALUES (?, ?)"
            " ON CONFLICT (drill_name) DO UPDATE SET checked_until = excluded.checked_until"
            " WHERE excluded.checked_until > drill_schedule.checked_until",
            (name, checked_until),
        )
