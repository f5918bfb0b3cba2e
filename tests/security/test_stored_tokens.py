"""API tokens kept in the store: hashed, a person's, with an expiry, revoked (stored or
configured) on every node without a restart, by `clarion token revoke` or the console."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.access.auth import Role, token_sha256
from dispatcher.access.tokens import TokenRegistry
from dispatcher.api.app import build_app
from dispatcher.cli import main as cli_main
from dispatcher.console.accounts import hash_password
from dispatcher.console.web import CONSOLE
from dispatcher.refusals import Conflict
from dispatcher.service import Service
from dispatcher.store.database import open_database
from dispatcher.store.users import UserStore
from tests.security.conftest import SecureSettings, bearer
from tests.security.test_approval import StepClock
from tests.support import Running

PASSWORD = "correct-horse-battery"


class Node(Running):
    """A service on the shared store, with its own movable clock."""

    def __init__(self, service: Service, client: TestClient, clock: StepClock) -> None:
        super().__init__(service, client)
        self.clock = clock

    def registry(self) -> TokenRegistry:
        service = self.service
        return TokenRegistry(service.settings.auth, service.tokens, UserStore(service.db),
                             service.audit, service.clock)

    async def status(self, token: str) -> int:
        resp = await self.client.get("/v1/drills", headers={"Authorization": f"Bearer {token}"})
        return resp.status


@pytest_asyncio.fixture
async def nodes(secure_settings: SecureSettings) -> AsyncIterator[list[Node]]:
    """Two services sharing one store."""
    settings = secure_settings()
    made = []
    for _ in range(2):
        clock = StepClock()
        service = Service(settings, await open_database(settings.store.url), clock=clock)
        client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
        await client.start_server()
        made.append(Node(service, client, clock))
    yield made
    for node in made:
        await node.client.close()


class TestStoredTokens:
    """Issued, used, expired and revoked across nodes."""

    async def test_issued_token_works_on_every_node_until_revoked(
        self, nodes: list[Node]
    ) -> None:
        """A token issued on one node works on the other; revoked there, refused here."""
        one, two = nodes
        issued = await one.registry().issue("cad-2", person="dana", role=Role.DISPATCHER,
                                            segments=(), expires_in_days=30, actor="tests")
        stored = await one.service.db.fetchval("SELECT sha256 FROM api_tokens")
        assert stored == token_sha256(issued.token) and issued.token not in stored
        assert await two.status(issued.token) == 200
        await two.registry().revoke("cad-2", actor="tests")
        assert await one.status(issued.token) == 401
        assert await two.status(issued.token) == 401

    async def test_expiry(self, nodes: list[Node]) -> None:
        """After its days a token is refused."""
        one = nodes[0]
        issued = await one.registry().issue("short", person="dana", role=Role.VIEWER,
                                            segments=(), expires_in_days=1, actor="tests")
        assert await one.status(issued.token) == 200
        one.clock.offset_ms = 86_400_001
        assert await one.status(issued.token) == 401

    async def test_configured_token_revoked_without_restart(self, nodes: list[Node]) -> None:
        """A token from the config is refused on every node once revoked."""
        one, two = nodes
        alice = bearer("alice")["Authorization"].removeprefix("Bearer ")
        assert await two.status(alice) == 200
        await one.registry().revoke("alice", actor="tests")
        assert await one.status(alice) == 401 and await two.status(alice) == 401
        with pytest.raises(Conflict):
            await one.registry().revoke("alice", actor="tests")
        assert await two.status(bearer("bob")["Authorization"].removeprefix("Bearer ")) == 200

    async def test_names_are_unique_across_tokens_and_users(self, nodes: list[Node]) -> None:
        """A stored token cannot take a configured token's or a console user's name."""
        registry = nodes[0].registry()
        for name in ("alice", "admin"):
            with pytest.raises(Conflict):
                await registry.issue(name, person="x", role=Role.VIEWER, segments=(),
                                     expires_in_days=1, actor="tests")

    async def test_stored_token_belongs_to_its_person(self, nodes: list[Node]) -> None:
        """The caller a stored token authenticates carries its person."""
        one = nodes[0]
        issued = await one.registry().issue("dana-cli", person="dana", role=Role.DISPATCHER,
                                            segments=(), expires_in_days=5, actor="tests")
        caller = await one.service.auth.identify(f"Bearer {issued.token}")
        assert caller is not None and (caller.name, caller.person) == ("dana-cli", "dana")


class TestConsolePage:
    """Administrators list and revoke tokens on the console; others may not."""

    async def sign_in(self, node: Node, name: str) -> str:
        node.client.session.cookie_jar.clear()
        resp = await node.client.post("/console/sign-in", data={
            "name": name, "password": PASSWORD, "next": "/console/"}, allow_redirects=False)
        assert resp.status == 303
        page = await (await node.client.get("/console/tokens")).text()
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        return match.group(1) if match else ""

    async def test_admin_revokes_from_the_console(self, nodes: list[Node]) -> None:
        """The page lists the tokens; revoking there refuses the token on the other node."""
        one, two = nodes
        accounts = one.client.server.app[CONSOLE].accounts
        await accounts.users.set_password("admin", hash_password(PASSWORD), one.clock.now_ms())
        await accounts.add_user("vic", PASSWORD, role=Role.VIEWER, actor="tests")
        issued = await one.registry().issue("cad-3", person="dana", role=Role.DISPATCHER,
                                            segments=(), expires_in_days=30, actor="tests")
        csrf = await self.sign_in(one, "vic")
        assert (await one.client.get("/console/tokens")).status == 403
        refused = await one.client.post("/console/tokens/cad-3/revoke", data={"csrf": csrf},
                                        allow_redirects=False)
        assert refused.status == 403
        assert await two.status(issued.token) == 200
        csrf = await self.sign_in(one, "admin")
        page = await (await one.client.get("/console/tokens")).text()
        assert "cad-3" in page and "alice" in page and issued.token not in page
        done = await one.client.post("/console/tokens/cad-3/revoke", data={"csrf": csrf},
                                     allow_redirects=False)
        assert done.status == 303
        assert await two.status(issued.token) == 401


class TestCommand:
    """`clarion token add|list|revoke` against a store named in a config file."""

    def test_add_list_revoke(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
        """The printed token authenticates until `revoke`; `list` shows its state."""
        config = tmp_path / "clarion.toml"
        config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n')
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = cli_main(["token", "add", "ops", "--person", "dana", "--role", "viewer",
                         "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0
        token = out.split("token (shown once): ")[1].strip()
        assert cli_main(["token", "list", "--config", str(config)]) == 0
        assert "ops\tdana\tviewer\tstore\tactive" in capsys.readouterr().out
        assert cli_main(["token", "revoke", "ops", "--config", str(config)]) == 0
        assert cli_main(["token", "revoke", "ops", "--config", str(config)]) == 1
        capsys.readouterr()
        assert cli_main(["token", "list", "--config", str(config)]) == 0
        assert "ops\tdana\tviewer\tstore\trevoked" in capsys.readouterr().out
        assert len(token) >= 40
