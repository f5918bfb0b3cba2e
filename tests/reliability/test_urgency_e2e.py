"""End to end through the real engine, the Twilio stand-in and the SMS callbacks: a live
emergency sent while a drill (or a timely warning) is going out is handed over before the rest
of it; the drill pauses, resumes and finishes with nothing lost or sent twice, its record shows
the pause, and the API says whom it waited behind. Deliveries whose status callbacks were lost
are settled by asking the provider. Orders and counts are asserted, never timings."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest_asyncio

from channels.sandbox import cli as sandbox_cli
from channels.sandbox.server import Sandbox
from channels.sandbox.twilio import TwilioSandbox
from dispatcher.settings import Settings, config_dir
from tests.support import AUTH, Running, own_config, start_service

# Messages a second the one sending number takes: slow enough that alerts overlap.
RATE = 150
ZONE = "b"


@dataclass
class Rig:
    """The service (SMS and e-mail) against the sandbox in this process."""

    run: Running
    twilio: TwilioSandbox

    async def send(self, **body: Any) -> str:
        """POST an alert by SMS to the zone; its id."""
        request = {"audience": "all", "zones": [ZONE], "channels": ["sms"], **body}
        resp = await self.run.post_alert(request)
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["id"])

    async def status(self, alert_id: str) -> dict[str, Any]:
        resp = await self.run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
        doc: dict[str, Any] = await resp.json()
        return doc

    def handed_over(self) -> list[str]:
        """The alert of each SMS the stand-in took, in the order it took them."""
        return [m.alert_id for m in self.twilio.stats.messages if m.kind == "sms"]


async def _rig(
    tmp_path: Path, *, callback_port: int | None = None, reconcile_after_s: float = 300.0
) -> AsyncIterator[Rig]:

    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["sandbox", "--port", "0", "--smtp-port", "0",
                              "--sms-callback-delay", "0.01"])
    box = Sandbox(port=0, smtp_port=0)
    twilio: TwilioSandbox = await import_module("channels.sandbox.twilio").attach(box, args)
    await box.start()
    raw = own_config(tmp_path)
    raw["dispatch"]["reconcile_after_s"] = reconcile_after_s
    raw["store"]["lease_s"] = 2.0  # the sweep (which reconciles) runs every second
    raw["channels"]["email.smtp"].update({"port": box.smtp.port, "security": "none"})
    raw["channels"]["sms.twilio"].update({
        "api_base_url": box.url,
        "senders": [{"number": "+15550000001", "type": "long_code", "rate_per_second": RATE}],
    })
    if callback_port is not None:
        # Status callbacks go where nothing listens: as if the service were down then.
        raw["channels"]["sms.twilio"]["status_callback_url"] = (
            f"http://127.0.0.1:{callback_port}/v1/callbacks/twilio")
    raw["channels"] = {k: v for k, v in raw["channels"].items()
                       if k in ("email.smtp", "sms.twilio")}
    raw["base_dir"] = config_dir()
    run = await start_service(Settings.model_validate(raw))
    try:
        yield Rig(run, twilio)
    finally:
        await run.client.close()
        await box.stop()


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """SMS at RATE a second, callbacks to the service."""
    async for made in _rig(tmp_path):
        yield made


def _between(order: list[str], alert_id: str, other: str) -> int:
    """How many of `other`'s hand-overs fall between the first and last of `alert_id`'s."""
    first = order.index(alert_id)
    last = len(order) - order[::-1].index(alert_id) - 1
    return order[first:last + 1].count(other)


class TestLiveBeforeDrill:
    """A drill never delays a live emergency."""

    async def test_emergency_overtakes_a_drill_that_pauses_and_resumes(self, rig: Rig) -> None:
        """The drill starts; once its SMS flow, the emergency comes. The emergency's SMS go
        out together; the drill waits (the API says behind which alert), then finishes:
        every person once, no try counted for the wait, its record shows the pause."""
        drill = await rig.send(kind="emergency", mode="drill",
                               text="DRILL: Shelter in place drill. Go to an interior room.")
        async with asyncio.timeout(30):
            while rig.handed_over().count(drill) < 40:
                await asyncio.sleep(0.02)
        gas = await rig.send(kind="emergency",
                             text="Gas leak at Science Center. Evacuate now and avoid the area.")
        seen_waiting: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while (await rig.status(gas))["state"] == "dispatching":
                waiting = (await rig.status(drill))["waiting_behind"]
                seen_waiting = seen_waiting or waiting
                await asyncio.sleep(0.05)
        done = await rig.run.wait_state(drill, timeout=60)
        order = rig.handed_over()
        people = done["channels"]["sms"]["total"]
        assert order.count(gas) == order.count(drill) == people > 100
        # Nothing of the drill but what was already on its way slips between them.
        assert _between(order, gas, drill) <= 2 * 50
        assert order.index(drill) < order.index(gas) < len(order) - order[::-1].index(drill)
        assert seen_waiting.get("sms", {}).get("alert_id") == gas
        assert (await rig.status(drill))["waiting_behind"] == {}
        stats = rig.twilio.stats.snapshot()["sms"]
        assert stats["received"] == stats["unique"] == 2 * people
        attempts = await rig.run.service.db.fetchval(
            "SELECT MAX(attempts) FROM deliveries WHERE alert_id = ?", (drill,))
        assert attempts == 1
        record = await rig.run.service.records.record(drill)
        assert record is not None
        doc = record.as_json(record_zone(rig))
        assert [p["behind"] for p in doc["paused"]] == [gas]
        assert doc["paused"][0]["channel"] == "sms" and doc["paused"][0]["until"] is not None
        assert doc["drill"]["paused_s"] > 0

    async def test_emergency_goes_before_a_timely_warning_sent_earlier(self, rig: Rig) -> None:
        """The same with a live timely warning in place of the drill: it waits, then ends."""
        warning = await rig.send(
            kind="timely_warning",
            text="Timely warning: robbery reported near Lot 4 at 9 pm. Walk in groups and call"
                 " Campus Police at 555-0100 with information.",
        )
        async with asyncio.timeout(30):
            while rig.handed_over().count(warning) < 40:
                await asyncio.sleep(0.02)
        gas = await rig.send(kind="emergency",
                             text="Gas leak at Science Center. Evacuate now and avoid the area.")
        await rig.run.wait_state(gas, timeout=60)
        await rig.run.wait_state(warning, timeout=60)
        order = rig.handed_over()
        assert _between(order, gas, warning) <= 2 * 50
        assert order.count(gas) == order.count(warning) > 100
        assert order[-1] == warning


def record_zone(rig: Rig) -> Any:
    return rig.run.service.records.zone


class TestReconciliation:
    """Nothing stays "accepted" for ever."""

    async def test_lost_callbacks_are_settled_by_asking_twilio(self, tmp_path: Path) -> None:
        """Every status callback lost (as while the service was down): the sweep asks the
        Message resources about deliveries accepted a while ago, and the API then counts
        them delivered, or failed with Twilio's error code, and none accepted."""
        from channels.sandbox.broker import free_port

        async for rig in _rig(tmp_path, callback_port=free_port(), reconcile_after_s=1.0):
            rig.twilio.fate("+12025550100", "undelivered", 30003)
            alert_id = await rig.send(
                kind="emergency", text="Gas leak at Science Center. Evacuate now.")
            await rig.run.wait_state(alert_id, timeout=60)
            async with asyncio.timeout(60):
                while True:
                    sms = (await rig.status(alert_id))["channels"]["sms"]
                    if sms["accepted"] == 0:
                        break
                    await asyncio.sleep(0.1)
            assert sms["delivered"] + sms["failed"] == sms["total"] > 100
            assert rig.twilio.fetches >= sms["total"]
            assert rig.twilio.callbacks_sent and all(
                status != 200 for _sid, _s, status in rig.twilio.callbacks_sent)
