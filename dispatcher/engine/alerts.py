"""The alerts being sent, as one engine keeps them in memory, and their completion."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from dispatcher.alerting.rendering import render_alert
from dispatcher.clock import Clock
from dispatcher.domain import AlertContext, CapInfo, ChannelKind, Message
from dispatcher.engine.tasks import Tasks
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.pauses import AlertPauses

log = structlog.get_logger("clarion.engine")

# An alert is checked for completion this long after a batch or receipt asks, once for all.
FINISH_COALESCE_S = 0.1


class Alerts:
    """Alert records read once, renderings for channels an alert was not rendered for (its
    fallbacks), and marking an alert done when nothing is left to send."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: AlertStore,
        pauses: AlertPauses | None,
        clock: Clock,
        tasks: Tasks,
        kinds: Iterable[ChannelKind],
    ) -> None:
        self.store = store
        self._settings = settings
        self._pauses = pauses
        self._clock = clock
        self._tasks = tasks
        self._kinds = tuple(kinds)
        self._records: dict[str, AlertRecord] = {}
        self._extra_renderings: dict[tuple[str, ChannelKind], dict[str, Message]] = {}
        self._started: set[tuple[str, ChannelKind]] = set()
        self._finishing: set[str] = set()

    async def get(self, alert_id: str) -> AlertRecord | None:
        """The alert, read from the store once while it is being sent."""
        record = self._records.get(alert_id)
        if record is None:
            record = await self.store.get(alert_id)
            if record is not None:
                self._records[alert_id] = record
        return record

    def cached(self) -> list[str]:
        """Ids of the alerts held in memory."""
        return list(self._records)

    def forget(self, alert_id: str) -> None:
        """Drop the cached copy of an alert (it changed: cancelled or updated)."""
        self._records.pop(alert_id, None)

    def drop(self, alert_id: str) -> None:
        """Forget everything kept in memory about an alert."""
        self.forget(alert_id)
        for kind in self._kinds:
            self._started.discard((alert_id, kind))
            self._extra_renderings.pop((alert_id, kind), None)

    def first_send(self, alert_id: str, kind: ChannelKind) -> bool:
        """True the first time this engine sends the alert on `kind`."""
        if (alert_id, kind) in self._started:
            return False
        self._started.add((alert_id, kind))
        return True

    async def finish(self, alert_id: str) -> bool:
        """Mark the alert done if nothing is left to send; whichever node settles last does it."""
        if await self.store.mark_done(alert_id, self._clock.now_ms()):
            self.drop(alert_id)
            if self._pauses is not None:
                await self._pauses.close_alert(alert_id, self._clock.now_ms())
            log.info("alert.done", alert_id=alert_id)
            return True
        return False

    def finish_soon(self, alert_id: str) -> None:
        """`finish` shortly, once for all the batches and receipts that ask meanwhile."""
        if alert_id in self._finishing:
            return
        self._finishing.add(alert_id)

        async def later() -> None:
            try:
                await asyncio.sleep(FINISH_COALESCE_S)
            finally:
                self._finishing.discard(alert_id)
            await self.finish(alert_id)

        self._tasks.spawn(later(), name=f"finish-{alert_id}")

    def messages(self, record: AlertRecord, kind: ChannelKind) -> dict[str, Message]:
        """The alert rendered for a channel; rendered now for a fallback it was not sent on."""
        found = record.rendered.get(kind)
        if found:
            return found
        key = (record.id, kind)
        if key not in self._extra_renderings:
            self._extra_renderings[key] = render_alert(
                record.request, [kind], self._settings.rendering, limits=self._settings.policy
            )[kind]
        return self._extra_renderings[key]

    def context(self, record: AlertRecord, kind: ChannelKind, now_ms: int) -> AlertContext:
        """What a channel is told of the alert with a batch."""
        request = record.request
        return AlertContext(
            alert_id=record.id,
            kind=record.kind,
            mode=record.mode,
            now_ms=now_ms,
            expires_ms=record.expires_at,
            messages=self.messages(record, kind),
            zones=record.zones,
            references=record.references_id,
            cap=CapInfo(
                sender=self._settings.service.sender,
                headline=request.headline or "",
                instruction=request.instruction or "",
                description=request.description or "",
                template=request.template or "",
            ),
            rank=record.urgency,
        )
