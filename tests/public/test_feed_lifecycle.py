"""The snapshot's own upkeep: expiry without a request to the store, the CAP's link to the page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from dispatcher.api.app import build_app
from dispatcher.cap.format import CAP_NS
from dispatcher.clock import Clock
from dispatcher.public.feed import PUBLIC_FEED
from dispatcher.service import Service
from tests.conftest import SettingsFactory
from tests.public.test_public_http import GAS_LEAK
from tests.support import AUTH


class SteppedClock(Clock):
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@pytest_asyncio.fixture
async def stepped(make_settings: SettingsFactory) -> AsyncIterator[tuple[TestClient, SteppedClock]]:
    """A service on a clock the test can move past an alert's expiry."""
    clock = SteppedClock()
    service = await Service.open(
        make_settings(public={"page_url": "https://alerts.example.edu/public/"}), clock=clock
    )
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    yield client, clock
    await client.close()


async def active_ids(client: TestClient) -> list[str]:
    doc = await (await client.get("/public/alerts.json")).json()
    return [a["id"] for a in doc["alerts"]]


async def wait_for(client: TestClient, expected: list[str]) -> None:
    async with asyncio.timeout(10):
        while await active_ids(client) != expected:
            await asyncio.sleep(0.02)


class TestExpiry:
    """An alert leaves the feed when it expires, and the next rebuild is timed for it."""

    async def test_expired_alert_drops_out(
        self, stepped: tuple[TestClient, SteppedClock]
    ) -> None:
        client, clock = stepped
        resp = await client.post("/v1/alerts", headers=AUTH, json={
            "kind": "advisory", "text": GAS_LEAK, "expires_in": 120})
        alert_id = (await resp.json())["id"]
        await wait_for(client, [alert_id])
        feed = client.app[PUBLIC_FEED]
        until = feed.snapshot.state.valid_until_ms
        assert until is not None
        # The keeper sleeps until that expiry, not longer.
        assert feed._wait_s() <= (until - clock.now_ms()) / 1000 + 0.01
        clock.offset_ms = 121_000
        await wait_for(client, [])
        assert feed.snapshot.state.valid_until_ms is None


class TestMoreInformation:
    """An alert's CAP points to the public page for more information."""

    async def test_cap_web_is_the_public_page(
        self, stepped: tuple[TestClient, SteppedClock]
    ) -> None:
        client, _clock = stepped
        resp = await client.post("/v1/alerts", headers=AUTH, json={
            "kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        alert_id = (await resp.json())["id"]
        cap = etree.fromstring(await (await client.get(f"/v1/alerts/{alert_id}/cap",
                                                       headers=AUTH)).read())
        assert cap.findtext(f"{{{CAP_NS}}}info/{{{CAP_NS}}}web") == (
            "https://alerts.example.edu/public/")
        doc = await (await client.get("/public/alerts.json")).json()
        assert doc["page"] == "https://alerts.example.edu/public/"
