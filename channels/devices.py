"""Sirens, signage and PA speakers over MQTT: the active alert retained per zone, acks, presence.

The three channels share one `DeviceBus` (one MQTT 5 connection) when their connection
settings agree. Topics (prefix default `clarion/v1`):

    <prefix>/alert/active/<zone>                       retained, QoS 1, expiry = alert expiry
    <prefix>/alert/event                               every alert, update and cancel
    <prefix>/device/<class>/<device_id>/availability   retained online/offline (device LWT)
    <prefix>/device/<class>/<device_id>/ack            {"alert_id", "state", "ts"}
    <prefix>/dispatcher/status                         retained online/offline (our LWT)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import Field, SecretStr

from channels.base import Channel, ChannelSettings, ReceiptSink
from channels.errors import TransientChannelError
from dispatcher.cap import assess, cap_msg_type, cap_status, cap_time
from dispatcher.credentials import reveal
from dispatcher.domain import (
    DEVICE_KINDS,
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    LateReceipt,
    Message,
    Mode,
    Outcome,
    Receipt,
)

log = structlog.get_logger("clarion.channel.devices")

# Acks reported together at most, so a burst reaches the store as a few group writes.
ACK_BURST = 500

# Siren patterns: what a siren sounds for an alert.
PATTERN_ALERT = "alert"
PATTERN_ATTACK = "attack"
PATTERN_TEST = "test"
PATTERN_CANCEL = "cancel"
_ATTACK_WORDS = ("shooter", "gunman", "gunfire", "shots fired", "armed", "attack", "lockdown",
                 "lock down", "intruder", "hostage")


class AckState(StrEnum):
    """What a device says it did with an alert."""

    RECEIVED = "received"
    DISPLAYED = "displayed"
    SOUNDED = "sounded"


class Availability(StrEnum):
    """A device's presence as its retained availability topic (or Last Will) says."""

    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class DevicePresence:
    """One device as the bus last heard of it."""

    device_id: str
    device_class: ChannelKind
    state: Availability
    last_seen_ms: int | None
    zone: str | None

    def as_json(self) -> dict[str, Any]:
        """The API's view: ISO last-seen time, or null when never heard from."""
        seen = self.last_seen_ms
        return {
            "id": self.device_id,
            "class": self.device_class.value,
            "zone": self.zone,
            "state": self.state.value,
            "last_seen": None if seen is None else cap_time(_dt(seen)),
            "last_seen_ms": seen,
        }


class DeviceSettings(ChannelSettings):
    """Settings of `siren.mqtt`, `signage.mqtt` and `pa.mqtt`; equal connections share one bus."""

    host: str = "127.0.0.1"
    port: int = Field(default=8028, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    tls_ca_file: str | None = Field(default=None, description="CA bundle; default system CAs")
    prefix: str = Field(default="clarion/v1", min_length=1, pattern=r"^[^#+\s]+$")
    client_id: str = Field(default="", description="MQTT client id; default clarion-<host>-<pid>")
    ack_timeout_s: float = Field(default=30.0, gt=0, description="no ack by then: not reached")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    connect_grace_s: float = Field(
        default=2.0, ge=0, description="how long a send waits for the broker before a retry"
    )
    drill_banner: str = Field(default="DRILL - THIS IS A TEST", min_length=1)
    test_banner: str = Field(default="TEST - THIS IS ONLY A TEST", min_length=1)
    drill_preamble: str = Field(default="This is a drill. This is only a drill.", min_length=1)
    batch_size: int = Field(default=500, ge=1, le=1000)
    timeout_s: float = Field(default=5.0, gt=0, description="wait for the broker's PUBACK")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic tree under one prefix."""

    prefix: str

    def active(self, zone: str) -> str:
        """The retained active alert of a zone."""
        return f"{self.prefix}/alert/active/{topic_level(zone)}"

    @property
    def active_filter(self) -> str:
        """Every zone's active alert."""
        return f"{self.prefix}/alert/active/+"

    @property
    def event(self) -> str:
        """The stream of alerts, updates and cancels."""
        return f"{self.prefix}/alert/event"

    def availability(self, device_class: str, device_id: str) -> str:
        """A device's retained presence."""
        return f"{self.prefix}/device/{device_class}/{topic_level(device_id)}/availability"

    def ack(self, device_class: str, device_id: str) -> str:
        """Where a device acknowledges."""
        return f"{self.prefix}/device/{device_class}/{topic_level(device_id)}/ack"

    @property
    def status(self) -> str:
        """Clarion's own retained presence."""
        return f"{self.prefix}/dispatcher/status"

    def device_of(self, topic: str) -> tuple[str, str, str] | None:
        """(class, device_id, leaf) for a device topic, else None."""
        head = f"{self.prefix}/device/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return parts[0], parts[1], parts[2]

    def zone_of(self, topic: str) -> str | None:
        """The zone of an active-alert topic, else None."""
        head = f"{self.prefix}/alert/active/"
        if topic.startswith(head) and "/" not in topic[len(head):]:
            return topic[len(head):]
        return None


def topic_level(value: str) -> str:
    """A name made safe as one topic level: no separators or wildcards."""
    cleaned = "".join("_" if c in "/+#\x00" else c for c in value.strip())
    return cleaned or "_"


def siren_pattern(alert: AlertContext, text: str = "") -> str:
    """The siren pattern: test for drills and tests, cancel for all-clears, attack or alert."""
    if alert.drill:
        return PATTERN_TEST
    if alert.kind is AlertKind.ALL_CLEAR:
        return PATTERN_CANCEL
    lowered = text.lower()
    if any(word in lowered for word in _ATTACK_WORDS):
        return PATTERN_ATTACK
    return PATTERN_ALERT


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rank(alert: AlertContext) -> int:
    # A drill never pushes a live alert off a sign; an advisory never hides an emergency.
    if alert.drill:
        return 1
    return {AlertKind.EMERGENCY: 4, AlertKind.ALL_CLEAR: 4, AlertKind.TIMELY_WARNING: 3,
            AlertKind.ADVISORY: 2}[alert.kind]


def common_payload(alert: AlertContext, now_ms: int) -> dict[str, Any]:
    """The CAP fields every device class reads, from the alert and its first rendering."""
    first_lang, first = next(iter(alert.messages.items()), ("en", Message(text="")))
    cap = alert.cap
    headline = cap.headline or first.title or first.text[:80]
    grade = assess(
        alert.kind, first.text, headline=headline, instruction=cap.instruction or None,
        template=cap.template or None,
    )
    payload: dict[str, Any] = {
        "identifier": alert.alert_id,
        "sender": cap.sender,
        "sent": cap_time(_dt(now_ms)),
        "status": cap_status(alert.mode),
        "msgType": cap_msg_type(alert.kind, alert.references),
        "kind": alert.kind.value,
        "mode": alert.mode.value,
        "drill": alert.drill,
        "category": grade.category,
        "event": grade.event,
        "urgency": grade.urgency,
        "severity": grade.severity,
        "certainty": grade.certainty,
        "responseType": list(grade.response_types),
        "headline": headline,
        "instruction": cap.instruction,
        "description": cap.description,
        "text": first.text,
        "language": first_lang,
        "expires": cap_time(_dt(alert.expires_ms)),
        "expires_ms": alert.expires_ms,
        "references": alert.references,
        "zones": list(alert.zones),
    }
    others = {lang: {"headline": m.title, "text": m.text}
              for lang, m in alert.messages.items() if lang != first_lang}
    if others:
        payload["translations"] = others
    return payload


def class_section(
    kind: ChannelKind, alert: AlertContext, settings: DeviceSettings
) -> dict[str, Any]:
    """What one device class does with the alert: pattern, sign text or speech."""
    message = next(iter(alert.messages.values()), Message(text=""))
    if kind is ChannelKind.SIREN:
        return {"pattern": siren_pattern(alert, f"{message.title} {message.text}")}
    if kind is ChannelKind.SIGNAGE:
        banner = ""
        if alert.drill:
            banner = settings.test_banner if alert.mode is Mode.TEST else settings.drill_banner
        return {
            "title": message.title or alert.cap.headline,
            "text": message.text,
            "instruction": alert.cap.instruction,
            "banner": banner,
        }
    # The renderer's PA speech already carries the drill preamble in the alert's language;
    # any other text gets ours, so no speaker ever announces a drill as real.
    speech = message.speech
    if not speech:
        speech = message.text
        if alert.drill and not speech.lower().startswith(settings.drill_preamble.lower()):
            speech = f"{settings.drill_preamble} {speech}"
    return {"speech": speech, "repeat": 1 if alert.drill else 2}


@dataclass(slots=True)
class _Shown:
    """The alert a zone's retained topic holds."""

    alert_id: str
    references: str | None
    rank: int
    expires_ms: int
    payload: dict[str, Any]


@dataclass(slots=True)
class _Pending:
    kind: ChannelKind
    deadline: float
    timeout_s: float


@dataclass(slots=True)
class _Device:
    device_class: ChannelKind
    state: Availability = Availability.OFFLINE
    last_seen_ms: int | None = None
    zone: str | None = None


@dataclass(slots=True)
class _Ack:
    device_class: ChannelKind
    device_id: str
    alert_id: str
    state: AckState


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    expires_ms: int


class DeviceBus:
    """One MQTT connection for every device channel: publishes, acks, presence, reconnects."""

    _shared: ClassVar[dict[tuple[object, ...], DeviceBus]] = {}
    _opened: ClassVar[int] = 0

    def __init__(self, settings: DeviceSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.prefix.rstrip("/"))
        DeviceBus._opened += 1
        # Two connections with one client id would throw each other off the broker.
        generated = f"clarion-{socket.gethostname()}-{os.getpid()}"
        if DeviceBus._opened > 1:
            generated += f"-{DeviceBus._opened}"
        self.client_id = settings.client_id or generated
        self.counters: Counter[str] = Counter()
        self._loop = asyncio.get_running_loop()
        self._users: dict[ChannelKind, DeviceSettings] = {}
        self._sinks: dict[ChannelKind, ReceiptSink] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._zone_locks: dict[str, asyncio.Lock] = {}
        self._shown: dict[str, _Shown] = {}
        self._cleared: set[str] = set()
        self._events_sent: set[tuple[str, str]] = set()
        self._outbox: list[_Outgoing] = []
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._acked: dict[tuple[str, str], set[AckState]] = {}
        self._alert_expiry: dict[str, int] = {}
        self._devices: dict[str, _Device] = {}
        self._acks: asyncio.Queue[_Ack] = asyncio.Queue()

    # --- life --------------------------------------------------------------------------------

    @classmethod
    async def attach(
        cls, settings: DeviceSettings, kind: ChannelKind, sink: ReceiptSink | None
    ) -> DeviceBus:
        """The bus for these connection settings (started on first use), now also serving kind."""
        key = _bus_key(settings)
        bus = cls._shared.get(key)
        if bus is None or bus._closing or bus._loop is not asyncio.get_running_loop():
            bus = cls(settings)
            cls._shared[key] = bus
            bus._start()
        bus._users[kind] = settings
        if sink is not None:
            bus._sinks[kind] = sink
        return bus

    async def release(self, kind: ChannelKind) -> None:
        """One channel is done with the bus; the last one closes it."""
        self._users.pop(kind, None)
        self._sinks.pop(kind, None)
        if not self._users:
            await self.close()

    def _start(self) -> None:
        self._tasks = [
            self._loop.create_task(self._session_loop(), name="devices.session"),
            self._loop.create_task(self._ack_worker(), name="devices.acks"),
            self._loop.create_task(self._sweeper(), name="devices.ack_timeouts"),
        ]

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the broker up to timeout_s; True when connected."""
        if self._connected.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        return self._connected.is_set()

    async def close(self) -> None:
        """Say offline on the status topic, disconnect and stop the tasks."""
        if self._closing:
            return
        self._closing = True
        client = self._client
        if client is not None and self._connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(
                    self.topics.status, b"offline", qos=1, retain=True, timeout=2.0
                )
        for task in self._tasks:
            # Cancel again if swallowed: Python 3.11's wait_for (inside aiomqtt) can do that
            # when a connection completes at the same moment.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
        self._tasks = []
        key = _bus_key(self.settings)
        if self._shared.get(key) is self:
            del self._shared[key]
        log.info("device.bus_closed", client_id=self.client_id)

    # --- the session ---------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        tls_context = None
        if s.tls:
            tls_context = ssl.create_default_context(cafile=s.tls_ca_file)
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=reveal(s.password) or None,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True),
            keepalive=s.keepalive_s,
            timeout=s.timeout_s,
            tls_context=tls_context,
            max_inflight_messages=1000,
        )
        # A fan-out burst is expected; we bound concurrency ourselves.
        client.pending_calls_threshold = 100_000
        return client

    async def _session_loop(self) -> None:
        delay = self.settings.reconnect_min_s
        while not self._closing:
            resync: asyncio.Task[None] | None = None
            try:
                client = self._make_client()
                async with client:
                    await client.subscribe([
                        (f"{self.topics.prefix}/device/+/+/availability", SubscribeOptions(qos=1)),
                        (f"{self.topics.prefix}/device/+/+/ack", SubscribeOptions(qos=1)),
                        (self.topics.active_filter, SubscribeOptions(qos=1, noLocal=True)),
                    ])
                    await client.publish(self.topics.status, b"online", qos=1, retain=True)
                    self._client = client
                    self._connected.set()
                    delay = self.settings.reconnect_min_s
                    log.info("device.bus_connected", host=self.settings.host,
                             port=self.settings.port, client_id=self.client_id)
                    resync = self._loop.create_task(self._resync(), name="devices.resync")
                    async for message in client.messages:
                        try:
                            self._on_message(message)
                        except Exception as exc:
                            self.counters["message_errors"] += 1
                            log.error("device.message_failed", topic=message.topic.value,
                                      error=type(exc).__name__)
            except aiomqtt.MqttError as exc:
                self.counters["disconnects"] += 1
                log.warning("device.bus_disconnected", host=self.settings.host,
                            port=self.settings.port, error=str(exc), retry_in_s=round(delay, 2))
            except Exception as exc:
                # A fault of ours must not leave the devices without a connection for good.
                self.counters["faults"] += 1
                log.error("device.bus_fault", error=type(exc).__name__, detail=str(exc),
                          retry_in_s=round(delay, 2))
            finally:
                self._client = None
                self._connected.clear()
                if resync is not None:
                    resync.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await resync
            if self._closing:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _resync(self) -> None:
        """After a (re)connect: re-publish the retained state, then what was queued."""
        # Devices re-ack what they see again; give them a fresh ack window.
        now = time.monotonic()
        for pending in self._pending.values():
            pending.deadline = max(pending.deadline, now + pending.timeout_s)
        for zone in sorted(set(self._shown) | self._cleared):
            await self._sync_zone(zone)
        queued, self._outbox = self._outbox, []
        now = _now_ms()
        for index, item in enumerate(queued):
            if item.expires_ms <= now:
                continue
            if not await self._publish(item.topic, item.payload, retain=False,
                                       expires_ms=item.expires_ms):
                self._outbox[:0] = [q for q in queued[index:] if q.expires_ms > now]
                return
        if queued:
            log.info("device.outbox_flushed", events=len(queued))

    # --- publishing ----------------------------------------------------------------------------

    async def _publish(
        self, topic: str, payload: bytes, *, retain: bool, expires_ms: int | None
    ) -> bool:
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        properties = None
        if expires_ms is not None:
            seconds = math.ceil((expires_ms - _now_ms()) / 1000)
            if seconds <= 0:
                return True
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = seconds
        try:
            await client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        except aiomqtt.MqttError as exc:
            self.counters["publish_failed"] += 1
            log.warning("device.publish_failed", topic=topic, error=str(exc))
            return False
        return True

    def _of(self, kind: ChannelKind) -> DeviceSettings:
        """A channel's own settings (banner, preamble, ack timeout) on the shared bus."""
        return self._users.get(kind, self.settings)

    def _lock(self, zone: str) -> asyncio.Lock:
        lock = self._zone_locks.get(zone)
        if lock is None:
            lock = self._zone_locks[zone] = asyncio.Lock()
        return lock

    async def _sync_zone(self, zone: str) -> bool:
        """Publish the zone's current retained state; serialized so the latest always wins."""
        async with self._lock(zone):
            topic = self.topics.active(zone)
            shown = self._shown.get(zone)
            if shown is not None and shown.expires_ms <= _now_ms():
                del self._shown[zone]
                shown = None
            if shown is not None:
                body = json.dumps(shown.payload, separators=(",", ":")).encode()
                return await self._publish(topic, body, retain=True, expires_ms=shown.expires_ms)
            if zone in self._cleared:
                # An empty retained message deletes the broker's copy and tells devices "clear".
                if await self._publish(topic, b"", retain=True, expires_ms=None):
                    self._cleared.discard(zone)
                    return True
                return False
            return True

    async def _event(self, alert_id: str, msg_type: str, payload: dict[str, Any],
                     expires_ms: int) -> None:
        key = (alert_id, msg_type)
        if key in self._events_sent:
            return
        self._events_sent.add(key)
        body = json.dumps(payload, separators=(",", ":")).encode()
        if not await self._publish(self.topics.event, body, retain=False, expires_ms=expires_ms):
            self._outbox.append(_Outgoing(self.topics.event, body, expires_ms))

    def _place(self, kind: ChannelKind, alert: AlertContext, zone: str, now_ms: int) -> bool:
        """Put the alert in the zone's retained state; False when a weightier alert stays."""
        shown = self._shown.get(zone)
        section = class_section(kind, alert, self._of(kind))
        if shown is not None and shown.alert_id == alert.alert_id:
            shown.payload[kind.value] = section
            return True
        rank = _rank(alert)
        if not (
            shown is None
            or shown.expires_ms <= now_ms
            or rank >= shown.rank
            or (alert.references is not None
                and alert.references in (shown.alert_id, shown.references))
        ):
            return False
        payload = common_payload(alert, now_ms)
        payload["zone"] = zone
        payload[kind.value] = section
        self._shown[zone] = _Shown(alert.alert_id, alert.references, rank, alert.expires_ms,
                                   payload)
        self._cleared.discard(zone)
        return True

    # --- the channel side ---------------------------------------------------------------------

    async def transmit(self, kind: ChannelKind, batch: Batch) -> list[Receipt]:
        """Publish the batch's zones and return one receipt per device, in order."""
        alert = batch.alert
        now_ms = _now_ms()
        if alert.expires_ms <= now_ms:
            return [Receipt(d.id, Outcome.FAILED, "alert expired before it was sent")
                    for d in batch.deliveries]
        zones = list(dict.fromkeys(_zone(d.address) for d in batch.deliveries))
        for d in batch.deliveries:
            self._learn(kind, d.recipient, _zone(d.address))
        self._alert_expiry[alert.alert_id] = alert.expires_ms
        live_only = [z for z in zones if not self._place(kind, alert, z, now_ms)]
        for zone in live_only:
            log.warning("device.alert_not_retained", alert_id=alert.alert_id, zone=zone,
                        reason="a weightier alert holds the zone")
        event = common_payload(alert, now_ms)
        # Queued when the broker is away, like the retained state: both go out on reconnect.
        await self._event(alert.alert_id, event["msgType"], event, alert.expires_ms)
        if not await self.wait_connected(self._of(kind).connect_grace_s):
            raise TransientChannelError(
                "MQTT broker unavailable", retry_after_s=self.settings.reconnect_max_s
            )
        results = await asyncio.gather(
            *(self._send_zone(kind, alert, z, z in live_only, now_ms) for z in zones)
        )
        published = dict(zip(zones, results, strict=True))
        receipts = []
        timeout_s = self._of(kind).ack_timeout_s
        deadline = time.monotonic() + timeout_s
        for d in batch.deliveries:
            zone = _zone(d.address)
            key = (alert.alert_id, d.recipient)
            acked = self._acked.get(key)
            if acked:
                latest = max(acked, key=list(AckState).index)
                receipts.append(Receipt(d.id, Outcome.DELIVERED, latest.value))
            elif published[zone]:
                self._pending[key] = _Pending(kind, deadline, timeout_s)
                receipts.append(Receipt(d.id, Outcome.ACCEPTED, f"published to zone {zone}"))
            else:
                receipts.append(Receipt(d.id, Outcome.RETRY, "broker did not confirm the publish",
                                        retry_after_s=self.settings.reconnect_max_s))
        return receipts

    async def _send_zone(
        self, kind: ChannelKind, alert: AlertContext, zone: str, live_only: bool, now_ms: int
    ) -> bool:
        if not live_only:
            return await self._sync_zone(zone)
        payload = common_payload(alert, now_ms)
        payload["zone"] = zone
        payload[kind.value] = class_section(kind, alert, self._of(kind))
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await self._publish(self.topics.active(zone), body, retain=False,
                                   expires_ms=alert.expires_ms)

    async def withdraw(self, alert: AlertContext) -> list[str]:
        """Take the alert (and what updates it) off every zone; returns the zones cleared."""
        cleared = [
            zone for zone, shown in self._shown.items()
            if alert.alert_id == shown.alert_id or alert.alert_id == shown.references
        ]
        for zone in cleared:
            del self._shown[zone]
            self._cleared.add(zone)
        for key in [k for k in self._pending if k[0] == alert.alert_id]:
            del self._pending[key]
        now_ms = _now_ms()
        event = {
            "identifier": alert.alert_id,
            "msgType": "Cancel",
            "status": cap_status(alert.mode),
            "kind": alert.kind.value,
            "mode": alert.mode.value,
            "drill": alert.drill,
            "sent": cap_time(_dt(now_ms)),
            "references": alert.alert_id,
            "zones": cleared or list(alert.zones),
            ChannelKind.SIREN.value: {"pattern": PATTERN_CANCEL},
        }
        expires = max(alert.expires_ms, now_ms + 3_600_000)
        await self._event(alert.alert_id, "Cancel", event, expires)
        for zone in cleared:
            await self._sync_zone(zone)
        if cleared:
            log.info("device.alert_withdrawn", alert_id=alert.alert_id, zones=len(cleared))
        return cleared

    # --- incoming ------------------------------------------------------------------------------

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        device = self.topics.device_of(topic)
        if device is not None:
            device_class, device_id, leaf = device
            try:
                kind = ChannelKind(device_class)
            except ValueError:
                kind = None
            if kind is None or kind not in DEVICE_KINDS:
                self.counters["malformed_topic"] += 1
                log.warning("device.topic_malformed", topic=topic)
                return
            if leaf == "availability":
                self._on_availability(kind, device_id, payload)
            elif leaf == "ack":
                self._on_ack(kind, device_id, payload)
            return
        zone = self.topics.zone_of(topic)
        if zone is not None and message.retain:
            self._adopt(zone, payload)

    def _on_availability(self, kind: ChannelKind, device_id: str, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace").strip()
        zone = None
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                data = {}
            text = str(data.get("state", "")) if isinstance(data, dict) else ""
            zone = data.get("zone") if isinstance(data, dict) else None
        if not payload:
            self._devices.pop(device_id, None)
            return
        try:
            state = Availability(text.lower())
        except ValueError:
            self.counters["malformed_availability"] += 1
            log.warning("device.availability_malformed", device_id=device_id, device_class=kind)
            return
        device = self._devices.setdefault(device_id, _Device(kind))
        device.device_class = kind
        if isinstance(zone, str) and zone:
            device.zone = zone
        if state is Availability.ONLINE:
            device.last_seen_ms = _now_ms()
        if device.state is not state:
            log.info("device.presence_changed", device_id=device_id, device_class=kind.value,
                     state=state.value)
        device.state = state

    def _on_ack(self, kind: ChannelKind, device_id: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            alert_id = data["alert_id"]
            state = AckState(data["state"])
            if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 200:
                raise ValueError("alert_id")
        except (ValueError, KeyError, TypeError, RecursionError):
            self.counters["malformed_acks"] += 1
            log.warning("device.ack_malformed", device_id=device_id, device_class=kind.value,
                        size=len(payload))
            return
        device = self._devices.setdefault(device_id, _Device(kind))
        device.last_seen_ms = _now_ms()
        device.state = Availability.ONLINE
        # Acks for alerts this process never sent (a restart) are still reported, then forgotten.
        self._alert_expiry.setdefault(alert_id, device.last_seen_ms + 3_600_000)
        self._acks.put_nowait(_Ack(kind, device_id, alert_id, state))

    def _adopt(self, zone: str, payload: bytes) -> None:
        """Learn a retained alert another publisher (or our previous run) left on a zone."""
        # A zone we hold, or cleared while away, keeps our word over the broker's old copy.
        if zone in self._shown or zone in self._cleared or not payload:
            return
        try:
            data = json.loads(payload)
            alert_id = str(data["identifier"])
            expires_ms = int(data["expires_ms"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return
        if expires_ms <= _now_ms():
            return
        rank = 1 if data.get("drill") else 4
        references = data.get("references")
        self._shown[zone] = _Shown(alert_id, references if isinstance(references, str) else None,
                                   rank, expires_ms, data)

    async def _ack_worker(self) -> None:
        # Acks come in bursts (every device of a zone within a second): each burst is reported
        # at once, so the store can write it as one group rather than ack by ack.
        while True:
            burst = [await self._acks.get()]
            while not self._acks.empty() and len(burst) < ACK_BURST:
                burst.append(self._acks.get_nowait())
            reports = []
            for ack in burst:
                key = (ack.alert_id, ack.device_id)
                seen = self._acked.setdefault(key, set())
                if ack.state in seen:
                    continue
                seen.add(ack.state)
                self._pending.pop(key, None)
                self.counters["acks"] += 1
                reports.append(self._report(ack.device_class, Outcome.DELIVERED, ack.alert_id,
                                            ack.device_id, ack.state.value))
            await asyncio.gather(*reports)

    async def _sweeper(self) -> None:
        while True:
            shortest = min((k.ack_timeout_s for k in self._users.values()), default=2.0)
            await asyncio.sleep(min(0.5, shortest / 4))
            # While disconnected, acks may be waiting at the broker: judge nobody then.
            if not self._connected.is_set():
                continue
            now = time.monotonic()
            late = [(k, p) for k, p in self._pending.items() if p.deadline <= now]
            reports = []
            for key, pending in late:
                del self._pending[key]
                self.counters["ack_timeouts"] += 1
                alert_id, device_id = key
                log.warning("device.ack_missing", alert_id=alert_id, device_id=device_id,
                            device_class=pending.kind.value)
                reports.append(self._report(pending.kind, Outcome.FAILED, alert_id, device_id,
                                            f"no ack within {pending.timeout_s:g} s"))
            await asyncio.gather(*reports)
            self._forget_expired()

    def _forget_expired(self) -> None:
        cutoff = _now_ms() - 3_600_000
        for alert_id in [a for a, e in self._alert_expiry.items() if e < cutoff]:
            del self._alert_expiry[alert_id]
            for key in [k for k in self._acked if k[0] == alert_id]:
                del self._acked[key]
            self._events_sent = {k for k in self._events_sent if k[0] != alert_id}

    async def _report(self, kind: ChannelKind, outcome: Outcome, alert_id: str, device_id: str,
                      detail: str) -> None:
        sink = self._sinks.get(kind)
        if sink is None:
            return
        try:
            await sink.late_receipt(
                LateReceipt(kind, outcome, alert_id=alert_id, recipient=device_id, detail=detail)
            )
        except Exception as exc:
            # A store hiccup must not stop the ack stream; the device re-acks on the next publish.
            self.counters["receipt_errors"] += 1
            log.error("device.receipt_failed", alert_id=alert_id, device_id=device_id,
                      error=type(exc).__name__)

    # --- presence ------------------------------------------------------------------------------

    def _learn(self, kind: ChannelKind, device_id: str, zone: str) -> None:
        device = self._devices.setdefault(device_id, _Device(kind))
        device.zone = zone

    def register_devices(self, devices: Iterable[tuple[str, str, str]]) -> None:
        """Make the directory's devices (id, class, zone) known, heard from or not."""
        for device_id, device_class, zone in devices:
            try:
                kind = ChannelKind(device_class)
            except ValueError:
                continue
            if kind in DEVICE_KINDS:
                device = self._devices.setdefault(device_id, _Device(kind))
                device.zone = zone or device.zone

    def devices(self, device_class: ChannelKind | None = None) -> list[DevicePresence]:
        """Every device known (heard from or registered), by id."""
        return [
            DevicePresence(i, d.device_class, d.state, d.last_seen_ms, d.zone)
            for i, d in sorted(self._devices.items())
            if device_class is None or d.device_class is device_class
        ]

    def offline(
        self, zones: Collection[str] = (), device_class: ChannelKind | None = None
    ) -> list[DevicePresence]:
        """Devices not online in the given zones (all zones when empty)."""
        return [
            p for p in self.devices(device_class)
            if p.state is not Availability.ONLINE and (not zones or p.zone in zones)
        ]

    def active_zones(self) -> dict[str, str]:
        """zone -> id of the alert its retained topic holds now."""
        now = _now_ms()
        return {z: s.alert_id for z, s in self._shown.items() if s.expires_ms > now}


def _zone(address: str) -> str:
    return address.strip() or "campus"


def _bus_key(settings: DeviceSettings) -> tuple[object, ...]:
    return (
        settings.host, settings.port, settings.username, reveal(settings.password),
        settings.tls, settings.tls_ca_file, settings.prefix, settings.client_id,
        settings.keepalive_s,
    )


class DeviceChannel(Channel):
    """A class of MQTT devices; the connection is the shared `DeviceBus`."""

    settings_model: ClassVar[type[ChannelSettings]] = DeviceSettings
    settings: DeviceSettings

    def __init__(self, settings: ChannelSettings) -> None:
        if not isinstance(settings, DeviceSettings):
            settings = DeviceSettings.model_validate(settings.model_dump())
        super().__init__(settings)
        self._bus: DeviceBus | None = None

    @property
    def bus(self) -> DeviceBus:
        """The shared connection; exists between start() and close()."""
        if self._bus is None:
            raise RuntimeError(f"{self.name}: start() was not called")
        return self._bus

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Join (or open) the shared connection and report acks to `receipts`."""
        self._bus = await DeviceBus.attach(self.settings, self.kind, receipts)

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Publish the alert to the batch's zones: Delivery.recipient is the device id,
        Delivery.address its zone."""
        return await self.bus.transmit(self.kind, batch)

    async def withdraw(self, alert: AlertContext, /) -> None:
        """Clear the alert from the zones that show it and announce the cancel."""
        await self.bus.withdraw(alert)

    async def close(self) -> None:
        """Leave the shared connection."""
        if self._bus is not None:
            await self._bus.release(self.kind)
            self._bus = None

    def devices(self) -> list[DevicePresence]:
        """This class's devices with state and last seen."""
        return self.bus.devices(self.kind) if self._bus is not None else []

    def offline_in(self, zones: Collection[str] = ()) -> list[DevicePresence]:
        """This class's devices that are not online in these zones (all when empty)."""
        return self.bus.offline(zones, self.kind) if self._bus is not None else []


class SirenChannel(DeviceChannel):
    """Outdoor sirens: the pattern to sound (alert, attack, test, cancel)."""

    name = "siren.mqtt"
    kind = ChannelKind.SIREN


class SignageChannel(DeviceChannel):
    """Digital signs: headline, instruction and text, with the drill banner for drills."""

    name = "signage.mqtt"
    kind = ChannelKind.SIGNAGE


class PaChannel(DeviceChannel):
    """PA and IP speakers: the text to speak, with the drill preamble for drills."""

    name = "pa.mqtt"
    kind = ChannelKind.PA
