"""The event stream: every alert, update and cancel once, kept for the broker while it is away."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import structlog

from channels.devices.session import MqttSession
from dispatcher.clock import Clock

log = structlog.get_logger("clarion.channel.devices")


@dataclass(frozen=True, slots=True)
class _Outgoing:
    body: bytes
    expires_ms: int


class EventStream:
    """`<prefix>/alert/event`: not retained, so what the broker missed is queued here."""

    def __init__(self, session: MqttSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._sent: set[tuple[str, str]] = set()
        self._outbox: list[_Outgoing] = []

    async def announce(
        self, alert_id: str, msg_type: str, payload: dict[str, Any], expires_ms: int
    ) -> None:
        """Publish the event once per alert and message type; queue it while disconnected."""
        key = (alert_id, msg_type)
        if key in self._sent:
            return
        self._sent.add(key)
        body = json.dumps(payload, separators=(",", ":")).encode()
        if not await self._publish(body, expires_ms):
            self._outbox.append(_Outgoing(body, expires_ms))

    async def flush(self) -> None:
        """After a reconnect: publish what was queued, in order, dropping what expired."""
        queued, self._outbox = self._outbox, []
        now = self._clock.now_ms()
        for index, item in enumerate(queued):
            if item.expires_ms <= now:
                continue
            if not await self._publish(item.body, item.expires_ms):
                self._outbox[:0] = [q for q in queued[index:] if q.expires_ms > now]
                return
        if queued:
            log.info("device.outbox_flushed", events=len(queued))

    def forget(self, alert_ids: Collection[str]) -> None:
        """Alerts long expired: a new event for them would be sent again."""
        if alert_ids:
            self._sent = {k for k in self._sent if k[0] not in alert_ids}

    async def _publish(self, body: bytes, expires_ms: int) -> bool:
        return await self._session.publish(
            self._session.topics.event, body, retain=False, expires_ms=expires_ms
        )
