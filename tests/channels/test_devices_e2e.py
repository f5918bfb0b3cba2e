"""Devices end to end: webhook → engine → MQTT → simulated devices → acks → delivered counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from channels.devices import DeviceChannel
from channels.sandbox.broker import Mosquitto
from channels.sandbox.devices import Behaviour, DeviceFleet, load_devices
from channels.sandbox.server import Sandbox
from dispatcher.domain import ChannelKind
from dispatcher.settings import Settings, config_dir
from tests.channels.test_devices import eventually
from tests.support import AUTH, Running, start_service

DEVICE_CHANNELS = ("siren.mqtt", "signage.mqtt", "pa.mqtt")
FIRE = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "channels": ["siren", "signage", "pa"],
}


@pytest_asyncio.fixture
async def devices_running(
    make_settings: Callable[..., Settings], mosquitto: Mosquitto, sandbox: Sandbox
) -> AsyncIterator[tuple[Running, DeviceFleet]]:
    """The service with the three device channels, and the example campus's devices."""
    specs = load_devices(config_dir() / "campus" / "devices.csv")
    silent = sorted(s.id for s in specs if s.device_class == "signage")[:1]
    fleet = DeviceFleet(specs, host="127.0.0.1", port=mosquitto.port, stats=sandbox.stats,
                        behaviours={d: Behaviour.SILENT for d in silent})
    await fleet.start()
    patch = {"port": mosquitto.port, "ack_timeout_s": 2.0, "client_id": "clarion-e2e"}
    run = await start_service(make_settings(channels={n: dict(patch) for n in DEVICE_CHANNELS}))
    try:
        yield run, fleet
    finally:
        await run.client.close()
        await fleet.stop()


async def alert_doc(run: Running, alert_id: str) -> dict[str, Any]:
    """GET /v1/alerts/{id}."""
    resp = await run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
    doc: dict[str, Any] = await resp.json()
    return doc


class TestDevicesEndToEnd:
    """One alert reaches every device of the example campus, with acks counted."""

    async def test_every_device_gets_the_alert_and_acks_count(
        self, devices_running: tuple[Running, DeviceFleet], sandbox: Sandbox
    ) -> None:
        """Every connected device shows it; acks become delivered; the silent sign fails."""
        run, fleet = devices_running
        resp = await run.post_alert(FIRE)
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        expected = {k: sum(d.spec.device_class == k for d in fleet.devices.values())
                    for k in ("siren", "signage", "pa")}

        async with asyncio.timeout(30):
            while True:
                doc = await alert_doc(run, alert_id)
                counts = doc["channels"]
                settled = all(
                    counts.get(k, {}).get("delivered", 0) + counts.get(k, {}).get("failed", 0)
                    == n for k, n in expected.items()
                )
                if settled:
                    break
                await asyncio.sleep(0.1)
        assert counts["signage"]["failed"] == 1
        assert counts["signage"]["delivered"] == expected["signage"] - 1
        assert counts["siren"]["delivered"] == expected["siren"]
        assert counts["pa"]["delivered"] == expected["pa"]
        snapshot = sandbox.stats.snapshot()
        assert {k: snapshot[k]["unique"] for k in expected} == expected
        assert all(d.showing == alert_id for d in fleet.devices.values())

    async def test_cancel_takes_the_alert_off_every_sign(
        self, devices_running: tuple[Running, DeviceFleet]
    ) -> None:
        """POST /v1/alerts/{id}/cancel clears the retained alert; signs go blank."""
        run, fleet = devices_running
        resp = await run.post_alert(FIRE)
        alert_id = (await resp.json())["id"]
        await eventually(lambda: all(d.showing == alert_id for d in fleet.devices.values()), 30)
        resp = await run.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH,
                                     json={"reason": "false alarm, all safe"})
        assert resp.status in (200, 202), await resp.text()
        await eventually(lambda: all(d.showing is None for d in fleet.devices.values()), 30)
        siren = run.service.channels[ChannelKind.SIREN]
        assert isinstance(siren, DeviceChannel)
        assert siren.bus.active_zones() == {}
