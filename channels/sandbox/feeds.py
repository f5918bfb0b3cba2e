"""Stand-ins for the upstream feeds: the NWS alerts API and a county's CAP Atom feed.

The NWS stand-in answers `GET /nws/alerts/active?point=lat,lon` and
`GET /nws/alerts/active/zone/{zone}` the way api.weather.gov does: a GeoJSON FeatureCollection
(`application/geo+json`) of alert Features whose properties are CAP's fields, with an ETag,
Last-Modified and `304 Not Modified` to a matching If-None-Match. The county feed is an Atom
document (`/county/cap.atom`) whose entries link to CAP 1.2 documents (`/county/cap/{id}.xml`).
`make run` shows a tornado warning over the example campus and a flood watch for its county.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from channels.sandbox.server import Sandbox

NWS_PATH = "/nws"
COUNTY_PATH = "/county/cap.atom"
SENDER = "w-nws.webmaster@noaa.gov"
COUNTY_SENDER = "alerts@county.example.gov"
# Around the example campus (config/zones.geojson), as GeoJSON (lon, lat).
CAMPUS_BOX = [[-75.02, 39.98], [-74.97, 39.98], [-74.97, 40.02], [-75.02, 40.02], [-75.02, 39.98]]


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


@dataclass
class FeedStandIns:
    """The upstream alerts the sandbox serves; tests add, replace and remove them."""

    nws: dict[str, dict[str, Any]] = field(default_factory=dict)
    county: dict[str, bytes] = field(default_factory=dict)
    nws_requests: int = 0
    not_modified: int = 0
    _changed: datetime = field(default_factory=lambda: datetime.now(UTC))

    def put_nws(self, feature: dict[str, Any]) -> None:
        """Serve this NWS alert Feature (replacing one with the same id)."""
        self.nws[feature["properties"]["id"]] = feature
        self._changed = datetime.now(UTC)

    def remove_nws(self, alert_id: str) -> None:
        """Stop serving an NWS alert."""
        self.nws.pop(alert_id, None)
        self._changed = datetime.now(UTC)

    def put_county(self, identifier: str, cap_xml: bytes) -> None:
        """Serve a county CAP document in the Atom feed."""
        self.county[identifier] = cap_xml
        self._changed = datetime.now(UTC)

    def attach(self, app: web.Application) -> None:
        """Add the routes to the sandbox's HTTP app."""
        app.router.add_get(f"{NWS_PATH}/alerts/active", self._nws_active)
        app.router.add_get(f"{NWS_PATH}/alerts/active/zone/{{zone}}", self._nws_zone)
        app.router.add_get(COUNTY_PATH, self._county_feed)
        app.router.add_get("/county/cap/{id}.xml", self._county_cap)

    # -- NWS ------------------------------------------------------------------------------------

    async def _nws_active(self, request: web.Request) -> web.Response:
        point = request.query.get("point")
        features = list(self.nws.values())
        if point:
            try:
                lat, lon = (float(x) for x in point.split(","))
            except ValueError:
                return web.json_response(
                    {"type": "https://api.weather.gov/problems/BadRequest", "title": "Bad Request",
                     "status": 400, "detail": f"Invalid point {point}"},
                    status=400, content_type="application/problem+json",
                )
            features = [f for f in features if _contains(f.get("geometry"), lat, lon)
                        or f.get("geometry") is None]
        return self._collection(request, features, "Current watches, warnings, and advisories")

    async def _nws_zone(self, request: web.Request) -> web.Response:
        zone = request.match_info["zone"]
        features = [f for f in self.nws.values()
                    if zone in f["properties"].get("geocode", {}).get("UGC", [])]
        return self._collection(request, features, f"Current alerts for zone {zone}")

    def _collection(
        self, request: web.Request, features: list[dict[str, Any]], title: str
    ) -> web.Response:
        self.nws_requests += 1
        doc = {
            "@context": ["https://geojson.org/geojson-ld/geojson-context.jsonld",
                         {"@version": "1.1", "@vocab": "https://api.weather.gov/ontology#"}],
            "type": "FeatureCollection",
            "features": features,
            "title": title,
            "updated": _iso(self._changed),
        }
        body = json.dumps(doc, indent=4).encode()
        return self._conditional(request, body, "application/geo+json")

    # -- county ---------------------------------------------------------------------------------

    async def _county_feed(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        entries = []
        for identifier in self.county:
            link = f"{base}/county/cap/{identifier}.xml"
            entries.append(
                f"  <entry>\n    <id>{escape(link)}</id>\n"
                f"    <title>{escape(identifier)}</title>\n"
                f"    <updated>{_iso(self._changed)}</updated>\n"
                '    <link rel="alternate" type="application/cap+xml"'
                f' href="{escape(link)}"/>\n'
                f"  </entry>\n"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom">\n'
            f"  <id>{escape(base)}{COUNTY_PATH}</id>\n  <title>Example County alerts</title>\n"
            f"  <updated>{_iso(self._changed)}</updated>\n" + "".join(entries) + "</feed>\n"
        ).encode()
        return self._conditional(request, body, "application/atom+xml")

    async def _county_cap(self, request: web.Request) -> web.Response:
        doc = self.county.get(request.match_info["id"])
        if doc is None:
            raise web.HTTPNotFound()
        return web.Response(body=doc, content_type="application/cap+xml", charset="utf-8")

    def _conditional(self, request: web.Request, body: bytes, media_type: str) -> web.Response:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Last-Modified": format_datetime(self._changed, usegmt=True),
                   "Cache-Control": "public, max-age=30, s-maxage=30"}
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers={**headers, "Content-Type": media_type})


def _contains(geometry: Any, lat: float, lon: float) -> bool:
    """Ray casting over the first ring of a GeoJSON Polygon (lon, lat)."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        return False
    ring = geometry["coordinates"][0]
    inside = False
    for (x1, y1), (x2, y2) in pairwise(ring):
        if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def nws_feature(
    identifier: str,
    event: str,
    *,
    sent: datetime,
    expires: datetime,
    same: str,
    headline: str,
    description: str,
    instruction: str,
    ring: list[list[float]] | None = None,
    message_type: str = "Alert",
    status: str = "Actual",
    references: list[dict[str, str]] | None = None,
    severity: str = "Extreme",
    urgency: str = "Immediate",
    certainty: str = "Observed",
    ugc: tuple[str, ...] = ("PAC101",),
) -> dict[str, Any]:
    """An NWS API alert Feature in api.weather.gov's shape."""
    urn = f"urn:oid:2.49.0.1.840.0.{identifier}"
    return {
        "id": f"https://api.weather.gov/alerts/{urn}",
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]} if ring else None,
        "properties": {
            "@id": f"https://api.weather.gov/alerts/{urn}",
            "@type": "wx:Alert",
            "id": urn,
            "areaDesc": "Philadelphia, PA",
            "geocode": {"SAME": ["042101"], "UGC": list(ugc)},
            "affectedZones": [f"https://api.weather.gov/zones/county/{z}" for z in ugc],
            "references": references or [],
            "sent": _iso(sent), "effective": _iso(sent), "onset": _iso(sent),
            "expires": _iso(expires), "ends": _iso(expires),
            "status": status, "messageType": message_type, "category": "Met",
            "severity": severity, "certainty": certainty, "urgency": urgency,
            "event": event, "sender": SENDER, "senderName": "NWS Mount Holly NJ",
            "headline": headline, "description": description, "instruction": instruction,
            "response": "Shelter" if "Warning" in event else "Monitor",
            "eventCode": {"SAME": [same], "NationalWeatherService": [same[:2] + "W"]},
            "parameters": {"AWIPSidentifier": ["TORPHI"], "NWSheadline": [headline],
                           "BLOCKCHANNEL": ["EAS", "NWEM", "CMAS"]},
        },
    }


def county_cap(identifier: str, event: str, *, sent: datetime, expires: datetime,
               headline: str, description: str, instruction: str, same: str = "FFA",
               polygon: str = "39.98,-75.02 39.98,-74.97 40.02,-74.97 40.02,-75.02 39.98,-75.02",
               severity: str = "Moderate", urgency: str = "Future") -> bytes:
    """A county CAP 1.2 document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">\n'
        f"  <identifier>{escape(identifier)}</identifier>\n  <sender>{COUNTY_SENDER}</sender>\n"
        f"  <sent>{_iso(sent)}</sent>\n  <status>Actual</status>\n  <msgType>Alert</msgType>\n"
        "  <scope>Public</scope>\n  <info>\n    <language>en-US</language>\n"
        f"    <category>Met</category>\n    <event>{escape(event)}</event>\n"
        "    <responseType>Monitor</responseType>\n"
        f"    <urgency>{urgency}</urgency>\n    <severity>{severity}</severity>\n"
        "    <certainty>Possible</certainty>\n"
        f"    <eventCode><valueName>SAME</valueName><value>{same}</value></eventCode>\n"
        f"    <expires>{_iso(expires)}</expires>\n"
        "    <senderName>Example County Emergency Management</senderName>\n"
        f"    <headline>{escape(headline)}</headline>\n"
        f"    <description>{escape(description)}</description>\n"
        f"    <instruction>{escape(instruction)}</instruction>\n"
        "    <area>\n      <areaDesc>Example County</areaDesc>\n"
        f"      <polygon>{polygon}</polygon>\n"
        "      <geocode><valueName>SAME</valueName><value>042101</value></geocode>\n"
        "    </area>\n  </info>\n</alert>\n"
    ).encode()


# The demo's upstream identifiers. They never change: an upstream message is decided once
# (its sender and identifier), so a restarted sandbox serves the messages the service has
# already relayed, and a restart does not sound a new tornado warning across the campus.
DEMO_TORNADO = "sandbox.tor.demo"
DEMO_FLOOD_WATCH = "county-ffa-demo"


def demo(now: datetime | None = None) -> FeedStandIns:
    """What `make run` shows: a tornado warning over the campus and a county flood watch,
    under the same identifiers at every start."""
    now = now or datetime.now(UTC)
    stand_ins = FeedStandIns()
    stand_ins.put_nws(nws_feature(
        DEMO_TORNADO, "Tornado Warning", sent=now, expires=now + timedelta(minutes=45),
        same="TOR", ring=CAMPUS_BOX,
        headline="Tornado Warning issued for Philadelphia County until 45 minutes from now",
        description="At this time, a severe thunderstorm capable of producing a tornado was "
        "located near the campus, moving northeast at 30 mph. HAZARD: Tornado. SOURCE: Radar "
        "indicated rotation. IMPACT: Flying debris will be dangerous to those caught without "
        "shelter. Mobile homes will be damaged or destroyed.",
        instruction="Take shelter now in a basement or an interior room on the lowest floor. "
        "Stay away from windows.",
    ))
    stand_ins.put_county(DEMO_FLOOD_WATCH, county_cap(
        DEMO_FLOOD_WATCH, "Flood Watch", sent=now, expires=now + timedelta(hours=12),
        headline="Flood Watch for Example County through tomorrow morning",
        description="Heavy rain of 2 to 4 inches may cause flooding of creeks, streams and "
        "low-lying areas, including the parking lots along the creek.",
        instruction="Monitor later forecasts. Do not drive through flooded roads.",
    ))
    return stand_ins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The feed stand-ins' flags."""
    group = parser.add_argument_group("upstream feeds (NWS API, county CAP Atom)")
    group.add_argument("--feed-demo", action="store_true",
                       help="serve the demo tornado warning and flood watch (`clarion run` does); "
                       "without it the feeds are empty")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> FeedStandIns:
    """Serve the NWS API and county feed stand-ins on the sandbox's HTTP listener."""
    stand_ins = demo() if getattr(args, "feed_demo", False) else FeedStandIns()
    stand_ins.attach(sandbox.app)
    sandbox.endpoints["nws"] = NWS_PATH
    sandbox.endpoints["county_feed"] = COUNTY_PATH
    return stand_ins
