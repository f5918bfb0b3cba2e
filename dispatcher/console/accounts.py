"""Console accounts: argon2 passwords, sessions in the store, CSRF tokens, sign-in throttling.

A session cookie carries 32 random bytes; the store keeps only their SHA-256, so a copy of
the database signs nobody in. Each session has its own CSRF token, required on every
state change (a hidden form field, or the `X-CSRF-Token` header htmx sends).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dispatcher.access.auth import ADMIN_TOKEN_NAME, Caller, Role
from dispatcher.clock import Clock
from dispatcher.store.audit import AuditLog
from dispatcher.store.sign_in import SignInLimits
from dispatcher.store.users import SessionRecord, UserExists, UserRecord, UserStore

SESSION_COOKIE = "clarion_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSION_S = 12 * 3600  # a dispatcher's shift
MIN_PASSWORD = 12
FIRST_ADMIN = "admin"
# Stored instead of a hash for people who sign in through the campus identity provider: argon2
# cannot parse it, so no password ever matches, and it marks the account as an SSO one.
SSO_PASSWORD_HASH = "!sso"  # noqa: S105 - a marker, not a secret
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")

# A hash compared when the user does not exist, so the answer takes as long either way.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash to store."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether the password matches the stored hash."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A password to hand out once: 20 URL-safe characters."""
    return secrets.token_urlsafe(15)


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters"
    return None


def name_problem(name: str, token_names: Collection[str] = ()) -> str | None:
    """Why a user name is not acceptable, or None (an API token's name is taken: one name is
    one credential in the audit log)."""
    if name == ADMIN_TOKEN_NAME:
        return f"{ADMIN_TOKEN_NAME!r} is the API admin token's name"
    if name in token_names:
        return f"{name!r} is an API token's name"
    if not _NAME.match(name):
        return ("Use 1 to 64 lower-case letters, digits and . _ @ - "
                "(starting with a letter or digit)")
    return None


def token_digest(token: str) -> str:
    """How a session cookie is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class LoginThrottle:
    """Sign-in tries per account name (and per address, when that limit is on), counted in
    the store before the password is checked: parallel tries, on one node or several, each
    take a place in the count, and only the first `per_user` of a window are checked."""

    def __init__(
        self,
        limits: SignInLimits,
        clock: Clock,
        *,
        per_user: int = 5,
        per_address: int = 0,
        window_s: float = 900.0,
    ) -> None:
        self._store = limits
        self._clock = clock
        self._limits = {"user": per_user, "address": per_address}
        self._window_ms = int(window_s * 1000)

    async def take(self, user: str, address: str) -> float:
        """Count one try; 0 when its password may be checked, else the seconds to wait."""
        now = self._clock.now_ms()
        wait_ms = 0
        for kind, value in (("user", user), ("address", address)):
            limit = self._limits[kind]
            if limit <= 0:
                continue
            attempt = await self._store.count(f"{kind}:{value}", now_ms=now,
                                              window_ms=self._window_ms)
            if attempt.failures > limit:
                wait_ms = max(wait_ms, attempt.window_start + self._window_ms - now)
        return max(wait_ms, 1) / 1000 if wait_ms else 0.0

    async def succeeded(self, user: str) -> None:
        """A correct password clears that account's count (not the address's)."""
        await self._store.clear(f"user:{user}")


class SignInRefusal(StrEnum):
    """Why a sign-in did not work (one message for wrong name or password)."""

    WRONG = "wrong"
    THROTTLED = "throttled"
    DISABLED = "disabled"
    LOCAL_ACCOUNT = "local_account"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie value to set and the session as stored."""

    token: str
    session: SessionRecord
    user: UserRecord


@dataclass(frozen=True, slots=True)
class SignInFailed:
    """A refused sign-in, and how long to wait when throttled."""

    refusal: SignInRefusal
    wait_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Person:
    """A signed-in console user: who, their role, and the session's CSRF token."""

    user: UserRecord
    session: SessionRecord

    @property
    def caller(self) -> Caller:
        """The same person as intake and the audit log see them."""
        return Caller(self.user.name, Role(self.user.role), self.user.segments)

    @property
    def display_name(self) -> str:
        """Their full name, or their user name."""
        return self.user.full_name or self.user.name


class Accounts:
    """Signs people in and out, finds their session, and audits both under their name."""

    def __init__(
        self,
        users: UserStore,
        audit: AuditLog,
        clock: Clock,
        *,
        throttle: LoginThrottle | None = None,
        session_s: int = SESSION_S,
    ) -> None:
        self.users = users
        self._audit = audit
        self._clock = clock
        self.throttle = throttle or LoginThrottle(users.sign_in_limits(), clock)
        self._session_s = session_s

    async def add_user(
        self,
        name: str,
        password: str,
        *,
        role: Role,
        segments: tuple[str, ...] = (),
        full_name: str = "",
        title: str = "",
        actor: str | None,
    ) -> UserRecord:
        """Create a user (raises UserExists) and audit who did (unless `actor` is None)."""
        now = self._clock.now_ms()
        hashed = await asyncio.to_thread(hash_password, password)
        user = UserRecord(name, full_name, title, role.value, segments, hashed, False, now, now)
        await self.users.add(user)
        if actor is not None:
            await self._audit.record(at=now, actor=actor, action="console.user_added",
                                     detail={"user": name, "role": role.value,
                                             "segments": list(segments)})
        return user

    async def ensure_first_admin(self, password: str | None = None) -> str | None:
        """With no users at all, create the admin user; returns its password, shown once."""
        if await self.users.count() > 0:
            return None
        password = password or generate_password()
        # Not audited: the audit log holds people's decisions, and this is the service's own
        # first start (the user row keeps when it happened).
        try:
            await self.add_user(FIRST_ADMIN, password, role=Role.ADMIN,
                                full_name="Administrator", actor=None)
        except UserExists:
            # Another node on the same store started at the same moment and made it: its
            # password is the one printed, by that node.
            return None
        return password

    async def sign_in(self, name: str, password: str, address: str) -> SignedIn | SignInFailed:
        """Check the password (throttled per name and address) and open a session."""
        name = name.strip().lower()
        wait = await self.throttle.take(name, address)
        now = self._clock.now_ms()
        if wait > 0:
            await self._audit.record(at=now, actor=name or "(blank)",
                                     action="console.sign_in_throttled",
                                     detail={"address": address})
            return SignInFailed(SignInRefusal.THROTTLED, wait)
        user = await self.users.get(name) if name else None
        # Argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
        good = await asyncio.to_thread(
            verify_password, user.password_hash if user else _DUMMY_HASH, password
        )
        if user is None or not good or user.disabled:
            await self._audit.record(at=now, actor=name or "(blank)",
                                     action="console.sign_in_failed",
                                     detail={"address": address})
            return SignInFailed(SignInRefusal.WRONG)
        await self.throttle.succeeded(name)
        return await self._open_session(user, {"address": address, "role": user.role})

    async def _open_session(self, user: UserRecord, detail: dict[str, object]) -> SignedIn:
        now = self._clock.now_ms()
        token = secrets.token_urlsafe(32)
        session = SessionRecord(token_digest(token), user.name, secrets.token_urlsafe(32), now,
                                now + 1000 * self._session_s)
        await self.users.purge_sessions(now)
        await self.users.add_session(session)
        await self._audit.record(at=now, actor=user.name, action="console.sign_in",
                                 detail=detail)
        return SignedIn(token, session, user)

    async def sign_in_sso(
        self, name: str, full_name: str, role: Role, address: str
    ) -> SignedIn | SignInFailed:
        """Open a session for someone the identity provider vouched for.

        Their account is created on first sign-in (no password) and its role and full name
        follow the provider's claims every time. A local account of the same name is never
        taken over, and a disabled SSO account stays out.
        """
        now = self._clock.now_ms()
        user = await self.users.get(name)
        if user is None:
            user = UserRecord(name, full_name, "", role.value, (), SSO_PASSWORD_HASH, False,
                              now, now)
            try:
                await self.users.add(user)
            except UserExists:
                user = await self.users.get(name)
                if user is None:
                    return SignInFailed(SignInRefusal.WRONG)
            else:
                await self._audit.record(at=now, actor=name, action="console.user_added",
                                         detail={"user": name, "role": role.value,
                                                 "method": "sso", "segments": []})
        refusal: SignInRefusal | None = None
        if user.password_hash != SSO_PASSWORD_HASH:
            refusal = SignInRefusal.LOCAL_ACCOUNT
        elif user.disabled:
            refusal = SignInRefusal.DISABLED
        if refusal is not None:
            await self._audit.record(at=now, actor=name, action="console.sign_in_failed",
                                     detail={"address": address, "method": "sso",
                                             "reason": refusal.value})
            return SignInFailed(refusal)
        if (user.role, user.full_name) != (role.value, full_name):
            await self.users.set_profile(name, full_name, role.value, now)
            user = await self.users.get(name) or user
        return await self._open_session(
            user, {"address": address, "role": user.role, "method": "sso"})

    async def person(self, token: str | None) -> Person | None:
        """The signed-in person a session cookie names, or None."""
        if not token:
            return None
        session = await self.users.session(token_digest(token), self._clock.now_ms())
        if session is None:
            return None
        user = await self.users.get(session.user_name)
        if user is None or user.disabled:
            return None
        return Person(user, session)

    async def record(self, actor: str, action: str, detail: dict[str, object]) -> None:
        """Audit an account change made outside a session (the CLI)."""
        await self._audit.record(at=self._clock.now_ms(), actor=actor, action=action,
                                 detail=detail)

    async def sign_out(self, person: Person) -> None:
        """End the person's session."""
        await self.users.end_session(person.session.token_sha256)
        await self._audit.record(at=self._clock.now_ms(), actor=person.user.name,
                                 action="console.sign_out")


def csrf_ok(person: Person, presented: str | None) -> bool:
    """Whether a state change carries the session's CSRF token."""
    return bool(presented) and hmac.compare_digest(person.session.csrf, presented or "")
