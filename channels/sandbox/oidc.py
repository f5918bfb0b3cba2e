"""A stand-in OpenID Connect identity provider for the console's campus sign-in.

Real wire format on its own 127.0.0.1 listener: the discovery document, an authorize endpoint
that signs in one configured test person at once (no page) and redirects back with a code, a
token endpoint that checks the client and the PKCE verifier and answers an RS256 ID token, and
the JWKS the console checks it against. `overrides` changes the next ID tokens' claims, so
tests can hand out a wrong nonce, audience or expiry.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import structlog
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from channels.sandbox.server import Sandbox

log = structlog.get_logger("clarion.sandbox.oidc")

KEY_ID = "sandbox-1"
CODE_S = 60


@dataclass(frozen=True, slots=True)
class ProviderPerson:
    """Whom the stand-in signs in: the claims it puts in the ID token."""

    subject: str = "u-1001"
    preferred_username: str = "jordan"
    email: str = "jordan@example.edu"
    name: str = "Jordan Lee"
    groups: tuple[str, ...] = ("clarion-dispatchers",)


@dataclass(frozen=True, slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    expires_at: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class OidcProvider:
    """The identity provider: one client, one test person, one RSA signing key."""

    client_id: str = "clarion-console"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - the stand-in's fixed secret
    person: ProviderPerson = field(default_factory=ProviderPerson)
    host: str = "127.0.0.1"
    port: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    token_lifetime_s: int = 300
    _key: RSAKey = field(init=False)
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig",
                                                          "alg": "RS256"})

    @property
    def issuer(self) -> str:
        """The issuer URL (known once started, when the port was 0)."""
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The provider's routes."""
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        return app

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        log.info("sandbox.oidc_started", issuer=self.issuer)

    async def stop(self) -> None:
        """Stop listening (the console then finds the provider down)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self._key.as_dict(private=False)]})

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id or not redirect_uri:
            # Never redirect to an address the client did not prove: answer here instead.
            return web.json_response({"error": "invalid_client"}, status=400)
        if (q.get("response_type") != "code" or "openid" not in q.get("scope", "").split()
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            query = urlencode({"error": "invalid_request", "state": q.get("state", "")})
            raise web.HTTPFound(f"{redirect_uri}?{query}")
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(self.client_id, redirect_uri, q.get("nonce", ""),
                                    q["code_challenge"], time.time() + CODE_S)
        query = urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(f"{redirect_uri}?{query}")

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
                client, _, secret = (unquote(part) for part in pair.partition(":"))
            except ValueError:
                return False
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client == self.client_id and hmac.compare_digest(secret, self.client_secret)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._grants.pop(form.get("code", ""), None)
        if (form.get("grant_type") != "authorization_code" or grant is None
                or grant.expires_at < time.time()
                or grant.redirect_uri != form.get("redirect_uri")
                or not hmac.compare_digest(_s256(form.get("code_verifier", "")),
                                           grant.code_challenge)):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self.person.subject, "aud": self.client_id,
            "iat": now, "exp": now + self.token_lifetime_s, "nonce": grant.nonce,
            "preferred_username": self.person.preferred_username, "email": self.person.email,
            "name": self.person.name, "groups": list(self.person.groups),
        }
        claims.update(self.overrides)
        id_token = jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, self._key)
        return web.json_response({
            "access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
            "expires_in": self.token_lifetime_s, "id_token": id_token,
        }, headers={"Cache-Control": "no-store"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stand-in identity provider's flags (off unless --oidc-port is given)."""
    group = parser.add_argument_group("OpenID Connect identity provider (console SSO)")
    group.add_argument("--oidc-port", type=int, default=None,
                       help="serve the identity provider on this port (0: a free one)")
    group.add_argument("--oidc-user", default="jordan", help="the test person's user name")
    group.add_argument("--oidc-groups", default="clarion-dispatchers",
                       help="the test person's groups, comma-separated")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> OidcProvider | None:
    """Start the identity provider when asked for, on its own listener."""
    if getattr(args, "oidc_port", None) is None:
        return None
    groups = tuple(g.strip() for g in args.oidc_groups.split(",") if g.strip())
    person = ProviderPerson(preferred_username=args.oidc_user,
                        email=f"{args.oidc_user}@example.edu", groups=groups)
    provider = OidcProvider(person=person, host=sandbox.host, port=args.oidc_port)
    await provider.start()
    sandbox.on_close(provider.stop)
    sandbox.endpoints["oidc"] = provider.issuer
    return provider
