"""Fallback channels: people whose delivery failed for good on a channel (or whose channel is
down) are queued on the channel's fallback."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import structlog

from channels.base import Channel
from channels.breaker import CircuitBreaker
from dispatcher.clock import Clock
from dispatcher.domain import AlertState, ChannelKind
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.tasks import Tasks, Wakes
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord
from dispatcher.store.ledger import Claimed, DeliveryLedger, Fallback
from segments.preferences import ADDRESS_COLUMN, ChannelPolicy

log = structlog.get_logger("clarion.engine")

# Waiting deliveries handed to the fallback per read while a channel is down.
DIVERT_PAGE = 500


class Fallbacks:
    """Plans fallback deliveries; each channel's `fallback` setting names its target."""

    def __init__(
        self,
        *,
        settings: Settings,
        channels: Mapping[ChannelKind, Channel],
        breakers: Mapping[ChannelKind, CircuitBreaker],
        ledger: DeliveryLedger,
        alerts: Alerts,
        clock: Clock,
        tasks: Tasks,
        wakes: Wakes,
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._breakers = breakers
        self._ledger = ledger
        self._alerts = alerts
        self._clock = clock
        self._tasks = tasks
        self._wakes = wakes

    def target(self, kind: ChannelKind) -> ChannelKind | None:
        """The channel people fall back to from `kind`, if any."""
        channel = self._channels.get(kind)
        target = channel.settings.fallback if channel is not None else None
        if target is None or target == kind or target not in self._channels:
            return None
        if kind.is_device or target.is_device:
            # A device has no other address, and a person none on a device channel.
            return None
        return target

    async def plan(
        self, kind: ChannelKind, record: AlertRecord | None, failed: Sequence[tuple[Claimed, str]]
    ) -> list[Fallback]:
        """Fallback deliveries for people whose delivery on `kind` failed for good."""
        target = self.target(kind)
        now = self._clock.now_ms()
        if (
            not failed or target is None or record is None
            or record.state is AlertState.CANCELLED or now >= record.expires_at
        ):
            return []
        people = await self._ledger.contacts(c.recipient for c, _ in failed)
        policy = ChannelPolicy(self._settings.directory, record.kind, [target], now)
        planned = []
        for claimed, why in failed:
            person = people.get(claimed.recipient)
            if person is None:
                continue
            address = person[ADDRESS_COLUMN[target]]
            if not address:
                continue
            choice = policy.choose(
                person["role"], person["channels"], person["opt_out"], person["quiet_hours"],
                frozenset({target}),
            )
            # The person's own preferences still hold: no fallback onto a channel they refused.
            if not choice or choice[0][1] is not None:
                continue
            detail = f"fallback from {kind.value}: {why}" if why else f"fallback from {kind.value}"
            planned.append(Fallback(claimed.id, kind, target, address, detail[:500]))
        return planned

    def queued(self, kind: ChannelKind, alert_id: str, added: int) -> None:
        """Fallback deliveries were written: log them and wake the target's loop."""
        target = self.target(kind)
        log.info("delivery.fallback_queued", channel=self._channels[kind].name,
                 fallback=str(target), alert_id=alert_id, deliveries=added)
        if target is not None:
            self._wakes.wake(target)

    async def while_unavailable(self, kind: ChannelKind) -> None:
        """An open breaker, long enough: hand the channel's waiting deliveries to its fallback."""
        breaker = self._breakers[kind]
        if breaker.open_for_s() < breaker.settings.fallback_after_s or self.target(kind) is None:
            return
        name = self._channels[kind].name
        detail = f"not sent: {name} unavailable (circuit open)"
        after = 0
        try:
            while not self._tasks.stopping:
                now = self._clock.now_ms()
                waiting = await self._ledger.waiting(
                    kind, now_ms=now, after=after, limit=DIVERT_PAGE
                )
                if not waiting:
                    return
                after = waiting[-1].id
                by_alert: dict[str, list[tuple[Claimed, str]]] = defaultdict(list)
                for w in waiting:
                    by_alert[w.alert_id].append(
                        (Claimed(w.id, w.alert_id, w.recipient, "", "", 0), detail)
                    )
                for alert_id, failed in by_alert.items():
                    planned = await self.plan(kind, await self._alerts.get(alert_id), failed)
                    added = await self._ledger.divert(kind, planned, detail=detail, now_ms=now)
                    if added:
                        self.queued(kind, alert_id, added)
                        await self._alerts.finish(alert_id)
        except Exception as exc:
            log.error("engine.fallback_failed", channel=name, error=type(exc).__name__,
                      detail=str(exc))
