"""The public surfaces through a real service: alerts appear and go, 304s, CORS, no queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite
import pytest_asyncio
from lxml import etree

from dispatcher.public.feed import PUBLIC_FEED
from dispatcher.store.database import SQLiteDatabase
from tests.conftest import SettingsFactory
from tests.support import AUTH, Running, start_service

CAMPUS_SITE = "https://www.example.edu"
GAS_LEAK = "Gas leak at the Chemistry Building. Evacuate now and avoid the area."
ALL_CLEAR = "All clear at the Chemistry Building. The gas leak is fixed. Resume normal activities."


@pytest_asyncio.fixture
async def public(make_settings: SettingsFactory) -> AsyncIterator[Running]:
    """The service with one campus web site allowed to read the feed from a browser."""
    run = await start_service(make_settings(public={"allowed_origins": [CAMPUS_SITE]}))
    yield run
    await run.client.close()


async def feed(run: Running, **headers: str) -> dict[str, Any]:
    resp = await run.client.get("/public/alerts.json", headers=headers)
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


async def until(run: Running, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """alerts.json once `test` holds of it (the snapshot rebuilds just after each change)."""
    async with asyncio.timeout(10):
        while True:
            doc = await feed(run)
            if test(doc):
                return doc
            await asyncio.sleep(0.02)


async def send(run: Running, body: dict[str, Any]) -> str:
    resp = await run.post_alert(body)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


def ids(doc: dict[str, Any]) -> list[str]:
    return [a["id"] for a in doc["alerts"]]


class TestAlertsComeAndGo:
    """A sent alert shows on alerts.json and /public/, and leaves on cancel or all clear."""

    async def test_sent_then_cancelled(self, public: Running) -> None:
        assert (await feed(public))["status"] == "none"
        page = await public.client.get("/public/")
        assert "No active alerts" in await page.text()

        alert_id = await send(public, {"kind": "emergency", "text": GAS_LEAK})
        doc = await until(public, lambda d: ids(d) == [alert_id])
        alert = doc["alerts"][0]
        assert (alert["text"], alert["drill"], alert["severity"]) == (GAS_LEAK, False, "severe")
        page = await public.client.get("/public/")
        html = await page.text()
        assert GAS_LEAK in html and "No active alerts" not in html

        resp = await public.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH,
                                        json={"reason": "sent in error"})
        assert resp.status == 200
        doc = await until(public, lambda d: ids(d) == [])
        assert doc["status"] == "none"
        assert GAS_LEAK not in await (await public.client.get("/public/")).text()

    async def test_sent_then_all_clear(self, public: Running) -> None:
        alert_id = await send(public, {"kind": "emergency", "text": GAS_LEAK})
        await until(public, lambda d: ids(d) == [alert_id])
        clear_id = await send(public, {"kind": "all_clear", "text": ALL_CLEAR,
                                       "references": alert_id})
        doc = await until(public, lambda d: d["status"] == "all_clear")
        assert doc["alerts"] == [] and doc["all_clear"]["id"] == clear_id
        html = await (await public.client.get("/public/")).text()
        assert "Latest all clear" in html and ALL_CLEAR in html and GAS_LEAK not in html

    async def test_a_drill_is_shown_as_a_drill(self, public: Running) -> None:
        drill_id = await send(public, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        doc = await until(public, lambda d: ids(d) == [drill_id])
        assert doc["alerts"][0]["drill"] is True
        html = await (await public.client.get("/public/")).text()
        assert "DRILL: this is an exercise, not a real emergency." in html


class TestHttpCaching:
    """Strong ETags, 304s, a Cache-Control short enough for a new alert within 10 s."""

    async def test_if_none_match_gives_304_until_the_content_changes(self, public: Running) -> None:
        first = await public.client.get("/public/alerts.json")
        etag = first.headers["ETag"]
        assert not etag.startswith("W/")
        cache = first.headers["Cache-Control"]
        assert cache == "public, max-age=5"
        again = await public.client.get("/public/alerts.json", headers={"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
        assert await again.read() == b""

        alert_id = await send(public, {"kind": "emergency", "text": GAS_LEAK})
        await until(public, lambda d: ids(d) == [alert_id])
        changed = await public.client.get("/public/alerts.json", headers={"If-None-Match": etag})
        assert changed.status == 200 and changed.headers["ETag"] != etag

    async def test_the_page_and_banner_answer_304_too(self, public: Running) -> None:
        for path in ("/public/", "/public/banner.js", "/public/page.css"):
            resp = await public.client.get(path)
            assert resp.status == 200, path
            again = await public.client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
            assert again.status == 304, path

    async def test_the_atom_feed_is_served_from_memory_with_etags(self, public: Running) -> None:
        alert_id = await send(public, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        await until(public, lambda d: ids(d) == [alert_id])
        resp = await public.client.get("/v1/feeds/cap", headers=AUTH)
        assert resp.status == 200 and resp.content_type == "application/atom+xml"
        atom = etree.fromstring(await resp.read())
        titles = atom.findall("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title")
        assert [t.text.startswith("[DRILL]") for t in titles] == [True]
        again = await public.client.get(
            "/v1/feeds/cap", headers={**AUTH, "If-None-Match": resp.headers["ETag"]}
        )
        assert again.status == 304


class TestPageHeaders:
    """No sign-in, English and Spanish, a strict Content-Security-Policy."""

    async def test_open_without_a_token_with_a_strict_csp(self, public: Running) -> None:
        resp = await public.client.get("/public/")
        assert resp.status == 200 and resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Accept-Language" in resp.headers["Vary"]
        html = await resp.text()
        assert "<script" not in html and 'name="viewport"' in html

    async def test_spanish_by_query_or_accept_language(self, public: Running) -> None:
        by_query = await public.client.get("/public/?lang=es")
        by_header = await public.client.get("/public/", headers={"Accept-Language": "es-MX,es"})
        english = await public.client.get("/public/", headers={"Accept-Language": "fr,en;q=0.5"})
        assert "No hay alertas activas" in await by_query.text()
        assert by_header.headers["Content-Language"] == "es"
        assert '<html lang="es">' in await by_header.text()
        assert english.headers["Content-Language"] == "en"
        assert by_query.headers["ETag"] != (await public.client.get("/public/")).headers["ETag"]

    async def test_the_demo_page_carries_the_banner(self, public: Running) -> None:
        resp = await public.client.get("/public/demo")
        html = await resp.text()
        assert resp.status == 200 and '<script src="/public/banner.js"' in html
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


class TestCors:
    """Browsers on the campus's own sites may read the feed; others get no grant."""

    async def test_configured_origin_is_granted(self, public: Running) -> None:
        resp = await public.client.get("/public/alerts.json", headers={"Origin": CAMPUS_SITE})
        assert resp.headers["Access-Control-Allow-Origin"] == CAMPUS_SITE
        assert "Origin" in resp.headers["Vary"]
        etag = resp.headers["ETag"]
        cached = await public.client.get(
            "/public/alerts.json", headers={"Origin": CAMPUS_SITE, "If-None-Match": etag}
        )
        assert cached.status == 304
        assert cached.headers["Access-Control-Allow-Origin"] == CAMPUS_SITE
        pre = await public.client.options("/public/alerts.json", headers={
            "Origin": CAMPUS_SITE, "Access-Control-Request-Method": "GET"})
        assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == CAMPUS_SITE

    async def test_other_origins_get_no_cors_headers(self, public: Running) -> None:
        for origin in ("https://evil.example.com", "https://www.example.edu.evil.com", "null"):
            resp = await public.client.get("/public/alerts.json", headers={"Origin": origin})
            assert resp.status == 200
            assert not any(h.startswith("Access-Control-") for h in resp.headers), origin
            pre = await public.client.options("/public/alerts.json", headers={"Origin": origin})
            assert not any(h.startswith("Access-Control-") for h in pre.headers), origin
        plain = await public.client.get("/public/alerts.json")
        assert "Access-Control-Allow-Origin" not in plain.headers


class StatementCounter:
    """Counts every SQL statement SQLite runs on the service's connections."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, sql: str) -> None:
        self.statements.append(sql)

    async def attach(self, db: SQLiteDatabase) -> None:
        # SQLite reports each statement it steps, whoever issued it: nothing escapes the count.
        for conn in vars(db).values():
            if isinstance(conn, aiosqlite.Connection):
                await conn.set_trace_callback(self)

    async def detach(self, db: SQLiteDatabase) -> None:
        for conn in vars(db).values():
            if isinstance(conn, aiosqlite.Connection):
                await conn.set_trace_callback(None)


class TestNoQueryPerRequest:
    """A thousand requests read memory only: the store sees no statement at all."""

    async def test_a_thousand_requests_run_no_statement(self, public: Running) -> None:
        alert_id = await send(public, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        await until(public, lambda d: ids(d) == [alert_id])
        await public.wait_state(alert_id)
        db = public.service.db
        assert isinstance(db, SQLiteDatabase)
        counter = StatementCounter()
        paths = ("/public/alerts.json", "/public/", "/public/banner.js")
        etags = {p: (await public.client.get(p)).headers["ETag"] for p in paths}
        rebuilds = public.client.app[PUBLIC_FEED].rebuilds
        # The service's own loops (engine, drill scheduler) query on timers: stop them, so that
        # any statement counted below could only come from a request.
        await public.service.scheduler.stop()
        await public.service.engine.stop()
        await counter.attach(db)
        try:
            statuses: list[int] = []
            for i in range(1000):
                path = paths[i % 3]
                headers = {"If-None-Match": etags[path]} if i % 2 else {}
                resp = await public.client.get(path, headers=headers)
                statuses.append(resp.status)
                await resp.read()
        finally:
            await counter.detach(db)
        assert set(statuses) <= {200, 304} and statuses.count(304) == 500
        assert public.client.app[PUBLIC_FEED].rebuilds == rebuilds
        assert counter.statements == []
