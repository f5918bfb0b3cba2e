"""A browser leaving a console alert page (its live progress stream open) is ordinary."""

from __future__ import annotations

import asyncio
import io
import re

from dispatcher.access.auth import Role
from dispatcher.console.web import CONSOLE
from tests.security.conftest import FIRE, bearer, events
from tests.support import Running

WAIT_S = 30.0


class TestLeavingTheAlertPage:
    """The console's progress stream ends as `http.client_left` at debug."""

    async def test_client_leaving_is_debug(self, secure: Running, logs: io.StringIO) -> None:
        """Streams and pages dropped half-way: debug lines, no error and no stack trace."""
        accounts = secure.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", "dispatcher-password-0002", full_name="Dana Reyes",
                                role=Role.DISPATCHER, actor="tests")
        body = {**FIRE, "mode": "drill"}
        sent = await secure.client.post("/v1/alerts", json=body, headers=bearer("alice"))
        assert sent.status == 202, await sent.text()
        alert_id = (await sent.json())["id"]
        page = await secure.client.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        signed = await secure.client.post("/console/sign-in", data={
            "name": "dana", "password": "dispatcher-password-0002",
            **({"csrf": csrf.group(1)} if csrf else {})}, allow_redirects=False)
        assert signed.status in (302, 303), await signed.text()
        cookie = "; ".join(f"{c.key}={c.value}" for c in secure.client.session.cookie_jar)
        port = secure.client.port
        for path in (f"/console/alerts/{alert_id}/events", f"/console/alerts/{alert_id}") * 5:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
            await writer.drain()
            assert b"200" in await asyncio.wait_for(reader.readline(), WAIT_S)
            writer.transport.abort()
        for _ in range(int(WAIT_S * 10)):
            if len(events(logs, "http.client_left")) >= 5:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        text = logs.getvalue()
        assert '"level": "error"' not in text, text[-3000:]
        assert "Traceback" not in text and "ClientConnectionResetError" not in text, text[-3000:]
