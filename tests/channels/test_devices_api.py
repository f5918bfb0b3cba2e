"""`GET /v1/devices`: the directory's devices with presence heard on a real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from channels.base import Channel
from channels.devices import DeviceBus, DeviceSettings, SignageChannel, SirenChannel
from channels.sandbox.broker import Mosquitto
from channels.sandbox.devices import DeviceFleet, DeviceSpec
from dispatcher.api import devices as devices_api
from dispatcher.domain import ChannelKind
from dispatcher.edge import SERVICE
from dispatcher.store.database import Database, open_database
from dispatcher.store.directory import DirectoryStore
from dispatcher.views.devices import DeviceViews
from tests.channels.conftest import RecordingSink


@dataclass
class Parts:
    """The parts of the running service the devices route reads."""

    db: Database
    channels: dict[ChannelKind, Channel] = field(default_factory=dict)
    devices: DeviceViews = field(init=False)

    def __post_init__(self) -> None:
        self.devices = DeviceViews(DirectoryStore(self.db), self.channels)


@pytest_asyncio.fixture
async def api(
    tmp_path: Path, mosquitto: Mosquitto, receipts: RecordingSink
) -> AsyncIterator[tuple[TestClient, Parts]]:
    """The devices route over a store with three devices, and the device channels started."""
    db = await open_database(f"sqlite:///{tmp_path / 'clarion.db'}")
    now = int(time.time() * 1000)
    await db.executemany(
        "INSERT INTO devices (id, class, zone, building, name, updated_at) VALUES (?,?,?,?,?,?)",
        [("siren-1", "siren", "a", "north-hall", "North siren", now),
         ("siren-2", "siren", "b", "gym", "Gym siren", now),
         ("sign-1", "signage", "a", "north-hall", "Lobby sign", now)],
    )
    settings = DeviceSettings(port=mosquitto.port, client_id="api-test")
    bus = DeviceBus(settings)
    parts = Parts(db, {ChannelKind.SIREN: SirenChannel(settings, bus=bus),
                       ChannelKind.SIGNAGE: SignageChannel(settings, bus=bus)})
    for channel in parts.channels.values():
        await channel.start(receipts)
    app = web.Application()
    app[SERVICE] = parts  # type: ignore[assignment]
    app.add_routes(devices_api.routes)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, parts
    await client.close()
    for channel in parts.channels.values():
        await channel.close()
    await db.close()


async def listing(client: TestClient, query: str = "") -> dict[str, Any]:
    """GET /v1/devices as JSON."""
    resp = await client.get(f"/v1/devices{query}")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


class TestDevicesRoute:
    """Presence joins the directory: online with last seen, or offline."""

    async def test_online_offline_and_never_seen(
        self, api: tuple[TestClient, Parts], mosquitto: Mosquitto
    ) -> None:
        """A connected siren is online; one that dropped is offline; one never seen too."""
        client, _ = api
        fleet = DeviceFleet(
            [DeviceSpec("siren-1", "siren", "a"), DeviceSpec("sign-1", "signage", "a"),
             DeviceSpec("pa-9", "pa", "c")],
            host="127.0.0.1", port=mosquitto.port,
        )
        await fleet.start()
        try:
            by_id: dict[str, dict[str, Any]] = {}

            async def refresh() -> None:
                by_id.clear()
                by_id.update({d["id"]: d for d in (await listing(client))["devices"]})

            async def wait(check: Any) -> None:
                async with asyncio.timeout(15):
                    await refresh()
                    while not check():
                        await asyncio.sleep(0.05)
                        await refresh()

            await wait(lambda: all(by_id.get(d, {}).get("state") == "online"
                                   for d in ("siren-1", "sign-1", "pa-9")))
            siren = by_id["siren-1"]
            assert (siren["class"], siren["zone"], siren["name"]) == ("siren", "a", "North siren")
            assert siren["last_seen"] is not None and siren["in_directory"] is True
            assert by_id["siren-2"]["state"] == "offline" and by_id["siren-2"]["last_seen"] is None
            # A PA heard on the bus but missing from the directory is still listed.
            assert by_id["pa-9"]["in_directory"] is False

            await fleet["siren-1"].crash()
            await wait(lambda: by_id["siren-1"]["state"] == "offline")
            assert by_id["siren-1"]["last_seen"] is not None

            offline = await listing(client, "?class=siren&state=offline")
            assert [d["id"] for d in offline["devices"]] == ["siren-1", "siren-2"]
            assert offline["counts"] == {"siren": {"online": 0, "offline": 2}}
            assert offline["broker_connected"] is True
        finally:
            await fleet.stop()

    async def test_bad_filters_are_422(self, api: tuple[TestClient, Parts]) -> None:
        """Unknown class or state values are named."""
        client, _ = api
        for query, name in (("?class=kiosk", "class"), ("?state=asleep", "state")):
            resp = await client.get(f"/v1/devices{query}")
            assert resp.status == 422
            assert (await resp.json())["problems"][0]["field"] == name
