"""Feeds end to end: the sandbox's NWS API and county Atom stand-ins, polled by a running
service over HTTP (ETag, 304), relayed through intake, proposals and cancel."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from channels.sandbox.feeds import CAMPUS_BOX, FeedStandIns, county_cap, demo, nws_feature
from dispatcher.access.auth import Role
from dispatcher.console.web import CONSOLE
from dispatcher.feeds.settings import FeedSource
from dispatcher.service import Service
from tests.conftest import SettingsFactory
from tests.pg import pg_cluster, pg_url  # noqa: F401 - fixtures
from tests.support import AUTH, Running, start_service

RULES = {
    "campus_geocodes": ["SAME:042101"],
    "events": {
        "Tornado Warning": {"action": "send"},
        "Severe Thunderstorm Warning": {"action": "send"},
        "Flood Watch": {"action": "propose"},
    },
}


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[tuple[FeedStandIns, str]]:
    """The feed stand-ins on a free port, empty."""
    stand_ins = FeedStandIns()
    app = web.Application()
    stand_ins.attach(app)

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy")

    async def county_rss(request: web.Request) -> web.Response:
        # RSS 2.0 as county feeds publish it: the first document as an enclosure to fetch,
        # the others inline in their items.
        base = f"http://{request.host}"
        items = []
        for n, (identifier, cap_xml) in enumerate(sorted(stand_ins.county.items())):
            if n == 0:
                body = (f'<enclosure url="{base}/county/cap/{identifier}.xml" length="0" '
                        'type="application/cap+xml"/>')
            else:
                body = cap_xml.decode().split("?>", 1)[-1]
            items.append(f"<item><title>{identifier}</title><guid>{identifier}</guid>"
                         f"{body}</item>")
        xml = ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
               f"<title>Example County</title><link>{base}/</link>{''.join(items)}"
               "</channel></rss>")
        return web.Response(text=xml, content_type="application/rss+xml")

    async def nws_atom(request: web.Request) -> web.Response:
        # The NWS API's Atom form: CAP fields inline in each entry as cap: elements (no CAP
        # <alert>), the entry's link the alert's own URL.
        base = f"http://{request.host}"
        entries = "".join(
            f"<entry><id>{base}/nws-alerts/{i}</id><title>{i}</title>"
            f'<link href="{base}/nws-alerts/{i}"/><cap:event>Flood Watch</cap:event>'
            "<cap:status>Actual</cap:status></entry>"
            for i in sorted(stand_ins.county)
        )
        xml = ('<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"'
               ' xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2"><id>nws</id>'
               f"<title>Current watches, warnings, and advisories</title>{entries}</feed>")
        return web.Response(text=xml, content_type="application/atom+xml")

    async def nws_alert(request: web.Request) -> web.Response:
        # An alert's own URL: GeoJSON unless CAP is asked for, as api.weather.gov answers.
        doc = stand_ins.county[request.match_info["id"]]
        if "application/cap+xml" in request.headers.get("Accept", ""):
            return web.Response(body=doc, content_type="application/cap+xml")
        return web.json_response({"type": "Feature", "properties": {}},
                                 content_type="application/geo+json")

    app.router.add_get("/broken.atom", unavailable)
    app.router.add_get("/county.rss", county_rss)
    app.router.add_get("/nws.atom", nws_atom)
    app.router.add_get("/nws-alerts/{id}", nws_alert)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield stand_ins, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _sources(base: str) -> dict[str, dict[str, Any]]:
    return {
        "nws": {"kind": "nws", "url": f"{base}/nws", "points": ["40.0,-75.0"],
                "zones": ["PAC101"]},
        "county": {"kind": "cap-atom", "url": f"{base}/county/cap.atom"},
        "broken": {"kind": "cap-rss", "url": f"{base}/broken.atom"},
        "county_rss": {"kind": "cap-rss", "url": f"{base}/county.rss"},
        "nws_atom": {"kind": "cap-atom", "url": f"{base}/nws.atom"},
    }


@pytest_asyncio.fixture
async def running(
    make_settings: SettingsFactory, upstream: tuple[FeedStandIns, str]
) -> AsyncIterator[Running]:
    """A service whose feeds point at the stand-ins (polled by the tests, not on a timer)."""
    _, base = upstream
    settings = make_settings(feeds={"enabled": False, "rules": RULES, **_sources(base)})
    run = await start_service(settings)
    yield run
    await run.client.close()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def tornado(identifier: str = "tor1", **changes: Any) -> dict[str, Any]:
    now = _now()
    values: dict[str, Any] = {
        "sent": now, "expires": now + timedelta(minutes=45), "same": "TOR", "ring": CAMPUS_BOX,
        "headline": "Tornado Warning for the campus until 45 minutes from now",
        "description": "A tornado was observed near the campus, moving northeast. Flying "
        "debris will be dangerous to those caught without shelter.",
        "instruction": "Take shelter now in an interior room on the lowest floor.",
    }
    values.update(changes)
    return nws_feature(identifier, "Tornado Warning", **values)


def flood_watch(identifier: str) -> bytes:
    """The county's flood watch, six hours from now (a `propose` rule)."""
    now = _now()
    return county_cap(
        identifier, "Flood Watch", sent=now, expires=now + timedelta(hours=6),
        headline="Flood Watch for Example County",
        description="Heavy rain may flood low-lying parking lots.",
        instruction="Monitor later forecasts. Do not drive through flooded roads.")


async def poll(service: Service, name: str) -> list[Any]:
    source: FeedSource = service.settings.feeds.sources[name]
    results = await service.feed_poller.poll(name, source)
    return [d for r in results for d in r.decisions]


async def events(run: Running) -> list[dict[str, Any]]:
    resp = await run.client.get("/v1/feeds/events", headers=AUTH)
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


class TestPolling:
    """Conditional requests against the stand-in NWS API."""

    async def test_etag_gives_304_and_nothing_twice(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """The second poll sends If-None-Match and is answered 304."""
        stand_ins, _ = upstream
        stand_ins.put_nws(tornado())
        results = await running.service.feed_poller.poll(
            "nws", running.service.settings.feeds.sources["nws"])
        assert [r.status for r in results] == [200, 200]
        again = await running.service.feed_poller.poll(
            "nws", running.service.settings.feeds.sources["nws"])
        assert [r.status for r in again] == [304, 304]
        assert stand_ins.not_modified == 2
        assert [e["outcome"] for e in await events(running)] == ["sent"]

    async def test_unavailable_feed_raises_for_the_backoff(self, running: Running) -> None:
        """A 503 is a failed poll (the loop then pauses longer), not an empty feed."""
        source = running.service.settings.feeds.sources["broken"]
        with pytest.raises(RuntimeError, match="503"):
            await running.service.feed_poller.poll("broken", source)
        assert await events(running) == []


class TestRelayEndToEnd:
    """A tornado warning's life: sent, an update of timestamps only, a new area, a cancel."""

    async def test_tornado_warning_lifecycle(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Sent once; a timestamp-only update is suppressed; a cancel clears the alert."""
        stand_ins, _ = upstream
        first = tornado()
        stand_ins.put_nws(first)
        [sent] = await poll(running.service, "nws")
        assert sent.outcome == "sent", sent.reason
        record = await running.service.alerts.get(sent.alert_id)
        assert record is not None and record.mode.value == "live"
        assert record.request.texts is not None and record.request.texts.email is not None
        body = record.request.texts.email.body
        assert "Source: upstream feed nws, alert 2.49.0.1.840.0.tor1" in body
        assert record.request.texts.sms is not None and len(record.request.texts.sms) <= 153

        props = first["properties"]
        ref = [{"identifier": props["id"], "sender": props["sender"], "sent": props["sent"]}]
        later = _now() + timedelta(minutes=2)
        stand_ins.put_nws(tornado("tor2", sent=later, message_type="Update", references=ref,
                                  expires=later + timedelta(hours=1)))
        decided = await poll(running.service, "nws")
        assert [d.outcome for d in decided] == ["suppressed"]
        assert "only timestamps" in decided[0].reason

        stand_ins.put_nws(tornado("tor3", message_type="Cancel", references=ref,
                                  sent=later + timedelta(minutes=1)))
        decided = await poll(running.service, "nws")
        assert [d.outcome for d in decided] == ["cleared"]
        cancelled = await running.service.alerts.get(sent.alert_id)
        assert cancelled is not None and cancelled.state.value == "cancelled"

        outcomes = [e["outcome"] for e in await events(running)]
        assert outcomes == ["cleared", "suppressed", "sent"]
        audit = await running.service.audit.entries(sent.alert_id)
        assert any(e["action"] == "feed.sent" for e in audit)

    async def test_expiry_with_no_word_from_upstream_clears(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """When the upstream expires passes, the sweep cancels the campus alert, once."""
        stand_ins, _ = upstream
        stand_ins.put_nws(tornado())
        [sent] = await poll(running.service, "nws")
        store = running.service.feed_relay.store
        thread = await store.thread(sent.thread_key)
        assert thread is not None and thread.expires_at is not None
        # The upstream clock moves on: the thread's expiry is now in the past.
        await store.save_thread(replace(thread, expires_at=running.service.clock.now_ms() - 1))
        [cleared] = await running.service.feed_relay.expire()
        assert cleared.outcome == "cleared" and "expired" in cleared.reason
        record = await running.service.alerts.get(sent.alert_id)
        assert record is not None and record.state.value == "cancelled"
        assert await running.service.feed_relay.expire() == []

    async def test_instruction_change_updates_the_campus_alert(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """A new instruction on the same area: no one new to reach and, with e-mail only
        configured, nothing that shows updates: recorded, not re-sent to everyone."""
        stand_ins, _ = upstream
        first = tornado()
        stand_ins.put_nws(first)
        [sent] = await poll(running.service, "nws")
        props = first["properties"]
        ref = [{"identifier": props["id"], "sender": props["sender"], "sent": props["sent"]}]
        stand_ins.put_nws(tornado("tor2", message_type="Update", references=ref,
                                  instruction="Go to the basement now and stay there."))
        [updated] = await poll(running.service, "nws")
        assert updated.outcome == "updated", updated.reason
        assert "not re-sent" in updated.reason and updated.alert_id == sent.alert_id
        now_ms = running.service.clock.now_ms()
        assert [r.id for r in await running.service.alerts.active(now_ms)] == [sent.alert_id]

    async def test_wider_area_sends_to_the_new_zones_only(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """An update whose polygon grows from zone a to zones a and c reaches zone c only."""
        stand_ins, _ = upstream
        zone_a = [[-75.005, 40.005], [-74.997, 40.005], [-74.997, 40.006], [-75.005, 40.006],
                  [-75.005, 40.005]]
        a_and_c = [[-75.005, 39.993], [-74.997, 39.993], [-74.997, 40.006], [-75.005, 40.006],
                   [-75.005, 39.993]]
        first = tornado(ring=zone_a)
        stand_ins.put_nws(first)
        [sent] = await poll(running.service, "nws")
        assert sent.outcome == "sent", sent.reason
        record = await running.service.alerts.get(sent.alert_id)
        assert record is not None and list(record.zones) == ["a"]
        props = first["properties"]
        ref = [{"identifier": props["id"], "sender": props["sender"], "sent": props["sent"]}]
        stand_ins.put_nws(tornado("tor2", ring=a_and_c, message_type="Update", references=ref))
        [updated] = await poll(running.service, "nws")
        assert updated.outcome == "updated" and "area" in updated.reason
        record = await running.service.alerts.get(updated.alert_id)
        assert record is not None and record.references_id == sent.alert_id
        assert "a" not in record.zones and "c" in record.zones

    async def test_repeats_suppressed_except_tornado(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """A second thunderstorm warning for the same area is a repeat; a tornado never is."""
        stand_ins, _ = upstream
        now = _now()
        for identifier in ("svr1", "svr2"):
            stand_ins.put_nws(nws_feature(
                identifier, "Severe Thunderstorm Warning", sent=now,
                expires=now + timedelta(minutes=30), same="SVR", ring=CAMPUS_BOX,
                headline="Severe Thunderstorm Warning for the campus",
                description="Wind gusts of 60 mph and quarter size hail.",
                instruction="Move to an interior room now.", severity="Severe"))
        stand_ins.put_nws(tornado("tor-a"))
        stand_ins.put_nws(tornado("tor-b"))
        decided = {d.message_key.split(".")[-1]: d for d in await poll(running.service, "nws")}
        assert decided["svr1"].outcome == "sent"
        assert decided["svr2"].outcome == "suppressed" and "repeat" in decided["svr2"].reason
        assert decided["tor-a"].outcome == decided["tor-b"].outcome == "sent"

    async def test_polygon_missing_campus_and_rmt(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """An area elsewhere and a monthly test sent as Actual: recorded, nothing sent."""
        stand_ins, _ = upstream
        elsewhere = [[-121.0, 38.0], [-120.0, 38.0], [-120.0, 39.0], [-121.0, 39.0],
                     [-121.0, 38.0]]
        stand_ins.put_nws(tornado("far", ring=elsewhere))
        stand_ins.put_nws(tornado("rmt", same="RMT"))
        # The point query leaves out the far one; the county zone query returns both.
        decided = await poll(running.service, "nws")
        outcomes = sorted((d.message_key.split(".")[-1], d.outcome) for d in decided)
        assert outcomes == [("far", "ignored"), ("rmt", "ignored")]
        reasons = {d.message_key.split(".")[-1]: d.reason for d in decided}
        assert "misses the campus" in reasons["far"] and "RMT" in reasons["rmt"]

    async def test_flood_watch_proposed_and_sent_with_one_click(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """The county's flood watch waits as a proposal; one POST sends it as the caller's."""
        stand_ins, _ = upstream
        stand_ins.put_county("ffa1", flood_watch("ffa1"))
        [proposed] = await poll(running.service, "county")
        assert proposed.outcome == "proposed", proposed.reason
        resp = await running.client.get("/v1/feeds/proposals", headers=AUTH)
        [item] = (await resp.json())["items"]
        assert item["event"] == "Flood Watch"
        one = await (await running.client.get(f"/v1/feeds/proposals/{item['id']}",
                                              headers=AUTH)).json()
        assert "<event>Flood Watch</event>" in one["source"]
        resp = await running.client.post(f"/v1/feeds/proposals/{item['id']}/send", headers=AUTH)
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        assert await running.service.alerts.get(alert_id) is not None
        again = await running.client.post(f"/v1/feeds/proposals/{item['id']}/send",
                                          headers=AUTH)
        assert again.status == 409
        assert await poll(running.service, "county") == []

    async def test_rss_feed_enclosure_and_inline_items(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """An RSS feed: a linked CAP document is fetched, an inline one read; each decided once."""
        stand_ins, _ = upstream
        now = _now()
        for identifier, event in (("rss1", "Flood Watch"), ("rss2", "Severe Thunderstorm Warning")):
            stand_ins.put_county(identifier, county_cap(
                identifier, event, sent=now, expires=now + timedelta(hours=2),
                headline=f"{event} for Example County",
                description="Storms with heavy rain are moving across the county.",
                instruction="Move indoors now and stay away from windows."))
        decided = await poll(running.service, "county_rss")
        outcomes = sorted((d.outcome, d.reason.split(":")[0]) for d in decided)
        assert [o for o, _ in outcomes] == ["proposed", "sent"], outcomes
        sent = next(d for d in decided if d.outcome == "sent")
        assert sent.alert_id and await running.service.alerts.get(sent.alert_id) is not None
        assert await poll(running.service, "county_rss") == []


def _ref(feature: dict[str, Any]) -> list[dict[str, Any]]:
    props = feature["properties"]
    return [{"identifier": props["id"], "sender": props["sender"], "sent": props["sent"]}]


class TestDisplaysOnUpdate:
    """An update that reaches no one new is shown where the alert is shown: signs, speakers."""

    @pytest_asyncio.fixture
    async def with_signs(
        self, make_settings: SettingsFactory, upstream: tuple[FeedStandIns, str]
    ) -> AsyncIterator[Running]:
        """E-mail and campus signs (their broker need not answer: the alert is what counts)."""
        from channels.sandbox.broker import free_port

        _, base = upstream
        settings = make_settings(
            channels={"signage.mqtt": {"port": free_port(), "ack_timeout_s": 1.0}},
            feeds={"enabled": False, "rules": RULES, **_sources(base)},
        )
        run = await start_service(settings)
        yield run
        await run.client.close()

    async def test_new_instruction_goes_to_the_signs_of_the_same_zones(
        self, with_signs: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Same area, new instruction: a campus update referencing the first alert, on the
        signs only, to the zones the first alert reached; no e-mail to everyone again."""
        stand_ins, _ = upstream
        zone_a = [[-75.005, 40.005], [-74.997, 40.005], [-74.997, 40.006], [-75.005, 40.006],
                  [-75.005, 40.005]]
        first = tornado(ring=zone_a)
        stand_ins.put_nws(first)
        [sent] = await poll(with_signs.service, "nws")
        assert sent.outcome == "sent", sent.reason
        stand_ins.put_nws(tornado("tor2", ring=zone_a, message_type="Update",
                                  references=_ref(first),
                                  instruction="Go to the basement now and stay there."))
        [updated] = await poll(with_signs.service, "nws")
        assert updated.outcome == "updated" and "instructions" in updated.reason, updated.reason
        assert updated.alert_id and updated.alert_id != sent.alert_id
        record = await with_signs.service.alerts.get(updated.alert_id)
        assert record is not None and record.references_id == sent.alert_id
        assert [c.value for c in record.channels] == ["signage"]
        assert list(record.zones) == ["a"]
        assert record.request.texts is not None and record.request.texts.signage is not None
        assert "basement" in record.request.texts.signage


class TestHeldForApproval:
    """With two-person approval on, a relay waits like any dispatcher's alert, and the upstream
    cancel, update or expiry reaches the held request."""

    @pytest_asyncio.fixture
    async def approving(
        self, make_settings: SettingsFactory, upstream: tuple[FeedStandIns, str]
    ) -> AsyncIterator[Running]:
        _, base = upstream
        settings = make_settings(auth={"approval": {"enabled": True, "min_audience": 1}},
                                 feeds={"enabled": False, "rules": RULES, **_sources(base)})
        run = await start_service(settings)
        yield run
        await run.client.close()

    async def _held(self, run: Running, stand_ins: FeedStandIns,
                    feature: dict[str, Any]) -> tuple[Any, str]:
        stand_ins.put_nws(feature)
        [decided] = await poll(run.service, "nws")
        assert decided.outcome == "sent" and "held for approval" in decided.reason
        thread = await run.service.feed_relay.store.thread(decided.thread_key)
        assert thread is not None and thread.approval_id is not None
        assert thread.approval_id in decided.reason
        return decided, thread.approval_id

    async def _approval(self, run: Running, approval_id: str) -> dict[str, Any]:
        resp = await run.client.get(f"/v1/approvals/{approval_id}", headers=AUTH)
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc

    async def test_cancel_withdraws_the_held_request(
        self, approving: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Upstream cancels before anyone approved: the request is withdrawn, never sendable."""
        stand_ins, _ = upstream
        first = tornado()
        _, approval_id = await self._held(approving, stand_ins, first)
        stand_ins.put_nws(tornado("tor-x", message_type="Cancel", references=_ref(first)))
        [cleared] = await poll(approving.service, "nws")
        assert cleared.outcome == "cleared", cleared.reason
        assert (await self._approval(approving, approval_id))["state"] == "rejected"
        late = await approving.client.post(f"/v1/approvals/{approval_id}/approve", headers=AUTH)
        assert late.status == 409
        assert await approving.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0

    async def test_cancel_after_approval_cancels_the_alert(
        self, approving: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Approved by a person, then cancelled upstream: the alert that went out is cancelled."""
        stand_ins, _ = upstream
        first = tornado()
        _, approval_id = await self._held(approving, stand_ins, first)
        resp = await approving.client.post(f"/v1/approvals/{approval_id}/approve", headers=AUTH)
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        stand_ins.put_nws(tornado("tor-x", message_type="Cancel", references=_ref(first)))
        [cleared] = await poll(approving.service, "nws")
        assert cleared.outcome == "cleared" and cleared.alert_id == alert_id, cleared
        record = await approving.service.alerts.get(alert_id)
        assert record is not None and record.state.value == "cancelled"

    async def test_update_replaces_the_held_request(
        self, approving: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """A new instruction while waiting: the old request is withdrawn, the new one held
        whole (no one was reached), and only the new one can be approved."""
        stand_ins, _ = upstream
        first = tornado()
        _, old_id = await self._held(approving, stand_ins, first)
        stand_ins.put_nws(tornado("tor2", message_type="Update", references=_ref(first),
                                  instruction="Go to the basement now and stay there."))
        [updated] = await poll(approving.service, "nws")
        assert updated.outcome == "updated" and "held for approval" in updated.reason
        assert (await self._approval(approving, old_id))["state"] == "rejected"
        thread = await approving.service.feed_relay.store.thread(updated.thread_key)
        assert thread is not None and thread.approval_id not in (None, old_id)
        assert thread.approval_id is not None
        new = await self._approval(approving, thread.approval_id)
        assert new["state"] == "pending" and "basement" in str(new["request"])
        assert new["request"].get("references") is None

    async def test_expiry_withdraws_the_held_request(
        self, approving: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """No word from upstream and its expiry passes: the held request is withdrawn."""
        stand_ins, _ = upstream
        decided, approval_id = await self._held(approving, stand_ins, tornado())
        store = approving.service.feed_relay.store
        thread = await store.thread(decided.thread_key)
        assert thread is not None
        await store.save_thread(replace(thread, expires_at=approving.service.clock.now_ms() - 1))
        [cleared] = await approving.service.feed_relay.expire()
        assert cleared.outcome == "cleared"
        assert (await self._approval(approving, approval_id))["state"] == "rejected"


class TestNwsAtom:
    """The NWS API's CAP/Atom form: each entry's link answers CAP when CAP is asked for."""

    async def test_atom_entries_are_fetched_as_cap(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Entries carry no CAP <alert>: the linked alert is fetched with Accept CAP, decided."""
        stand_ins, _ = upstream
        stand_ins.put_county("ffa9", flood_watch("ffa9"))
        [decided] = await poll(running.service, "nws_atom")
        assert decided.outcome == "proposed" and decided.event == "Flood Watch", decided
        assert await poll(running.service, "nws_atom") == []


class TestTwoNodes:
    """Two nodes on one PostgreSQL store relay one upstream alert once."""

    @pytest_asyncio.fixture
    async def nodes(
        self, make_settings: SettingsFactory, upstream: tuple[FeedStandIns, str],
        pg_url: str,  # noqa: F811 - fixture
    ) -> AsyncIterator[list[Running]]:
        """Two services on one PostgreSQL store, feeds at the stand-ins, a tornado warning up."""
        stand_ins, base = upstream
        stand_ins.put_nws(tornado())
        settings = make_settings(store={"url": pg_url},
                                 feeds={"enabled": False, "rules": RULES, **_sources(base)})
        nodes = [await start_service(settings) for _ in range(2)]
        yield nodes
        for node in nodes:
            await node.client.close()

    async def test_two_nodes_one_alert(self, nodes: list[Running]) -> None:
        """Both poll the same warning at once; one campus alert, one decision."""
        results = await asyncio.gather(*(poll(n.service, "nws") for n in nodes))
        decisions = [d for r in results for d in r]
        assert [d.outcome for d in decisions] == ["sent"]
        now_ms = nodes[0].service.clock.now_ms()
        assert len(await nodes[0].service.alerts.active(now_ms)) == 1

    async def test_two_nodes_clear_an_expiry_once(self, nodes: list[Running]) -> None:
        """Both sweep the same expired upstream alert at once: one cancel, one decision."""
        [sent] = await poll(nodes[0].service, "nws")
        store = nodes[0].service.feed_relay.store
        thread = await store.thread(sent.thread_key)
        assert thread is not None
        await store.save_thread(replace(thread, expires_at=thread.updated_at - 1))
        results = await asyncio.gather(*(n.service.feed_relay.expire() for n in nodes))
        assert [e.outcome for r in results for e in r] == ["cleared"]
        rows = await nodes[0].service.db.fetchall("SELECT outcome FROM feed_events ORDER BY id")
        assert [r["outcome"] for r in rows] == ["sent", "cleared"]


class TestConsole:
    """The console's Upstream page: proposals with their source, sent with one click."""

    async def test_one_click_send_from_the_console(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """Listed, shown with its CAP document, sent as the signed-in person's alert."""
        stand_ins, _ = upstream
        stand_ins.put_county("ffa2", flood_watch("ffa2"))
        [proposed] = await poll(running.service, "county")
        accounts = running.client.server.app[CONSOLE].accounts
        await accounts.add_user("dana", "correct-horse-battery", role=Role.DISPATCHER,
                                actor="tests")
        resp = await running.client.post("/console/sign-in", data={
            "name": "dana", "password": "correct-horse-battery", "next": "/console/"},
            allow_redirects=False)
        assert resp.status == 303
        page = await running.client.get("/console/feeds")
        text = await page.text()
        assert page.status == 200 and "Flood Watch" in text
        csrf = re.search(r'name="csrf" value="([^"]+)"', text)
        assert csrf
        detail = await running.client.get(f"/console/feeds/{proposed.proposal_id}")
        assert "&lt;event&gt;Flood Watch&lt;/event&gt;" in await detail.text()
        refused = await running.client.post(f"/console/feeds/{proposed.proposal_id}/send",
                                            allow_redirects=False)
        assert refused.status == 403
        sent = await running.client.post(f"/console/feeds/{proposed.proposal_id}/send",
                                         data={"csrf": csrf.group(1)}, allow_redirects=False)
        assert sent.status == 303, await sent.text()
        alert_id = sent.headers["Location"].rsplit("/", 1)[1]
        entries = await running.service.audit.entries(alert_id)
        assert entries[0]["actor"] == "dana"


class TestSandboxDemo:
    """`make run`'s demo feed: a restart of the sandbox and the service relays nothing new."""

    async def test_a_restart_does_not_sound_the_tornado_warning_again(
        self, running: Running, upstream: tuple[FeedStandIns, str]
    ) -> None:
        """The demo is made again at the next start, minutes later, under the same ids."""
        stand_ins, _ = upstream
        for restart in range(2):
            made = demo(_now() + timedelta(minutes=7 * restart))
            stand_ins.nws.clear()
            stand_ins.county.clear()
            for feature in made.nws.values():
                stand_ins.put_nws(feature)
            for identifier, document in made.county.items():
                stand_ins.put_county(identifier, document)
            await poll(running.service, "nws")
            await poll(running.service, "county")
        outcomes = sorted(e["outcome"] for e in await events(running))
        assert outcomes == ["proposed", "sent"]
