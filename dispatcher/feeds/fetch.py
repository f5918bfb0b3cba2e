"""Outbound fetches of the feeds (the feed itself and the CAP documents it links to): only to
configured origins, redirects followed only to them, bodies read up to a size limit, and the
whole fetch under one total timeout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

MAX_REDIRECTS = 5
_CHUNK = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FetchRefused(Exception):
    """A fetch Clarion will not make or finish: the message says which URL and why."""


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, or None for anything else."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port


@dataclass(frozen=True, slots=True)
class Fetched:
    """An answer: its status, the headers the poller keeps, and the body (empty unless 200)."""

    url: str
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None


class Fetcher:
    """Fetches for one feed: its own origin and the configured ones, and nothing else."""

    def __init__(self, session: aiohttp.ClientSession, feed_url: str, allowed: Iterable[str],
                 *, max_bytes: int, timeout_s: float) -> None:
        self._session = session
        self._origins = {o for o in (origin(u) for u in (feed_url, *allowed)) if o is not None}
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def allows(self, url: str) -> bool:
        """Whether a URL is on an origin this feed may fetch from."""
        return origin(url) in self._origins

    async def get(self, url: str, headers: Mapping[str, str]) -> Fetched:
        """GET a URL (following redirects on allowed origins only); raises FetchRefused."""
        for _ in range(MAX_REDIRECTS + 1):
            if not self.allows(url):
                raise FetchRefused(f"{url[:200]} is not on the feed's origin or "
                                   "feeds.allowed_hosts")
            async with self._session.get(url, headers=dict(headers), timeout=self._timeout,
                                         allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = urljoin(url, resp.headers["Location"])
                    continue
                body = await self._read(url, resp) if resp.status == 200 else b""
                return Fetched(url, resp.status, body, resp.headers.get("ETag"),
                               resp.headers.get("Last-Modified"))
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects from {url[:200]}")

    async def _read(self, url: str, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchRefused(f"{url[:200]} is {resp.content_length} bytes, over {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise FetchRefused(f"{url[:200]} is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
