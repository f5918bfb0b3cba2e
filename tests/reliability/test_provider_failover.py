"""Failover between SMS providers: Twilio first, Telnyx next, each person sent once."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.breaker import BreakerSettings
from channels.failover import ProviderFailover
from channels.sandbox import push as push_plugin
from channels.sandbox import telnyx as telnyx_plugin
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sandbox.telnyx import TelnyxSandbox
from dispatcher.domain import ChannelKind
from dispatcher.store.providers import ProviderDrains
from tests.reliability.rig import (
    Providers,
    audience_of,
    people_with,
    rig_settings,
    service_port,
    start_rig_service,
)
from tests.support import Running

ALERT = {
    "kind": "emergency",
    "text": "Gas leak at North Hall. Evacuate the building now and stay clear of the area.",
}
PROFILE = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
STAFF = "role:staff"
EMPLOYEES = "role:staff or role:faculty"
FEW = "role:neighbor"


@dataclass
class Both:
    """The sandbox with both SMS providers, and the service sending through them in order."""

    providers: Providers
    telnyx: TelnyxSandbox
    running: Running

    @property
    def failover(self) -> ProviderFailover:
        """The service's SMS channel."""
        channel = self.running.service.channels[ChannelKind.SMS]
        assert isinstance(channel, ProviderFailover)
        return channel


Rig = Callable[..., Awaitable[Both]]


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Start the sandbox (Twilio, Telnyx, push) and a service whose SMS order is Twilio then
    Telnyx; stopped at the end."""
    started: list[Both] = []

    async def make(*, flags: tuple[str, ...] = (), twilio: dict[str, Any] | None = None,
                   breakers: dict[ChannelKind, BreakerSettings] | None = None) -> Both:
        parser = argparse.ArgumentParser()
        plugins = (twilio_plugin, push_plugin, telnyx_plugin)
        for plugin in plugins:
            plugin.add_arguments(parser)
        args = parser.parse_args(
            ["--sms-callback-delay", "0.01", "--telnyx-callback-delay", "0.01", *flags]
        )
        sandbox = Sandbox(port=0, smtp_port=0, stats=Stats())
        twilio_api = await twilio_plugin.attach(sandbox, args)
        push = await push_plugin.attach(sandbox, args)
        telnyx = await telnyx_plugin.attach(sandbox, args)
        await sandbox.start()
        providers = Providers(sandbox, twilio_api, push)
        port = service_port()
        channels = {
            "sms.twilio": {"fallback": "push", **(twilio or {})},
            "sms.telnyx": {
                "api_key": telnyx.api_key, "public_key": telnyx.public_key,
                "messaging_profile_id": PROFILE, "api_base_url": sandbox.url,
                "webhook_url": f"http://127.0.0.1:{port}/v1/callbacks/telnyx",
                "batch_size": 50, "concurrency": 4,
            },
            "push.apprise": {},
        }
        settings = rig_settings(
            tmp_path, providers, service_port=port, channels=channels,
            dispatch={"providers": {"sms": ["sms.twilio", "sms.telnyx"]}},
        )
        running = await start_rig_service(settings, providers, port=port, breakers=breakers)
        both = Both(providers, telnyx, running)
        started.append(both)
        return both

    yield make
    for both in reversed(started):
        await both.running.client.close()
        await both.providers.sandbox.stop()


async def send(running: Running, audience: str) -> str:
    """Send the alert by SMS to an audience; its id."""
    resp = await running.post_alert({**ALERT, "audience": audience, "channels": ["sms"]})
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def sms_rows(running: Running, alert_id: str) -> list[dict[str, Any]]:
    """Every SMS delivery of the alert with its receipt history."""
    rows = await running.service.db.fetchall(
        "SELECT id, recipient, address, state FROM deliveries"
        " WHERE alert_id = ? AND channel = 'sms' AND state <> 'suppressed'", (alert_id,)
    )
    history = await running.service.ledger.receipts(r["id"] for r in rows)
    return [{**dict(r), "receipts": history.get(r["id"], [])} for r in rows]


async def all_delivered(running: Running, alert_id: str) -> list[dict[str, Any]]:
    """Wait (bounded) until the alert is sent and every SMS of it delivered: the provider's
    webhook came back, signed, and was recorded."""
    await running.wait_state(alert_id, timeout=60)
    rows: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while True:
                rows = await sms_rows(running, alert_id)
                if rows and all(r["state"] == "delivered" for r in rows):
                    return rows
                await asyncio.sleep(0.1)
    except TimeoutError:
        left = [r for r in rows if r["state"] != "delivered"]
        raise AssertionError(f"not delivered: {left[:3]}") from None


def named_by(row: dict[str, Any]) -> set[str]:
    """The providers the delivery's receipts of a message taken (accepted, delivered) name;
    the send's and the webhooks' receipts arrive in either order."""
    return {
        r["detail"].split(":", 1)[0]
        for r in row["receipts"] if r["status"] in ("accepted", "delivered")
    }


def sent_to(messages: list[Any], alert_id: str) -> Counter[str]:
    """How many messages each number got for the alert."""
    return Counter(m.to for m in messages if f"a={alert_id}" in _url(m))


def _url(message: Any) -> str:
    return str(getattr(message, "status_callback", "") or getattr(message, "webhook_url", ""))


class TestFirstProviderDown:
    """Twilio answers 500 to every request from the start: Telnyx sends every SMS."""

    async def test_every_sms_through_telnyx_none_lost_none_twice(self, rig: Rig) -> None:
        """All staff: each gets one SMS, from Telnyx; each receipt names sms.telnyx."""
        both = await rig(flags=("--sms-error-rate", "1.0"))
        alert_id = await send(both.running, STAFF)
        rows = await all_delivered(both.running, alert_id)
        phones = {r["address"] for r in rows}
        assert len(phones) == len(rows) > 100
        assert not sent_to(both.providers.twilio.sent, alert_id)
        telnyx = sent_to(both.telnyx.sent, alert_id)
        assert set(telnyx) == phones
        assert set(telnyx.values()) == {1}
        stats = both.providers.sandbox.stats.snapshot()["sms"]
        assert stats == {"received": len(rows), "unique": len(rows)}
        for row in rows:
            assert named_by(row) == {"sms.telnyx"}
        assert both.failover.breakers["sms.twilio"].opened >= 1
        # Signed delivery receipts came back and were taken (none refused).
        assert {code for _, _, code in both.telnyx.webhooks_sent} == {204}

    async def test_switch_half_way(self, rig: Rig) -> None:
        """Twilio sends a quarter, then fails every request: Telnyx sends the rest, each
        person once."""
        # One number at 100 messages a second, so the outage comes while most still wait.
        both = await rig(twilio={"messaging_service_sid": "", "senders": [
            {"number": "+16175550199", "type": "short_code", "rate_per_second": 100}]})
        twilio = both.providers.twilio

        async def outage() -> None:
            while len(twilio.sent) < 100:
                await asyncio.sleep(0.005)
            twilio.error_rate = 1.0

        watcher = asyncio.ensure_future(outage())
        alert_id = await send(both.running, EMPLOYEES)
        rows = await all_delivered(both.running, alert_id)
        await watcher
        by_twilio = sent_to(twilio.sent, alert_id)
        by_telnyx = sent_to(both.telnyx.sent, alert_id)
        assert by_twilio and by_telnyx
        assert not set(by_twilio) & set(by_telnyx)
        assert set(by_twilio) | set(by_telnyx) == {r["address"] for r in rows}
        assert set(by_twilio.values()) == set(by_telnyx.values()) == {1}
        assert both.providers.sandbox.stats.snapshot()["sms"] == {
            "received": len(rows), "unique": len(rows),
        }
        for row in rows:
            provider = "sms.twilio" if row["address"] in by_twilio else "sms.telnyx"
            assert named_by(row) == {provider}


class TestEveryProviderDown:
    """With both SMS providers down, the channel's own breaker and fallback take over."""

    async def test_both_down_falls_back_to_push(self, rig: Rig) -> None:
        """Every request to either provider answered 500: each person gets a push, no SMS."""
        breaker = BreakerSettings(failures=2, cooldown_s=0.2, max_cooldown_s=0.4, probe_size=1,
                                  fallback_after_s=0.3)
        both = await rig(flags=("--sms-error-rate", "1.0", "--telnyx-error-rate", "1.0"),
                         breakers={ChannelKind.SMS: breaker})
        people = await people_with(
            both.running, "role = 'staff' AND phone <> '' AND push <> ''", 10
        )
        alert_id = await send(both.running, audience_of(people))
        doc = await both.running.wait_state(alert_id, timeout=60)
        assert doc["state"] == "done"
        assert doc["channels"]["sms"]["failed"] == 10
        assert doc["channels"]["push"]["accepted"] == doc["channels"]["push"]["total"] == 10
        assert not sent_to(both.providers.twilio.sent, alert_id)
        assert not sent_to(both.telnyx.sent, alert_id)
        assert both.running.service.engine.breakers[ChannelKind.SMS].opened >= 1


class TestDrain:
    """A provider drained by hand sends nothing until undrained, on every node."""

    async def test_drained_provider_is_skipped_then_back(self, rig: Rig) -> None:
        """Twilio drained: Telnyx sends all; undrained: Twilio, first in order, sends again."""
        both = await rig()
        drains = ProviderDrains(both.running.service.db)
        assert await drains.drain("sms.twilio", actor="test", reason="maintenance", now_ms=1)
        assert not await drains.drain("sms.twilio", actor="test", reason="again", now_ms=2)
        first = await send(both.running, FEW)
        rows = await all_delivered(both.running, first)
        assert not sent_to(both.providers.twilio.sent, first)
        assert len(sent_to(both.telnyx.sent, first)) == len(rows)

        assert await drains.undrain("sms.twilio")
        async with asyncio.timeout(10):
            while await both.failover.drained():
                await asyncio.sleep(0.1)
        second = await send(both.running, FEW)
        rows = await all_delivered(both.running, second)
        assert len(sent_to(both.providers.twilio.sent, second)) == len(rows)
        assert not sent_to(both.telnyx.sent, second)


class TestInbound:
    """STOP and HELP work on the Telnyx number as on Twilio's."""

    async def test_help_and_stop_on_the_telnyx_number(self, rig: Rig) -> None:
        """A signed HELP is answered from the number it came to; a signed STOP opts the
        number out (the carrier answers STOP itself)."""
        both = await rig()
        person = (await people_with(both.running, "phone <> ''", 1))[0]
        phone = person["phone"]
        url = f"{both.running.client.make_url('/v1/callbacks/telnyx/inbound')}"
        assert await both.telnyx.send_inbound(url, phone, "+16175550100", "HELP") == 204
        async with asyncio.timeout(10):
            while not (replies := [m for m in both.telnyx.sent if m.to == phone]):
                await asyncio.sleep(0.02)
        assert len(replies) == 1
        assert replies[0].from_ == "+16175550100"
        assert replies[0].text == both.running.service.settings.answers.help_text
        assert not await both.running.service.responses.opted_out([phone])

        assert await both.telnyx.send_inbound(url, phone, "+16175550100", "STOP") == 204
        assert phone in await both.running.service.responses.opted_out([phone])
        assert len([m for m in both.telnyx.sent if m.to == phone]) == 1
        # Nothing more is sent to it, whichever provider.
        alert_id = await send(both.running, audience_of([person]))
        doc = await both.running.wait_state(alert_id)
        sms = doc["channels"]["sms"]
        assert sms["accepted"] + sms["delivered"] == 0
        assert not sent_to(both.telnyx.sent, alert_id)
        assert not sent_to(both.providers.twilio.sent, alert_id)


class TestSignedWebhooks:
    """A delivery receipt counts only when Telnyx's key signed it, recently."""

    async def test_bad_or_stale_signature_is_refused_and_records_nothing(
        self, rig: Rig
    ) -> None:
        """Signed by another key, or too long ago: 403 and the delivery stays accepted; the
        same event signed now by the account's key: 204 and delivered."""
        both = await rig()
        await ProviderDrains(both.running.service.db).drain(
            "sms.twilio", actor="test", reason="", now_ms=1
        )
        both.telnyx.callback_delay_s = 3600.0  # its own receipts come after the test
        person = (await people_with(both.running, "phone <> ''", 1))[0]
        alert_id = await send(both.running, audience_of([person]))
        await both.running.wait_state(alert_id)
        (message,) = [m for m in both.telnyx.sent if m.alert_id == alert_id]
        finalized = {**both.telnyx.resource(message, "delivered")}

        forger = TelnyxSandbox(signing_key=Ed25519PrivateKey.generate())
        stale = TelnyxSandbox(clock_skew_s=-3600)
        try:
            for sender in (forger, stale):
                status = await sender.post_event(
                    message.webhook_url, "message.finalized", finalized
                )
                assert status == 403
            (row,) = await sms_rows(both.running, alert_id)
            assert row["state"] == "accepted"
            unsigned = await both.running.client.post(
                "/v1/callbacks/telnyx", data=both.telnyx.event_body("message.finalized", finalized)
            )
            assert unsigned.status == 403
            status = await both.telnyx.post_event(
                message.webhook_url, "message.finalized", finalized
            )
            assert status == 204
            (row,) = await sms_rows(both.running, alert_id)
            assert row["state"] == "delivered"
            assert row["receipts"][-1]["detail"] == "sms.telnyx: delivered"
        finally:
            await forger.close()
            await stale.close()
