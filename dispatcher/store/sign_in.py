"""Failed sign-ins, counted in the store so every node shares one limit and parallel tries
cannot slip past it."""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.store.database import Database


@dataclass(frozen=True, slots=True)
class Attempt:
    """One counted try: how many tries the key has had in its window, and when that began."""

    failures: int
    window_start: int


class SignInLimits:
    """Fixed windows of counted tries per key (an account name, or an address)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self, key: str, *, now_ms: int, window_ms: int) -> Attempt:
        """Count one try of `key` before its password is checked, in one atomic statement.

        A window that began more than `window_ms` ago starts again at 1. Two nodes counting
        the same key at once each see the other's try (the upsert takes the row's lock).
        """
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO sign_in_limits (key, window_start, failures) VALUES (?, ?, 1)"
                " ON CONFLICT (key) DO UPDATE SET"
                " failures = CASE WHEN sign_in_limits.window_start <= ? THEN 1"
                " ELSE sign_in_limits.failures + 1 END,"
                " window_start = CASE WHEN sign_in_limits.window_start <= ? THEN ?"
                " ELSE sign_in_limits.window_start END"
                " RETURNING failures, window_start",
                (key, now_ms, now_ms - window_ms, now_ms - window_ms, now_ms),
            )
        assert row is not None
        return Attempt(int(row["failures"]), int(row["window_start"]))

    async def clear(self, key: str) -> None:
        """Forget a key's tries (a correct password for that account)."""
        await self._db.execute("DELETE FROM sign_in_limits WHERE key = ?", (key,))

    async def purge(self, before_ms: int) -> int:
        """Forget windows that began before `before_ms`."""
        return await self._db.execute(
            "DELETE FROM sign_in_limits WHERE window_start < ?", (before_ms,)
        )
