"""Outbound fetches go only to configured origins, follow no redirect elsewhere, stop at the
size limit and share one total timeout: against real servers on free loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from dispatcher.feeds.fetch import Fetcher, FetchRefused, origin
from dispatcher.feeds.poller import FeedPoller
from dispatcher.feeds.settings import FeedSource
from dispatcher.service import Service
from tests.conftest import SettingsFactory
from tests.feeds.test_relay import RULES, flood_watch
from tests.support import Running, start_service

LIMIT = 4096


@dataclass
class Server:
    """A loopback HTTP server that counts the requests it gets."""

    url: str = ""
    hits: list[str] = field(default_factory=list)


async def serve(app: web.Application, server: Server) -> web.AppRunner:
    @web.middleware
    async def count(request: web.Request, handler: object) -> web.StreamResponse:
        server.hits.append(request.path)
        return await handler(request)  # type: ignore[operator, no-any-return]

    app.middlewares.append(count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    """The feed's own server, and another one it must not reach."""
    own, other = Server(), Server()

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(other.url + "/feed.atom")

    async def moved_here(request: web.Request) -> web.Response:
        raise web.HTTPFound("/cap/flood1.xml")

    async def atom(request: web.Request) -> web.Response:
        entries = "".join(
            f'<entry><id>{base}/{n}</id><title>{n}</title><link href="{base}/cap/{n}.xml"/>'
            "</entry>"
            for base, n in ((other.url, "elsewhere"), (own.url, "flood1")))
        xml = ('<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
               f"<id>c</id><title>County</title>{entries}</feed>")
        return web.Response(text=xml, content_type="application/atom+xml")

    async def cap(request: web.Request) -> web.Response:
        return web.Response(body=flood_watch(request.match_info["id"]),
                            content_type="application/cap+xml")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
        await response.prepare(request)
        for _ in range(64):
            await response.write(b" " * 1024)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
        await response.prepare(request)
        for _ in range(600):
            await response.write(b" ")
            await asyncio.sleep(0.1)
        return response

    own_app, other_app = web.Application(), web.Application()
    own_app.router.add_get("/moved.atom", moved)
    own_app.router.add_get("/moved-here.xml", moved_here)
    own_app.router.add_get("/feed.atom", atom)
    own_app.router.add_get("/cap/{id}.xml", cap)
    own_app.router.add_get("/huge.atom", huge)
    own_app.router.add_get("/slow.atom", slow)
    other_app.router.add_get("/feed.atom", atom)
    other_app.router.add_get("/cap/{id}.xml", cap)
    runners = [await serve(own_app, own), await serve(other_app, other)]
    yield own, other
    for runner in runners:
        await runner.cleanup()


async def fetch(own: Server, path: str, *, allowed: tuple[str, ...] = (),
                timeout_s: float = 30.0) -> bytes:
    async with aiohttp.ClientSession() as session:
        fetcher = Fetcher(session, own.url + "/feed.atom", allowed, max_bytes=LIMIT,
                          timeout_s=timeout_s)
        return (await fetcher.get(own.url + path, {})).body


class TestFetcher:
    """Only the feed's origin and the allow-list; bounded in size and time."""

    async def test_redirect_to_another_origin_is_refused(
        self, servers: tuple[Server, Server]
    ) -> None:
        """A 302 to another port of the same host is another origin: refused, never fetched."""
        own, other = servers
        with pytest.raises(FetchRefused):
            await fetch(own, "/moved.atom")
        assert other.hits == []

    async def test_redirect_on_the_same_origin_is_followed(
        self, servers: tuple[Server, Server]
    ) -> None:
        """A relative redirect stays on the origin: followed."""
        own, _ = servers
        assert b"Flood Watch" in await fetch(own, "/moved-here.xml")

    async def test_allow_list_admits_another_origin(self, servers: tuple[Server, Server]) -> None:
        """An origin in feeds.allowed_hosts may be redirected to."""
        own, other = servers
        assert b"<feed" in await fetch(own, "/moved.atom", allowed=(other.url,))
        assert other.hits == ["/feed.atom"]

    async def test_size_limit(self, servers: tuple[Server, Server]) -> None:
        """A body over the limit is refused (no Content-Length to trust: it is counted)."""
        own, _ = servers
        with pytest.raises(FetchRefused):
            await fetch(own, "/huge.atom")

    async def test_total_timeout(self, servers: tuple[Server, Server]) -> None:
        """A body that trickles in is cut off by the one total timeout."""
        own, _ = servers
        with pytest.raises(asyncio.TimeoutError):
            await fetch(own, "/slow.atom", timeout_s=0.5)

    def test_origins(self) -> None:
        """Scheme, host and port make an origin; only http and https are fetched."""
        assert origin("https://API.weather.gov/alerts") == ("https", "api.weather.gov", 443)
        assert origin("http://127.0.0.1:8081/x") == ("http", "127.0.0.1", 8081)
        assert origin("file:///etc/passwd") is None
        assert origin("gopher://x/") is None


@pytest_asyncio.fixture
async def feeding(make_settings: SettingsFactory,
                  servers: tuple[Server, Server]) -> AsyncIterator[Running]:
    """A service with a county Atom feed on the feed's own server."""
    own, _ = servers
    settings = make_settings(feeds={"enabled": False, "rules": RULES,
                                    "county": {"kind": "cap-atom", "url": own.url + "/feed.atom"}})
    run = await start_service(settings)
    yield run
    await run.client.close()


class TestPoller:
    """A feed's entries may link only to allowed origins."""

    async def test_link_to_another_origin_is_never_fetched(
        self, feeding: Running, servers: tuple[Server, Server]
    ) -> None:
        """The entry linking elsewhere is skipped (twice polled, never fetched); the entry on
        the feed's own origin is relayed."""
        _, other = servers
        service: Service = feeding.service
        source: FeedSource = service.settings.feeds.sources["county"]
        poller: FeedPoller = service.feed_poller
        first = await poller.poll("county", source)
        await poller.poll("county", source)
        assert other.hits == []
        assert [d.message_key.rsplit(",", 1)[-1] for r in first for d in r.decisions] == ["flood1"]
