"""Sirens, signage and PA over a real mosquitto: retained alerts, acks, presence, outages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio

from channels.devices import (
    Availability,
    DeviceBus,
    DeviceBuses,
    DeviceChannel,
    DeviceSettings,
    PaChannel,
    SignageChannel,
    SirenChannel,
    Topics,
)
from channels.errors import TransientChannelError
from channels.sandbox.broker import Mosquitto
from channels.sandbox.devices import Behaviour, DeviceFleet, DeviceSpec
from channels.sandbox.stats import Stats
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    Delivery,
    Message,
    Mode,
    Outcome,
)
from tests.channels.conftest import RecordingSink

TOPICS = Topics("clarion/v1")
CLASSES: dict[ChannelKind, type[DeviceChannel]] = {
    ChannelKind.SIREN: SirenChannel,
    ChannelKind.SIGNAGE: SignageChannel,
    ChannelKind.PA: PaChannel,
}


def alert(
    alert_id: str = "A1",
    *,
    kind: AlertKind = AlertKind.EMERGENCY,
    mode: Mode = Mode.LIVE,
    expires_in_ms: int = 600_000,
    zones: Sequence[str] = ("a",),
    references: str | None = None,
    text: str = "Gas leak at North Hall. Evacuate now.",
) -> AlertContext:
    """An alert as the engine hands it to a device channel."""
    now = int(time.time() * 1000)
    return AlertContext(
        alert_id=alert_id, kind=kind, mode=mode, now_ms=now, expires_ms=now + expires_in_ms,
        messages={"en": Message(text=text, title=text.split(".")[0]),
                  "es": Message(text="Fuga de gas. Evacúe.", title="Fuga de gas")},
        zones=tuple(zones), references=references,
    )


def batch(context: AlertContext, devices: Sequence[tuple[str, str]], first_id: int = 1) -> Batch:
    """Deliveries to (device id, zone) pairs."""
    return Batch(context, tuple(
        Delivery(first_id + i, device_id, zone) for i, (device_id, zone) in enumerate(devices)
    ))


async def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until check() holds."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


async def send_or_retry(channel: DeviceChannel, sent: Batch) -> list[Outcome]:
    """Outcomes of a send, as the engine records them (a transient raise is a retry)."""
    try:
        return [r.outcome for r in await channel.send(sent)]
    except TransientChannelError:
        return [Outcome.RETRY] * len(sent)


Open = Callable[..., Awaitable[dict[ChannelKind, DeviceChannel]]]


@pytest_asyncio.fixture
async def open_channels(
    mosquitto: Mosquitto, receipts: RecordingSink
) -> AsyncIterator[Open]:
    """Start the three device channels on the test broker (sharing one bus)."""
    opened: list[DeviceChannel] = []

    async def open_(**settings: Any) -> dict[ChannelKind, DeviceChannel]:
        base = {"port": mosquitto.port, "ack_timeout_s": 5.0, "connect_grace_s": 0.5,
                "timeout_s": 2.0, "reconnect_max_s": 0.5, "client_id": "clarion-test",
                **settings}
        out = {}
        buses = DeviceBuses()
        for kind, cls in CLASSES.items():
            channel = buses.channel(cls, DeviceSettings.model_validate(base))
            await channel.start(receipts)
            opened.append(channel)
            out[kind] = channel
        assert await out[ChannelKind.SIREN].bus.wait_connected(10)
        return out

    yield open_
    for channel in opened:
        await channel.close()


Fleet = Callable[..., Awaitable[DeviceFleet]]


@pytest_asyncio.fixture
async def fleet(mosquitto: Mosquitto) -> AsyncIterator[Fleet]:
    """Start simulated devices on the test broker."""
    started: list[DeviceFleet] = []

    async def start(
        specs: Sequence[tuple[str, str, str]],
        behaviours: dict[str, Behaviour] | None = None,
        stats: Stats | None = None,
    ) -> DeviceFleet:
        f = DeviceFleet(
            [DeviceSpec(*s) for s in specs], host="127.0.0.1", port=mosquitto.port,
            stats=stats, behaviours=behaviours,
        )
        await f.start(timeout_s=15)
        started.append(f)
        return f

    yield start
    for f in started:
        await f.stop()


async def retained_on(port: int, topic: str) -> bytes | None:
    """The retained message a new subscriber gets on topic, or None.

    A marker published after subscribing arrives after any retained message, so its
    arrival proves there was none (no waiting on the clock).
    """
    marker = f"test/marker/{time.monotonic_ns()}"
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic, qos=1)
        await client.subscribe(marker, qos=1)
        await client.publish(marker, b"x", qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                if message.topic.value == marker:
                    return None
                if message.retain and message.payload:
                    assert isinstance(message.payload, bytes)
                    return message.payload
    return None


class TestRetained:
    """The active alert is held per zone, so late devices still get it."""

    async def test_sign_that_connects_after_the_alert_still_gets_it(
        self, open_channels: Open, fleet: Fleet, receipts: RecordingSink
    ) -> None:
        """A sign booting after the send shows the alert and acks it."""
        channels = await open_channels()
        out = await channels[ChannelKind.SIGNAGE].send(batch(alert(), [("sign-1", "a")]))
        assert [r.outcome for r in out] == [Outcome.ACCEPTED]

        devices = await fleet([("sign-1", "signage", "a")])
        await receipts.wait_for(lambda s: bool(s.where(recipient="sign-1", detail="displayed")))
        assert devices["sign-1"].showing == "A1"
        assert {r.detail for r in receipts.where(recipient="sign-1")} == {"received", "displayed"}
        assert all(r.outcome is Outcome.DELIVERED for r in receipts.receipts)

    async def test_payload_carries_cap_fields_expiry_and_every_class(
        self, open_channels: Open, mosquitto: Mosquitto
    ) -> None:
        """The retained payload has the CAP fields, `expires`, and each class's section."""
        channels = await open_channels()
        context = alert()
        for kind, channel in channels.items():
            await channel.send(batch(context, [(f"{kind}-1", "a")]))
        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        payload = json.loads(raw)
        for key in ("identifier", "status", "msgType", "event", "headline", "expires", "zone",
                    "category", "urgency", "severity", "certainty"):
            assert payload[key], key
        assert payload["status"] == "Actual" and payload["msgType"] == "Alert"
        assert payload["drill"] is False
        assert payload["expires_ms"] == context.expires_ms
        assert payload["siren"]["pattern"] == "alert"
        assert payload["signage"]["text"].startswith("Gas leak")
        assert payload["pa"]["speech"].startswith("Gas leak")
        assert payload["translations"]["es"]["text"].startswith("Fuga")

    async def test_all_clear_replaces_the_alert(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """After an all-clear a new sign sees the all-clear, never the old alert."""
        channels = await open_channels()
        sirens = await fleet([("siren-1", "siren", "a")])
        siren = channels[ChannelKind.SIREN]
        await siren.send(batch(alert(), [("siren-1", "a")]))
        clear = alert("C1", kind=AlertKind.ALL_CLEAR, references="A1", text="All clear.")
        await siren.send(batch(clear, [("siren-1", "a")]))
        await eventually(lambda: sirens["siren-1"].showing == "C1")
        assert sirens["siren-1"].handled["C1"].text == "cancel"

        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        payload = json.loads(raw)
        assert payload["identifier"] == "C1"
        assert payload["msgType"] == "Update" and payload["siren"]["pattern"] == "cancel"

    async def test_cancel_clears_the_zone_and_announces_it(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto
    ) -> None:
        """withdraw() empties the retained topic, signs go blank, the event stream says Cancel."""
        channels = await open_channels()
        signs = await fleet([("sign-1", "signage", "a")])
        events: list[dict[str, Any]] = []
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as watcher:
            await watcher.subscribe(TOPICS.event, qos=1)
            context = alert()
            await channels[ChannelKind.SIGNAGE].send(batch(context, [("sign-1", "a")]))
            await eventually(lambda: signs["sign-1"].showing == "A1")
            for channel in channels.values():
                await channel.withdraw(context)
            await eventually(lambda: signs["sign-1"].showing is None)
            async with asyncio.timeout(10):
                async for message in watcher.messages:
                    assert isinstance(message.payload, bytes)
                    events.append(json.loads(message.payload))
                    if events[-1]["msgType"] == "Cancel":
                        break
        assert [e["msgType"] for e in events] == ["Alert", "Cancel"]
        assert await retained_on(mosquitto.port, TOPICS.active("a")) is None

    async def test_expired_alert_is_not_shown(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto
    ) -> None:
        """The broker drops the retained alert at its MQTT 5 expiry; late signs see nothing."""
        channels = await open_channels()
        short = alert("E1", expires_in_ms=1000)
        out = await channels[ChannelKind.SIGNAGE].send(batch(short, [("sign-1", "a")]))
        assert out[0].outcome is Outcome.ACCEPTED
        await asyncio.sleep(max(0.0, (short.expires_ms - time.time() * 1000) / 1000) + 1.1)
        assert await retained_on(mosquitto.port, TOPICS.active("a")) is None
        signs = await fleet([("sign-1", "signage", "a")])
        assert signs["sign-1"].handled == {}

    async def test_already_expired_alert_fails_without_publishing(
        self, open_channels: Open, mosquitto: Mosquitto
    ) -> None:
        """An alert past its expiry is not sent at all."""
        channels = await open_channels()
        stale = alert("S1", expires_in_ms=-1000)
        out = await channels[ChannelKind.SIREN].send(batch(stale, [("siren-1", "a")]))
        assert [r.outcome for r in out] == [Outcome.FAILED]
        assert await retained_on(mosquitto.port, TOPICS.active("a")) is None

    async def test_drill_never_replaces_a_live_alert(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto
    ) -> None:
        """The monthly siren test does not wipe a real emergency off the retained topic."""
        channels = await open_channels()
        siren = channels[ChannelKind.SIREN]
        await siren.send(batch(alert("LIVE"), [("siren-1", "a")]))
        await siren.send(batch(alert("DRILL", mode=Mode.DRILL), [("siren-1", "a")]))
        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None and json.loads(raw)["identifier"] == "LIVE"


class TestRestart:
    """A restarted Clarion learns what the broker still holds, so a cancel still works."""

    async def test_cancel_after_a_dispatcher_restart_clears_the_zone(
        self, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """The new process adopts the retained alert from the broker and can withdraw it."""
        first = SirenChannel(DeviceSettings(port=mosquitto.port, client_id="clarion-run-1"))
        await first.start(receipts)
        context = alert()
        await first.send(batch(context, [("siren-1", "a"), ("siren-2", "b")]))
        await first.close()

        second = SirenChannel(DeviceSettings(port=mosquitto.port, client_id="clarion-run-2"))
        await second.start(receipts)
        try:
            await eventually(lambda: second.bus.active_zones() == {"a": "A1", "b": "A1"})
            await second.withdraw(context)
            assert await retained_on(mosquitto.port, TOPICS.active("a")) is None
            assert await retained_on(mosquitto.port, TOPICS.active("b")) is None
        finally:
            await second.close()


class TestDrills:
    """Drills are flagged and never acted on as real."""

    async def test_drill_payloads_flagged_and_sirens_play_the_test_pattern(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """Every class gets drill=true; sirens test, signs show the banner, PA the preamble."""
        channels = await open_channels()
        stats = Stats()
        await fleet([("siren-1", "siren", "a"), ("sign-1", "signage", "a"),
                     ("pa-1", "pa", "a")], stats=stats)
        drill = alert("D1", mode=Mode.DRILL, text="Active shooter exercise. Lock doors.")
        for kind, channel in channels.items():
            device = {"siren": "siren-1", "signage": "sign-1", "pa": "pa-1"}[kind.value]
            await channel.send(batch(drill, [(device, "a")]))
        await receipts.wait_for(lambda s: len(s.where(outcome=Outcome.DELIVERED)) == 6)

        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        payload = json.loads(raw)
        assert payload["drill"] is True and payload["status"] == "Exercise"
        assert payload["siren"]["pattern"] == "test"
        assert payload["signage"]["banner"] == "DRILL - THIS IS A TEST"
        assert payload["pa"]["speech"].startswith("This is a drill. This is only a drill.")
        seen = {m.kind: m for m in stats.messages}
        assert seen["siren"].text == "test"
        assert all(m.meta["drill"] == "true" for m in stats.messages)

    async def test_rendered_pa_speech_is_used_as_is(
        self, open_channels: Open, mosquitto: Mosquitto
    ) -> None:
        """The renderer's speech (its own preamble, in the alert's language) is not doubled."""
        channels = await open_channels()
        now = int(time.time() * 1000)
        spoken = "Esto es un simulacro. Evacúe el edificio. Esto es un simulacro."
        drill = AlertContext(
            alert_id="D2", kind=AlertKind.EMERGENCY, mode=Mode.DRILL, now_ms=now,
            expires_ms=now + 60_000,
            messages={"es": Message(text=spoken, speech=spoken, title="Simulacro")},
        )
        await channels[ChannelKind.PA].send(batch(drill, [("pa-1", "a")]))
        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        assert json.loads(raw)["pa"] == {"speech": spoken, "repeat": 1}

    async def test_test_mode_is_cap_test_status(
        self, open_channels: Open, mosquitto: Mosquitto
    ) -> None:
        """A technical test is status Test and the siren still plays the test pattern."""
        channels = await open_channels()
        await channels[ChannelKind.SIREN].send(
            batch(alert("T1", mode=Mode.TEST), [("siren-1", "a")])
        )
        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        payload = json.loads(raw)
        assert payload["status"] == "Test" and payload["siren"]["pattern"] == "test"
        await channels[ChannelKind.SIGNAGE].send(
            batch(alert("T1", mode=Mode.TEST), [("sign-1", "a")])
        )
        raw = await retained_on(mosquitto.port, TOPICS.active("a"))
        assert raw is not None
        assert json.loads(raw)["signage"]["banner"] == "TEST - THIS IS ONLY A TEST"


class TestAcks:
    """Device acks become receipts; silence becomes a failure; garbage is ignored."""

    async def test_one_receipt_per_delivery_then_acks(
        self, open_channels: Open, fleet: Fleet, receipts: RecordingSink
    ) -> None:
        """Accepted on PUBACK, one per device in order; each ack state then a late receipt."""
        channels = await open_channels()
        await fleet([("siren-1", "siren", "a"), ("siren-2", "siren", "b"),
                     ("siren-3", "siren", "b")])
        sent = batch(alert(zones=("a", "b")),
                     [("siren-1", "a"), ("siren-2", "b"), ("siren-3", "b")], first_id=10)
        out = await channels[ChannelKind.SIREN].send(sent)
        assert [r.delivery_id for r in out] == [10, 11, 12]
        assert {r.outcome for r in out} == {Outcome.ACCEPTED}
        await receipts.wait_for(lambda s: len(s.where(detail="sounded")) == 3)
        for device in ("siren-1", "siren-2", "siren-3"):
            got = receipts.where(recipient=device)
            assert sorted(r.detail for r in got) == ["received", "sounded"]
            assert {(r.channel, r.outcome, r.alert_id) for r in got} == {
                (ChannelKind.SIREN, Outcome.DELIVERED, "A1")
            }

    async def test_silent_devices_reported_not_reached(
        self, open_channels: Open, fleet: Fleet, receipts: RecordingSink
    ) -> None:
        """A device that never acks is a FAILED late receipt after ack_timeout_s."""
        channels = await open_channels(ack_timeout_s=0.3)
        await fleet([("pa-1", "pa", "a"), ("pa-2", "pa", "a")],
                    behaviours={"pa-2": Behaviour.SILENT})
        await channels[ChannelKind.PA].send(batch(alert(), [("pa-1", "a"), ("pa-2", "a")]))
        await receipts.wait_for(lambda s: bool(s.where(recipient="pa-2")))
        await receipts.wait_for(lambda s: len(s.where(recipient="pa-1")) == 2)
        assert [(r.outcome, r.detail) for r in receipts.where(recipient="pa-2")] == [
            (Outcome.FAILED, "no ack within 0.3 s")
        ]
        assert all(r.outcome is Outcome.DELIVERED for r in receipts.where(recipient="pa-1"))

    async def test_malformed_acks_are_counted_and_ignored(
        self, open_channels: Open, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """Garbage on ack topics never crashes the bus; a good ack after it still counts."""
        channels = await open_channels()
        bus: DeviceBus = channels[ChannelKind.SIREN].bus
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as device:
            topic = TOPICS.ack("siren", "siren-9")
            for junk in (b"not json", b"[]", b'{"state": "received"}',
                         b'{"alert_id": "A1", "state": "exploded"}', b'{"alert_id": 5}',
                         b"\xff\xfe"):
                await device.publish(topic, junk, qos=1)
            await device.publish("clarion/v1/device/toaster/t-1/ack", b"{}", qos=1)
            await device.publish(topic, json.dumps({"alert_id": "A1", "state": "received",
                                                    "ts": 1}).encode(), qos=1)
        await receipts.wait_for(lambda s: bool(s.where(recipient="siren-9")))
        assert bus.counters["malformed_acks"] == 6
        assert bus.counters["malformed_topic"] == 1
        assert bus.connected
        assert [r.detail for r in receipts.receipts] == ["received"]


class TestOutage:
    """A broker restart loses nothing: retained state is re-published and devices ack."""

    async def test_broker_restarted_mid_alert_every_device_still_acks(
        self, open_channels: Open, fleet: Fleet, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """Zone a is sent before the outage, zone b during it; after it every device acks."""
        channels = await open_channels()
        specs = [("siren-a", "siren", "a"), ("sign-a", "signage", "a"),
                 ("siren-b", "siren", "b"), ("sign-b", "signage", "b"), ("pa-b", "pa", "b")]
        devices = await fleet(specs)
        context = alert(zones=("a", "b"))
        await channels[ChannelKind.SIREN].send(batch(context, [("siren-a", "a")]))
        await channels[ChannelKind.SIGNAGE].send(batch(context, [("sign-a", "a")], 2))

        await mosquitto.stop()
        sends = [(ChannelKind.SIREN, "siren-b", 3), (ChannelKind.SIGNAGE, "sign-b", 4),
                 (ChannelKind.PA, "pa-b", 5)]
        during = [await send_or_retry(channels[k], batch(context, [(d, "b")], i))
                  for k, d, i in sends]
        assert during == [[Outcome.RETRY]] * 3
        await mosquitto.start()

        await receipts.wait_for(
            lambda s: {r.recipient for r in s.where(outcome=Outcome.DELIVERED)}
            == {s[0] for s in specs},
            timeout_s=30,
        )
        assert all(devices[d].showing == "A1" for d, _, _ in specs)
        # The engine's retry after the outage: devices that acked are delivered at once.
        again = await channels[ChannelKind.PA].send(batch(context, [("pa-b", "b")], 5))
        assert again[0].outcome is Outcome.DELIVERED
        # And the state the restarted broker lost is back for devices that boot now.
        raw = await retained_on(mosquitto.port, TOPICS.active("b"))
        assert raw is not None and json.loads(raw)["identifier"] == "A1"


class TestPresence:
    """Availability (retained and Last Will) and last seen, per device."""

    async def test_online_then_offline_by_last_will(
        self, open_channels: Open, fleet: Fleet
    ) -> None:
        """A device's retained online shows it up; its Last Will shows it down."""
        channels = await open_channels()
        siren = channels[ChannelKind.SIREN]
        devices = await fleet([("siren-1", "siren", "a"), ("sign-1", "signage", "a")])
        await eventually(lambda: any(p.device_id == "siren-1" and p.state is Availability.ONLINE
                                     for p in siren.devices()))
        assert [p.device_id for p in siren.devices()] == ["siren-1"]
        assert siren.devices()[0].last_seen_ms is not None
        assert siren.offline_in(["a"]) == []

        await devices["siren-1"].crash()
        await eventually(lambda: siren.devices()[0].state is Availability.OFFLINE)
        await siren.send(batch(alert(), [("siren-1", "a")]))
        down = siren.offline_in(["a"])
        assert [(p.device_id, p.zone, p.state) for p in down] == [
            ("siren-1", "a", Availability.OFFLINE)
        ]
        assert siren.offline_in(["b"]) == []
        assert [p.device_id for p in channels[ChannelKind.SIGNAGE].devices()] == ["sign-1"]

    async def test_directory_devices_never_heard_from_are_offline(
        self, open_channels: Open
    ) -> None:
        """Devices registered from the directory but silent on the bus count as offline."""
        channels = await open_channels()
        channels[ChannelKind.SIREN].bus.register_devices(
            [("siren-7", "siren", "c"), ("kiosk-1", "kiosk", "c")]
        )
        down = channels[ChannelKind.SIREN].offline_in(["c"])
        assert [(p.device_id, p.last_seen_ms) for p in down] == [("siren-7", None)]
        assert down[0].as_json()["state"] == "offline"

    async def test_dispatcher_status_online_then_offline(
        self, mosquitto: Mosquitto, receipts: RecordingSink
    ) -> None:
        """Clarion's own retained status is online while connected, offline after close."""
        channel = SirenChannel(DeviceSettings(port=mosquitto.port, client_id="clarion-status"))
        await channel.start(receipts)
        assert await channel.bus.wait_connected(10)
        assert await retained_on(mosquitto.port, TOPICS.status) == b"online"
        await channel.close()
        assert await retained_on(mosquitto.port, TOPICS.status) == b"offline"


class TestConnection:
    """Credentials, and a broker that is not there."""

    async def test_username_and_password(self, receipts: RecordingSink) -> None:
        """With the right password the bus connects; with a wrong one a send is retried."""
        async with Mosquitto(users={"clarion": "pw-1"}) as broker:
            good = SirenChannel(DeviceSettings.model_validate(
                {"port": broker.port, "username": "clarion", "password": "pw-1",
                 "client_id": "good"}))
            await good.start(receipts)
            assert await good.bus.wait_connected(10)
            await good.close()

            bad = SirenChannel(DeviceSettings.model_validate(
                {"port": broker.port, "username": "clarion", "password": "nope",
                 "client_id": "bad", "connect_grace_s": 0.3}))
            await bad.start(receipts)
            with pytest.raises(TransientChannelError) as caught:
                await bad.send(batch(alert(), [("siren-1", "a")]))
            assert "nope" not in str(caught.value)
            assert "***" in str(bad.describe()["password"])
            await bad.close()

    async def test_channels_share_one_connection(self, open_channels: Open) -> None:
        """The three device channels with equal settings use one bus."""
        channels = await open_channels()
        buses = {id(c.bus) for c in channels.values()}
        assert len(buses) == 1
