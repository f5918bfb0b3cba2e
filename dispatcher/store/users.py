"""The console's people and sessions, and the reads the console's pages need."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from dispatcher.store.database import Database, Row
from dispatcher.store.sign_in import SignInLimits


class UserExists(Exception):
    """A user of that name is already in the store."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A console user as stored (the password only as its argon2 hash)."""

    name: str
    full_name: str
    title: str
    role: str
    segments: tuple[str, ...]
    password_hash: str
    disabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in session: whose it is, its CSRF token and when it ends."""

    token_sha256: str
    user_name: str
    csrf: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Draft:
    """A compose form kept for its user: the posted fields in order, and when."""

    fields: tuple[tuple[str, str], ...]
    saved_at: int


def _user(row: Row) -> UserRecord:
    return UserRecord(
        name=row["name"],
        full_name=row["full_name"],
        title=row["title"],
        role=row["role"],
        segments=tuple(json.loads(row["segments"])),
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_USER_COLUMNS = (
    "name, full_name, title, role, segments, password_hash, disabled, created_at, updated_at"
)


class UserStore:
    """Reads and writes console users and sessions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def sign_in_limits(self) -> SignInLimits:
        """The failed sign-in counts kept beside the users."""
        return SignInLimits(self._db)

    async def token_named(self, name: str) -> bool:
        """Whether an API token kept in the store has this name (a user may not take it)."""
        return bool(await self._db.fetchval(
            "SELECT COUNT(*) FROM api_tokens WHERE name = ?", (name,)))

    async def count(self) -> int:
        """How many users exist, disabled ones included."""
        return int(await self._db.fetchval("SELECT COUNT(*) FROM console_users") or 0)

    async def get(self, name: str) -> UserRecord | None:
        """One user by name."""
        row = await self._db.fetchone(
            f"SELECT {_USER_COLUMNS} FROM console_users WHERE name = ?", (name,)
        )
        return _user(row) if row is not None else None

    async def all(self) -> list[UserRecord]:
        """Every user, by name."""
        rows = await self._db.fetchall(f"SELECT {_USER_COLUMNS} FROM console_users ORDER BY name")
        return [_user(r) for r in rows]

    async def add(self, user: UserRecord) -> None:
        """Store a new user; raises UserExists when the name is taken."""
        added = await self._db.execute(
            f"INSERT INTO console_users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (
                user.name, user.full_name, user.title, user.role, json.dumps(list(user.segments)),
                user.password_hash, int(user.disabled), user.created_at, user.updated_at,
            ),
        )
        if added != 1:
            raise UserExists(user.name)

    async def set_password(self, name: str, password_hash: str, now_ms: int) -> bool:
        """Replace a user's password hash and end their sessions; False when no such user."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE console_users SET password_hash = ?, updated_at = ? WHERE name = ?",
                (password_hash, now_ms, name),
            )
            await tx.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))
        return bool(changed == 1)

    async def set_profile(self, name: str, full_name: str, role: str, now_ms: int) -> bool:
        """Replace a user's full name and role (an SSO sign-in); False when no such user."""
        changed = await self._db.execute(
            "UPDATE console_users SET full_name = ?, role = ?, updated_at = ? WHERE name = ?",
            (full_name, role, now_ms, name),
        )
        return bool(changed == 1)

    async def set_disabled(self, name: str, disabled: bool, now_ms: int) -> bool:
        """Disable (ending their sessions) or enable a user; False when no such user."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE console_users SET disabled = ?, updated_at = ? WHERE name = ?",
                (int(disabled), now_ms, name),
            )
            if disabled:
                await tx.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))
        return bool(changed == 1)

    async def add_session(self, session: SessionRecord) -> None:
        """Store a new session."""
        await self._db.execute(
            "INSERT INTO console_sessions (token_sha256, user_name, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session.token_sha256, session.user_name, session.csrf, session.created_at,
             session.expires_at),
        )

    async def session(self, token_sha256: str, now_ms: int) -> SessionRecord | None:
        """A session that has not expired, by the hash of its cookie."""
        row = await self._db.fetchone(
            "SELECT token_sha256, user_name, csrf, created_at, expires_at FROM console_sessions"
            " WHERE token_sha256 = ? AND expires_at > ?",
            (token_sha256, now_ms),
        )
        if row is None:
            return None
        return SessionRecord(
            row["token_sha256"], row["user_name"], row["csrf"], row["created_at"],
            row["expires_at"],
        )

    async def end_session(self, token_sha256: str) -> None:
        """Forget one session (sign-out)."""
        await self._db.execute(
            "DELETE FROM console_sessions WHERE token_sha256 = ?", (token_sha256,)
        )

    async def save_draft(self, name: str, fields: list[tuple[str, str]], now_ms: int) -> None:
        """Keep the compose form a user is writing (the posted fields, in order)."""
        await self._db.execute(
            "INSERT INTO console_drafts (user_name, fields, saved_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_name) DO UPDATE SET fields = excluded.fields,"
            " saved_at = excluded.saved_at",
            (name, json.dumps(fields), now_ms),
        )

    async def draft(self, name: str) -> Draft | None:
        """The compose form the user was writing, if any."""
        row = await self._db.fetchone(
            "SELECT fields, saved_at FROM console_drafts WHERE user_name = ?", (name,)
        )
        if row is None:
            return None
        pairs = tuple((str(k), str(v)) for k, v in json.loads(row["fields"]))
        return Draft(pairs, int(row["saved_at"]))

    async def drop_draft(self, name: str) -> None:
        """Forget the user's draft (sent, or started again)."""
        await self._db.execute("DELETE FROM console_drafts WHERE user_name = ?", (name,))

    async def purge_sessions(self, now_ms: int) -> int:
        """Forget expired sessions."""
        return await self._db.execute(
            "DELETE FROM console_sessions WHERE expires_at <= ?", (now_ms,)
        )


class ConsoleReads:
    """Read-only queries behind the console's follow and history pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def delivered_at(self, alert_id: str, fractions: tuple[float, ...]) -> dict[str, Any]:
        """When each fraction of the alert's deliveries (all channels) had arrived.

        Suppressed deliveries are not counted; e-mail and push, which hear nothing back after
        the provider accepts them, count once accepted. `{"total", "delivered", "at":
        {"50": ms|None, ...}}`: the `updated_at` of the delivery that brought the count to
        that fraction of the total, None while short of it.
        """
        arrived = (
            "(state = 'delivered' OR (state = 'accepted' AND channel IN ('email', 'push')))"
        )
        total = int(
            await self._db.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND state <> 'suppressed'",
                (alert_id,),
            ) or 0
        )
        delivered = int(
            await self._db.fetchval(
                f"SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND {arrived}", (alert_id,)
            ) or 0
        )
        at: dict[str, int | None] = {}
        for fraction in fractions:
            needed = max(1, math.ceil(total * fraction))
            key = f"{fraction * 100:g}"
            if total == 0 or delivered < needed:
                at[key] = None
                continue
            at[key] = await self._db.fetchval(
                f"SELECT updated_at FROM deliveries WHERE alert_id = ? AND {arrived}"
                " ORDER BY updated_at, id LIMIT 1 OFFSET ?",
                (alert_id, needed - 1),
            )
        return {"total": total, "delivered": delivered, "at": at}

    async def failure_reasons(self, alert_id: str, limit: int = 50) -> list[Row]:
        """The alert's failed deliveries, newest first: channel, recipient, detail."""
        return await self._db.fetchall(
            "SELECT id, channel, recipient, role, detail, attempts, updated_at FROM deliveries"
            " WHERE alert_id = ? AND state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT ?",
            (alert_id, limit),
        )

    async def recent_alert_ids(self, limit: int = 100) -> list[str]:
        """The newest alerts' ids, newest first."""
        rows = await self._db.fetchall(
            "SELECT id FROM alerts ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
        )
        return [r["id"] for r in rows]

    async def audit_trail(self, alert_id: str) -> list[Row]:
        """Every audit entry about one alert, oldest first (with its hash)."""
        return await self._db.fetchall(
            "SELECT seq, at, actor, action, detail, hash FROM audit WHERE alert_id = ?"
            " ORDER BY seq",
            (alert_id,),
        )
