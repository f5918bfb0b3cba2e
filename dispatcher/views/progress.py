"""One progress stream per alert, shared by every viewer of it.

The stores tell `ProgressStreams.changed` about every committed change of an alert or its
deliveries (the alert store about creates, state changes and cancels; the ledger about
enqueues, claims, settles, late receipts and diversions). Each alert that someone watches has
one task that reads the alert's progress once per change and keeps the result; the API's
event stream and the console's progress page only look at that result, so N viewers of an
alert cost one read per change, not N. Changes no notification reaches (another node writing
to a shared store, the maintenance sweep, answers) are picked up by a periodic refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from dispatcher.answers.responses import Responses, Tally
from dispatcher.clock import Clock
from dispatcher.domain import AlertState
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.views.alerts import AlertStatus, AlertViews, DeliveryTiming, FailedDelivery

log = structlog.get_logger("clarion.views")

# How old an answer tally a progress read may use (one count serves every viewer); also how
# often an alert that asks is read again while its question is open.
TALLY_EVERY_S = 2.0
# Changes that come in a burst (a batch's receipts, one settle per channel) are read together.
SETTLE_S = 0.1
# After a failed read, the last progress stays shown and a read is tried again this soon.
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Progress:
    """An alert's progress at one moment: what every viewer of it is shown."""

    record: AlertRecord
    status: AlertStatus
    timing: DeliveryTiming
    failures: tuple[FailedDelivery, ...]
    # The tally of the alert's question (`asked` is False until it is stored); None when the
    # alert asks none.
    answers: Tally | None
    # The question is still open for answers (and the alert not withdrawn).
    asking: bool

    def event_json(self) -> dict[str, Any]:
        """The `progress` event of `GET /v1/alerts/{id}/events`: the status, and the tally of
        the alert's question when it asks one."""
        doc = self.status.to_json()
        if self.answers is not None:
            doc["responses"] = self.answers.as_json()
        return doc

    @property
    def final(self) -> bool:
        """The alert is no longer dispatching: done, or cancelled."""
        return self.record.state is not AlertState.DISPATCHING

    @property
    def ended(self) -> bool:
        """Nothing more will change that a viewer is shown."""
        return self.final and not self.asking


@dataclass(eq=False)
class _Stream:
    """The shared stream of one alert: its reader task, its viewers and the latest progress."""

    alert_id: str
    viewers: int = 0
    latest: Progress | None = None
    # The alert is gone (never existed, or purged): the stream has nothing to show.
    missing: bool = False
    # The service is stopping: nothing more will be read.
    closed: bool = False
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    published: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def over(self) -> bool:
        """Nothing more will be published."""
        return self.missing or self.closed or (self.latest is not None and self.latest.ended)


class ProgressWatch:
    """One viewer's handle on an alert's shared stream."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._seen: Progress | None = None

    @property
    def latest(self) -> Progress | None:
        """The alert's progress as last read (None before the first read completes)."""
        return self._stream.latest

    @property
    def over(self) -> bool:
        """True once nothing more will be published to this viewer."""
        return self._stream.over

    async def first(self) -> Progress | None:
        """The first progress read (None when there is no such alert)."""
        return await self.next()

    async def next(self) -> Progress | None:
        """The progress read after the one this viewer was given last; None when nothing more
        will come (the alert is gone, or its last progress was given)."""
        while True:
            latest = self._stream.latest
            if latest is not None and latest is not self._seen:
                self._seen = latest
                return latest
            if self._stream.over:
                return None
            await self._stream.published.wait()


class ProgressStreams:
    """Every alert's shared progress stream, started by its first viewer, stopped by its last."""

    def __init__(
        self,
        alerts: AlertStore,
        views: AlertViews,
        responses: Responses,
        clock: Clock,
        *,
        refresh_s: float,
    ) -> None:
        self._alerts = alerts
        self._views = views
        self._responses = responses
        self._clock = clock
        self._refresh_s = refresh_s
        self._streams: dict[str, _Stream] = {}

    def changed(self, alert_id: str) -> None:
        """The store changed this alert or its deliveries: its stream (if watched) reads again.
        Quick and never raises, as store listeners must be."""
        stream = self._streams.get(alert_id)
        if stream is not None:
            stream.dirty.set()

    @contextlib.asynccontextmanager
    async def watch(self, alert_id: str) -> AsyncIterator[ProgressWatch]:
        """Follow an alert's progress for as long as the block runs; the last viewer to leave
        stops the alert's stream."""
        stream = self._streams.get(alert_id)
        if stream is None:
            stream = _Stream(alert_id)
            self._streams[alert_id] = stream
            stream.task = asyncio.create_task(self._run(stream), name=f"progress-{alert_id}")
        stream.viewers += 1
        try:
            yield ProgressWatch(stream)
        finally:
            stream.viewers -= 1
            if stream.viewers == 0:
                if self._streams.get(alert_id) is stream:
                    del self._streams[alert_id]
                # Not awaited: a viewer that is itself being cancelled must stay cancelled.
                if stream.task is not None:
                    stream.task.cancel()

    @property
    def watched(self) -> frozenset[str]:
        """The alerts someone watches now (each with one stream)."""
        return frozenset(self._streams)

    async def close(self) -> None:
        """Stop every stream (the service is stopping)."""
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream.closed = True
            stream.published.set()
            if stream.task is not None:
                stream.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.task

    async def _run(self, stream: _Stream) -> None:
        while not stream.over:
            stream.dirty.clear()
            try:
                await self._publish(stream)
            except Exception as exc:
                # The last progress stays shown; the next change or retry replaces it.
                log.error("progress.read_failed", alert_id=stream.alert_id,
                          error=type(exc).__name__, detail=str(exc))
                await asyncio.sleep(RETRY_S)
                continue
            if stream.over:
                return
            latest = stream.latest
            wait_s = TALLY_EVERY_S if latest is not None and latest.asking else self._refresh_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.dirty.wait(), wait_s)
            if stream.dirty.is_set():
                await asyncio.sleep(SETTLE_S)

    async def _publish(self, stream: _Stream) -> None:
        progress = await self.read(stream.alert_id)
        if progress is None:
            stream.missing = True
        else:
            stream.latest = progress
        stream.published.set()
        stream.published = asyncio.Event()

    async def read(self, alert_id: str) -> Progress | None:
        """Read an alert's progress now: the alert, its counts, pauses, timing, failures and
        the tally of its question (None when there is no such alert)."""
        record = await self._alerts.get(alert_id)
        if record is None:
            return None
        answers: Tally | None = None
        asking = False
        if record.request.ask is not None:
            answers = await self._responses.recent_tally(alert_id, TALLY_EVERY_S)
            question = await self._responses.question(alert_id)
            asking = (
                question is not None and question.is_open(self._clock.now_ms())
                and record.state is not AlertState.CANCELLED
            )
        return Progress(
            record=record,
            status=await self._views.status(record),
            timing=await self._views.timing(record),
            failures=tuple(await self._views.failures(alert_id)),
            answers=answers,
            asking=asking,
        )
