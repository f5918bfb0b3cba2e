"""Providers drained by hand: one row each, read by every node's failover channels."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.store.database import Database


@dataclass(frozen=True, slots=True)
class Drain:
    """A provider taken out of the order by an operator."""

    name: str
    drained_by: str
    drained_at: int
    reason: str


class ProviderDrains:
    """`provider_drains`: drain, undrain, and the names drained now."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def drain(self, name: str, *, actor: str, reason: str, now_ms: int) -> bool:
        """Drain a provider; False when it already was (the first drain is kept)."""
        added = await self._db.execute(
            "INSERT INTO provider_drains (name, drained_by, drained_at, reason)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, actor, now_ms, reason),
        )
        return added == 1

    async def undrain(self, name: str) -> bool:
        """Put a provider back in the order; False when it was not drained."""
        removed = await self._db.execute("DELETE FROM provider_drains WHERE name = ?", (name,))
        return removed == 1

    async def drained(self) -> frozenset[str]:
        """The names drained now."""
        rows = await self._db.fetchall("SELECT name FROM provider_drains")
        return frozenset(str(r["name"]) for r in rows)

    async def all(self) -> list[Drain]:
        """Every drain, oldest first."""
        rows = await self._db.fetchall(
            "SELECT name, drained_by, drained_at, reason FROM provider_drains"
            " ORDER BY drained_at, name"
        )
        return [
            Drain(str(r["name"]), str(r["drained_by"]), int(r["drained_at"]), str(r["reason"]))
            for r in rows
        ]
