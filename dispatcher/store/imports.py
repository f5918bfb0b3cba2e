"""Directory imports in the store: each import's report, and the checked records of an import
the safety brake holds until a person confirms or discards it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatcher.store.database import Database, Row

_COLUMNS = (
    "id, source, detail, fingerprint, state, share, report, error, started_at, finished_at,"
    " decided_by, decided_at"
)


class ImportState(StrEnum):
    """Where an import stands."""

    APPLIED = "applied"
    HELD = "held"
    CONFIRMED = "confirmed"
    DISCARDED = "discarded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """One import as kept: its source, state, share of people it changes, and report."""

    id: int
    source: str
    detail: str
    fingerprint: str
    state: ImportState
    share: float
    report: dict[str, Any]
    error: str
    started_at: int
    finished_at: int
    decided_by: str
    decided_at: int | None

    def as_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return {
            "id": self.id, "source": self.source, "detail": self.detail,
            "state": self.state.value, "share": self.share, "report": self.report,
            "error": self.error, "started_at": self.started_at,
            "finished_at": self.finished_at, "decided_by": self.decided_by or None,
            "decided_at": self.decided_at,
        }


def _entry(row: Row) -> ImportEntry:
    return ImportEntry(
        id=int(row["id"]), source=row["source"], detail=row["detail"],
        fingerprint=row["fingerprint"], state=ImportState(row["state"]),
        share=float(row["share"]), report=json.loads(row["report"]), error=row["error"],
        started_at=int(row["started_at"]), finished_at=int(row["finished_at"]),
        decided_by=row["decided_by"],
        decided_at=None if row["decided_at"] is None else int(row["decided_at"]),
    )


class ImportStore:
    """Writes and reads the directory_imports and directory_import_plans tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        source: str,
        detail: str,
        fingerprint: str,
        state: ImportState,
        share: float,
        report: dict[str, Any],
        error: str = "",
        started_at: int,
        finished_at: int,
        plan: Sequence[str] = (),
    ) -> int:
        """Keep one import (and, when held, its plan in parts); its id."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO directory_imports (source, detail, fingerprint, state, share,"
                " report, error, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (source, detail, fingerprint, state.value, share, json.dumps(report), error,
                 started_at, finished_at),
            )
            import_id = int(rows[0]["id"])
            if plan:
                await tx.executemany(
                    "INSERT INTO directory_import_plans (import_id, part, body)"
                    " VALUES (?, ?, ?)",
                    [(import_id, n, body) for n, body in enumerate(plan)],
                )
        return import_id

    async def get(self, import_id: int) -> ImportEntry | None:
        """One import, if kept."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM directory_imports WHERE id = ?", (import_id,)
        )
        return None if row is None else _entry(row)

    async def recent(self, *, limit: int = 50, state: ImportState | None = None
                     ) -> list[ImportEntry]:
        """The latest imports, newest first (only those in `state` when given)."""
        if state is None:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM directory_imports ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM directory_imports WHERE state = ?"
                " ORDER BY id DESC LIMIT ?",
                (state.value, limit),
            )
        return [_entry(r) for r in rows]

    async def latest(self, source: str, *, read: bool = False) -> ImportEntry | None:
        """The newest import from a source, whatever became of it (with `read`, the newest
        whose source could be read: a failure changed nothing)."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM directory_imports WHERE source = ? AND state <> ?"
            " ORDER BY id DESC LIMIT 1",
            (source, ImportState.FAILED.value if read else ""),
        )
        return None if row is None else _entry(row)

    async def plan(self, import_id: int) -> list[str]:
        """A held import's plan, its parts in order."""
        rows = await self._db.fetchall(
            "SELECT body FROM directory_import_plans WHERE import_id = ? ORDER BY part",
            (import_id,),
        )
        return [r["body"] for r in rows]

    async def decide(
        self,
        import_id: int,
        state: ImportState,
        *,
        by: str,
        at: int,
    ) -> bool:
        """Move a held import to `state`, once: False when it was no longer held."""
        changed = await self._db.execute(
            "UPDATE directory_imports SET state = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ? AND state = ?",
            (state.value, by, at, import_id, ImportState.HELD.value),
        )
        return bool(changed)

    async def settle(
        self, import_id: int, state: ImportState, *, report: dict[str, Any] | None,
        error: str = "",
    ) -> None:
        """After a decision: the import's final state and report, and its plan dropped."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE directory_imports SET state = ?, error = ?,"
                " report = COALESCE(?, report) WHERE id = ?",
                (state.value, error, None if report is None else json.dumps(report), import_id),
            )
            await tx.execute(
                "DELETE FROM directory_import_plans WHERE import_id = ?", (import_id,)
            )
