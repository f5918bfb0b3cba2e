"""What each zone's retained active-alert topic shows, so a reconnect or a restart restores it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from channels.devices.payload import RANK_DRILL, RANK_LIVE, class_section, rank, zone_payload
from channels.devices.session import MqttSession
from channels.devices.settings import DeviceSettings
from dispatcher.clock import Clock
from dispatcher.domain import AlertContext, ChannelKind


@dataclass(slots=True)
class _Shown:
    """The alert a zone's retained topic holds."""

    alert_id: str
    references: str | None
    rank: int
    expires_ms: int
    payload: dict[str, Any]


class ZoneBoard:
    """The retained alert of every zone: placed by sends, taken down by withdrawals."""

    def __init__(self, session: MqttSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._shown: dict[str, _Shown] = {}
        # Zones whose retained copy must be deleted (withdrawn while the broker was away).
        self._cleared: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def hold(
        self, kind: ChannelKind, alert: AlertContext, zone: str, settings: DeviceSettings
    ) -> bool:
        """Put the alert (with kind's section) in the zone's retained state; False when a
        weightier alert keeps the zone."""
        shown = self._shown.get(zone)
        section = class_section(kind, alert, settings)
        if shown is not None and shown.alert_id == alert.alert_id:
            shown.payload[kind.value] = section
            return True
        weight = rank(alert)
        if not (
            shown is None
            or shown.expires_ms <= alert.now_ms
            or weight >= shown.rank
            or (alert.references is not None
                and alert.references in (shown.alert_id, shown.references))
        ):
            return False
        payload = zone_payload(kind, alert, zone, settings)
        self._shown[zone] = _Shown(alert.alert_id, alert.references, weight, alert.expires_ms,
                                   payload)
        self._cleared.discard(zone)
        return True

    async def sync(self, zone: str) -> bool:
        """Publish the zone's current retained state; serialized so the latest always wins."""
        async with self._lock(zone):
            topic = self._session.topics.active(zone)
            shown = self._shown.get(zone)
            if shown is not None and shown.expires_ms <= self._clock.now_ms():
                del self._shown[zone]
                shown = None
            if shown is not None:
                body = json.dumps(shown.payload, separators=(",", ":")).encode()
                return await self._session.publish(topic, body, retain=True,
                                                   expires_ms=shown.expires_ms)
            if zone in self._cleared:
                # An empty retained message deletes the broker's copy and tells devices "clear".
                if await self._session.publish(topic, b"", retain=True, expires_ms=None):
                    self._cleared.discard(zone)
                    return True
                return False
            return True

    async def show_once(
        self, kind: ChannelKind, alert: AlertContext, zone: str, settings: DeviceSettings
    ) -> bool:
        """Publish the alert to the zone's devices now, not retained (a weightier one is)."""
        body = json.dumps(zone_payload(kind, alert, zone, settings),
                          separators=(",", ":")).encode()
        return await self._session.publish(self._session.topics.active(zone), body,
                                           retain=False, expires_ms=alert.expires_ms)

    async def resync(self) -> None:
        """After a (re)connect: publish every zone's retained state again."""
        for zone in sorted(set(self._shown) | self._cleared):
            await self.sync(zone)

    def take_down(self, alert_id: str) -> list[str]:
        """Remove the alert (and what updates it) from every zone; returns the zones, which
        `sync` then clears on the broker."""
        cleared = [
            zone for zone, shown in self._shown.items()
            if alert_id in (shown.alert_id, shown.references)
        ]
        for zone in cleared:
            del self._shown[zone]
            self._cleared.add(zone)
        return cleared

    def adopt(self, zone: str, payload: bytes) -> None:
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
        if expires_ms <= self._clock.now_ms():
            return
        weight = RANK_DRILL if data.get("drill") else RANK_LIVE
        references = data.get("references")
        self._shown[zone] = _Shown(alert_id, references if isinstance(references, str) else None,
                                   weight, expires_ms, data)

    def active(self) -> dict[str, str]:
        """zone -> id of the alert its retained topic holds now."""
        now = self._clock.now_ms()
        return {z: s.alert_id for z, s in self._shown.items() if s.expires_ms > now}

    def _lock(self, zone: str) -> asyncio.Lock:
        lock = self._locks.get(zone)
        if lock is None:
            lock = self._locks[zone] = asyncio.Lock()
        return lock
