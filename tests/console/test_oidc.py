"""Campus sign-in over OpenID Connect, against the sandbox's stand-in identity provider: the
whole code flow with PKCE through real HTTP redirects, ID tokens that must be refused, people
no group lets in, and the password form still working with the provider down."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from pydantic import ValidationError

from channels.sandbox import cli as sandbox_cli
from channels.sandbox import oidc as sandbox_oidc
from channels.sandbox.broker import free_port
from channels.sandbox.oidc import OidcProvider, ProviderPerson
from channels.sandbox.server import Sandbox
from dispatcher.access.auth import Role
from dispatcher.console.accounts import SESSION_COOKIE, SSO_PASSWORD_HASH, hash_password
from dispatcher.console.settings import OidcSettings
from dispatcher.console.web import CONSOLE
from dispatcher.settings import Settings, config_dir
from tests.console.conftest import axe_violations, shot
from tests.support import Running, own_config, start_service

PASSWORD = "break-glass-password-01"
ROLES = {"clarion-admins": "admin", "clarion-dispatchers": "dispatcher",
         "clarion-viewers": "viewer"}


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    """The stand-in identity provider on a free port."""
    idp = OidcProvider()
    await idp.start()
    yield idp
    await idp.stop()


@pytest_asyncio.fixture
async def sso_service(
    make_settings: Callable[..., Settings], provider: OidcProvider
) -> AsyncIterator[Running]:
    """The service with SSO on (this provider) and a local admin with a password."""
    port = free_port()
    settings = make_settings(
        service={"public_url": f"http://127.0.0.1:{port}"},
        console={"oidc": {
            "enabled": True, "issuer": provider.issuer, "client_id": provider.client_id,
            "client_secret": provider.client_secret, "roles": ROLES,
        }},
    )
    run = await start_service(settings, port=port)
    # The first start made the local admin; give it a password the tests know.
    users = run.client.server.app[CONSOLE].accounts.users
    await users.set_password("admin", hash_password(PASSWORD), run.service.clock.now_ms())
    yield run
    await run.client.close()


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 and follows redirects, like a browser."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def base(run: Running) -> str:
    """The service's own address."""
    return str(run.client.make_url("/")).rstrip("/")


async def sso_sign_in(run: Running, http: aiohttp.ClientSession,
                      next_path: str = "/console/") -> tuple[int, str]:
    """Press the SSO button and follow every redirect; the last page's status and text."""
    async with http.get(f"{base(run)}/console/sso/start",
                        params={"next": next_path}) as resp:
        return resp.status, await resp.text()


async def audit(run: Running) -> list[tuple[str, str, dict[str, Any]]]:
    """Every audit entry: actor, action and detail."""
    rows = await run.service.db.fetchall("SELECT actor, action, detail FROM audit ORDER BY seq")
    return [(r["actor"], r["action"], json.loads(r["detail"] or "{}")) for r in rows]


class TestFlow:
    """The authorization code flow end to end."""

    async def test_sign_in_creates_an_sso_user_with_the_mapped_role(
        self, sso_service: Running
    ) -> None:
        """Jordan comes back from the provider signed in as a dispatcher, audited as SSO."""
        async with browser() as http:
            status, page = await sso_sign_in(sso_service, http, "/console/history")
            assert status == 200, page
            assert 'http-equiv="refresh"' in page and "/console/history" in page
            cookies = {c.key: c for c in http.cookie_jar}
            token = cookies[SESSION_COOKIE].value
            assert cookies[SESSION_COOKIE]["samesite"] == "Strict"
            async with http.get(f"{base(sso_service)}/console/", allow_redirects=False) as r:
                assert r.status == 200
                assert "Jordan Lee" in await r.text()
        accounts = sso_service.client.server.app[CONSOLE].accounts
        person = await accounts.person(token)
        assert person is not None and person.caller.role is Role.DISPATCHER
        user = await accounts.users.get("jordan")
        assert user is not None and user.password_hash == SSO_PASSWORD_HASH
        assert user.full_name == "Jordan Lee"
        entries = await audit(sso_service)
        sign_in = [e for e in entries if e[1] == "console.sign_in"]
        assert sign_in[-1][0] == "jordan"
        assert sign_in[-1][2]["method"] == "sso" and sign_in[-1][2]["role"] == "dispatcher"
        assert (await sso_service.service.audit.verify()).ok

    async def test_role_follows_the_provider_and_no_password_signs_in(
        self, sso_service: Running, provider: OidcProvider
    ) -> None:
        """A later sign-in takes the new group's role; the SSO account has no password."""
        async with browser() as http:
            assert (await sso_sign_in(sso_service, http))[0] == 200
        provider.person = ProviderPerson(groups=("clarion-viewers", "unrelated"))
        async with browser() as http:
            assert (await sso_sign_in(sso_service, http))[0] == 200
        users = sso_service.client.server.app[CONSOLE].accounts.users
        user = await users.get("jordan")
        assert user is not None and user.role == "viewer"
        resp = await sso_service.client.post("/console/sign-in", data={
            "name": "jordan", "password": SSO_PASSWORD_HASH}, allow_redirects=False)
        assert resp.status == 422

    async def test_sign_in_page_offers_both(self, sso_service: Running) -> None:
        """The SSO button and the password form are both on the page."""
        page = await (await sso_service.client.get("/console/sign-in")).text()
        assert "Sign in with campus SSO" in page
        assert 'href="/console/sso/start?next=/console/"' in page
        assert 'name="password"' in page

    async def test_the_request_carries_pkce_state_and_nonce(
        self, sso_service: Running
    ) -> None:
        """The authorize redirect asks for a code with an S256 challenge, state and nonce."""
        resp = await sso_service.client.get("/console/sso/start", allow_redirects=False)
        assert resp.status == 303
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["response_type"] == ["code"]
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) == 43
        assert query["state"][0] and query["nonce"][0]
        assert query["scope"] == ["openid email profile"]

    async def test_a_callback_without_this_browsers_state_is_refused(
        self, sso_service: Running, provider: OidcProvider
    ) -> None:
        """A code handed to another browser (login CSRF) opens no session."""
        async with browser() as http:
            async with http.get(f"{base(sso_service)}/console/sso/start",
                                allow_redirects=False) as resp:
                authorize = resp.headers["Location"]
            async with http.get(authorize, allow_redirects=False) as resp:
                callback = resp.headers["Location"]
        async with browser() as other, other.get(callback) as resp:
            assert resp.status == 400
            assert "took too long or was already used" in await resp.text()
            assert SESSION_COOKIE not in {c.key for c in other.cookie_jar}


class TestRefusals:
    """ID tokens that do not hold, and people no group lets in."""

    @pytest.mark.parametrize("override", [
        {"nonce": "someone-elses-nonce"},
        {"aud": "another-client"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"iss": "http://127.0.0.1:1"},
    ], ids=["nonce", "audience", "expired", "issuer"])
    async def test_bad_id_token_is_refused(
        self, sso_service: Running, provider: OidcProvider, override: dict[str, Any]
    ) -> None:
        """A token with the wrong nonce, audience, issuer or long expired signs nobody in."""
        provider.overrides = override
        async with browser() as http:
            status, page = await sso_sign_in(sso_service, http)
            assert status == 400
            assert "could not be verified" in page
            assert 'name="password"' in page
            assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}
        assert await sso_service.client.server.app[CONSOLE].accounts.users.get("jordan") is None

    async def test_unmapped_person_is_refused_with_a_clear_page(
        self, sso_service: Running, provider: OidcProvider
    ) -> None:
        """Someone in no mapped group gets a plain refusal, no account and no session."""
        provider.person = ProviderPerson(preferred_username="sam", groups=("students",))
        async with browser() as http:
            status, page = await sso_sign_in(sso_service, http)
            assert status == 403
            assert "not in any group that may use Clarion" in page
            assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}
        assert await sso_service.client.server.app[CONSOLE].accounts.users.get("sam") is None
        refused = [e for e in await audit(sso_service) if e[1] == "console.sign_in_failed"]
        assert refused[-1][0] == "sam" and refused[-1][2]["reason"] == "no_role"

    async def test_local_account_of_the_same_name_is_not_taken_over(
        self, sso_service: Running, provider: OidcProvider
    ) -> None:
        """The provider vouching for "admin" does not sign in the local admin."""
        provider.person = ProviderPerson(preferred_username="admin",
                                         groups=("clarion-admins",))
        async with browser() as http:
            status, page = await sso_sign_in(sso_service, http)
            assert status == 403
            assert "already has this name" in page
            assert SESSION_COOKIE not in {c.key for c in http.cookie_jar}


class TestProviderDown:
    """Break-glass: with the provider unreachable, passwords still work."""

    async def test_sso_fails_plainly_and_the_password_still_signs_in(
        self, sso_service: Running, provider: OidcProvider
    ) -> None:
        """The SSO button says the provider is unavailable; the local admin signs in."""
        await provider.stop()
        resp = await sso_service.client.get("/console/sso/start", allow_redirects=False)
        assert resp.status == 503
        page = await resp.text()
        assert "Campus sign-in is not available right now" in page
        assert 'name="password"' in page
        resp = await sso_service.client.post("/console/sign-in", data={
            "name": "admin", "password": PASSWORD, "next": "/console/"}, allow_redirects=False)
        assert resp.status == 303 and SESSION_COOKIE in resp.cookies
        home = await sso_service.client.get("/console/", allow_redirects=False)
        assert home.status == 200


class TestOff:
    """Without `[console.oidc]` nothing changes."""

    async def test_no_button_and_no_routes(self, running: Running) -> None:
        """The sign-in page has no SSO button and the SSO addresses are not there."""
        page = await (await running.client.get("/console/sign-in")).text()
        assert "campus SSO" not in page and not re.search(r"/console/sso/", page)
        resp = await running.client.get("/console/sso/start", allow_redirects=False)
        assert resp.status == 404

    def test_settings_are_checked(self) -> None:
        """Enabled needs an issuer and client id; roles must be known ones."""
        with pytest.raises(ValidationError, match="issuer"):
            OidcSettings(enabled=True, client_id="x")
        with pytest.raises(ValidationError, match="unknown role"):
            OidcSettings(roles={"staff": "superuser"})
        secret = OidcSettings.model_validate({"client_secret_env": "PATH"})
        assert secret.client_secret is not None


class TestSandboxPlugin:
    """`clarion sandbox --oidc-port` starts the provider; without it there is none."""

    async def test_started_only_when_asked(self) -> None:
        """The discovery document names the issuer and its endpoints on 127.0.0.1."""
        parser = argparse.ArgumentParser()
        sandbox_cli.register(parser.add_subparsers())
        assert "channels.sandbox.oidc" in sandbox_cli.PLUGINS
        off = parser.parse_args(["sandbox"])
        assert await sandbox_oidc.attach(Sandbox(port=0, smtp_port=0), off) is None
        box = Sandbox(port=0, smtp_port=0)
        args = parser.parse_args(["sandbox", "--oidc-port", "0", "--oidc-user", "casey",
                                  "--oidc-groups", "clarion-admins"])
        idp = await sandbox_oidc.attach(box, args)
        try:
            assert idp is not None and idp.person.groups == ("clarion-admins",)
            assert box.endpoints["oidc"] == idp.issuer
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{idp.issuer}/.well-known/openid-configuration") as r:
                    doc = await r.json()
                async with http.get(doc["jwks_uri"]) as r:
                    keys = (await r.json())["keys"]
            assert doc["issuer"] == idp.issuer and doc["token_endpoint"].startswith(
                "http://127.0.0.1:")
            assert keys[0]["kty"] == "RSA" and "d" not in keys[0]
        finally:
            await box.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_sso(tmp_path: Path) -> AsyncIterator[tuple[Running, OidcProvider]]:
    """The service with SSO on, and its provider, in the browser tests' event loop."""
    idp = OidcProvider()
    await idp.start()
    raw = own_config(tmp_path)
    raw["channels"] = {}
    raw["console"] = {"oidc": {
        "enabled": True, "issuer": idp.issuer, "client_id": idp.client_id,
        "client_secret": idp.client_secret, "roles": ROLES,
    }}
    raw["base_dir"] = config_dir()
    run = await start_service(Settings.model_validate(raw))
    try:
        yield run, idp
    finally:
        await run.client.close()
        await idp.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def axe_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh profile that lets axe-core's script in past the console's CSP."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    ctx.set_default_timeout(15_000)
    yield await ctx.new_page()
    await ctx.close()


class TestInTheBrowser:
    """Chromium follows the real redirects and keeps the SameSite=Strict session."""

    @pytest.mark.asyncio(loop_scope="session")
    async def test_button_signs_in_and_pages_pass_axe(
        self, browser_sso: tuple[Running, OidcProvider], axe_page: Page, shots: Path
    ) -> None:
        """The button leads through the provider into the console; both pages are accessible."""
        run, _ = browser_sso
        page = axe_page
        url = base(run) + "/console/"
        await page.goto(url)
        assert "/console/sign-in" in page.url
        assert await axe_violations(page) == []
        await shot(page, shots, "sign-in-sso")
        await page.get_by_role("link", name="Sign in with campus SSO").click()
        await page.wait_for_url(url)
        assert await page.get_by_text("Jordan Lee").count() >= 1
        cookies = {c["name"]: c for c in await page.context.cookies()}
        assert cookies[SESSION_COOKIE]["sameSite"] == "Strict"

    @pytest.mark.asyncio(loop_scope="session")
    async def test_provider_down_page_passes_axe(
        self, browser_sso: tuple[Running, OidcProvider], axe_page: Page
    ) -> None:
        """With the provider stopped the button explains, and the password form still works."""
        run, idp = browser_sso
        page = axe_page
        await idp.stop()
        await page.goto(base(run) + "/console/sign-in")
        await page.get_by_role("link", name="Sign in with campus SSO").click()
        await page.get_by_text("Campus sign-in is not available right now").wait_for()
        assert await page.get_by_label("Password").count() == 1
        assert await axe_violations(page) == []
