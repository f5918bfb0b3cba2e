"""Helpers the tests share: free ports, a running service, the test token."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import AppRunner, BaseRunner

from dispatcher.api.app import build_app, server_options
from dispatcher.service import Service
from dispatcher.settings import Settings

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EMAIL_ONLY = {"email.smtp"}


class Running:
    """A service behind a real HTTP server, with a client that sends the test token."""

    def __init__(self, service: Service, client: TestClient) -> None:
        self.service = service
        self.client = client

    async def post_alert(self, body: dict[str, Any], **headers: str) -> Any:
        """POST /v1/alerts and return the response."""
        return await self.client.post("/v1/alerts", json=body, headers={**AUTH, **headers})

    async def wait_state(self, alert_id: str, *, timeout: float = 30) -> dict[str, Any]:
        """Poll the alert until it leaves `dispatching`; returns its status document."""
        async with asyncio.timeout(timeout):
            while True:
                resp = await self.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
                doc: dict[str, Any] = await resp.json()
                if doc["state"] != "dispatching":
                    return doc
                await asyncio.sleep(0.05)


class ServiceServer(TestServer):
    """A test server started as `clarion serve` starts its own (`server_options`: the read
    timeout, and handlers not cancelled when a client leaves, unlike TestServer's default)."""

    def __init__(self, service: Service, *, port: int | None = None) -> None:
        super().__init__(build_app(service), host="127.0.0.1", port=port)
        self._options = server_options(service)

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return AppRunner(self.app, **{**kwargs, **self._options})


async def start_service(settings: Settings, *, port: int | None = None) -> Running:
    """Open the store, build the app and serve it (on `port`, or a free one)."""
    service = await Service.open(settings)
    server = ServiceServer(service, port=port)
    client = TestClient(server)
    await client.start_server()
    return Running(service, client)
