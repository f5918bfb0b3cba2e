"""`desktop.mqtt` over a real mosquitto: its payload, drill marking, acks as receipts, counts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest_asyncio

from channels.devices import (
    WINDOW_FULL_SCREEN,
    WINDOW_MARKED,
    AckState,
    Availability,
    DesktopChannel,
    DeviceSettings,
    Topics,
)
from channels.registry import channel_class
from channels.sandbox.broker import Mosquitto
from channels.sandbox.devices import DeviceFleet, DeviceSpec
from channels.sandbox.server import Sandbox
from dispatcher.domain import AlertKind, ChannelKind, Mode, Outcome
from dispatcher.settings import Settings
from tests.channels.conftest import RecordingSink
from tests.channels.contract.harness import Target, make_batch
from tests.channels.test_devices import eventually
from tests.support import AUTH, Running, start_service

TOPICS = Topics("clarion/v1")


@pytest_asyncio.fixture
async def desktop(mosquitto: Mosquitto, receipts: RecordingSink) -> AsyncIterator[DesktopChannel]:
    """`desktop.mqtt` on the test broker, acks reported to `receipts`."""
    settings = DeviceSettings.model_validate({
        "port": mosquitto.port, "ack_timeout_s": 10.0, "connect_grace_s": 2.0,
        "client_id": "clarion-desktop-test",
    })
    channel = DesktopChannel(settings)
    await channel.start(receipts)
    assert await channel.bus.wait_connected(10)
    yield channel
    await channel.close()


async def retained(port: int, zone: str) -> dict[str, Any]:
    """What a desktop that connects now gets on its zone's topic."""
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(TOPICS.active(zone), qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                found: dict[str, Any] = json.loads(message.payload)
                return found
    raise AssertionError("no retained alert")


class TestRegistry:
    """The channel is registered under its name and is a device kind."""

    def test_name_kind_and_class(self) -> None:
        """`desktop.mqtt` is DesktopChannel, of kind desktop, a device kind."""
        assert channel_class("desktop.mqtt") is DesktopChannel
        assert DesktopChannel.kind is ChannelKind.DESKTOP
        assert ChannelKind.DESKTOP.is_device
        assert ChannelKind.DESKTOP.urgency == ChannelKind.SIREN.urgency


class TestPayload:
    """What a desktop reads: the CAP fields and its own section."""

    async def test_live_alert_opens_full_screen(
        self, desktop: DesktopChannel, mosquitto: Mosquitto
    ) -> None:
        """A live alert: full-screen window, no banner, the text and an ack asked for."""
        sent = make_batch(ChannelKind.DESKTOP, [Target("desk-1", "a")], alert_id="L-1",
                          zones=("a",))
        [receipt] = await desktop.send(sent)
        assert receipt.outcome is Outcome.ACCEPTED
        payload = await retained(mosquitto.port, "a")
        section = payload["desktop"]
        assert payload["identifier"] == "L-1" and payload["drill"] is False
        assert payload["status"] == "Actual"
        assert section["window"] == WINDOW_FULL_SCREEN
        assert section["banner"] == ""
        assert "Evacuate the building now" in section["text"]
        assert section["title"]
        assert section["ack_required"] is True

    async def test_drill_is_marked_and_smaller(
        self, desktop: DesktopChannel, mosquitto: Mosquitto
    ) -> None:
        """A drill: the drill flag, CAP Exercise, the banner and the marked window."""
        sent = make_batch(ChannelKind.DESKTOP, [Target("desk-1", "b")], alert_id="D-1",
                          mode=Mode.DRILL, zones=("b",))
        await desktop.send(sent)
        payload = await retained(mosquitto.port, "b")
        section = payload["desktop"]
        assert payload["drill"] is True and payload["status"] == "Exercise"
        assert section["banner"] == "DRILL - THIS IS A TEST"
        assert section["window"] == WINDOW_MARKED
        assert section["title"].startswith("DRILL - THIS IS A TEST")


class TestAcks:
    """Each ack a desktop sends is a receipt; `acknowledged` is the furthest state."""

    async def test_every_ack_state_is_a_receipt(
        self, desktop: DesktopChannel, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """received, displayed and acknowledged each arrive once, as delivered."""
        sent = make_batch(ChannelKind.DESKTOP, [Target("desk-7", "a")], alert_id="A-7",
                          zones=("a",))
        await desktop.send(sent)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as client:
            for state in ("received", "displayed", "acknowledged", "acknowledged"):
                body = {"alert_id": "A-7", "state": state, "ts": int(time.time() * 1000)}
                await client.publish(TOPICS.ack("desktop", "desk-7"),
                                     json.dumps(body).encode(), qos=1)
        await eventually(lambda: len(receipts.where(alert_id="A-7")) >= 3)
        await asyncio.sleep(0.2)
        got = receipts.where(alert_id="A-7", recipient="desk-7")
        assert [r.detail for r in got] == ["received", "displayed", "acknowledged"]
        assert {r.channel for r in got} == {ChannelKind.DESKTOP}
        assert {r.outcome for r in got} == {Outcome.DELIVERED}
        assert desktop.bus.acks.latest("A-7", "desk-7") is AckState.ACKNOWLEDGED

    async def test_a_desktop_says_it_is_online(
        self, desktop: DesktopChannel, mosquitto: Mosquitto
    ) -> None:
        """Its retained availability makes it an online desktop device."""
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.publish(TOPICS.availability("desktop", "desk-9"), b"online", qos=1,
                                 retain=True)
        await eventually(lambda: any(d.device_id == "desk-9" for d in desktop.devices()))
        [seen] = [d for d in desktop.devices() if d.device_id == "desk-9"]
        assert seen.device_class is ChannelKind.DESKTOP
        assert seen.state is Availability.ONLINE
        assert all(d.device_id != "desk-9" for d in desktop.offline_in())


@pytest_asyncio.fixture
async def desktop_service(
    make_settings: Callable[..., Settings], mosquitto: Mosquitto, sandbox: Sandbox
) -> AsyncIterator[tuple[Running, DeviceFleet]]:
    """The service with `desktop.mqtt` and a simulated desktop in zone a and one in zone b."""
    fleet = DeviceFleet([DeviceSpec("desk-north-hall", "desktop", "a"),
                         DeviceSpec("desk-library", "desktop", "b")],
                        host="127.0.0.1", port=mosquitto.port, stats=sandbox.stats)
    await fleet.start()
    patch = {"port": mosquitto.port, "ack_timeout_s": 5.0, "client_id": "clarion-e2e-desktop"}
    run = await start_service(make_settings(channels={"desktop.mqtt": patch}))
    try:
        yield run, fleet
    finally:
        await run.client.close()
        await fleet.stop()


class TestCounts:
    """`GET /v1/alerts/{id}` counts desktops like every other channel."""

    async def test_desktop_acks_count_as_delivered(
        self, desktop_service: tuple[Running, DeviceFleet]
    ) -> None:
        """The example campus's desktops in zones a and b are delivered, with every ack stored."""
        run, fleet = desktop_service
        resp = await run.post_alert({
            "kind": "emergency", "channels": ["desktop"], "zones": ["a", "b"],
            "text": "Gas leak at North Hall. Evacuate the building now and avoid the area.",
        })
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        async with asyncio.timeout(20):
            while True:
                doc = await (await run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
                counts = doc["channels"].get("desktop", {})
                if counts.get("total") and counts["delivered"] == counts["total"]:
                    break
                await asyncio.sleep(0.1)
        assert counts["total"] == 2 and counts["failed"] == 0
        assert set(counts) >= {"total", "queued", "accepted", "delivered", "failed", "suppressed"}
        details: set[str] = set()
        async with asyncio.timeout(10):
            while "acknowledged" not in details:
                rows = await run.service.db.fetchall(
                    "SELECT detail FROM receipts WHERE alert_id = ? AND channel = 'desktop'",
                    (alert_id,),
                )
                details = {r["detail"] for r in rows}
                await asyncio.sleep(0.1)
        assert {"received", "displayed", "acknowledged"} <= details
        assert fleet["desk-north-hall"].handled[alert_id].action == "display"

    async def test_a_drill_reaches_desktops_as_a_drill(
        self, desktop_service: tuple[Running, DeviceFleet]
    ) -> None:
        """The simulated desktop records the drill as a drill, with the banner shown."""
        run, fleet = desktop_service
        resp = await run.post_alert({
            "kind": AlertKind.EMERGENCY.value, "mode": "drill", "channels": ["desktop"],
            "zones": ["a"],
            "text": "Fire drill at North Hall. Leave the building by the nearest exit now.",
        })
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        device = fleet["desk-north-hall"]
        await eventually(lambda: alert_id in device.handled)
        handled = device.handled[alert_id]
        assert handled.drill is True
        assert handled.text.startswith("DRILL - THIS IS A TEST")
