"""`GET /v1/alerts/{id}/cap` and `GET /v1/feeds/cap` over HTTP, against the real alert store."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from channels.base import Channel
from dispatcher.alerting.request import AlertRequest
from dispatcher.api import cap as cap_api
from dispatcher.cap.format import CAP_NS
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind
from dispatcher.edge import SERVICE
from dispatcher.settings import Settings, load_settings
from dispatcher.store.alerts import AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, open_database
from dispatcher.views.cap import CapDocuments

XSD = Path(__file__).resolve().parent / "data" / "CAP-v1.2.xsd"
NS = {"cap": CAP_NS, "atom": "http://www.w3.org/2005/Atom"}
ZONES = {
    "type": "FeatureCollection",
    "features": [{
        "type": "Feature",
        "properties": {"id": "north", "name": "North Quad"},
        "geometry": {"type": "Polygon", "coordinates": [[
            [-75.002, 40.001], [-75.002, 40.003], [-75.000, 40.003], [-75.000, 40.001],
            [-75.002, 40.001]]]},
    }],
}


@dataclass
class Parts:
    """The parts of the running service these routes read."""

    settings: Settings
    db: Database
    alerts: AlertStore
    clock: Clock = field(default_factory=Clock)
    channels: dict[ChannelKind, Channel] = field(default_factory=dict)
    cap: CapDocuments = field(init=False)

    def __post_init__(self) -> None:
        self.cap = CapDocuments(self.settings, self.alerts)


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Parts]]:
    """The CAP routes on a real HTTP server over a fresh SQLite store."""
    zones = tmp_path / "zones.geojson"
    zones.write_text(json.dumps(ZONES), encoding="utf-8")
    base = load_settings()
    settings = base.model_copy(update={
        "directory": base.directory.model_copy(update={"zones": str(zones)}),
    })
    db = await open_database(f"sqlite:///{tmp_path / 'clarion.db'}")
    parts = Parts(settings, db, AlertStore(db, AuditLog(db)))
    app = web.Application()
    app[SERVICE] = parts  # type: ignore[assignment]
    app.add_routes(cap_api.routes)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, parts
    await client.close()
    await db.close()


async def store(parts: Parts, body: dict[str, Any], *, created_ms: int | None = None,
                expires_s: int = 3600) -> str:
    """Store an alert the way intake does, without sending it."""
    request = AlertRequest.model_validate(body)
    now = created_ms or int(time.time() * 1000)
    alert_id, _ = await parts.alerts.create(
        request, {}, actor="test", now_ms=now, expires_ms=now + expires_s * 1000,
        channels=[ChannelKind.SIGNAGE], idempotency_key=None, audience_counts={}, clery={},
        audit_detail={},
    )
    return alert_id


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """The CAP 1.2 schema."""
    return etree.XMLSchema(etree.parse(str(XSD)))


async def get_cap(client: TestClient, alert_id: str, schema: etree.XMLSchema) -> Any:
    """Fetch and validate one alert's CAP."""
    resp = await client.get(f"/v1/alerts/{alert_id}/cap")
    assert resp.status == 200
    assert resp.content_type == "application/cap+xml"
    doc = etree.fromstring(await resp.read())
    assert schema.validate(doc), schema.error_log
    return doc


class TestAlertCap:
    """One alert's CAP follows its life: Alert, Update, Cancel."""

    async def test_alert_renders_valid_cap_with_zone_polygon(
        self, api: tuple[TestClient, Parts], schema: etree.XMLSchema
    ) -> None:
        """The stored alert, its expiry and its zone's polygon."""
        client, parts = api
        alert_id = await store(parts, {"kind": "emergency", "text": "Fire in Smith Hall. Leave.",
                                       "zones": ["north"], "instruction": "Use the stairs."})
        doc = await get_cap(client, alert_id, schema)
        assert doc.findtext("cap:identifier", namespaces=NS) == alert_id
        assert doc.findtext("cap:sender", namespaces=NS) == parts.settings.service.sender
        assert doc.findtext("cap:msgType", namespaces=NS) == "Alert"
        area = doc.find("cap:info/cap:area", NS)
        assert area.findtext("cap:areaDesc", namespaces=NS) == "North Quad"
        assert area.findtext("cap:polygon", namespaces=NS).startswith("40.001000,-75.002000 ")

    async def test_update_references_the_earlier_alert(
        self, api: tuple[TestClient, Parts], schema: etree.XMLSchema
    ) -> None:
        """An all-clear is an Update whose references name the first alert as sent."""
        client, parts = api
        first = await store(parts, {"kind": "emergency", "text": "Gas leak. Leave now."},
                            created_ms=1_780_000_000_000)
        clear = await store(parts, {"kind": "all_clear", "text": "All clear.",
                                    "references": first})
        doc = await get_cap(client, clear, schema)
        assert doc.findtext("cap:msgType", namespaces=NS) == "Update"
        sender = parts.settings.service.sender
        assert doc.findtext("cap:references", namespaces=NS) == (
            f"{sender},{first},2026-05-28T20:26:40+00:00"
        )
        assert doc.findtext("cap:info/cap:responseType", namespaces=NS) == "AllClear"

    async def test_cancelled_alert_is_a_cancel_message(
        self, api: tuple[TestClient, Parts], schema: etree.XMLSchema
    ) -> None:
        """Withdrawn: msgType Cancel, its own identifier, referencing the alert."""
        client, parts = api
        alert_id = await store(parts, {"kind": "emergency", "text": "Gas leak. Leave now."})
        await parts.alerts.cancel(alert_id, actor="test", reason="false alarm",
                                  now_ms=int(time.time() * 1000))
        doc = await get_cap(client, alert_id, schema)
        assert doc.findtext("cap:msgType", namespaces=NS) == "Cancel"
        assert doc.findtext("cap:identifier", namespaces=NS) == f"{alert_id}.cancel"
        assert f",{alert_id}," in doc.findtext("cap:references", namespaces=NS)

    async def test_drill_is_an_exercise(
        self, api: tuple[TestClient, Parts], schema: etree.XMLSchema
    ) -> None:
        """A drill's CAP says Exercise."""
        client, parts = api
        alert_id = await store(parts, {"kind": "emergency", "mode": "drill",
                                       "text": "Evacuation drill. Leave now.",
                                       "drill": {"description": "Fall drill"}})
        doc = await get_cap(client, alert_id, schema)
        assert doc.findtext("cap:status", namespaces=NS) == "Exercise"

    async def test_unknown_alert_is_404(self, api: tuple[TestClient, Parts]) -> None:
        """No such alert: a JSON 404."""
        client, _ = api
        resp = await client.get("/v1/alerts/nope/cap")
        assert resp.status == 404
        assert "nope" in (await resp.json())["error"]


class TestFeed:
    """The Atom feed lists active alerts only, newest first, each linking to its CAP."""

    async def test_feed_of_active_alerts(
        self, api: tuple[TestClient, Parts], schema: etree.XMLSchema
    ) -> None:
        """Expired and cancelled alerts are left out; each link serves valid CAP."""
        client, parts = api
        now = int(time.time() * 1000)
        old = await store(parts, {"kind": "advisory", "text": "Old news."},
                          created_ms=now - 7_200_000, expires_s=3600)
        first = await store(parts, {"kind": "advisory", "text": "Snow day. Stay home."},
                            created_ms=now - 1000)
        second = await store(parts, {"kind": "emergency", "mode": "drill", "text": "Drill now.",
                                     "drill": {"description": "test"}}, created_ms=now)
        gone = await store(parts, {"kind": "emergency", "text": "Gas leak. Leave."})
        await parts.alerts.cancel(gone, actor="test", reason="resolved", now_ms=now)

        resp = await client.get("/v1/feeds/cap")
        assert resp.status == 200 and resp.content_type == "application/atom+xml"
        feed = etree.fromstring(await resp.read())
        entries = feed.findall("atom:entry", NS)
        links = [e.find("atom:link", NS).get("href") for e in entries]
        base = parts.settings.service.base_url()
        assert links == [f"{base}/v1/alerts/{second}/cap", f"{base}/v1/alerts/{first}/cap"]
        assert old not in str(links)
        assert entries[0].findtext("atom:title", namespaces=NS).startswith("[DRILL]")
        for link in links:
            await get_cap(client, link.rsplit("/", 2)[-2], schema)
