"""CAP 1.2: every rendering validates against the OASIS schema, and CAP input round-trips."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from dispatcher.alerting.request import AlertRequest
from dispatcher.cap.areas import areas_for_zones
from dispatcher.cap.format import (
    CAP_NS,
    CapArea,
    CapReference,
    assess,
    cap_time,
    parse_cap,
    read_cap,
    render_cap,
)
from dispatcher.domain import AlertKind, Mode
from dispatcher.settings import Settings, config_dir, load_settings
from segments.zones import load_zones, zones_overlapping
from tests.foundation.test_webhook import people
from tests.support import AUTH, Running

HERE = Path(__file__).resolve().parent
# The OASIS CAP 1.2 schema (docs.oasis-open.org/emergency/cap/v1.2), shipped with the tests.
XSD = HERE / "data" / "CAP-v1.2.xsd"
XSD_SHA256 = "571330f3bdb87aad2c85c9508b1d0b61173158dc2db4423fd24114d3ab80687e"
SENT = datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=timezone(timedelta(hours=-4)))
NS = {"cap": CAP_NS}

NORTH = CapArea(
    "North Quad",
    ((40.0010, -75.0020), (40.0030, -75.0020), (40.0030, -75.0000), (40.0010, -75.0000)),
    "north",
)
SOUTH = ("South Campus", [(39.99, -75.01), (39.995, -75.01), (39.995, -75.005)])
AREAS: dict[str, list[Any]] = {
    "none": [],
    "campus": [CapArea("Example University")],
    "zones": [NORTH, SOUTH],
}
KIND_TEXT = {
    AlertKind.EMERGENCY: "Fire reported in Smith Library. Evacuate the building now.",
    AlertKind.TIMELY_WARNING: "Robbery reported near Lot 4 at 9 pm. Walk in groups; "
    "report tips to campus police.",
    AlertKind.ADVISORY: "Winter storm expected tonight. Prepare for delays.",
    AlertKind.ALL_CLEAR: "All clear: Smith Library has reopened.",
}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """The CAP 1.2 schema."""
    return etree.XMLSchema(etree.parse(str(XSD)))


def validate(schema: etree.XMLSchema, xml: bytes) -> etree._Element:
    """Parse and validate; fail with the schema's own words."""
    doc = etree.fromstring(xml)
    if not schema.validate(doc):
        pytest.fail(f"CAP invalid: {schema.error_log}\n{xml.decode()}")
    return doc


def request(kind: AlertKind, mode: Mode, *, languages: int, references: bool) -> AlertRequest:
    """A request with every optional CAP part filled."""
    data: dict[str, Any] = {
        "kind": kind.value,
        "mode": mode.value,
        "text": KIND_TEXT[kind],
        "headline": f"{kind.value.replace('_', ' ').title()} & <notice>",
        "instruction": "Leave by the nearest exit; avoid the area.",
        "description": "Crews are on scene.",
        "web": "https://alerts.example.edu/a/1",
        "expires_in": 5400,
    }
    if references or kind is AlertKind.ALL_CLEAR:
        data["references"] = "0190aa0b1c2d3e4f"
    if languages > 1:
        data["translations"] = {
            "es": {"text": "Incendio en la biblioteca. Evacúe ahora.", "headline": "Incendio"},
            "zh": {"text": "图书馆火灾。立即撤离。"},
        }
    if mode is not Mode.LIVE:
        data["drill"] = {"description": "Monthly test of the notification system"}
    return AlertRequest.model_validate(data)


class TestSchema:
    """Every rendering is valid CAP 1.2."""

    def test_the_shipped_schema_is_unmodified(self) -> None:
        """tests/data holds the OASIS schema byte for byte."""
        assert hashlib.sha256(XSD.read_bytes()).hexdigest() == XSD_SHA256

    @pytest.mark.parametrize("kind", list(AlertKind))
    @pytest.mark.parametrize("mode", list(Mode))
    def test_every_combination_validates(
        self, schema: etree.XMLSchema, kind: AlertKind, mode: Mode
    ) -> None:
        """Each kind and mode as alert, update and cancel, in one or three languages, any areas."""
        for (shape, areas), languages, message in itertools.product(
            AREAS.items(), (1, 3), ("alert", "update", "cancel")
        ):
            req = request(kind, mode, languages=languages, references=message != "alert")
            refs = [CapReference("alerts@example.edu", "0190aa0b1c2d3e4f", SENT)] \
                if req.references else []
            xml = render_cap(
                req, identifier=f"{kind.value}-{mode.value}-{shape}", sender="alerts@example.edu",
                sent=SENT, cancelled=message == "cancel", references=refs, areas=areas,
                sender_name="Example University",
            )
            doc = validate(schema, xml)
            infos = doc.findall("cap:info", NS)
            assert len(infos) == languages
            assert len(infos[0].findall("cap:area", NS)) == len(areas)
            status = doc.findtext("cap:status", namespaces=NS)
            assert status == {"live": "Actual", "drill": "Exercise", "test": "Test"}[mode.value]
            msg_type = doc.findtext("cap:msgType", namespaces=NS)
            if message == "cancel":
                assert msg_type == "Cancel"
            elif req.references:
                assert msg_type == "Update"
                assert doc.findtext("cap:references", namespaces=NS) == (
                    "alerts@example.edu,0190aa0b1c2d3e4f,2026-03-14T09:26:53-04:00"
                )
            else:
                assert msg_type == "Alert"

    def test_all_clear_is_an_update_with_response_type_all_clear(
        self, schema: etree.XMLSchema
    ) -> None:
        """An all-clear says Update, AllClear, and points at the alert it clears."""
        req = request(AlertKind.ALL_CLEAR, Mode.LIVE, languages=1, references=True)
        xml = render_cap(req, identifier="c1", sender="alerts@example.edu", sent=SENT,
                         references=[CapReference("alerts@example.edu", "a1", SENT)])
        doc = validate(schema, xml)
        assert doc.findtext("cap:msgType", namespaces=NS) == "Update"
        assert doc.findtext("cap:info/cap:responseType", namespaces=NS) == "AllClear"

    def test_times_have_an_explicit_offset_and_no_fraction(self) -> None:
        """sent and expires are seconds with +hh:mm, UTC as +00:00."""
        assert cap_time(SENT) == "2026-03-14T09:26:53-04:00"
        assert cap_time(SENT.astimezone(UTC)) == "2026-03-14T13:26:53+00:00"
        with pytest.raises(ValueError, match="timezone"):
            cap_time(datetime(2026, 1, 1))

    def test_polygons_are_closed_lat_lon_rings(self, schema: etree.XMLSchema) -> None:
        """An open ring is closed; each point is `lat,lon`; the zone id is a geocode."""
        req = request(AlertKind.EMERGENCY, Mode.LIVE, languages=1, references=False)
        doc = validate(schema, render_cap(req, identifier="p1", sender="s", sent=SENT,
                                          areas=[NORTH]))
        polygon = doc.findtext("cap:info/cap:area/cap:polygon", namespaces=NS)
        assert polygon is not None
        points = polygon.split()
        assert len(points) == 5 and points[0] == points[-1] == "40.001000,-75.002000"
        assert doc.findtext("cap:info/cap:area/cap:geocode/cap:value", namespaces=NS) == "north"

    def test_identifiers_with_forbidden_characters_are_refused(self) -> None:
        """Spaces, commas, < and & would break `references`."""
        req = request(AlertKind.EMERGENCY, Mode.LIVE, languages=1, references=False)
        for bad in ("a b", "a,b", "", "a<b"):
            with pytest.raises(ValueError, match="identifier"):
                render_cap(req, identifier=bad, sender="s", sent=SENT)

    @pytest.mark.parametrize(
        ("text", "category", "responses"),
        [
            ("Active shooter reported at the gym. Lock down now.", "Security", ("Shelter",)),
            ("Fire in Smith Library. Evacuate now.", "Fire", ("Evacuate",)),
            ("Tornado warning. Shelter in the basement.", "Met", ("Shelter",)),
            ("Chemical spill in the lab. Avoid the area.", "CBRNE", ("Avoid",)),
            ("Measles case confirmed. Check your vaccination.", "Health", ()),
            ("Power outage on the east campus.", "Infra", ()),
            ("Water is back on.", "Safety", ()),
        ],
    )
    def test_category_and_response_from_the_text(
        self, text: str, category: str, responses: tuple[str, ...]
    ) -> None:
        """The hazard picks the category; the instruction picks the response type."""
        grade = assess(AlertKind.EMERGENCY, text)
        assert (grade.category, grade.response_types) == (category, responses)
        assert (grade.urgency, grade.severity, grade.certainty) == (
            "Immediate", "Severe", "Observed"
        )


class TestRoundTrip:
    """Clarion's own CAP reads back as the request it came from."""

    @pytest.mark.parametrize("kind", list(AlertKind))
    @pytest.mark.parametrize("mode", list(Mode))
    def test_render_then_parse_gives_back_the_essentials(self, kind: AlertKind, mode: Mode) -> None:
        """kind, mode, texts, translations, zones, references and expiry survive."""
        req = request(kind, mode, languages=3, references=True)
        xml = render_cap(req, identifier="r1", sender="alerts@example.edu", sent=SENT,
                         areas=[NORTH, CapArea("East", (), "east")],
                         references=[CapReference("alerts@example.edu", "0190aa0b1c2d3e4f",
                                                  SENT)])
        back = AlertRequest.model_validate(parse_cap(xml, now=SENT))
        assert back.kind is req.kind and back.mode is req.mode
        assert (back.text, back.headline, back.instruction, back.description, back.web) == (
            req.text, req.headline, req.instruction, req.description, req.web
        )
        assert back.language == req.language
        assert back.translations == req.translations
        assert back.zones == ["north", "east"]
        assert back.references == "0190aa0b1c2d3e4f"
        assert back.expires_in == 5400

    def test_minimal_request_round_trips(self) -> None:
        """A request with only kind and text comes back the same."""
        req = AlertRequest.model_validate({"kind": "emergency", "text": "Gas leak. Leave now."})
        xml = render_cap(req, identifier="m1", sender="s", sent=SENT, default_expires_s=900)
        back = parse_cap(xml, now=SENT)
        assert back == {"kind": "emergency", "mode": "live", "language": "en",
                        "text": "Gas leak. Leave now.", "expires_in": 900}


NWS = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>urn:oid:2.49.0.1.840.0.0b5c3d2e</identifier>
  <sender>w-nws.webmaster@noaa.gov</sender>
  <sent>2026-05-02T15:04:00-05:00</sent>
  <status>Actual</status>
  <msgType>Update</msgType>
  <scope>Public</scope>
  <references>w-nws.webmaster@noaa.gov,urn:oid:2.49.0.1.840.0.aa11,2026-05-02T14:50:00-05:00</references>
  <info>
    <language>en-US</language>
    <category>Met</category>
    <event>Tornado Warning</event>
    <responseType>Shelter</responseType>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <expires>2026-05-02T15:45:00-05:00</expires>
    <senderName>NWS Norman OK</senderName>
    <headline>Tornado Warning issued May 2 at 3:04PM CDT until 3:45PM CDT</headline>
    <description>At 303 PM CDT, a confirmed tornado was located near Campus.</description>
    <instruction>TAKE COVER NOW! Move to a basement or an interior room.</instruction>
    <area>
      <areaDesc>Cleveland, OK</areaDesc>
      <polygon>35.1,-97.5 35.2,-97.5 35.2,-97.3 35.1,-97.5</polygon>
    </area>
  </info>
  <info>
    <language>es-US</language>
    <category>Met</category>
    <event>Aviso de Tornado</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <headline>Aviso de tornado</headline>
    <instruction>Refugiese ahora.</instruction>
  </info>
</alert>
"""


class TestUpstream:
    """A county or NWS alert becomes a campus alert request."""

    def test_nws_tornado_warning(self, schema: etree.XMLSchema) -> None:
        """Severe and immediate is an emergency; text from headline and instruction."""
        validate(schema, NWS)
        now = datetime(2026, 5, 2, 20, 5, tzinfo=UTC)
        got = parse_cap(NWS, now=now)
        assert got["kind"] == "emergency" and got["mode"] == "live"
        assert got["language"] == "en-US"
        assert got["text"] == ("Tornado Warning issued May 2 at 3:04PM CDT until 3:45PM CDT. "
                               "TAKE COVER NOW! Move to a basement or an interior room.")
        assert got["expires_in"] == 40 * 60
        assert got["references"] == "urn:oid:2.49.0.1.840.0.aa11"
        assert got["translations"]["es"]["text"] == "Aviso de tornado. Refugiese ahora."
        AlertRequest.model_validate(got)

    @pytest.mark.parametrize(
        ("polygon", "zones"),
        [
            (b"39.9992,-75.0045 39.9992,-75.0035 39.9996,-75.0035 39.9992,-75.0045", ["b-labs"]),
            (b"39.98,-75.02 39.98,-74.98 40.02,-74.98 40.02,-75.02 39.98,-75.02", None),
        ],
    )
    def test_polygon_selects_the_zones_inside_it(
        self, polygon: bytes, zones: list[str] | None
    ) -> None:
        """An area given only as a polygon selects the campus zones it covers; one around the
        whole campus leaves the audience whole."""
        campus = load_zones(config_dir() / "zones.geojson")
        xml = NWS.replace(b"35.1,-97.5 35.2,-97.5 35.2,-97.3 35.1,-97.5", polygon)
        got = parse_cap(xml, now=datetime(2026, 5, 2, 20, 5, tzinfo=UTC),
                        zones_of=lambda p: zones_overlapping(campus, p))
        assert got.get("zones") == zones

    def test_polygon_off_campus_is_refused(self) -> None:
        """A warning for somewhere else is refused, never widened to the whole campus."""
        campus = load_zones(config_dir() / "zones.geojson")
        with pytest.raises(ValueError, match="overlaps no campus zone"):
            parse_cap(NWS, now=datetime(2026, 5, 2, 20, 5, tzinfo=UTC),
                      zones_of=lambda p: zones_overlapping(campus, p))

    def test_minor_alert_is_an_advisory_and_exercise_a_drill(self) -> None:
        """Severity and urgency below the emergency line make an advisory; Exercise a drill."""
        xml = NWS.replace(b"<severity>Extreme</severity>", b"<severity>Minor</severity>") \
            .replace(b"<status>Actual</status>", b"<status>Exercise</status>")
        got = parse_cap(xml, now=datetime(2026, 5, 2, 20, 5, tzinfo=UTC))
        assert (got["kind"], got["mode"]) == ("advisory", "drill")
        AlertRequest.model_validate(got)

    @pytest.mark.parametrize(
        ("xml", "message"),
        [
            (b"", "empty"),
            (b"<alert", "well-formed"),
            (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "not a CAP alert"),
            (b'<!DOCTYPE a [<!ENTITY x "y">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>',
             "DTD"),
            ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]>'
             '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>'.encode("utf-16"), "DTD"),
            (NWS.replace(b"<sender>w-nws.webmaster@noaa.gov</sender>", b""), "sender"),
            (NWS.replace(b"2026-05-02T15:04:00-05:00", b"2026-05-02T20:04:00"), "offset"),
            (NWS.replace(b"<event>Tornado Warning</event>", b""), "event"),
            (NWS.replace(b"<msgType>Update</msgType>", b"<msgType>Cancel</msgType>"), "Cancel"),
            (NWS.replace(b"<status>Actual</status>", b"<status>System</status>"), "System"),
        ],
    )
    def test_malformed_cap_is_a_clear_value_error(self, xml: bytes, message: str) -> None:
        """Each defect is named."""
        with pytest.raises(ValueError, match=message):
            parse_cap(xml, now=datetime(2026, 5, 2, 20, 5, tzinfo=UTC))

    def test_expired_upstream_alert_is_refused(self) -> None:
        """An alert already past its expiry is not relayed."""
        with pytest.raises(ValueError, match="expired"):
            parse_cap(NWS, now=datetime(2026, 5, 3, tzinfo=UTC))

    def test_read_cap_keeps_the_cap_view(self) -> None:
        """read_cap exposes msgType, references and areas for callers that need them."""
        alert = read_cap(NWS)
        assert alert.msg_type == "Update" and len(alert.infos) == 2
        assert alert.infos[0].areas[0].polygon[0] == (35.1, -97.5)


def run_cap(stdin: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`clarion cap` as the CLI registers it, in a fresh interpreter."""
    program = (
        "import argparse, sys\n"
        "from dispatcher.cap import cli as cap\n"
        "parser = argparse.ArgumentParser(prog='clarion')\n"
        "cap.register(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", program, "cap", *args], input=stdin, capture_output=True,
        timeout=60, check=False, cwd=HERE.parent,
    )


class TestCommand:
    """`clarion cap`: JSON in, valid CAP out, exit 2 on bad input."""

    def test_writes_valid_cap(self, schema: etree.XMLSchema) -> None:
        """A request on stdin becomes a schema-valid CAP document on stdout."""
        body = {"kind": "emergency", "mode": "drill", "text": "Evacuation drill. Leave now.",
                "zones": ["north"], "translations": {"es": {"text": "Simulacro."}},
                "drill": {"description": "Annual evacuation drill"}}
        done = run_cap(json.dumps(body).encode(), "--identifier", "drill-1",
                       "--sent", "2026-04-01T10:00:00-04:00")
        assert done.returncode == 0, done.stderr.decode()
        doc = validate(schema, done.stdout)
        assert doc.findtext("cap:identifier", namespaces=NS) == "drill-1"
        assert doc.findtext("cap:status", namespaces=NS) == "Exercise"
        assert doc.findtext("cap:note", namespaces=NS) == "Annual evacuation drill"

    def test_generates_an_identifier_and_sends_now(self, schema: etree.XMLSchema) -> None:
        """With no options the identifier is a new UUID URN and sent is now."""
        done = run_cap(b'{"kind": "advisory", "text": "Snow day."}')
        assert done.returncode == 0, done.stderr.decode()
        doc = validate(schema, done.stdout)
        assert (doc.findtext("cap:identifier", namespaces=NS) or "").startswith("urn:uuid:")

    @pytest.mark.parametrize(
        ("stdin", "message"),
        [
            (b"not json", "not JSON"),
            (b'{"kind": "emergency"}', "text"),
            (b'{"kind": "panic", "text": "x"}', "kind"),
            (b'{"kind": "emergency", "text": "x", "colour": "red"}', "colour: unknown field"),
        ],
    )
    def test_bad_input_exits_2_with_a_message(self, stdin: bytes, message: str) -> None:
        """Malformed input is named on stderr; nothing on stdout."""
        done = run_cap(stdin)
        assert done.returncode == 2
        assert done.stdout == b""
        assert message in done.stderr.decode()

    def test_parse_turns_cap_into_a_request(self) -> None:
        """--parse reads CAP and prints the request JSON."""
        body = b'{"kind": "emergency", "text": "Gas leak. Leave now.", "zones": ["north"]}'
        first = run_cap(body, "--sent", datetime.now(UTC).replace(microsecond=0).isoformat())
        assert first.returncode == 0, first.stderr.decode()
        back = run_cap(first.stdout, "--parse")
        assert back.returncode == 0, back.stderr.decode()
        got = json.loads(back.stdout)
        assert (got["kind"], got["text"], got["zones"]) == (
            "emergency", "Gas leak. Leave now.", ["north"]
        )


class TestZoneAreas:
    """Areas come from the zones file; excluded zones are cut out, never dropped."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        """The embedded settings with a zones file of a campus square and a zone inside it."""
        def square(south: float, west: float, north: float, east: float) -> list[list[float]]:
            return [[west, south], [east, south], [east, north], [west, north], [west, south]]

        features = [
            {"type": "Feature", "properties": {"id": zone_id, "name": name},
             "geometry": {"type": "Polygon", "coordinates": [ring]}}
            for zone_id, name, ring in (
                ("campus", "Whole campus", square(40.0, -75.0, 40.01, -74.99)),
                ("labs", "Science labs", square(40.004, -74.996, 40.006, -74.994)),
                ("north", "North", square(40.005, -75.0, 40.01, -74.99)),
            )
        ]
        path = tmp_path / "zones.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                        encoding="utf-8")
        base = load_settings()
        return base.model_copy(update={
            "directory": base.directory.model_copy(update={"zones": str(path)})})

    def test_campus_wide_alert_uses_the_campus_outline(self, settings: Settings) -> None:
        """No zones: one area, the campus polygon, no zone geocode."""
        (area,) = areas_for_zones([], settings)
        assert area.description == settings.service.institution
        assert len(area.polygons) == 1 and area.zone_id == ""

    def test_excluded_zone_is_cut_out_of_every_polygon(
        self, settings: Settings, schema: etree.XMLSchema
    ) -> None:
        """A point in the excluded zone is in no polygon; the rest of the campus is covered."""
        from shapely import Point, Polygon

        areas = areas_for_zones([], settings, exclude=["labs"])
        (area,) = areas
        assert area.description.endswith("(except Science labs)")
        shapes = [Polygon([(lon, lat) for lat, lon in ring]) for ring in area.polygons]
        assert len(shapes) >= 2 and all(not s.interiors for s in shapes)
        inside_labs, elsewhere = Point(-74.995, 40.005), Point(-74.999, 40.001)
        assert not any(s.contains(inside_labs) for s in shapes)
        assert any(s.contains(elsewhere) for s in shapes)
        assert abs(sum(s.area for s in shapes) - (0.0001 - 0.000004)) < 1e-9

        req = AlertRequest.model_validate({"kind": "emergency", "text": "Gas leak. Leave now.",
                                           "exclude_zones": ["labs"]})
        doc = validate(schema, render_cap(req, identifier="x1", sender="s", sent=SENT,
                                          areas=areas))
        assert len(doc.findall("cap:info/cap:area/cap:polygon", NS)) == len(shapes)
        back = read_cap(render_cap(req, identifier="x1", sender="s", sent=SENT, areas=areas))
        assert back.infos[0].areas[0].polygons == area.polygons

    def test_zones_named_and_unknown_zone_kept_by_name(self, settings: Settings) -> None:
        """Known zones bring name and polygon; an unknown one still appears by its id."""
        areas = areas_for_zones(["north", "ghost"], settings)
        assert [(a.description, a.zone_id, len(a.polygons)) for a in areas] == [
            ("North", "north", 1), ("ghost", "ghost", 0)
        ]


class TestRelayedPolygon:
    """Through the API: a relayed CAP polygon narrows the audience like the zones field."""

    @staticmethod
    def relayed(polygon: bytes) -> bytes:
        soon = datetime.now(UTC).replace(microsecond=0)
        return (
            NWS.replace(b"35.1,-97.5 35.2,-97.5 35.2,-97.3 35.1,-97.5", polygon)
            .replace(b"2026-05-02T15:04:00-05:00", soon.isoformat().encode())
            .replace(b"2026-05-02T15:45:00-05:00", (soon + timedelta(hours=1)).isoformat().encode())
            .replace(b"<msgType>Update</msgType>", b"<msgType>Alert</msgType>")
            .replace(b"<references>", b"<!--").replace(b"</references>", b"-->")
        )

    async def test_polygon_in_zone_a_reaches_zone_a(self, running: Running) -> None:
        """The same people as `zones: ["a"]`; a polygon off campus is a 422."""
        polygon = b"40.0041,-75.0059 40.0041,-74.9961 40.0069,-75.001 40.0041,-75.0059"
        headers = {**AUTH, "Content-Type": "application/cap+xml"}
        resp = await running.client.post("/v1/alerts", data=self.relayed(polygon),
                                         headers=headers)
        assert resp.status == 202, await resp.text()
        relayed = (await resp.json())["audience"]
        direct = await running.post_alert({
            "kind": "emergency", "channels": ["email"], "zones": ["a"],
            "text": "Tornado warning. Take cover now in an interior room.",
        })
        assert direct.status == 202, await direct.text()
        expected = (await direct.json())["audience"]
        assert 0 < relayed["total"] == expected["total"] < await people(running)
        far = await running.client.post(
            "/v1/alerts", data=self.relayed(b"35.1,-97.5 35.2,-97.5 35.2,-97.3 35.1,-97.5"),
            headers=headers,
        )
        assert far.status == 422 and "no campus zone" in await far.text()
