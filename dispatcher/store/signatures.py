"""Request signatures already seen, so a signed request is accepted once whichever node it
reaches."""

from __future__ import annotations

from dispatcher.store.database import Database


class SeenSignatures:
    """The replay guard: each signature digest is kept until it can no longer be valid."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def first_use(self, digest: str, *, now_ms: int, keep_ms: int) -> bool:
        """Remember a digest for `keep_ms`; False when it is already remembered."""
        await self._db.execute("DELETE FROM request_signatures WHERE expires_at < ?", (now_ms,))
        # ON CONFLICT DO NOTHING: two nodes racing on one replay, exactly one inserts.
        added = await self._db.execute(
            "INSERT INTO request_signatures (digest, expires_at) VALUES (?, ?)"
            " ON CONFLICT (digest) DO NOTHING",
            (digest, now_ms + keep_ms),
        )
        return added == 1
