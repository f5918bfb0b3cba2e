"""Campus single sign-on for the console: OpenID Connect's authorization code flow with PKCE.

The browser goes to the identity provider with a fresh `state`, `nonce` and PKCE challenge and
comes back with a code; the code is exchanged at the token endpoint and the ID token is checked
against the provider's published keys (signature, issuer, audience, expiry, nonce). Its claims
name the person and, through `role_claim` and `roles`, their console role.

The local password form never depends on any of this: when the provider cannot be reached, the
SSO button fails with a plain message and break-glass accounts still sign in.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from dispatcher.access.auth import Role
from dispatcher.access.credentials import reveal
from dispatcher.console.settings import OidcSettings

log = structlog.get_logger("clarion.console.oidc")

CALLBACK_PATH = "/console/sso/callback"
# The algorithms an ID token may be signed with; never "none", never HMAC with a public key.
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
# Strongest first: someone in several mapped groups gets the most capable of their roles.
_ROLE_ORDER = (Role.ADMIN, Role.DISPATCHER, Role.DRILL, Role.VIEWER)


class SsoFailure(StrEnum):
    """Why an SSO sign-in did not work; each has its own plain message."""

    UNAVAILABLE = "unavailable"
    EXPIRED = "expired"
    PROVIDER_REFUSED = "provider_refused"
    INVALID_ID_TOKEN = "invalid_id_token"  # noqa: S105 - a reason, not a secret
    NO_NAME = "no_name"
    NOT_ALLOWED = "not_allowed"
    LOCAL_ACCOUNT = "local_account"


class SsoError(Exception):
    """An SSO sign-in that cannot go on; `failure` says why, the message is for the logs."""

    def __init__(self, failure: SsoFailure, detail: str = "") -> None:
        super().__init__(detail or failure.value)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the console remembers between sending someone to the provider and their return."""

    state: str
    nonce: str
    code_verifier: str
    next_path: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """Who the ID token says signed in, and the role their claims map to (None: refused)."""

    name: str
    full_name: str
    role: Role | None
    subject: str


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document the console uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class OidcClient:
    """Talks to one identity provider: discovery, the authorize redirect, code for ID token."""

    PENDING_S = 600.0  # how long someone may take at the provider's sign-in page

    def __init__(
        self,
        settings: OidcSettings,
        redirect_uri: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        # Kept in this process: a sign-in must come back to the `clarion serve` that began it.
        self._pending: dict[str, PendingSignIn] = {}

    async def _get_json(self, url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
                if resp.status != 200:
                    raise SsoError(SsoFailure.UNAVAILABLE, f"GET {url}: HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SsoError(SsoFailure.UNAVAILABLE, f"GET {url}: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise SsoError(SsoFailure.UNAVAILABLE, f"GET {url}: not a JSON object")
        return body

    async def metadata(self) -> ProviderMetadata:
        """The provider's endpoints, discovered once (retried after a failure)."""
        if self._metadata is not None:
            return self._metadata
        issuer = self.settings.issuer.rstrip("/")
        doc = await self._get_json(f"{issuer}/.well-known/openid-configuration")
        try:
            found = ProviderMetadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
            )
        except KeyError as exc:
            raise SsoError(SsoFailure.UNAVAILABLE, f"discovery lacks {exc}") from exc
        if found.issuer.rstrip("/") != issuer:
            # OpenID Connect Discovery 1.0 section 4.3: the document must name this issuer.
            raise SsoError(SsoFailure.UNAVAILABLE, "discovery names another issuer")
        self._metadata = found
        return found

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            meta = await self.metadata()
            try:
                self._keys = KeySet.import_key_set(await self._get_json(meta.jwks_uri))  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError) as exc:
                raise SsoError(SsoFailure.UNAVAILABLE, "the provider's keys are unusable") from exc
        return self._keys

    def _forget_stale(self) -> None:
        now = self._clock()
        for state in [s for s, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[state]

    async def begin(self, next_path: str) -> tuple[str, PendingSignIn]:
        """The provider's authorize URL for a new sign-in, and what to remember of it."""
        meta = await self.metadata()
        self._forget_stale()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=generate_token(64),
            next_path=next_path,
            expires_at=self._clock() + self.PENDING_S,
        )
        self._pending[pending.state] = pending
        query = urlencode({
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": create_s256_code_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        })
        joiner = "&" if "?" in meta.authorization_endpoint else "?"
        return f"{meta.authorization_endpoint}{joiner}{query}", pending

    def claim_pending(self, state: str) -> PendingSignIn:
        """The sign-in this `state` began (once only); raises SsoError when unknown or stale."""
        self._forget_stale()
        pending = self._pending.pop(state, None) if state else None
        if pending is None:
            raise SsoError(SsoFailure.EXPIRED, "unknown or expired state")
        return pending

    async def finish(self, code: str, pending: PendingSignIn) -> SsoIdentity:
        """Exchange the code for an ID token, check it, and say who it names."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pending.code_verifier,
            "client_id": self.settings.client_id,
        }
        secret = reveal(self.settings.client_secret)
        headers = {"Accept": "application/json"}
        if secret:
            # client_secret_basic; RFC 6749 section 2.3.1 form-encodes both parts first.
            pair = f"{quote(self.settings.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(meta.token_endpoint, data=form, headers=headers) as resp,
            ):
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SsoError(SsoFailure.UNAVAILABLE, f"token endpoint: {type(exc).__name__}") from exc
        if status != 200 or not isinstance(body, dict) or "id_token" not in body:
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise SsoError(SsoFailure.PROVIDER_REFUSED,
                           f"token endpoint: HTTP {status} {error}".strip())
        claims = await self.verify_id_token(str(body["id_token"]), pending.nonce)
        return self.identity(claims)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, expiry and nonce hold."""
        keys = await self._key_set()
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except JoseError:
            # The provider may have rotated its keys since they were fetched.
            keys = await self._key_set(refresh=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except (JoseError, ValueError) as exc:
                raise SsoError(SsoFailure.INVALID_ID_TOKEN, f"signature: {exc}") from exc
        except ValueError as exc:
            raise SsoError(SsoFailure.INVALID_ID_TOKEN, f"malformed: {exc}") from exc
        meta = await self.metadata()
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self.settings.leeway_s,
            iss={"essential": True, "value": meta.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise SsoError(SsoFailure.INVALID_ID_TOKEN, f"claims: {exc}") from exc
        audience = token.claims.get("aud")
        # Core 1.0 section 3.1.3.7: with several audiences, azp must be this client.
        several = isinstance(audience, list) and len(audience) > 1
        if several and token.claims.get("azp") != self.settings.client_id:
            raise SsoError(SsoFailure.INVALID_ID_TOKEN, "claims: azp is not this client")
        return dict(token.claims)

    def identity(self, claims: dict[str, Any]) -> SsoIdentity:
        """The user name (preferred_username, else email) and the role the claims map to."""
        raw_name = claims.get("preferred_username") or claims.get("email") or ""
        name = str(raw_name).strip().lower()
        if not name:
            raise SsoError(SsoFailure.NO_NAME, "no preferred_username or email")
        return SsoIdentity(
            name=name,
            full_name=str(claims.get("name") or ""),
            role=self.role_for(claims.get(self.settings.role_claim)),
            subject=str(claims.get("sub", "")),
        )

    def role_for(self, values: object) -> Role | None:
        """The strongest role any of the claim's values maps to, else the default role."""
        if isinstance(values, str):
            values = [values]
        mapped = set()
        if isinstance(values, list):
            mapped = {self.settings.roles[v] for v in values
                      if isinstance(v, str) and v in self.settings.roles}
        for role in _ROLE_ORDER:
            if role.value in mapped:
                return role
        return Role(self.settings.default_role) if self.settings.default_role else None
