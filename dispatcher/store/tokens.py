"""API tokens in the store: hashed, each a person's, with an expiry and a revocation that every
node sees on its next request."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dispatcher.store.database import Database, Row


class TokenExists(Exception):
    """A token of that name (or hash) is already in the store."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as stored (only its SHA-256)."""

    sha256: str
    name: str
    person: str
    role: str
    segments: tuple[str, ...]
    created_by: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    revoked_by: str | None

    def usable_at(self, now_ms: int) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and (self.expires_at is None or now_ms < self.expires_at)


_COLUMNS = (
    "sha256, name, person, role, segments, created_by, created_at, expires_at, revoked_at,"
    " revoked_by"
)


def _record(row: Row) -> TokenRecord:
    return TokenRecord(
        sha256=row["sha256"],
        name=row["name"],
        person=row["person"],
        role=row["role"],
        segments=tuple(json.loads(row["segments"])),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


class TokenStore:
    """Reads and writes the API tokens kept in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_hash(self, sha256: str) -> TokenRecord | None:
        """The token with this hash, usable or not."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE sha256 = ?", (sha256,)
        )
        return _record(row) if row is not None else None

    async def by_name(self, name: str) -> TokenRecord | None:
        """The token of this name, usable or not."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM api_tokens WHERE name = ?", (name,))
        return _record(row) if row is not None else None

    async def all(self) -> list[TokenRecord]:
        """Every stored token, newest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at DESC, name"
        )
        return [_record(r) for r in rows]

    async def add(self, token: TokenRecord) -> None:
        """Store a new token; raises TokenExists when its name or hash is taken."""
        async with self._db.transaction() as tx:
            taken = await tx.fetchval(
                "SELECT COUNT(*) FROM api_tokens WHERE name = ? OR sha256 = ?",
                (token.name, token.sha256),
            )
            if taken:
                raise TokenExists(token.name)
            await tx.execute(
                f"INSERT INTO api_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.sha256, token.name, token.person, token.role,
                    json.dumps(list(token.segments)), token.created_by, token.created_at,
                    token.expires_at, token.revoked_at, token.revoked_by,
                ),
            )

    async def revoke(self, name: str, *, by: str, now_ms: int) -> bool:
        """Revoke a stored token by name; False when there is none or it was revoked."""
        changed = await self._db.execute(
            "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE name = ?"
            " AND revoked_at IS NULL",
            (now_ms, by, name),
        )
        return bool(changed == 1)
