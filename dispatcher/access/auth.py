"""API tokens and what guards them: roles, segment scopes, request signatures, rate limits.

Tokens are stored as SHA-256 in the config (`[[auth.tokens]]`: name, role, sha256, segments),
each with a role (admin, dispatcher, drill, viewer) and optional scopes: the named segments a
department token may target.

Request signatures (HMAC-SHA256), for webhook senders that prefer them: a token with an
`hmac_secret` must sign every request, or it is refused with 401. The sender adds

    X-Clarion-Timestamp: <Unix time in whole seconds>
    X-Clarion-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

beside its `Authorization: Bearer` header (the body of a GET is empty). A timestamp more than
`auth.signature_window_s` (default 300 s) from the service's clock, either way, is refused; so
is a signature already seen within the window on any node sharing the store (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.access.credentials import reveal
from dispatcher.settings import AuthSettings
from dispatcher.store.database import Database
from dispatcher.store.signatures import SeenSignatures
from dispatcher.store.tokens import TokenStore
from segments.expression import And, AudienceError, Node, Term, parse

TIMESTAMP_HEADER = "X-Clarion-Timestamp"
SIGNATURE_HEADER = "X-Clarion-Signature"
SIGNATURE_PREFIX = "sha256="
ADMIN_TOKEN_NAME = "admin-token"  # noqa: S105 - a caller name, not a secret

# A term key no expression can mean by accident: it marks where a scope segment was expanded.
_SCOPE_KEY = "__scope__"
_TIMESTAMP = re.compile(r"^\d{1,12}$")
_SIGNATURE = re.compile(r"^sha256=[0-9a-fA-F]{64}$")


class Role(StrEnum):
    """What a token may do."""

    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    DRILL = "drill"
    VIEWER = "viewer"
    # An identity provider's provisioning client: the SCIM endpoints only, nothing else.
    SCIM = "scim"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client: the credential's name, its role and scopes, and the person
    who holds it (one person may hold a console account and tokens; the two-person rule
    compares people). Without a person, the credential is a person of its own."""

    name: str
    role: Role
    scopes: tuple[str, ...] = ()
    person: str = ""

    def __post_init__(self) -> None:
        if not self.person:
            object.__setattr__(self, "person", self.name)

    @property
    def can_send(self) -> bool:
        """May create alerts (live ones only when not a drill token)."""
        return self.role not in (Role.VIEWER, Role.SCIM)

    @property
    def can_send_live(self) -> bool:
        """May create live alerts."""
        return self.role in (Role.ADMIN, Role.DISPATCHER)


def token_sha256(token: str) -> str:
    """How a token is stored in the config."""
    return hashlib.sha256(token.encode()).hexdigest()


def scope_permits(audience: str, scopes: Sequence[str], segments: Mapping[str, str]) -> bool:
    """Whether an audience stays inside a token's scopes.

    It must be one of the scope segments by name, or a conjunction (`and`, at any depth of
    `and`s) one of whose parts is a scope segment by name: anything so restricted selects a
    subset of that segment. Every other shape (`or`, `not`, `all`, raw terms) is refused.
    """
    if not scopes:
        return True
    # Parse with each scope replaced by a marker term; the marker's origin proves it came
    # from expanding the scope's name, not from text the caller wrote.
    marked = {**segments, **{s: f"{_SCOPE_KEY}:{s}" for s in scopes}}
    try:
        node = parse(audience, marked)
    except AudienceError:
        return False
    return _restricted(node, frozenset(scopes))


def _restricted(node: Node, scopes: frozenset[str]) -> bool:
    if isinstance(node, Term):
        return node.key == _SCOPE_KEY and node.value == node.segment and node.value in scopes
    if isinstance(node, And):
        return any(_restricted(part, scopes) for part in node.parts)
    return False


class SignatureError(Exception):
    """A signed request that cannot be trusted; the message says why, for the 401."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Clarion-Signature value for a body sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def check_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now_s: float,
    window_s: float,
) -> str:
    """Verify a request's signature; returns its digest (the replay key) or raises."""
    if not timestamp or not signature:
        raise SignatureError(
            f"this token must sign its requests ({TIMESTAMP_HEADER}, {SIGNATURE_HEADER})"
        )
    if not _TIMESTAMP.match(timestamp.strip()):
        raise SignatureError(f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
    if abs(now_s - int(timestamp)) > window_s:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is more than {window_s:g} s from the service's clock"
        )
    if not _SIGNATURE.match(signature.strip()):
        raise SignatureError(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
    expected = sign(secret, timestamp.strip(), body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body and timestamp")
    return hashlib.sha256(expected.encode()).hexdigest()


async def first_use(db: Database, digest: str, *, now_ms: int, keep_ms: int) -> bool:
    """Remember a signature until it can no longer be valid; False when it was seen before.

    Kept in the store, so a request replayed to another node behind the balancer is refused
    too. A signature stays valid while its timestamp is within the window of some node's
    clock, so it is kept for two windows.
    """
    return await SeenSignatures(db).first_use(digest, now_ms=now_ms, keep_ms=keep_ms)


class RateLimiter:
    """Token buckets by caller name: `take` answers 0 to go ahead, else seconds to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, burst: int) -> float:
        """Spend one request of `key`'s bucket (`rate` a second, `burst` at most)."""
        if rate <= 0:
            return 0.0
        now = self._clock()
        tokens, since = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - since) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after(wait_s: float) -> str:
    """A Retry-After header value: whole seconds, at least one."""
    return str(max(1, math.ceil(wait_s)))


@dataclass(frozen=True, slots=True)
class _Known:
    sha256: str
    caller: Caller
    secret: str
    rate: float
    burst: int


def config_person(name: str, person: str | None) -> str:
    """The person a configured token belongs to: as configured, else a person of its own
    (`token:<name>`, which no console user name can be)."""
    return person or f"token:{name}"


class Authenticator:
    """Checks bearer tokens: the configured hashes (in constant time) and the tokens kept in
    the store, where an expired or revoked token (configured ones too) is refused on every
    node from the next request on."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        tokens: TokenStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ):
        self.settings = settings
        self._store = tokens
        self._now_ms = now_ms
        self._known: list[_Known] = [
            _Known(
                t.sha256,
                Caller(t.name, Role(t.role), tuple(t.segments),
                       person=config_person(t.name, t.person)),
                reveal(t.hmac_secret),
                settings.rate_per_second if t.rate_per_second is None else t.rate_per_second,
                settings.rate_burst if t.rate_burst is None else t.rate_burst,
            )
            for t in settings.tokens
        ]
        self.generated: str | None = None
        admin = reveal(settings.token)
        if not admin and not self._known:
            # Nothing configured: make one, shown once at start, so the service is never open.
            admin = self.generated = secrets.token_urlsafe(24)
        if admin:
            self._known.append(
                _Known(
                    token_sha256(admin),
                    Caller(ADMIN_TOKEN_NAME, Role.ADMIN, person=settings.token_person),
                    "",
                    settings.rate_per_second,
                    settings.rate_burst,
                )
            )
        self._by_name = {k.caller.name: k for k in self._known}
        self.limiter = RateLimiter(clock)

    @property
    def callers(self) -> list[Caller]:
        """Every configured caller."""
        return [k.caller for k in self._known]

    @property
    def configured_names(self) -> frozenset[str]:
        """The names of the configured tokens (no console user or stored token may take one)."""
        return frozenset(self._by_name)

    def authenticate(self, header: str | None) -> Caller | None:
        """The configured caller a `Bearer` Authorization header names, or None."""
        digest = _digest(header)
        if digest is None:
            return None
        found = None
        # Compare with every hash, found or not, so timing says nothing about which matched.
        for known in self._known:
            if hmac.compare_digest(known.sha256, digest):
                found = known.caller
        return found

    async def identify(self, header: str | None) -> Caller | None:
        """The caller a `Bearer` header names: a stored token that is neither expired nor
        revoked, or a configured one that was not revoked; else None."""
        digest = _digest(header)
        if digest is None:
            return None
        configured = self.authenticate(header)
        if self._store is None:
            return configured
        # Looked up by the hash of a random token: the lookup's timing tells nothing useful.
        stored = await self._store.by_hash(digest)
        if stored is None:
            return configured
        if configured is not None or not stored.usable_at(self._now_ms()):
            # A stored row for a configured token is its revocation.
            return None
        return Caller(stored.name, Role(stored.role), stored.segments, person=stored.person)

    def secret_for(self, caller: Caller) -> str:
        """The caller's HMAC secret, or "" when its requests need no signature."""
        known = self._by_name.get(caller.name)
        return known.secret if known is not None else ""

    def throttle(self, caller: Caller) -> float:
        """Spend one request of the caller's rate: 0 to go ahead, else seconds to wait."""
        known = self._by_name.get(caller.name)
        rate, burst = (
            (known.rate, known.burst) if known is not None
            else (self.settings.rate_per_second, self.settings.rate_burst)
        )
        return self.limiter.take(caller.name, rate, burst)


def _digest(header: str | None) -> str | None:
    if not header or not header.startswith("Bearer "):
        return None
    return token_sha256(header.removeprefix("Bearer ").strip())
