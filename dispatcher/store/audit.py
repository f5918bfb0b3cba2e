"""The audit log: append-only, each entry hashing the one before it, so tampering shows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dispatcher.store.database import Database, Session

GENESIS = "0" * 64


def entry_hash(
    prev: str, at: int, actor: str, action: str, alert_id: str | None, detail: str
) -> str:
    """The chained hash of one entry."""
    material = json.dumps([prev, at, actor, action, alert_id, detail], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Outcome of verifying the chain: how many entries, and the first broken one."""

    entries: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when every entry hashes as recorded."""
        return self.broken_at is None


class AuditLog:
    """Appends decisions (who, what, when) inside the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        tx: Session,
        *,
        at: int,
        actor: str,
        action: str,
        alert_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Add one entry; must run inside a write transaction so the chain stays linear."""
        # Several processes on one PostgreSQL append too: one at a time, or the chain forks.
        await tx.lock("audit")
        prev = await tx.fetchval("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1") or GENESIS
        text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))
        digest = entry_hash(prev, at, actor, action, alert_id, text)
        await tx.execute(
            "INSERT INTO audit (at, actor, action, alert_id, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action, alert_id, text, prev, digest),
        )
        return digest

    async def record(self, **entry: Any) -> str:
        """Append in a transaction of its own."""
        async with self._db.transaction() as tx:
            return await self.append(tx, **entry)

    async def entries(self, alert_id: str) -> list[dict[str, Any]]:
        """Every entry about one alert, oldest first."""
        rows = await self._db.fetchall(
            "SELECT seq, at, actor, action, detail FROM audit WHERE alert_id = ? ORDER BY seq",
            (alert_id,),
        )
        return [
            {
                "seq": r["seq"],
                "at": r["at"],
                "actor": r["actor"],
                "action": r["action"],
                "detail": json.loads(r["detail"]),
            }
            for r in rows
        ]

    async def verify(self, page: int = 5000) -> ChainCheck:
        """Walk the whole chain and report the first entry that does not hash as recorded."""
        prev, count, after = GENESIS, 0, 0
        while True:
            rows = await self._db.fetchall(
                "SELECT seq, at, actor, action, alert_id, detail, prev_hash, hash FROM audit"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, page),
            )
            if not rows:
                return ChainCheck(count)
            for r in rows:
                if r["prev_hash"] != prev:
                    return ChainCheck(count, r["seq"], "does not follow the entry before it")
                expected = entry_hash(
                    prev, r["at"], r["actor"], r["action"], r["alert_id"], r["detail"]
                )
                if expected != r["hash"]:
                    return ChainCheck(count, r["seq"], "content changed after it was written")
                prev = r["hash"]
                count += 1
                after = r["seq"]
