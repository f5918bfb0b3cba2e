"""API tokens: stored as SHA-256, each with a role and optional segment scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.credentials import reveal
from dispatcher.settings import AuthSettings


class Role(StrEnum):
    """What a token may do."""

    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    DRILL = "drill"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated API client."""

    name: str
    role: Role
    scopes: tuple[str, ...] = ()

    @property
    def can_send(self) -> bool:
        """May create alerts (live ones only when not a drill token)."""
        return self.role is not Role.VIEWER

    @property
    def can_send_live(self) -> bool:
        """May create live alerts."""
        return self.role in (Role.ADMIN, Role.DISPATCHER)


def token_sha256(token: str) -> str:
    """How a token is stored in the config."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Checks bearer tokens against the configured hashes in constant time."""

    def __init__(self, settings: AuthSettings) -> None:
        self._known: list[tuple[str, Caller]] = [
            (t.sha256, Caller(t.name, Role(t.role), tuple(t.segments))) for t in settings.tokens
        ]
        self.generated: str | None = None
        admin = reveal(settings.token)
        if not admin and not self._known:
            # Nothing configured: make one, shown once at start, so the service is never open.
            admin = self.generated = secrets.token_urlsafe(24)
        if admin:
            self._known.append((token_sha256(admin), Caller("admin-token", Role.ADMIN)))
        self.override_roles = frozenset(Role(r) for r in settings.override_roles)

    def authenticate(self, header: str | None) -> Caller | None:
        """The caller a `Bearer` Authorization header names, or None."""
        if not header or not header.startswith("Bearer "):
            return None
        digest = token_sha256(header.removeprefix("Bearer ").strip())
        found = None
        for known, caller in self._known:
            if hmac.compare_digest(known, digest):
                found = caller
        return found

    def may_override(self, caller: Caller) -> bool:
        """Whether a caller's role may send despite policy errors."""
        return caller.role in self.override_roles
