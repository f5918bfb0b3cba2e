"""One MQTT connection shared by the device channels, and what travels on it."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import Counter
from collections.abc import Collection, Iterable

import aiomqtt
import structlog

from channels.base import ReceiptSink
from channels.devices.acks import AckTracker
from channels.devices.events import EventStream
from channels.devices.payload import CANCEL_EVENT_MIN_MS, cancel_event, common_payload
from channels.devices.presence import DevicePresence, DeviceRegistry
from channels.devices.session import MqttSession, stop_task
from channels.devices.settings import DeviceSettings
from channels.devices.topics import Topics
from channels.devices.zones import ZoneBoard
from channels.errors import TransientChannelError
from dispatcher.clock import Clock
from dispatcher.domain import (
    DEVICE_KINDS,
    AlertContext,
    Batch,
    ChannelKind,
    LateReceipt,
    Outcome,
    Receipt,
)

log = structlog.get_logger("clarion.channel.devices")

# The zone of a delivery with no address: the whole campus.
DEFAULT_ZONE = "campus"


def default_client_id() -> str:
    """A client id no other connection has: two with one id throw each other off the broker."""
    return f"clarion-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class DeviceBus:
    """One MQTT connection for the device channels that share its settings: publishes the
    alerts, hears acks and presence, and restores the retained state after reconnects."""

    def __init__(self, settings: DeviceSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.topics = Topics(settings.prefix.rstrip("/"))
        self.client_id = settings.client_id or default_client_id()
        self.counters: Counter[str] = Counter()
        clock = clock or Clock()
        self.session = MqttSession(
            settings, self.topics, client_id=self.client_id, clock=clock,
            counters=self.counters, on_message=self._on_message, on_connected=self._resync,
        )
        self.zones = ZoneBoard(self.session, clock)
        self.events = EventStream(self.session, clock)
        self.acks = AckTracker(clock, self.counters, self._report)
        self.presence = DeviceRegistry(clock, self.counters)
        self._users: dict[ChannelKind, DeviceSettings] = {}
        self._sinks: dict[ChannelKind, ReceiptSink] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- life --------------------------------------------------------------------------------

    def attach(self, kind: ChannelKind, settings: DeviceSettings, sink: ReceiptSink | None) -> None:
        """Serve one more channel, with its own banner, preamble and ack timeout, reporting its
        acks to sink; the first one starts the connection."""
        self._users[kind] = settings
        if sink is not None:
            self._sinks[kind] = sink
        if not self._tasks:
            self._tasks = [
                self.session.start(),
                asyncio.create_task(self.acks.run(), name="devices.acks"),
                asyncio.create_task(self._sweep_acks(), name="devices.ack_timeouts"),
            ]

    async def release(self, kind: ChannelKind) -> None:
        """One channel is done with the bus; the last one closes it."""
        self._users.pop(kind, None)
        self._sinks.pop(kind, None)
        if not self._users:
            await self.close()

    async def close(self) -> None:
        """Say offline on the status topic, disconnect and stop the tasks."""
        if not self._tasks:
            return
        await self.session.say_offline()
        for task in self._tasks:
            await stop_task(task)
        self._tasks = []
        log.info("device.bus_closed", client_id=self.client_id)

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self.session.connected

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the broker up to timeout_s; True when connected."""
        return await self.session.wait_connected(timeout_s)

    # --- the channel side ---------------------------------------------------------------------

    async def transmit(self, kind: ChannelKind, batch: Batch) -> list[Receipt]:
        """Publish the batch's zones and return one receipt per device, in order."""
        alert = batch.alert
        if alert.expires_ms <= alert.now_ms:
            return [Receipt(d.id, Outcome.FAILED, "alert expired before it was sent")
                    for d in batch.deliveries]
        own = self._of(kind)
        zones = list(dict.fromkeys(_zone(d.address) for d in batch.deliveries))
        for d in batch.deliveries:
            self.presence.learn(kind, d.recipient, _zone(d.address))
        self.acks.track(alert.alert_id, alert.expires_ms)
        live_only = {z for z in zones if not self.zones.hold(kind, alert, z, own)}
        for zone in zones:
            if zone in live_only:
                log.warning("device.alert_not_retained", alert_id=alert.alert_id, zone=zone,
                            reason="a weightier alert holds the zone")
        event = common_payload(alert)
        # Queued when the broker is away, like the retained state: both go out on reconnect.
        await self.events.announce(alert.alert_id, event["msgType"], event, alert.expires_ms)
        if not await self.session.wait_connected(own.connect_grace_s):
            raise TransientChannelError(
                "MQTT broker unavailable", retry_after_s=self.settings.reconnect_max_s
            )
        results = await asyncio.gather(*(
            self.zones.show_once(kind, alert, z, own) if z in live_only else self.zones.sync(z)
            for z in zones
        ))
        published = dict(zip(zones, results, strict=True))
        receipts = []
        for d in batch.deliveries:
            zone = _zone(d.address)
            latest = self.acks.latest(alert.alert_id, d.recipient)
            if latest is not None:
                receipts.append(Receipt(d.id, Outcome.DELIVERED, latest.value))
            elif published[zone]:
                self.acks.expect(kind, alert.alert_id, d.recipient, own.ack_timeout_s)
                receipts.append(Receipt(d.id, Outcome.ACCEPTED, f"published to zone {zone}"))
            else:
                receipts.append(Receipt(d.id, Outcome.RETRY, "broker did not confirm the publish",
                                        retry_after_s=self.settings.reconnect_max_s))
        return receipts

    async def withdraw(self, alert: AlertContext) -> list[str]:
        """Take the alert (and what updates it) off every zone; returns the zones cleared."""
        cleared = self.zones.take_down(alert.alert_id)
        self.acks.cancel(alert.alert_id)
        expires = max(alert.expires_ms, alert.now_ms + CANCEL_EVENT_MIN_MS)
        event = cancel_event(alert, cleared or list(alert.zones))
        await self.events.announce(alert.alert_id, "Cancel", event, expires)
        for zone in cleared:
            await self.zones.sync(zone)
        if cleared:
            log.info("device.alert_withdrawn", alert_id=alert.alert_id, zones=len(cleared))
        return cleared

    # --- presence ------------------------------------------------------------------------------

    def register_devices(self, devices: Iterable[tuple[str, str, str]]) -> None:
        """Make the directory's devices (id, class, zone) known, heard from or not."""
        self.presence.register(devices)

    def devices(self, device_class: ChannelKind | None = None) -> list[DevicePresence]:
        """Every device known (heard from or registered), by id."""
        return self.presence.devices(device_class)

    def offline(
        self, zones: Collection[str] = (), device_class: ChannelKind | None = None
    ) -> list[DevicePresence]:
        """Devices not online in the given zones (all zones when empty)."""
        return self.presence.offline(zones, device_class)

    def active_zones(self) -> dict[str, str]:
        """zone -> id of the alert its retained topic holds now."""
        return self.zones.active()

    # --- inside --------------------------------------------------------------------------------

    def _of(self, kind: ChannelKind) -> DeviceSettings:
        """A channel's own settings (banner, preamble, ack timeout) on the shared bus."""
        return self._users.get(kind, self.settings)

    async def _resync(self) -> None:
        """After a (re)connect: re-publish the retained state, then the queued events."""
        self.acks.renew_windows()
        await self.zones.resync()
        await self.events.flush()

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        device = self.topics.device_of(topic)
        if device is not None:
            device_class, device_id, leaf = device
            kind = ChannelKind(device_class) if device_class in DEVICE_KINDS else None
            if kind is None:
                self.counters["malformed_topic"] += 1
                log.warning("device.topic_malformed", topic=topic)
                return
            if leaf == "availability":
                self.presence.on_availability(kind, device_id, payload)
            elif leaf == "ack" and self.acks.on_ack(kind, device_id, payload):
                self.presence.heard_from(kind, device_id)
            return
        zone = self.topics.zone_of(topic)
        if zone is not None and message.retain:
            self.zones.adopt(zone, payload)

    async def _sweep_acks(self) -> None:
        while True:
            shortest = min((s.ack_timeout_s for s in self._users.values()), default=2.0)
            await asyncio.sleep(min(0.5, shortest / 4))
            # While disconnected, acks may be waiting at the broker: judge nobody then.
            if not self.session.connected:
                continue
            await self.acks.expire_pending()
            self.events.forget(self.acks.forget_expired())

    async def _report(self, receipt: LateReceipt) -> None:
        sink = self._sinks.get(receipt.channel)
        if sink is None:
            return
        try:
            await sink.late_receipt(receipt)
        except Exception as exc:
            # A store hiccup must not stop the ack stream; the device re-acks on the next publish.
            self.counters["receipt_errors"] += 1
            log.error("device.receipt_failed", alert_id=receipt.alert_id,
                      device_id=receipt.recipient, error=type(exc).__name__)


def _zone(address: str) -> str:
    return address.strip() or DEFAULT_ZONE
