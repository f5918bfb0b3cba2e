"""A scheduled drill goes out on every channel and is marked as a drill in everything the
sandbox (and the MQTT broker) received."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from dispatcher.drills.schedule import DrillSettings
from dispatcher.drills.scheduler import DrillScheduler, RunStatus
from tests.conftest import Stack
from tests.drills.conftest import DRILL_TEXT, MovableClock
from tests.support import AUTH
from tests.test_every_channel import EVERY, settled

MARK = "[DRILL] THIS IS A TEST"


async def retained(port: int, topic: str, timeout: float = 10) -> dict[str, Any]:
    """The retained message of a topic, read with a real MQTT client."""
    async with (
        asyncio.timeout(timeout),
        aiomqtt.Client("127.0.0.1", port, identifier=f"drill-test-{time.time_ns()}") as client,
    ):
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            data: dict[str, Any] = json.loads(payload)
            return data
    raise AssertionError(f"nothing retained on {topic}")


class TestDrillMarking:
    """Nothing a drill sends can be mistaken for a real alert."""

    async def test_scheduled_drill_is_marked_on_every_channel(self, stack: Stack) -> None:
        """Fired by the schedule at its minute: SMS and push prefixed, e-mail subject marked,
        sirens on the test pattern, signs with the banner, PA with the preamble, desktops in the
        marked drill window, CAP Exercise."""
        service = stack.run.service
        now = int(time.time())
        slot = datetime.fromtimestamp((now // 60 + 2) * 60, tz=UTC)
        clock = MovableClock(datetime.fromtimestamp(slot.timestamp() - 5, tz=UTC))
        settings = DrillSettings.model_validate({
            "check_s": 3600,
            "schedule": {"zone-a-exercise": {
                "cron": "* * * * *",
                "text": DRILL_TEXT,
                "zones": ["a"],
                # A drill audience: a small test group and the zone's devices.
                "audience": ("group:dining or class:siren or class:signage or class:pa"
                             " or class:desktop"),
                "channels": EVERY,
                "description": "North campus evacuation exercise, every channel",
                "announced": False,
                "procedures_publicized": True,
            }},
        })
        scheduler = DrillScheduler(settings, db=service.db, intake=service.intake, clock=clock,
                                   single_node=True)
        await scheduler.start()
        try:
            clock.set(datetime.fromtimestamp(slot.timestamp() + 1, tz=UTC))
            (run,) = await scheduler.tick()
        finally:
            await scheduler.stop()
        assert run.status is RunStatus.FIRED and run.alert_id is not None
        alert_id = run.alert_id
        doc = await settled(stack, alert_id)
        stats = stack.sandbox.stats
        for kind in EVERY:
            assert doc["channels"][kind]["total"] > 0, kind
            assert len(stats.of(kind, alert_id)) == doc["channels"][kind]["total"], kind

        assert all(MARK in m.text for m in stats.of("sms", alert_id))
        assert all(MARK in m.meta["subject"] for m in stats.of("email", alert_id))
        assert all("drill" in m.text.lower() for m in stats.of("email", alert_id))
        assert all(MARK in f"{m.meta['title']} {m.text}" for m in stats.of("push", alert_id))
        for kind in ("siren", "signage", "pa", "desktop"):
            assert all(m.meta["drill"] == "true" for m in stats.of(kind, alert_id)), kind
        assert {m.meta["action"] for m in stats.of("siren", alert_id)} == {"sound:test"}

        # What Clarion itself published, before any device's own caution.
        port = int(service.settings.channels["siren.mqtt"]["port"])
        active = await retained(port, "clarion/v1/alert/active/a")
        assert active["identifier"] == alert_id
        assert active["drill"] is True and active["status"] == "Exercise"
        assert active["siren"]["pattern"] == "test"
        assert "DRILL" in active["signage"]["banner"]
        assert active["pa"]["speech"].lower().startswith("this is a drill")
        assert "DRILL" in active["desktop"]["banner"]
        assert active["desktop"]["window"] == "marked"

        cap = await stack.run.client.get(f"/v1/alerts/{alert_id}/cap", headers=AUTH)
        assert "<status>Exercise</status>" in await cap.text()
