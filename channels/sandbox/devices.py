"""Simulated sirens, signs, PA speakers and desktop pop-ups on a real MQTT broker: they show,
sound, speak and ack.

Each device keeps its own MQTT 5 connection with a retained `online` and a Last Will `offline`,
subscribes to its zone's active-alert topic, de-duplicates by alert id, treats every drill as
a drill (a siren plays the test pattern), and acks `received` then `displayed` or `sounded`;
a desktop pop-up then acks `acknowledged`, as if its person pressed the button.
A share of devices stays silent (never acks) and a share stays offline, as in the field.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiomqtt
import structlog
from aiohttp import web
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from channels.devices import PATTERN_TEST, AckState, Topics
from channels.sandbox.broker import BrokerUnavailable, Mosquitto
from channels.sandbox.stats import Stats
from dispatcher.settings import config_dir

if TYPE_CHECKING:
    from channels.sandbox.server import Sandbox

log = structlog.get_logger("clarion.sandbox.devices")

DEVICE_CLASSES = ("siren", "signage", "pa", "desktop")
_ACKS = {
    "siren": (AckState.RECEIVED, AckState.SOUNDED),
    "signage": (AckState.RECEIVED, AckState.DISPLAYED),
    "pa": (AckState.RECEIVED, AckState.SOUNDED),
    "desktop": (AckState.RECEIVED, AckState.DISPLAYED, AckState.ACKNOWLEDGED),
}


class Behaviour(StrEnum):
    """How a simulated device behaves."""

    ACKS = "acks"
    SILENT = "silent"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device row of the devices file."""

    id: str
    device_class: str
    zone: str


def load_devices(path: Path) -> list[DeviceSpec]:
    """Devices from a CSV read by column name (id, class, zone; other columns ignored)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "class", "zone"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        specs = []
        for row in reader:
            device_class = (row["class"] or "").strip().lower()
            device_id = (row["id"] or "").strip()
            if device_class in DEVICE_CLASSES and device_id:
                specs.append(DeviceSpec(device_id, device_class, (row["zone"] or "").strip()))
    return specs


def assign_behaviours(
    specs: Sequence[DeviceSpec], *, silent_share: float = 0.0, offline_share: float = 0.0
) -> dict[str, Behaviour]:
    """A stable choice of which devices stay offline or silent: same ids, same choice."""
    ordered = sorted(specs, key=lambda s: hashlib.sha256(s.id.encode()).hexdigest())
    offline = round(len(ordered) * max(0.0, min(1.0, offline_share)))
    silent = round(len(ordered) * max(0.0, min(1.0, silent_share)))
    out: dict[str, Behaviour] = {}
    for index, spec in enumerate(ordered):
        if index < offline:
            out[spec.id] = Behaviour.OFFLINE
        elif index < offline + silent:
            out[spec.id] = Behaviour.SILENT
        else:
            out[spec.id] = Behaviour.ACKS
    return out


@dataclass
class Handled:
    """What a device did with one alert."""

    alert_id: str
    drill: bool
    action: str
    text: str
    acked: list[str] = field(default_factory=list)


class SimulatedDevice:
    """One device with its own MQTT connection, reconnecting on its own like real hardware."""

    def __init__(
        self,
        spec: DeviceSpec,
        behaviour: Behaviour,
        *,
        host: str,
        port: int,
        topics: Topics,
        stats: Stats | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.spec = spec
        self.behaviour = behaviour
        self.host = host
        self.port = port
        self.topics = topics
        self.stats = stats
        self.username = username
        self.password = password
        self.handled: dict[str, Handled] = {}
        self.showing: str | None = None
        self.ignored = 0
        self.subscribed = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._crashed = False

    @property
    def id(self) -> str:
        """The device id."""
        return self.spec.id

    @property
    def availability_topic(self) -> str:
        """Its retained presence topic."""
        return self.topics.availability(self.spec.device_class, self.spec.id)

    def start(self) -> None:
        """Connect in the background (and keep reconnecting)."""
        self._crashed = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"device.{self.id}")

    async def stop(self) -> None:
        """Say offline and disconnect cleanly."""
        client = self._client
        if client is not None and not self._crashed:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.availability_topic, b"offline", qos=1, retain=True,
                                     timeout=2.0)
        await self._cancel()

    async def crash(self) -> None:
        """Drop off the network without a word: the broker publishes the Last Will."""
        self._crashed = True
        client = self._client
        if client is not None:
            # MQTT 5 reason 0x04 asks the broker to send the Will, as a power cut would.
            reason = ReasonCode(PacketTypes.DISCONNECT, identifier=4)
            client._client.disconnect(reasoncode=reason)
        await self._cancel()

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_task(task)
        self.subscribed.clear()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                client = aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=f"device-{self.spec.device_class}-{self.id}",
                    username=self.username,
                    password=self.password,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    will=aiomqtt.Will(self.availability_topic, b"offline", qos=1, retain=True),
                    keepalive=30,
                )
                async with client:
                    self._client = client
                    await client.publish(self.availability_topic, b"online", qos=1, retain=True)
                    await client.subscribe(self.topics.active(self.spec.zone), qos=1)
                    self.subscribed.set()
                    delay = 0.1
                    async for message in client.messages:
                        await self._on_alert(client, message)
            except aiomqtt.MqttError:
                self.subscribed.clear()
            finally:
                self._client = None
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 2.0)

    async def _on_alert(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        raw = message.payload
        if not raw:
            self.showing = None
            return
        try:
            data = json.loads(raw if isinstance(raw, bytes | bytearray | str) else str(raw))
            alert_id = str(data["identifier"])
            expires_ms = int(data.get("expires_ms") or 0)
        except (ValueError, KeyError, TypeError):
            self.ignored += 1
            return
        if expires_ms and expires_ms <= int(time.time() * 1000):
            self.ignored += 1
            return
        previous = self.handled.get(alert_id)
        if previous is not None:
            # Already acted on: never again, but repeat the acks, which may have been lost.
            for state in previous.acked:
                await self._ack(client, alert_id, state)
            return
        handled = self._act(data, alert_id)
        self.handled[alert_id] = handled
        self.showing = alert_id
        if self.stats is not None:
            self.stats.record(
                self.spec.device_class, alert_id, self.id, handled.text,
                drill=str(handled.drill).lower(), action=handled.action,
                msg_type=str(data.get("msgType", "")), zone=self.spec.zone,
                behaviour=self.behaviour.value,
            )
        if self.behaviour is Behaviour.SILENT:
            return
        for state in _ACKS[self.spec.device_class]:
            handled.acked.append(state.value)
            await self._ack(client, alert_id, state.value)

    def _act(self, data: dict[str, Any], alert_id: str) -> Handled:
        drill = bool(data.get("drill")) or data.get("status") in ("Exercise", "Test")
        section = data.get(self.spec.device_class)
        section = section if isinstance(section, dict) else {}
        if self.spec.device_class == "siren":
            pattern = str(section.get("pattern") or "alert")
            if drill:
                # A drill never sounds as real, whatever the payload says.
                pattern = PATTERN_TEST
            return Handled(alert_id, drill, f"sound:{pattern}", pattern)
        if self.spec.device_class in ("signage", "desktop"):
            title = str(section.get("title") or data.get("headline") or "")
            text = str(section.get("text") or data.get("text") or "")
            banner = str(section.get("banner") or ("DRILL" if drill else ""))
            shown = " | ".join(p for p in (banner, title, text) if p)
            return Handled(alert_id, drill, "display", shown)
        speech = str(section.get("speech") or data.get("text") or "")
        if drill and not any(word in speech.lower() for word in ("drill", "test")):
            speech = f"This is a drill. {speech}"
        return Handled(alert_id, drill, "speak", speech)

    async def _ack(self, client: aiomqtt.Client, alert_id: str, state: str) -> None:
        body = json.dumps({"alert_id": alert_id, "state": state, "ts": int(time.time() * 1000)})
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                self.topics.ack(self.spec.device_class, self.id), body.encode(), qos=1
            )


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel and wait; cancel again if it was swallowed (Python 3.11's wait_for can)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        log.warning("sandbox.device_task_failed", error=type(task.exception()).__name__)


class DeviceFleet:
    """Every simulated device of a devices file, started and stopped together."""

    def __init__(
        self,
        specs: Iterable[DeviceSpec],
        *,
        host: str,
        port: int,
        prefix: str = "clarion/v1",
        stats: Stats | None = None,
        silent_share: float = 0.0,
        offline_share: float = 0.0,
        behaviours: dict[str, Behaviour] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        spec_list = list(specs)
        chosen = behaviours or assign_behaviours(
            spec_list, silent_share=silent_share, offline_share=offline_share
        )
        self.host = host
        self.port = port
        self.topics = Topics(prefix.rstrip("/"))
        self.devices = {
            s.id: SimulatedDevice(
                s, chosen.get(s.id, Behaviour.ACKS), host=host, port=port, topics=self.topics,
                stats=stats, username=username, password=password,
            )
            for s in spec_list
        }
        self._auth = (username, password)

    def __getitem__(self, device_id: str) -> SimulatedDevice:
        return self.devices[device_id]

    def online(self) -> list[SimulatedDevice]:
        """Devices that connect."""
        return [d for d in self.devices.values() if d.behaviour is not Behaviour.OFFLINE]

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect every device that is not offline; mark the offline ones offline."""
        await self._mark_offline([d for d in self.devices.values()
                                  if d.behaviour is Behaviour.OFFLINE])
        for device in self.online():
            device.start()
        await self.wait_subscribed(timeout_s)
        log.info("sandbox.devices_started", devices=len(self.devices),
                 online=len(self.online()))

    async def wait_subscribed(self, timeout_s: float = 30.0) -> None:
        """Wait until every connecting device is subscribed again (after a broker restart)."""
        async with asyncio.timeout(timeout_s):
            for device in self.online():
                await device.subscribed.wait()

    async def stop(self) -> None:
        """Disconnect every device."""
        await asyncio.gather(*(d.stop() for d in self.devices.values()))

    async def _mark_offline(self, devices: Sequence[SimulatedDevice]) -> None:
        # What their Last Will would have said had they ever been up.
        if not devices:
            return
        username, password = self._auth
        async with aiomqtt.Client(
            self.host, self.port, username=username, password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            for device in devices:
                await client.publish(device.availability_topic, b"offline", qos=1, retain=True)

    def snapshot(self) -> list[dict[str, Any]]:
        """Each device's state, for `GET /devices` on the sandbox."""
        return [
            {
                "id": d.id,
                "class": d.spec.device_class,
                "zone": d.spec.zone,
                "behaviour": d.behaviour.value,
                "connected": d.subscribed.is_set(),
                "showing": d.showing,
                "alerts": len(d.handled),
                "drills": sum(h.drill for h in d.handled.values()),
            }
            for d in self.devices.values()
        ]


# --- the sandbox plugin ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`clarion sandbox` options for the MQTT broker and the simulated devices."""
    group = parser.add_argument_group("devices (MQTT)")
    group.add_argument("--mqtt-port", type=int, default=8028,
                       help="port of the mosquitto the sandbox starts (default 8028)")
    group.add_argument("--mqtt-url", default=None,
                       help="use this broker instead (mqtt://host:port or host:port)")
    group.add_argument("--mqtt-prefix", default="clarion/v1")
    group.add_argument("--devices", type=Path, default=None,
                       help="devices CSV (id,class,zone,...); default: the example campus")
    group.add_argument("--silent-share", type=float, default=0.0,
                       help="share of devices that receive but never ack (0..1)")
    group.add_argument("--offline-share", type=float, default=0.0,
                       help="share of devices that stay offline (0..1)")
    group.add_argument("--no-devices", action="store_true", help="no broker, no devices")


def parse_broker_url(value: str) -> tuple[str, int]:
    """(host, port) from `mqtt://host:port`, `host:port` or `host` (port 1883)."""
    parts = urlsplit(value if "//" in value else f"mqtt://{value}")
    if not parts.hostname:
        raise ValueError(f"broker {value!r}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> DeviceFleet | None:
    """Start (or join) the broker and the simulated devices of the devices file."""
    if args.no_devices:
        return None
    if args.mqtt_url:
        host, port = parse_broker_url(args.mqtt_url)
    else:
        broker = Mosquitto(port=args.mqtt_port, host=sandbox.host)
        try:
            await broker.start()
        except BrokerUnavailable as exc:
            log.error("sandbox.devices_disabled", reason=str(exc))
            return None
        sandbox.on_close(broker.stop)
        host, port = broker.host, broker.port
    path = args.devices
    if path is None:
        path = config_dir() / "campus" / "devices.csv"
    fleet = DeviceFleet(
        load_devices(path), host=host, port=port, prefix=args.mqtt_prefix, stats=sandbox.stats,
        silent_share=args.silent_share, offline_share=args.offline_share,
    )
    sandbox.stats.declare(*(d.spec.device_class for d in fleet.devices.values()))
    await fleet.start()
    sandbox.on_close(fleet.stop)
    sandbox.endpoints["mqtt"] = f"{host}:{port}"

    async def devices(request: web.Request) -> web.Response:
        return web.json_response({"devices": fleet.snapshot()})

    sandbox.app.router.add_get("/devices", devices)
    return fleet
