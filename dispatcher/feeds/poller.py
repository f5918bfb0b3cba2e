"""Polling the upstream feeds: each on its own schedule, with ETag / If-Modified-Since, and a
doubling pause (bounded, jittered) after failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
import structlog

from dispatcher.feeds.fetch import Fetcher
from dispatcher.feeds.formats import NWS_MEDIA_TYPE, FeedEntry, read_cap_feed, read_nws
from dispatcher.feeds.relay import FeedRelay, message_key
from dispatcher.feeds.settings import FeedKind, FeedSource
from dispatcher.store.feeds import FeedEvent

log = structlog.get_logger("clarion.feeds")

_ACCEPT = {
    FeedKind.NWS: NWS_MEDIA_TYPE,
    FeedKind.CAP_ATOM: "application/atom+xml, application/cap+xml;q=0.9, */*;q=0.5",
    FeedKind.CAP_RSS: "application/rss+xml, application/xml;q=0.9, */*;q=0.5",
}
# A linked document: CAP asked for by name (the NWS API answers an alert's own URL with GeoJSON
# unless CAP is asked for, and its Atom feed links to exactly those URLs).
_ACCEPT_CAP = "application/cap+xml, application/xml;q=0.9, */*;q=0.5"


@dataclass
class _Cache:
    """What the last answer of one URL said, for the next conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class PollResult:
    """One poll of one URL: its status, and the decisions it led to."""

    url: str
    status: int
    decisions: list[FeedEvent] = field(default_factory=list)


def feed_urls(source: FeedSource) -> list[str]:
    """The URLs one feed stands for: for nws, one per point and zone."""
    if source.kind is not FeedKind.NWS:
        return [source.url]
    base = source.url.rstrip("/")
    urls = [f"{base}/alerts/active?point={quote(p.replace(' ', ''), safe=',.-')}"
            for p in source.points]
    urls += [f"{base}/alerts/active/zone/{quote(z, safe='')}" for z in source.zones]
    return urls or [f"{base}/alerts/active"]


class FeedPoller:
    """Polls every enabled feed and hands each message to the relay."""

    def __init__(
        self,
        sources: Mapping[str, FeedSource],
        relay: FeedRelay,
        *,
        first_delay_s: float = 2.0,
        allowed_hosts: Sequence[str] = (),
        max_bytes: int = 5_000_000,
    ) -> None:
        self._first_delay_s = first_delay_s
        self._allowed = tuple(allowed_hosts)
        self._max_bytes = max_bytes
        self._sources = {n: s for n, s in sources.items() if s.enabled}
        self._relay = relay
        self._cache: dict[str, _Cache] = {}
        # Linked CAP documents already decided: not fetched again while the feed lists them.
        self._done_links: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._random = random.Random()

    async def start(self) -> None:
        """Start one loop per feed."""
        if not self._sources:
            return
        self._session = aiohttp.ClientSession()
        for name, source in self._sources.items():
            self._tasks.append(asyncio.create_task(self._loop(name, source), name=f"feed-{name}"))
        log.info("feed.pollers_started", feeds=sorted(self._sources))

    async def stop(self) -> None:
        """Stop polling."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self, name: str, source: FeedSource) -> None:
        failures = 0
        # The first poll waits for the service to finish starting (the example data loads).
        await asyncio.sleep(self._first_delay_s)
        while True:
            try:
                await self.poll(name, source)
                await self._relay.expire()
                failures = 0
                pause = source.interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                pause = min(source.max_backoff_s, source.interval_s * 2 ** min(failures, 10))
                pause *= 0.5 + self._random.random() / 2
                log.warning("feed.poll_failed", feed=name, error=type(exc).__name__,
                            detail=str(exc)[:300], failures=failures, retry_in_s=round(pause, 1))
            await asyncio.sleep(pause)

    async def poll(self, name: str, source: FeedSource) -> list[PollResult]:
        """Poll one feed once (every URL it stands for); raises when a URL cannot be read."""
        session = self._session
        owned = session is None
        if session is None:
            session = aiohttp.ClientSession()
        try:
            return [await self._poll_url(session, name, source, url)
                    for url in feed_urls(source)]
        finally:
            if owned:
                await session.close()

    async def _poll_url(
        self, session: aiohttp.ClientSession, name: str, source: FeedSource, url: str
    ) -> PollResult:
        cache = self._cache.setdefault(url, _Cache())
        headers = {"Accept": _ACCEPT[source.kind], "User-Agent": source.user_agent}
        if cache.etag:
            headers["If-None-Match"] = cache.etag
        if cache.last_modified:
            headers["If-Modified-Since"] = cache.last_modified
        fetcher = Fetcher(session, source.url, self._allowed, max_bytes=self._max_bytes,
                          timeout_s=source.timeout_s)
        fetched = await fetcher.get(url, headers)
        if fetched.status == 304:
            return PollResult(url, 304)
        if fetched.status != 200:
            raise RuntimeError(f"{url} answered {fetched.status}")
        body, etag, modified = fetched.body, fetched.etag, fetched.last_modified
        entries = read_nws(body) if source.kind is FeedKind.NWS else read_cap_feed(body)
        result = PollResult(url, 200)
        for entry in entries:
            decided = await self._entry(fetcher, name, source, entry)
            if decided is not None:
                result.decisions.append(decided)
        # Remembered only once every entry was handled: a failure polls the whole answer again.
        cache.etag, cache.last_modified = etag, modified
        return result

    async def _entry(
        self, fetcher: Fetcher, name: str, source: FeedSource, entry: FeedEntry
    ) -> FeedEvent | None:
        alert, body = entry.alert, entry.source
        if alert is None:
            if not entry.link or entry.link in self._done_links:
                return None
            if not fetcher.allows(entry.link):
                # Remembered, so an entry pointing elsewhere is refused once, not every poll.
                self._done_links.add(entry.link)
                log.warning("feed.link_refused", feed=name, link=entry.link[:200],
                            reason="not on the feed's origin or feeds.allowed_hosts")
                return None
            headers = {"Accept": _ACCEPT_CAP, "User-Agent": source.user_agent}
            fetched = await fetcher.get(entry.link, headers)
            if fetched.status != 200:
                raise RuntimeError(f"{entry.link} answered {fetched.status}")
            body = fetched.body
            found = read_cap_feed(body)
            if not found or found[0].alert is None:
                return None
            alert = found[0].alert
        if await self._relay.store.seen(message_key(alert.sender, alert.identifier)):
            decided = None
        else:
            decided = await self._relay.handle(name, alert, body)
        if entry.link:
            self._done_links.add(entry.link)
        return decided
