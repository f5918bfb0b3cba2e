"""The snapshot in memory: rebuilt when an alert changes or expires, never per request.

The alert store calls `changed` after every committed create or cancel (new alerts, updates
and all clears are creates); a timer rebuilds when the next shown alert expires. With a
shared PostgreSQL store other nodes change alerts too, so it is also rebuilt every
`public.refresh_s`. Requests only read `snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from dispatcher.clock import Clock
from dispatcher.public.atom import atom_document
from dispatcher.public.page import LANGUAGES, render_page
from dispatcher.public.snapshot import (
    PublicState,
    Representation,
    Snapshot,
    build_snapshot,
    select,
)
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore

log = structlog.get_logger("clarion.public")

PUBLIC_FEED: web.AppKey[PublicFeed] = web.AppKey("public_feed")

# Longest sleep between looks at the clock, so a timer set before a clock jump is not trusted.
MAX_WAIT_S = 60.0
# After a failed rebuild, the old snapshot is served and a rebuild tried again this soon.
RETRY_S = 1.0


class PublicFeed:
    """Holds the current public snapshot of one store's alerts and keeps it current."""

    def __init__(
        self, settings: Settings, alerts: AlertStore, clock: Clock, *, shared_store: bool
    ) -> None:
        self._settings = settings
        self._alerts = alerts
        self._clock = clock
        self._public = settings.public
        self._zone = ZoneInfo(settings.public.timezone or settings.drills.timezone)
        self._shared_store = shared_store
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._atom_inputs: tuple[tuple[str, int, str], ...] | None = None
        self.rebuilds = 0
        self._snapshot = self._render(PublicState((), None), [], clock.now_ms())

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot; reading it costs nothing."""
        return self._snapshot

    @property
    def page_url(self) -> str:
        """The public page's address."""
        return self._public.page(self._settings.service.base_url())

    def changed(self, alert_id: str) -> None:
        """An alert was created, updated, cancelled or cleared: rebuild soon, once for all."""
        self._dirty.set()

    def rebuild_if_expired(self) -> None:
        """Ask for a rebuild when a shown alert has expired and the timer has not fired yet."""
        until = self._snapshot.state.valid_until_ms
        if until is not None and self._clock.now_ms() >= until:
            self._dirty.set()

    async def start(self) -> None:
        """Build the first snapshot, then keep it current."""
        self._alerts.subscribe(self.changed)
        await self.rebuild()
        self._task = asyncio.create_task(self._keep_current(), name="public-snapshot")

    async def stop(self) -> None:
        """Stop rebuilding."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def rebuild(self) -> Snapshot:
        """Read the active alerts once and render every public representation."""
        now = self._clock.now_ms()
        records = await self._alerts.active(now)
        oldest = min((r.created_at for r in records), default=now)
        # Updates and all clears that replace or end the alerts read above: made after them.
        links = await self._alerts.supersessions_since(oldest)
        state = select(records, links, now)
        previous = self._snapshot
        snapshot = self._render(state, records, now)
        if snapshot.feed.etag != previous.feed.etag:
            log.info("public.snapshot_changed", active=len(state.active),
                     all_clear=state.all_clear is not None, etag=snapshot.feed.etag)
        self._snapshot = snapshot
        self.rebuilds += 1
        return snapshot

    def _render(self, state: PublicState, records: list[AlertRecord], now_ms: int) -> Snapshot:
        settings = self._settings
        institution = settings.service.institution
        pages = {
            lang: render_page(state, lang, institution=institution, zone=self._zone)
            for lang in LANGUAGES
        }
        snapshot = build_snapshot(state, institution=institution, page_url=self.page_url,
                                  pages=pages)
        return Snapshot(snapshot.state, snapshot.feed, snapshot.pages, self._atom(records, now_ms))

    def _atom(self, records: list[AlertRecord], now_ms: int) -> Representation:
        # The same alerts keep the same bytes (and ETag), though the feed's empty-time moves.
        inputs = tuple((r.id, r.content_version, r.state.value) for r in records)
        previous: Snapshot | None = getattr(self, "_snapshot", None)
        if inputs == self._atom_inputs and previous is not None and previous.atom is not None:
            return previous.atom
        self._atom_inputs = inputs
        settings = self._settings
        body = atom_document(records, base_url=settings.service.base_url(),
                             institution=settings.service.institution, updated_ms=now_ms)
        return Representation.of(body, "application/atom+xml")

    def _wait_s(self) -> float:
        waits = [MAX_WAIT_S]
        if self._shared_store:
            waits.append(self._public.refresh_s)
        until = self._snapshot.state.valid_until_ms
        if until is not None:
            waits.append(max(0.0, (until - self._clock.now_ms()) / 1000) + 0.001)
        return min(waits)

    async def _keep_current(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._wait_s())
            self._dirty.clear()
            try:
                await self.rebuild()
            except Exception as exc:
                # The last good snapshot stays served; the next change or retry replaces it.
                log.error("public.rebuild_failed", error=type(exc).__name__, detail=str(exc))
                await asyncio.sleep(RETRY_S)
                self._dirty.set()
