"""An alert from the API to broadcast targets and webhook subscribers through the real engine:
one delivery per target, retried with backoff, its receipt on the alert's status, the console's
alert page and the Clery record, and every webhook try in the subscriber's log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from dispatcher.access.auth import Role
from dispatcher.console.web import CONSOLE
from tests.channels.contract.harness import serve
from tests.channels.service_hooks import DISCORD, DISCORD_URL, SLACK, SLACK_URL, ServiceHooks
from tests.conftest import SettingsFactory
from tests.support import AUTH, Running, start_service

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SECRET = "whsec-e2e-building-systems-0001"
TEXT = "Gas leak at the Chemistry Building. Evacuate now and avoid the area."


@dataclass
class CampusSystem:
    """A subscriber that checks each signature, then fails with 500 as scripted, then 200."""

    failures: deque[int] = field(default_factory=deque)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    cancels: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        parts = dict(p.split("=", 1) for p in request.headers["Clarion-Signature"].split(","))
        mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(mac.hexdigest(), parts["v1"]):
            self.bad_signatures += 1
            return web.Response(status=401)
        if request.headers["Clarion-Event"] == "cancel":
            self.cancels.append(json.loads(body))
            return web.Response(status=204)
        self.attempts.append(request.headers["Clarion-Attempt"])
        if self.failures:
            return web.Response(status=self.failures.popleft())
        self.bodies.append(json.loads(body))
        return web.Response(status=200)


@pytest_asyncio.fixture
async def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServiceHooks]:
    """Slack and Discord posed behind the proxy every https request goes through."""
    served = ServiceHooks(tmp_path)
    await served.start()
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, served.proxy_url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield served
    await served.stop()


@pytest_asyncio.fixture
async def system() -> AsyncIterator[tuple[CampusSystem, int]]:
    """The campus system on a free port."""
    got = CampusSystem()
    app = web.Application()
    app.router.add_post("/clarion", got.handle)
    runner, port = await serve(app)
    yield got, port
    await runner.cleanup()


@pytest_asyncio.fixture
async def running(
    make_settings: SettingsFactory, hooks: ServiceHooks, system: tuple[CampusSystem, int]
) -> AsyncIterator[Running]:
    """The service with two broadcast targets and one webhook subscriber."""
    _, port = system
    settings = make_settings(channels={
        "broadcast.apprise": {"targets": [
            {"name": "slack-alerts", "url": SLACK_URL, "kinds": ["emergency"]},
            {"name": "discord-campus", "url": DISCORD_URL, "kinds": ["emergency", "advisory"]},
        ]},
        "webhook.signed": {"subscribers": [
            {"name": "building-systems", "url": f"http://127.0.0.1:{port}/clarion",
             "secret": SECRET, "format": "json"},
        ]},
    })
    run = await start_service(settings)
    yield run
    await run.client.close()


async def sent(run: Running, body: dict[str, Any]) -> str:
    resp = await run.post_alert(body)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def settled(run: Running, alert_id: str) -> dict[str, Any]:
    """The alert's status once every target's delivery has its final receipt."""
    async with asyncio.timeout(30):
        while True:
            resp = await run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
            doc: dict[str, Any] = await resp.json()
            if doc["destinations"] and all(
                d["state"] in ("accepted", "delivered", "failed") for d in doc["destinations"]
            ):
                return doc
            await asyncio.sleep(0.05)


class TestEndToEnd:
    """Webhook subscribers and broadcast targets are deliveries like any other."""

    async def test_retried_until_accepted(
        self, running: Running, hooks: ServiceHooks, system: tuple[CampusSystem, int]
    ) -> None:
        """The system's three 500s and Slack's 503 are tried again; each target ends with
        one accepted receipt, and the subscriber's log shows all four tries."""
        campus, _ = system
        campus.failures.extend([500, 500, 500])
        hooks.fail(SLACK, 503)
        alert_id = await sent(running, {
            "kind": "emergency", "text": TEXT, "zones": ["a"],
            "channels": ["webhook", "broadcast", "email"],
        })
        doc = await settled(running, alert_id)
        receipts = {d["name"]: d for d in doc["destinations"]}
        assert set(receipts) == {"slack-alerts", "discord-campus", "building-systems"}
        assert {d["state"] for d in receipts.values()} == {"accepted"}
        assert receipts["building-systems"]["attempts"] == 4
        assert receipts["building-systems"]["channel"] == "webhook"
        assert receipts["slack-alerts"]["attempts"] == 2
        assert receipts["discord-campus"]["attempts"] == 1
        assert doc["channels"]["webhook"]["total"] == 1
        assert doc["channels"]["broadcast"]["total"] == 2
        assert campus.attempts == ["1", "2", "3", "4"] and campus.bad_signatures == 0
        (body,) = campus.bodies
        assert body["alert_id"] == alert_id and body["text"] == TEXT
        assert len(hooks.of(SLACK)) == 2 and len(hooks.of(DISCORD)) == 1
        log = await running.service.webhook_log.of("building-systems", alert_id=alert_id)
        assert [(a.attempt, a.status, a.outcome) for a in reversed(log)] == [
            (1, 500, "retry"), (2, 500, "retry"), (3, 500, "retry"), (4, 200, "accepted")
        ]

        record = await running.client.get(f"/v1/alerts/{alert_id}/record", headers=AUTH)
        assert record.status == 200, await record.text()
        kept = {d["name"]: d for d in (await record.json())["destinations"]}
        assert set(kept) == set(receipts)
        assert kept["building-systems"]["attempts"] == 4

    async def test_kinds_and_drill(
        self, running: Running, hooks: ServiceHooks, system: tuple[CampusSystem, int]
    ) -> None:
        """An advisory drill reaches only the targets that take advisories, marked."""
        campus, _ = system
        alert_id = await sent(running, {
            "kind": "advisory", "mode": "drill", "text": "Water main repair on Elm Street. "
            "Use the north entrance until 5 pm.", "zones": ["a"],
        })
        doc = await settled(running, alert_id)
        assert {d["name"] for d in doc["destinations"]} == {"discord-campus", "building-systems"}
        (posted,) = hooks.of(DISCORD)
        assert "[DRILL] THIS IS A TEST" in repr(posted.body)
        assert hooks.of(SLACK) == []
        (body,) = campus.bodies
        assert body["drill"] is True and body["text"].startswith("[DRILL]")

    async def test_console_alert_page(
        self, running: Running, system: tuple[CampusSystem, int]
    ) -> None:
        """The alert's page lists one receipt per target by name."""
        alert_id = await sent(running, {
            "kind": "emergency", "text": TEXT, "zones": ["a"], "channels": ["webhook"],
        })
        await settled(running, alert_id)
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", "correct-horse-battery", role=Role.DISPATCHER,
                                actor="tests")
        signed = await running.client.post("/console/sign-in", data={
            "name": "dana", "password": "correct-horse-battery", "next": "/console/"},
            allow_redirects=False)
        assert signed.status == 303
        page = await (await running.client.get(f"/console/alerts/{alert_id}")).text()
        row = re.search(r'<tr data-destination="building-systems">.*?</tr>', page, re.S)
        assert row is not None, page
        assert "Campus systems (signed webhooks)" in row.group(0)
        assert 'data-state="accepted"' in row.group(0)

    async def test_cancel_reaches_the_system(
        self, running: Running, system: tuple[CampusSystem, int]
    ) -> None:
        """Cancelling the alert tells the subscriber to take it down, signed, once."""
        campus, _ = system
        alert_id = await sent(running, {
            "kind": "emergency", "text": TEXT, "zones": ["a"], "channels": ["webhook"],
        })
        await settled(running, alert_id)
        resp = await running.client.post(
            f"/v1/alerts/{alert_id}/cancel", json={"reason": "sent in error"}, headers=AUTH
        )
        assert resp.status == 200, await resp.text()
        assert [(c["event"], c["alert_id"]) for c in campus.cancels] == [("cancel", alert_id)]
        assert campus.bad_signatures == 0
        log = await running.service.webhook_log.of("building-systems", alert_id=alert_id)
        assert [a.outcome for a in log] == ["cancel_accepted", "accepted"]
