"""Console accounts without a browser: password hashes, sessions, CSRF, the sign-in limit and
the audit entries, against a real store and a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from ipaddress import ip_network
from pathlib import Path

import pytest
import pytest_asyncio

from channels.sandbox.server import Sandbox
from dispatcher.access.auth import Role
from dispatcher.access.client_address import client_address
from dispatcher.cli import main as cli_main
from dispatcher.clock import Clock
from dispatcher.console.accounts import (
    SESSION_COOKIE,
    Accounts,
    LoginThrottle,
    SignedIn,
    SignInFailed,
    SignInRefusal,
    csrf_ok,
    hash_password,
    name_problem,
    password_problem,
    token_digest,
    verify_password,
)
from dispatcher.console.cli import register as register_cli
from dispatcher.console.web import CONSOLE
from dispatcher.domain import recipient_hash
from dispatcher.settings import Settings
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, open_database
from dispatcher.store.sign_in import SignInLimits
from dispatcher.store.users import UserExists, UserStore
from tests.support import Running, start_service

PASSWORD = "correct-horse-battery"


class MovableClock(Clock):
    """Wall-clock time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite store."""
    database = await open_database(f"sqlite:///{tmp_path / 'clarion.db'}")
    yield database
    await database.close()


@pytest.fixture
def clock() -> MovableClock:
    """The store's clock."""
    return MovableClock()


@pytest_asyncio.fixture
async def accounts(db: Database, clock: MovableClock) -> Accounts:
    """Accounts with one dispatcher, Dana."""
    made = Accounts(UserStore(db), AuditLog(db), clock,
                    throttle=LoginThrottle(SignInLimits(db), clock, per_user=3, per_address=5,
                                           window_s=600))
    await made.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
    return made


async def actions(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall("SELECT actor, action FROM audit ORDER BY seq")
    return [(r["actor"], r["action"]) for r in rows]


class TestPasswords:
    """Passwords are stored as argon2id hashes and checked against them."""

    def test_hash_is_argon2id_and_salted(self) -> None:
        """The stored form names argon2id and differs each time."""
        one, two = hash_password(PASSWORD), hash_password(PASSWORD)
        assert one.startswith("$argon2id$") and one != two and PASSWORD not in one

    def test_verify(self) -> None:
        """The right password matches; a wrong one or a broken hash does not."""
        stored = hash_password(PASSWORD)
        assert verify_password(stored, PASSWORD)
        assert not verify_password(stored, PASSWORD + "x")
        assert not verify_password("not-a-hash", PASSWORD)

    def test_rules(self) -> None:
        """Short passwords and odd names are refused with a reason."""
        assert password_problem("short") is not None
        assert password_problem(PASSWORD) is None
        assert name_problem("Dana Smith") is not None
        assert name_problem("admin-token") is not None
        assert name_problem("dana.smith") is None

    async def test_user_names_are_unique(self, accounts: Accounts) -> None:
        """Adding a second Dana fails."""
        with pytest.raises(UserExists):
            await accounts.add_user("dana", PASSWORD, role=Role.VIEWER, actor="tests")


class TestSessions:
    """A sign-in opens a session kept only as a hash; sign-out and expiry end it."""

    async def test_sign_in_and_out(self, accounts: Accounts, db: Database) -> None:
        """The cookie finds the person; the store holds its hash, never the cookie."""
        signed = await accounts.sign_in("Dana", PASSWORD, "127.0.0.1")
        assert isinstance(signed, SignedIn)
        person = await accounts.person(signed.token)
        assert person is not None and person.caller.name == "dana"
        assert person.caller.role is Role.DISPATCHER
        stored = await db.fetchval("SELECT token_sha256 FROM console_sessions")
        assert stored == token_digest(signed.token) and stored != signed.token
        await accounts.sign_out(person)
        assert await accounts.person(signed.token) is None

    async def test_expiry(self, accounts: Accounts, clock: MovableClock) -> None:
        """A session ends after its shift."""
        signed = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        assert isinstance(signed, SignedIn)
        clock.offset_ms = 13 * 3600 * 1000
        assert await accounts.person(signed.token) is None

    async def test_disabled_user_and_new_password_end_sessions(self, accounts: Accounts,
                                                               clock: MovableClock) -> None:
        """Disabling a user or changing their password signs them out everywhere."""
        signed = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        assert isinstance(signed, SignedIn)
        await accounts.users.set_disabled("dana", True, clock.now_ms())
        assert await accounts.person(signed.token) is None
        refused = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        assert isinstance(refused, SignInFailed)
        await accounts.users.set_disabled("dana", False, clock.now_ms())
        again = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        assert isinstance(again, SignedIn)
        await accounts.users.set_password("dana", hash_password("another-password-1"),
                                          clock.now_ms())
        assert await accounts.person(again.token) is None

    async def test_csrf_token_is_the_sessions(self, accounts: Accounts) -> None:
        """Only the session's own token passes."""
        one = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        two = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
        assert isinstance(one, SignedIn) and isinstance(two, SignedIn)
        person = await accounts.person(one.token)
        assert person is not None
        assert csrf_ok(person, one.session.csrf)
        assert not csrf_ok(person, two.session.csrf)
        assert not csrf_ok(person, None) and not csrf_ok(person, "")


class TestLoginLimit:
    """Failed sign-ins are limited per user name and per address."""

    async def test_per_user(self, accounts: Accounts, clock: MovableClock) -> None:
        """After three wrong passwords even the right one waits, until the window passes."""
        for _ in range(3):
            wrong = await accounts.sign_in("dana", "wrong-password", "10.0.0.1")
            assert isinstance(wrong, SignInFailed) and wrong.refusal is SignInRefusal.WRONG
        held = await accounts.sign_in("dana", PASSWORD, "10.0.0.2")
        assert isinstance(held, SignInFailed) and held.refusal is SignInRefusal.THROTTLED
        assert 0 < held.wait_s <= 600
        clock.offset_ms += 601_000
        assert isinstance(await accounts.sign_in("dana", PASSWORD, "10.0.0.2"), SignedIn)

    async def test_parallel_tries_are_counted_before_checking(self, accounts: Accounts,
                                                              db: Database) -> None:
        """Forty wrong passwords at once: only the limit's three are checked."""
        tries = await asyncio.gather(*(accounts.sign_in("dana", f"wrong-{n}", f"10.1.0.{n}")
                                       for n in range(40)))
        refusals = [t.refusal for t in tries if isinstance(t, SignInFailed)]
        assert refusals.count(SignInRefusal.WRONG) == 3
        assert refusals.count(SignInRefusal.THROTTLED) == 37
        checked = await db.fetchval(
            "SELECT COUNT(*) FROM audit WHERE action = 'console.sign_in_failed'")
        assert checked == 3

    async def test_limit_is_shared_by_nodes(self, db: Database, clock: MovableClock) -> None:
        """Two services on one store count one account's tries together."""
        nodes = [Accounts(UserStore(db), AuditLog(db), clock,
                          throttle=LoginThrottle(SignInLimits(db), clock, per_user=3))
                 for _ in range(2)]
        await nodes[0].add_user("erin", PASSWORD, role=Role.DISPATCHER, actor="tests")
        for n in range(4):
            await nodes[n % 2].sign_in("erin", "wrong-password", "10.0.0.1")
        held = await nodes[1].sign_in("erin", PASSWORD, "10.0.0.1")
        assert isinstance(held, SignInFailed) and held.refusal is SignInRefusal.THROTTLED

    async def test_address_limit_is_off_by_default(self, db: Database,
                                                   clock: MovableClock) -> None:
        """Failures of other names from one shared address never lock a person out."""
        made = Accounts(UserStore(db), AuditLog(db), clock)
        await made.add_user("fay", PASSWORD, role=Role.ADMIN, actor="tests")
        for n in range(30):
            await made.sign_in(f"guess{n}", "wrong-password", "10.0.0.9")
        assert isinstance(await made.sign_in("fay", PASSWORD, "10.0.0.9"), SignedIn)

    async def test_per_address(self, accounts: Accounts) -> None:
        """Guessing many names from one address is stopped too."""
        for n in range(5):
            await accounts.sign_in(f"user{n}", "wrong-password", "10.0.0.9")
        held = await accounts.sign_in("dana", PASSWORD, "10.0.0.9")
        assert isinstance(held, SignInFailed) and held.refusal is SignInRefusal.THROTTLED
        assert isinstance(await accounts.sign_in("dana", PASSWORD, "10.0.0.10"), SignedIn)

    async def test_unknown_user_answers_like_a_wrong_password(self, accounts: Accounts) -> None:
        """Nobody learns which names exist."""
        unknown = await accounts.sign_in("nobody", PASSWORD, "10.0.0.3")
        assert isinstance(unknown, SignInFailed) and unknown.refusal is SignInRefusal.WRONG


class TestAudit:
    """Sign-in, failures, throttling and sign-out are audited under the person's name."""

    async def test_entries(self, accounts: Accounts, db: Database) -> None:
        """Every step is in the chain, which still verifies."""
        await accounts.sign_in("dana", "wrong-password", "10.0.0.1")
        signed = await accounts.sign_in("dana", PASSWORD, "10.0.0.1")
        assert isinstance(signed, SignedIn)
        person = await accounts.person(signed.token)
        assert person is not None
        await accounts.sign_out(person)
        assert await actions(db) == [
            ("tests", "console.user_added"),
            ("dana", "console.sign_in_failed"),
            ("dana", "console.sign_in"),
            ("dana", "console.sign_out"),
        ]
        assert (await AuditLog(db).verify()).ok

    async def test_first_admin_once(self, db: Database, clock: MovableClock) -> None:
        """With no users an admin is made with a generated password; never a second time."""
        fresh = Accounts(UserStore(db), AuditLog(db), clock)
        password = await fresh.ensure_first_admin()
        assert password is not None and len(password) >= 20
        assert isinstance(await fresh.sign_in("admin", password, "127.0.0.1"), SignedIn)
        assert await fresh.ensure_first_admin() is None

    async def test_two_nodes_starting_together_make_one_admin(
        self, db: Database, clock: MovableClock
    ) -> None:
        """Two services on one empty store race for the first admin: one makes it and prints
        its password, the other starts without error and prints nothing."""
        nodes = [Accounts(UserStore(db), AuditLog(db), clock) for _ in range(2)]
        passwords = await asyncio.gather(*(n.ensure_first_admin() for n in nodes))
        made = [p for p in passwords if p is not None]
        assert len(made) == 1
        assert isinstance(await nodes[1].sign_in("admin", made[0], "127.0.0.1"), SignedIn)


class TestOverHttp:
    """The console's HTTP surface: cookies, CSRF refusal, audited sends under the name."""

    async def sign_in(self, running: Running, name: str, password: str) -> str:
        resp = await running.client.post("/console/sign-in", data={
            "name": name, "password": password, "next": "/console/"}, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/console/"
        page = await running.client.get("/console/compose")
        match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert match
        return match.group(1)

    async def test_send_needs_csrf_and_is_audited_as_the_person(self,
                                                                running: Running) -> None:
        """Without the token nothing is sent; with it the alert is the person's."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        csrf = await self.sign_in(running, "dana", PASSWORD)
        form = {"kind": "emergency", "mode": "live", "segment": "all", "channel": "email",
                "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
                "key": "one-send"}
        refused = await running.client.post("/console/send", data=form, allow_redirects=False)
        assert refused.status == 403
        assert await running.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0
        wrong = await running.client.post("/console/send", data={**form, "csrf": "x" * 43},
                                          allow_redirects=False)
        assert wrong.status == 403
        sent = await running.client.post("/console/send", data={**form, "csrf": csrf},
                                         allow_redirects=False)
        assert sent.status == 303, await sent.text()
        alert_id = sent.headers["Location"].rsplit("/", 1)[1]
        entries = await running.service.audit.entries(alert_id)
        assert entries[0]["actor"] == "dana" and entries[0]["action"] == "alert.created"
        again = await running.client.post("/console/send", data={**form, "csrf": csrf},
                                          allow_redirects=False)
        assert again.headers["Location"] == sent.headers["Location"]

    async def test_scoped_user_is_told_before_sending(self, running: Running) -> None:
        """A user scoped to one segment sees at once that "everyone" is not theirs to reach."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("ra", PASSWORD, role=Role.DISPATCHER,
                                segments=("residents-north",), actor="tests")
        csrf = await self.sign_in(running, "ra", PASSWORD)
        form = {"kind": "emergency", "mode": "live", "channel": "email",
                "text": "Water leak in North Hall. Avoid the basement until further notice."}
        wide = await running.client.post("/console/compose/preview",
                                         data={**form, "segment": "all"},
                                         headers={"X-CSRF-Token": csrf})
        assert "You may only send to: residents-north" in await wide.text()
        own = await running.client.post("/console/compose/preview",
                                        data={**form, "segment": "residents-north"},
                                        headers={"X-CSRF-Token": csrf})
        assert "Ready to send" in await own.text()

    async def test_intake_refusals_show_under_their_fields(self, running: Running) -> None:
        """The preview and the send run intake's own checks: an audience of no one is marked
        at the expression, an unknown alert followed at the message, and nothing is sent."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        csrf = await self.sign_in(running, "dana", PASSWORD)
        form = {"kind": "emergency", "mode": "live", "channel": "email",
                "segment": "custom", "expression": "role:student and role:faculty",
                "text": "Water leak in North Hall. Avoid the basement until further notice.",
                "key": "nobody", "csrf": csrf}
        preview = await running.client.post("/console/compose/preview", data=form,
                                            headers={"X-CSRF-Token": csrf})
        page = await preview.text()
        assert re.search(r'<a href="#expression">this audience reaches no one', page), page
        assert "Ready to send" not in page
        # Still rendered and counted beside the problem.
        assert 'data-total="0"' in page and "How it looks" in page
        sent = await running.client.post("/console/send", data=form, allow_redirects=False)
        assert sent.status == 422
        assert 'href="#expression"' in (await sent.text()).split("error-summary", 1)[1]
        followed = await running.client.post(
            "/console/compose/preview", headers={"X-CSRF-Token": csrf},
            data={**form, "segment": "all", "references": "alt_missing"})
        assert re.search(r'<a href="#text">no alert alt_missing', await followed.text())
        assert await running.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0

    async def test_all_clear_starts_from_the_alert(self, running: Running) -> None:
        """"Send the all clear" of a template's alert opens the all-clear template with what
        and where filled in, and the alert's audience, zones and channel chosen."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        await self.sign_in(running, "dana", PASSWORD)
        sent = await running.post_alert({
            "kind": "emergency", "template": "evacuate", "channels": ["email"],
            "audience": "role:student", "zones": ["b"],
            "fields": {"hazard": "Fire alarm and smoke", "building": "Carver Hall"}})
        assert sent.status == 202, await sent.text()
        alert_id = (await sent.json())["id"]
        page = await (await running.client.get(
            f"/console/compose?references={alert_id}&kind=all_clear&mode=live")).text()
        assert '<option value="all_clear" selected>' in page
        assert 'name="field.event" type="text" value="Fire alarm and smoke"' in page
        assert 'name="field.location" type="text" value="Carver Hall"' in page
        assert re.search(r'id="zone-b" name="zone" value="b" checked', page)
        assert re.search(r'id="channel-email" name="channel" value="email" checked', page)
        assert 'id="expression" name="expression" type="text" spellcheck="false" ' \
               'autocapitalize="none" value="role:student"' in page

    async def test_preview_shows_derived_short_text(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        """A timely warning too long for a short channel previews as ready, the push text
        shaped from it (lead, tip, link to the public page) and said to be."""
        running = await start_service(make_settings(channels={"push.apprise": {}}))
        try:
            accounts = running.client.server.app[CONSOLE].accounts
            await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
            csrf = await self.sign_in(running, "dana", PASSWORD)
            text = ("Robbery reported near the Student Union. "
                    + "Officers searched the area. " * 14
                    + "Walk with others after dark and report anything suspicious to police.")
            preview = await running.client.post(
                "/console/compose/preview",
                data={"kind": "timely_warning", "mode": "live", "channel": "push",
                      "segment": "all", "text": text},
                headers={"X-CSRF-Token": csrf})
            page = await preview.text()
        finally:
            await running.client.close()
        assert "Ready to send" in page
        assert "shortened from the full text" in page
        assert ("Robbery reported near the Student Union. Walk with others after dark and "
                "report anything suspicious to police. Full text: ") in page
        shown, cap = page.split("How it looks", 1)[1].split("CAP XML", 1)
        assert "Officers searched the area" not in shown
        # CAP carries the whole text.
        assert "Officers searched the area" in cap

    async def test_failed_delivery_shown_masked(self, running: Running,
                                                sandbox: Sandbox) -> None:
        """A refused e-mail shows on the alert's page with its reason, never its address."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        csrf = await self.sign_in(running, "dana", PASSWORD)
        people = await running.service.db.fetchall(
            "SELECT id, email FROM people WHERE email <> '' ORDER BY id LIMIT 1")
        sandbox.smtp.sink.script(people[0]["email"], "550 5.1.1 mailbox unavailable")
        sent = await running.client.post("/console/send", data={
            "csrf": csrf, "kind": "emergency", "mode": "drill", "segment": "all",
            "channel": "email", "key": "failing",
            "text": "Drill: evacuate the Chemistry Building now by the nearest exit."},
            allow_redirects=False)
        assert sent.status == 303, await sent.text()
        alert_id = sent.headers["Location"].rsplit("/", 1)[1]
        await running.wait_state(alert_id)
        page = await (await running.client.get(f"/console/alerts/{alert_id}")).text()
        assert "mailbox unavailable" in page
        assert recipient_hash(people[0]["id"]) in page
        assert people[0]["email"] not in page

    async def test_headers(self, running: Running) -> None:
        """Every console page has the CSP and refuses framing; the API is left alone."""
        page = await running.client.get("/console/sign-in")
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        health = await running.client.get("/healthz")
        assert "Content-Security-Policy" not in health.headers

    async def test_open_redirect_refused(self, running: Running) -> None:
        """`next` may only point inside the console."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        resp = await running.client.post("/console/sign-in", data={
            "name": "dana", "password": PASSWORD, "next": "https://evil.example/"},
            allow_redirects=False)
        assert resp.headers["Location"] == "/console/"


class TestCookiesAndLimitOverHttp:
    """Secure cookies behind https, and the sign-in limit as a person meets it."""

    async def test_secure_cookie_when_public_url_is_https(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        """The session cookie is Secure when the service's public address is https."""
        run = await start_service(make_settings(
            service={"public_url": "https://alerts.example.edu"}))
        try:
            accounts = run.client.server.app[CONSOLE].accounts
            await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
            resp = await run.client.post("/console/sign-in", data={
                "name": "dana", "password": PASSWORD}, allow_redirects=False)
            header = resp.headers["Set-Cookie"]
            assert "Secure" in header and "HttpOnly" in header and "SameSite=Strict" in header
        finally:
            await run.client.close()

    async def test_too_many_failures_answer_429(self, running: Running) -> None:
        """After five wrong passwords the form says to wait, even for the right one."""
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
        for _ in range(5):
            wrong = await running.client.post("/console/sign-in", data={
                "name": "dana", "password": "wrong-password"})
            assert wrong.status == 422
        held = await running.client.post("/console/sign-in", data={
            "name": "dana", "password": PASSWORD}, allow_redirects=False)
        assert held.status == 429
        assert "Too many failed sign-ins" in await held.text()
        throttled = await running.service.db.fetchval(
            "SELECT COUNT(*) FROM audit WHERE action = 'console.sign_in_throttled'")
        assert throttled == 1


class TestClientAddress:
    """X-Forwarded-For names the client only when a trusted proxy sent it."""

    def test_untrusted_peer_is_the_client(self) -> None:
        """A header from anyone but a trusted proxy is ignored."""
        assert client_address("203.0.113.7", "10.9.9.9", []) == "203.0.113.7"
        trusted = [ip_network("10.0.0.0/8")]
        assert client_address("203.0.113.7", "10.9.9.9", trusted) == "203.0.113.7"

    def test_trusted_proxy_names_the_client(self) -> None:
        """Read from the right, past trusted proxies; what the client wrote to the left of
        the proxy's entry does not count."""
        trusted = [ip_network("10.0.0.0/8")]
        assert client_address("10.0.0.2", "198.51.100.4", trusted) == "198.51.100.4"
        assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.4, 10.0.0.3",
                              trusted) == "198.51.100.4"
        assert client_address("10.0.0.2", "not-an-address", trusted) == "10.0.0.2"

    async def test_sign_in_audits_the_forwarded_client(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        """Behind a trusted proxy the audit log records the client, not the proxy."""
        run = await start_service(make_settings(service={"trusted_proxies": ["127.0.0.1"]}))
        try:
            await run.client.post("/console/sign-in", data={
                "name": "nobody", "password": "wrong-password"},
                headers={"X-Forwarded-For": "198.51.100.4"})
            detail = await run.service.db.fetchval(
                "SELECT detail FROM audit WHERE action = 'console.sign_in_failed'")
            assert "198.51.100.4" in detail
        finally:
            await run.client.close()


class TestCli:
    """`clarion user` is registered with its verbs."""

    def test_verbs(self) -> None:
        """add, passwd, disable, enable and list parse."""
        import argparse

        parser = argparse.ArgumentParser()
        register_cli(parser.add_subparsers())
        for argv in (["user", "add", "dana", "--role", "viewer"], ["user", "passwd", "dana"],
                     ["user", "disable", "dana"], ["user", "enable", "dana"], ["user", "list"]):
            assert callable(parser.parse_args(argv).func)


class TestUserCommand:
    """`clarion user` against a store named in a config file (run in this process)."""

    def run(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            config: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli_main(["user", *argv, "--config", str(config)])
        out = capsys.readouterr()
        return code, out.out, out.err

    def test_add_passwd_disable(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
        """A generated password is printed once and works; disabled users cannot sign in."""
        config = tmp_path / "clarion.toml"
        config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n')

        def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
            return self.run(capsys, monkeypatch, config, *argv, stdin=stdin)

        code, out, err = run("add", "pat", "--role", "viewer")
        assert code == 0, err
        password = out.split("password (shown once): ")[1].strip()
        assert run("add", "pat")[0] == 1
        assert run("add", "Bad Name")[0] == 2
        code, _, err = run("passwd", "pat", "--password-stdin", stdin="short\n")
        assert code == 2 and "12 characters" in err
        assert run("disable", "pat")[0] == 0
        assert "pat\tviewer\t-\tdisabled" in run("list")[1]

        async def check() -> tuple[bool, bool]:
            db = await open_database(f"sqlite:///{tmp_path / 'c.db'}")
            try:
                accounts = Accounts(UserStore(db), AuditLog(db), Clock())
                disabled = isinstance(await accounts.sign_in("pat", password, "a"), SignedIn)
                await accounts.users.set_disabled("pat", False, 0)
                enabled = isinstance(await accounts.sign_in("pat", password, "a"), SignedIn)
                return disabled, enabled
            finally:
                await db.close()

        assert asyncio.run(check()) == (False, True)
        logging.getLogger().handlers.clear()


class TestOnPostgres:
    """The same users and sessions on PostgreSQL (the 0005 migration of that dialect)."""

    async def test_users_and_sessions(self, pg_url: str) -> None:
        """Add, sign in, find the session, disable: as on SQLite."""
        database = await open_database(pg_url)
        try:
            accounts = Accounts(UserStore(database), AuditLog(database), Clock())
            await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER,
                                    segments=("responders",), actor="tests")
            with pytest.raises(UserExists):
                await accounts.add_user("dana", PASSWORD, role=Role.VIEWER, actor="tests")
            signed = await accounts.sign_in("dana", PASSWORD, "127.0.0.1")
            assert isinstance(signed, SignedIn)
            person = await accounts.person(signed.token)
            assert person is not None and person.caller.scopes == ("responders",)
            assert await accounts.users.set_disabled("dana", True, Clock().now_ms())
            assert await accounts.person(signed.token) is None
            assert (await AuditLog(database).verify()).ok
        finally:
            await database.close()



async def _draft_round_trip(database: Database) -> None:
    accounts = Accounts(UserStore(database), AuditLog(database), MovableClock())
    await accounts.add_user("dana", PASSWORD, role=Role.DISPATCHER, actor="tests")
    users = accounts.users
    assert await users.draft("dana") is None
    await users.save_draft("dana", [("text", "first")], 1)
    await users.save_draft("dana", [("text", "Gas leak"), ("zone", "a"), ("zone", "b")], 2)
    draft = await users.draft("dana")
    assert draft is not None and draft.saved_at == 2
    assert draft.fields == (("text", "Gas leak"), ("zone", "a"), ("zone", "b"))
    await users.drop_draft("dana")
    assert await users.draft("dana") is None


class TestDrafts:
    """Each user's compose draft is kept in the store: a second save replaces the first, and
    the fields keep their order and repeats."""

    async def test_sqlite(self, db: Database) -> None:
        """Saved, replaced and dropped in SQLite."""
        await _draft_round_trip(db)

    async def test_postgres(self, pg_url: str) -> None:
        """Saved, replaced and dropped in PostgreSQL."""
        database = await open_database(pg_url)
        try:
            await _draft_round_trip(database)
        finally:
            await database.close()
