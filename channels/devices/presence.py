"""Which devices exist and whether they are online, as their availability topics say."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from channels.devices.payload import iso_time
from dispatcher.clock import Clock
from dispatcher.domain import DEVICE_KINDS, ChannelKind

log = structlog.get_logger("clarion.channel.devices")


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
            "last_seen": None if seen is None else iso_time(seen),
            "last_seen_ms": seen,
        }


@dataclass(slots=True)
class _Device:
    device_class: ChannelKind
    state: Availability = Availability.OFFLINE
    last_seen_ms: int | None = None
    zone: str | None = None


class DeviceRegistry:
    """Every device heard on the bus or listed in the directory, with its availability."""

    def __init__(self, clock: Clock, counters: Counter[str]) -> None:
        self._clock = clock
        self._counters = counters
        self._devices: dict[str, _Device] = {}

    def on_availability(self, kind: ChannelKind, device_id: str, payload: bytes) -> None:
        """A device's availability message: `online`/`offline`, or JSON with state and zone."""
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
            # The retained topic was deleted: the device is gone.
            self._devices.pop(device_id, None)
            return
        try:
            state = Availability(text.lower())
        except ValueError:
            self._counters["malformed_availability"] += 1
            log.warning("device.availability_malformed", device_id=device_id, device_class=kind)
            return
        device = self._devices.setdefault(device_id, _Device(kind))
        device.device_class = kind
        if isinstance(zone, str) and zone:
            device.zone = zone
        if state is Availability.ONLINE:
            device.last_seen_ms = self._clock.now_ms()
        if device.state is not state:
            log.info("device.presence_changed", device_id=device_id, device_class=kind.value,
                     state=state.value)
        device.state = state

    def heard_from(self, kind: ChannelKind, device_id: str) -> int:
        """A device spoke (an ack): it is online now; returns the time it was seen."""
        device = self._devices.setdefault(device_id, _Device(kind))
        seen = device.last_seen_ms = self._clock.now_ms()
        device.state = Availability.ONLINE
        return seen

    def learn(self, kind: ChannelKind, device_id: str, zone: str) -> None:
        """A delivery names the device's zone."""
        device = self._devices.setdefault(device_id, _Device(kind))
        device.zone = zone

    def register(self, devices: Iterable[tuple[str, str, str]]) -> None:
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
