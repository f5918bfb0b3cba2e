"""Issuing and revoking the API tokens kept in the store (`clarion token add|revoke|list` and
the console's tokens page): each belongs to a person, expires, and is audited."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from dispatcher.access.auth import ADMIN_TOKEN_NAME, Role, config_person, token_sha256
from dispatcher.clock import Clock
from dispatcher.refusals import Conflict, Invalid, NotFound
from dispatcher.settings import AuthSettings
from dispatcher.store.audit import AuditLog
from dispatcher.store.tokens import TokenExists, TokenRecord, TokenStore
from dispatcher.store.users import UserStore

TOKEN_BYTES = 32
DEFAULT_EXPIRY_DAYS = 90
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Issued:
    """A new token: shown once, then only its hash is kept."""

    token: str
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class ListedToken:
    """A token as the list shows it: stored or configured, and whether it still works."""

    name: str
    person: str
    role: str
    segments: tuple[str, ...]
    source: str
    expires_at: int | None
    revoked_at: int | None
    usable: bool


class TokenRegistry:
    """Stored tokens beside the configured ones; names are unique across both and the users."""

    def __init__(self, settings: AuthSettings, tokens: TokenStore, users: UserStore,
                 audit: AuditLog, clock: Clock) -> None:
        self._settings = settings
        self._tokens = tokens
        self._users = users
        self._audit = audit
        self._clock = clock

    def _configured(self) -> dict[str, tuple[str, str, str, tuple[str, ...]]]:
        """Configured tokens by name: (sha256, person, role, segments)."""
        return {t.name: (t.sha256, config_person(t.name, t.person), t.role, tuple(t.segments))
                for t in self._settings.tokens}

    async def issue(self, name: str, *, person: str, role: Role, segments: tuple[str, ...],
                    expires_in_days: int | None, actor: str) -> Issued:
        """Make a token for a person; raises Invalid or Conflict."""
        if not _NAME.match(name) or name == ADMIN_TOKEN_NAME:
            raise Invalid.one("name", "use 1 to 100 letters, digits and . _ @ - "
                                      f"(not {ADMIN_TOKEN_NAME!r})")
        if not person.strip():
            raise Invalid.one("person", "name the person who holds the token")
        if expires_in_days is not None and expires_in_days < 1:
            raise Invalid.one("expires_in_days", "at least one day")
        if name in self._configured() or await self._users.get(name) is not None:
            raise Conflict(f"{name!r} is already a configured token's or a console user's name")
        now = self._clock.now_ms()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        record = TokenRecord(
            sha256=token_sha256(token), name=name, person=person.strip(), role=role.value,
            segments=segments, created_by=actor, created_at=now,
            expires_at=None if expires_in_days is None else now + expires_in_days * 86_400_000,
            revoked_at=None, revoked_by=None,
        )
        try:
            await self._tokens.add(record)
        except TokenExists:
            raise Conflict(f"a token named {name!r} exists") from None
        await self._audit.record(at=now, actor=actor, action="token.issued",
                                 detail={"token": name, "person": record.person,
                                         "role": role.value, "segments": list(segments),
                                         "expires_at": record.expires_at})
        return Issued(token, record)

    async def revoke(self, name: str, *, actor: str) -> None:
        """Revoke a stored or configured token by name; every node refuses it from now on."""
        now = self._clock.now_ms()
        configured = self._configured().get(name)
        if configured is not None:
            sha256, person, role, segments = configured
            try:
                await self._tokens.add(TokenRecord(sha256, name, person, role, segments,
                                                   actor, now, None, now, actor))
            except TokenExists:
                raise Conflict(f"token {name!r} is already revoked") from None
        elif not await self._tokens.revoke(name, by=actor, now_ms=now):
            if await self._tokens.by_name(name) is None:
                raise NotFound(f"no token {name!r}")
            raise Conflict(f"token {name!r} is already revoked")
        await self._audit.record(at=now, actor=actor, action="token.revoked",
                                 detail={"token": name})

    async def listed(self) -> list[ListedToken]:
        """Every token, configured and stored, with whether it works now."""
        now = self._clock.now_ms()
        stored = {t.name: t for t in await self._tokens.all()}
        rows = []
        for name, (_, person, role, segments) in sorted(self._configured().items()):
            revoked = stored.pop(name, None)
            rows.append(ListedToken(name, person, role, segments, "config", None,
                                    revoked.revoked_at if revoked else None, revoked is None))
        for token in stored.values():
            rows.append(ListedToken(token.name, token.person, token.role, token.segments,
                                    "store", token.expires_at, token.revoked_at,
                                    token.usable_at(now)))
        return rows
