"""The relay decision over real CAP documents (tests/data/cap/SOURCES.md says where from)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.sandbox.feeds import CAMPUS_BOX, nws_feature
from dispatcher.cap.format import read_cap
from dispatcher.feeds.formats import nws_alert, read_cap_feed, read_nws
from dispatcher.feeds.rules import Outcome, area_key, decide, instruction_key
from dispatcher.feeds.settings import Action, FeedsSettings, Rule, Rules
from dispatcher.settings import config_dir
from dispatcher.store.feeds import FeedThread, ThreadState
from segments.zones import load_zones, zones_overlapping

DATA = Path(__file__).resolve().parent.parent / "data" / "cap"
ZONES = load_zones(config_dir() / "zones.geojson")
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def zones_of(polygon: object) -> tuple[str, ...] | None:
    return zones_overlapping(ZONES, polygon)  # type: ignore[arg-type]


RULES = Rules(
    events={
        "TOR": Rule(action=Action.SEND),
        "SVR": Rule(action=Action.PROPOSE),
        "RMT": Rule(action=Action.SEND),
        "Flood Watch": Rule(action=Action.PROPOSE),
    },
    campus_geocodes=["SAME:042101"],
)


def tornado(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "sent": NOW, "expires": NOW + timedelta(minutes=45), "same": "TOR", "ring": CAMPUS_BOX,
        "headline": "Tornado Warning until 3:45 PM", "description": "A tornado was observed.",
        "instruction": "Take shelter now in an interior room.",
    }
    values.update(changes)
    return nws_feature("t1", "Tornado Warning", **values)  # type: ignore[arg-type]


def thread_for(feature: dict[str, object], state: ThreadState = ThreadState.ACTIVE) -> FeedThread:
    info = nws_alert(feature).infos[0]
    return FeedThread("k", "nws", info.event, area_key(info), instruction_key(info), None,
                      "alert-1", None, state, None, 0)


class TestNeverLive:
    """Tests, exercises and demonstrations never go out as live alerts."""

    def test_real_rmt_sent_as_actual_is_ignored(self) -> None:
        """The IPAWS Required Monthly Test arrives with status Actual: its SAME code says test."""
        alert = read_cap((DATA / "ipaws-required-monthly-test-5e6ddbad.xml").read_bytes())
        assert alert.status == "Actual"
        now = datetime(2019, 5, 30, 15, 56, tzinfo=UTC)
        decision = decide(alert, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                          now=now)
        assert decision.outcome is Outcome.IGNORED
        assert "RMT" in decision.reason

    @pytest.mark.parametrize("status", ["Test", "Exercise", "System", "Draft"])
    def test_status_other_than_actual_is_ignored(self, status: str) -> None:
        """Even a tornado warning under a rule that sends is not relayed unless Actual."""
        alert = nws_alert(tornado(status=status))
        decision = decide(alert, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                          now=NOW)
        assert decision.outcome is Outcome.IGNORED and status in decision.reason


class TestRelay:
    """What is sent, proposed, suppressed or cleared."""

    def test_tornado_over_campus_is_sent_to_the_whole_campus(self) -> None:
        """A polygon around every zone narrows nothing."""
        decision = decide(nws_alert(tornado()), thread=None, repeat=None, rules=RULES,
                          zones_of=zones_of, now=NOW)
        assert decision.outcome is Outcome.SENT
        assert decision.zones is None

    def test_polygon_inside_one_zone_selects_it(self) -> None:
        """A small polygon over zone a reaches zone a only."""
        ring = [[-75.005, 40.005], [-74.997, 40.005], [-74.997, 40.006], [-75.005, 40.006],
                [-75.005, 40.005]]
        decision = decide(nws_alert(tornado(ring=ring)), thread=None, repeat=None,
                          rules=RULES, zones_of=zones_of, now=NOW)
        assert decision.outcome is Outcome.SENT
        assert decision.zones == ("a",)

    def test_real_polygon_that_misses_the_campus_is_ignored(self) -> None:
        """OASIS A.2 (Sacramento) before it expired: a rule would propose it, its area misses."""
        alert = read_cap((DATA / "oasis-a2-severe-thunderstorm-warning.xml").read_bytes())
        now = datetime(2003, 6, 17, 22, 0, tzinfo=UTC)
        decision = decide(alert, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                          now=now)
        assert decision.outcome is Outcome.IGNORED
        assert "misses the campus" in decision.reason

    def test_expired_alert_is_never_sent(self) -> None:
        """OASIS A.2 read today: its expires passed in 2003."""
        alert = read_cap((DATA / "oasis-a2-severe-thunderstorm-warning.xml").read_bytes())
        decision = decide(alert, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                          now=NOW)
        assert decision.outcome is Outcome.IGNORED and "expired" in decision.reason

    def test_expired_update_of_a_relayed_alert_clears_it(self) -> None:
        """Expiry of an alert that was relayed clears the campus alert."""
        feature = tornado(expires=NOW - timedelta(minutes=1), message_type="Update")
        decision = decide(nws_alert(feature), thread=thread_for(tornado()), repeat=None,
                          rules=RULES, zones_of=zones_of, now=NOW)
        assert decision.outcome is Outcome.CLEARED

    def test_update_changing_only_sent_is_not_resent(self) -> None:
        """Only the timestamps and the expiry moved."""
        update = tornado(sent=NOW + timedelta(minutes=5), expires=NOW + timedelta(hours=1),
                         headline="Tornado Warning until 4:00 PM", message_type="Update")
        decision = decide(nws_alert(update), thread=thread_for(tornado()), repeat=None,
                          rules=RULES, zones_of=zones_of, now=NOW)
        assert decision.outcome is Outcome.SUPPRESSED
        assert "only timestamps" in decision.reason

    def test_update_changing_the_instruction_updates(self) -> None:
        """New instructions are news."""
        update = tornado(instruction="Go to the basement now.", message_type="Update")
        decision = decide(nws_alert(update), thread=thread_for(tornado()), repeat=None,
                          rules=RULES, zones_of=zones_of, now=NOW)
        assert decision.outcome is Outcome.UPDATED and "instructions" in decision.reason

    def test_real_cancel_clears_only_what_was_relayed(self) -> None:
        """The IPAWS Cancel: cleared when its thread is active, ignored otherwise."""
        alert = read_cap((DATA / "ipaws-cancel-5e6dd9de.xml").read_bytes())
        active = thread_for(tornado())
        assert decide(alert, thread=active, repeat=None, rules=RULES, zones_of=zones_of,
                      now=NOW).outcome is Outcome.CLEARED
        assert decide(alert, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                      now=NOW).outcome is Outcome.IGNORED

    def test_thresholds_and_default(self) -> None:
        """Below a threshold, or with no rule, nothing is relayed."""
        strict = Rules(events=RULES.events, min_severity="Extreme")
        weaker = nws_alert(tornado(severity="Severe"))
        decision = decide(weaker, thread=None, repeat=None, rules=strict, zones_of=zones_of,
                          now=NOW)
        assert decision.outcome is Outcome.IGNORED and "severity" in decision.reason
        other = nws_alert(nws_feature("x", "Wind Advisory", sent=NOW, expires=NOW + timedelta(
            hours=1), same="WIY", headline="h", description="d", instruction="i",
            ring=CAMPUS_BOX))
        assert decide(other, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                      now=NOW).reason == "rule default: ignore"

    def test_zone_alert_without_polygon_reaches_campus_by_geocode(self) -> None:
        """NWS zone alerts have no geometry: the campus's SAME code places them."""
        watch = nws_alert(nws_feature("w", "Flood Watch", sent=NOW, expires=NOW + timedelta(
            hours=6), same="FFA", headline="Flood Watch", description="d", instruction="i"))
        decision = decide(watch, thread=None, repeat=None, rules=RULES, zones_of=zones_of,
                          now=NOW)
        assert decision.outcome is Outcome.PROPOSED and decision.zones is None
        elsewhere = Rules(events=RULES.events, campus_geocodes=["SAME:006067"])
        assert decide(watch, thread=None, repeat=None, rules=elsewhere, zones_of=zones_of,
                      now=NOW).outcome is Outcome.IGNORED


class TestFormats:
    """The feed formats read into CAP alerts."""

    def test_nws_collection_reads_geojson(self) -> None:
        """Coordinates are lon, lat in GeoJSON and lat, lon in CAP."""
        import json
        body = json.dumps({"type": "FeatureCollection", "features": [tornado()]}).encode()
        [entry] = read_nws(body)
        assert entry.alert is not None
        area = entry.alert.infos[0].areas[0]
        assert area.polygon[0] == (39.98, -75.02)
        assert ("SAME", "042101") in area.geocodes
        assert entry.alert.infos[0].event_codes["SAME"] == "TOR"

    def test_atom_with_inline_cap_and_links(self) -> None:
        """An IPAWS-style entry carries the alert; a county entry links to it."""
        cap = (DATA / "ipaws-cancel-5e6dd9de.xml").read_bytes()
        inline = cap.split(b"?>", 1)[1]
        feed = (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>one</id><content '
                b'type="text/xml">' + inline + b'</content></entry><entry><id>two</id><link '
                b'type="application/cap+xml" href="http://127.0.0.1/x.xml"/></entry></feed>')
        first, second = read_cap_feed(feed)
        assert first.alert is not None and first.alert.msg_type == "Cancel"
        assert second.alert is None and second.link == "http://127.0.0.1/x.xml"

    def test_feeds_config_keeps_named_feeds(self) -> None:
        """`[feeds.<name>]` tables become sources next to `rules`."""
        settings = FeedsSettings.model_validate(
            {"rules": {"default": "propose"}, "county": {"url": "http://127.0.0.1/f.atom"}}
        )
        assert settings.sources["county"].url == "http://127.0.0.1/f.atom"
        assert settings.rules.default is Action.PROPOSE
