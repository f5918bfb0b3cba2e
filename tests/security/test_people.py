"""People, not names: a token and a console account of one person are one person for the
two-person rule, and no console user can take a token's name."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.access.auth import Role
from dispatcher.api.app import build_app
from dispatcher.console.accounts import hash_password, name_problem
from dispatcher.console.web import CONSOLE
from dispatcher.service import Service
from dispatcher.store.database import open_database
from tests.security.conftest import FIRE, SecureSettings, bearer
from tests.security.test_approval import APPROVAL, Approvals, StepClock

PASSWORD = "correct-horse-battery"


@pytest_asyncio.fixture
async def people(secure_settings: SecureSettings) -> AsyncIterator[Approvals]:
    """Approval on, no bypass; Bob's token belongs to the console user `robert`."""
    settings = secure_settings(approval={**APPROVAL, "bypass_roles": []},
                               token_extra={"bob": {"person": "robert"}})
    clock = StepClock()
    service = Service(settings, await open_database(settings.store.url), clock=clock)
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    accounts = client.server.app[CONSOLE].accounts
    # The service made `admin` at start with a generated password: give it a known one.
    await accounts.users.set_password("admin", hash_password(PASSWORD), clock.now_ms())
    for name in ("robert", "carol"):
        await accounts.add_user(name, PASSWORD, role=Role.ADMIN, actor="tests")
    yield Approvals(service, client, clock)
    await client.close()


async def console_decide(run: Approvals, user: str, approval_id: str, verb: str) -> int:
    """Sign `user` in to the console (a fresh cookie jar) and approve or reject there."""
    run.client.session.cookie_jar.clear()
    signed = await run.client.post("/console/sign-in", data={
        "name": user, "password": PASSWORD, "next": "/console/"}, allow_redirects=False)
    assert signed.status == 303, await signed.text()
    page = await (await run.client.get(f"/console/approvals/{approval_id}")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    resp = await run.client.post(f"/console/approvals/{approval_id}/{verb}",
                                 data={"csrf": csrf.group(1)}, allow_redirects=False)
    run.client.session.cookie_jar.clear()
    return resp.status


class TestTwoPeople:
    """The two-person rule compares the people behind the credentials."""

    async def test_admin_token_and_console_admin_are_one_person(self, people: Approvals) -> None:
        """The admin token sends; the console's `admin` (who holds it) cannot approve it."""
        resp = await people.send("admin", FIRE)
        assert resp.status == 202 and (await resp.json())["approval_required"]
        approval_id = (await resp.json())["id"]
        assert await console_decide(people, "admin", approval_id, "approve") == 403
        assert await people.alerts() == 0
        assert await console_decide(people, "carol", approval_id, "approve") == 303
        assert await people.alerts() == 1

    async def test_token_of_a_named_person(self, people: Approvals) -> None:
        """Bob's token belongs to `robert`: robert cannot approve it, and may withdraw it."""
        approval_id = (await (await people.send("bob", FIRE)).json())["id"]
        assert await console_decide(people, "robert", approval_id, "approve") == 403
        assert await console_decide(people, "robert", approval_id, "reject") == 303
        status = await (await people.client.get(f"/v1/approvals/{approval_id}",
                                                headers=bearer("alice"))).json()
        assert status["state"] == "rejected"

    async def test_another_persons_token_approves(self, people: Approvals) -> None:
        """Alice's own token cannot approve her request; robert's token (bob) can."""
        approval_id = (await (await people.send("alice", FIRE)).json())["id"]
        assert (await people.decide("alice", approval_id, "approve")).status == 403
        resp = await people.decide("bob", approval_id, "approve")
        assert resp.status == 202, await resp.text()

    async def test_audit_names_the_person(self, people: Approvals) -> None:
        """The approval's audit entries carry the person beside the credential."""
        approval_id = (await (await people.send("bob", FIRE)).json())["id"]
        assert (await people.decide("alice", approval_id, "approve")).status == 202
        rows = await people.service.db.fetchall(
            "SELECT actor, detail FROM audit WHERE action LIKE 'approval.%' ORDER BY seq")
        assert [r["actor"] for r in rows] == ["bob", "alice"]
        assert [json.loads(r["detail"])["person"] for r in rows] == ["robert", "token:alice"]


class TestNames:
    """A console user cannot take an API token's name."""

    def test_token_names_are_taken(self) -> None:
        """The admin token's and every token's name are refused as user names."""
        assert name_problem("admin-token") is not None
        assert name_problem("alice", {"alice", "bob"}) is not None
        assert name_problem("alicia", {"alice", "bob"}) is None
