"""The public snapshot: what is shown, what is never shown, and when its ETag changes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import AlertKind, AlertState, ChannelKind, Message, Mode
from dispatcher.public.page import choose_language, render_page
from dispatcher.public.snapshot import (
    PublicState,
    Snapshot,
    Supersession,
    build_snapshot,
    select,
)
from dispatcher.store.alerts import AlertRecord

NOW = 1_790_000_000_000
MINUTE = 60_000
UTC = ZoneInfo("UTC")
SECRET_AUDIENCE = "segment:residence-life and not role:faculty"


def record(alert_id: str, **changes: Any) -> AlertRecord:
    """A stored alert as the store returns it, with an audience nobody outside may see."""
    request: dict[str, Any] = {
        "kind": changes.pop("kind", "emergency"),
        "mode": changes.pop("mode", "live"),
        "text": changes.pop("text", "Gas leak at the Chemistry Building. Evacuate now."),
        "audience": SECRET_AUDIENCE,
        "zones": ["zone-chemistry"],
        **changes.pop("request", {}),
    }
    req = AlertRequest.model_validate(request)
    fields: dict[str, Any] = {
        "id": alert_id,
        "kind": req.kind,
        "mode": req.mode,
        "state": AlertState.DISPATCHING,
        "audience": req.audience,
        "zones": ("zone-chemistry",),
        "exclude_zones": (),
        "channels": (ChannelKind.SMS, ChannelKind.EMAIL),
        "content_version": 1,
        "references_id": req.references,
        "created_by": "dispatcher-jane",
        "created_at": NOW - 10 * MINUTE,
        "expires_at": NOW + 50 * MINUTE,
        "request": req,
        "rendered": {ChannelKind.SMS: {"en": Message(text="UNIV ALERT: +15558675309")}},
        "audience_counts": {"total": 4321, "by_channel": {"sms": 4000}},
        "clery": {"chosen_by": "dispatcher-jane"},
    }
    fields.update(changes)
    return AlertRecord(**fields)


def snapshot_of(
    records: list[AlertRecord], supersessions: Sequence[Supersession] = (), now: int = NOW
) -> Snapshot:
    state = select(records, supersessions, now)
    pages = {lang: render_page(state, lang, institution="Example University", zone=UTC)
             for lang in ("en", "es")}
    return build_snapshot(state, institution="Example University",
                          page_url="https://alerts.example.edu/public/", pages=pages)


def feed(snapshot: Snapshot) -> dict[str, Any]:
    return json.loads(snapshot.feed.body)


class TestETag:
    """The ETag is a function of the content: same content, same tag; new content, new tag."""

    def test_the_same_alerts_give_the_same_etag_and_bytes(self) -> None:
        first = snapshot_of([record("a1")])
        second = snapshot_of([record("a1")])
        assert first.feed.etag == second.feed.etag
        assert first.feed.body == second.feed.body
        assert first.pages["en"].etag == second.pages["en"].etag

    def test_time_passing_without_an_expiry_keeps_the_etag(self) -> None:
        early = snapshot_of([record("a1")], now=NOW)
        later = snapshot_of([record("a1")], now=NOW + 20 * MINUTE)
        assert early.feed.etag == later.feed.etag
        assert early.pages["es"].etag == later.pages["es"].etag

    def test_changed_text_new_alert_or_cancel_change_the_etag(self) -> None:
        base = snapshot_of([record("a1")]).feed.etag
        reworded = snapshot_of([record("a1", text="Gas leak at Chemistry. Leave now.")])
        added = snapshot_of([record("a2", created_at=NOW - MINUTE), record("a1")])
        cancelled = snapshot_of([record("a1", state=AlertState.CANCELLED)])
        tags = {base, reworded.feed.etag, added.feed.etag, cancelled.feed.etag}
        assert len(tags) == 4

    def test_the_etag_is_a_strong_validator(self) -> None:
        tag = snapshot_of([record("a1")]).feed.etag
        assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")


class TestSelection:
    """Which stored alerts the public sees."""

    def test_expired_alerts_drop_out(self) -> None:
        gone = record("old", created_at=NOW - 90 * MINUTE, expires_at=NOW - MINUTE)
        state = select([record("a1"), gone], [], NOW)
        assert [a.id for a in state.active] == ["a1"]
        assert state.valid_until_ms == NOW + 50 * MINUTE
        later = select([record("a1"), gone], [], NOW + 50 * MINUTE)
        assert later.active == () and later.status == "none"

    def test_an_update_replaces_the_alert_it_updates(self) -> None:
        first = record("a1")
        update = record("a2", created_at=NOW - MINUTE, request={"references": "a1"},
                        text="Gas leak at the Chemistry Building. Stay away from Lot C.")
        links = [Supersession("a2", "a1", AlertKind.EMERGENCY, Mode.LIVE, NOW - MINUTE)]
        state = select([update, first], links, NOW)
        assert [(a.id, a.updates) for a in state.active] == [("a2", "a1")]

    def test_an_all_clear_ends_the_alert_and_is_shown_as_the_latest(self) -> None:
        clear = record("c1", kind="all_clear", created_at=NOW - MINUTE,
                       request={"references": "a1"},
                       text="All clear at the Chemistry Building. Resume normal activities.")
        links = [Supersession("c1", "a1", AlertKind.ALL_CLEAR, Mode.LIVE, NOW - MINUTE)]
        state = select([clear, record("a1")], links, NOW)
        assert state.active == ()
        assert state.all_clear is not None and state.all_clear.id == "c1"
        assert state.status == "all_clear"

    def test_a_campus_all_clear_ends_earlier_alerts_of_its_own_mode_only(self) -> None:
        live = record("a1")
        drill = record("d1", mode="drill", created_at=NOW - 9 * MINUTE)
        clear = record("c1", kind="all_clear", created_at=NOW - 5 * MINUTE,
                       text="All clear. Resume normal activities.")
        later = record("a3", created_at=NOW - MINUTE)
        links = [Supersession("c1", None, AlertKind.ALL_CLEAR, Mode.LIVE, NOW - 5 * MINUTE)]
        state = select([later, clear, drill, live], links, NOW)
        assert [a.id for a in state.active] == ["a3", "d1"]
        # A new alert after the all clear: the old all clear no longer describes the campus.
        assert state.all_clear is None

    def test_cancelled_alerts_are_not_shown(self) -> None:
        state = select([record("a1", state=AlertState.CANCELLED)], [], NOW)
        assert state.status == "none"

    def test_emergencies_come_before_warnings_and_live_before_drills(self) -> None:
        warning = record("w1", kind="timely_warning", created_at=NOW - MINUTE)
        drill = record("d1", mode="drill", created_at=NOW - 2 * MINUTE)
        live = record("a1", created_at=NOW - 3 * MINUTE)
        state = select([warning, drill, live], [], NOW)
        assert [a.id for a in state.active] == ["a1", "d1", "w1"]


class TestPublicContent:
    """Only public words leave the service; drills are always marked."""

    def test_no_audience_recipients_counts_or_sender_in_the_json(self) -> None:
        snapshot = snapshot_of([record("a1")])
        body = snapshot.feed.body.decode()
        document = json.loads(body)
        assert set(document) == {"institution", "page", "status", "alerts", "all_clear"}
        assert set(document["alerts"][0]) == {
            "id", "kind", "severity", "mode", "drill", "headline", "text", "instruction",
            "language", "translations", "sent", "expires", "updates",
        }
        for secret in ("residence-life", "faculty", "zone-chemistry", "dispatcher-jane", "4321",
                       "4000", "+1555", "sms", "email", "audience"):
            assert secret not in body, secret
            assert secret not in snapshot.pages["en"].body.decode(), secret

    def test_drills_are_marked_as_drills_in_json_and_page(self) -> None:
        snapshot = snapshot_of([record("d1", mode="drill",
                                       text="Drill: evacuate the Chemistry Building now.")])
        alert = feed(snapshot)["alerts"][0]
        assert alert["drill"] is True and alert["mode"] == "drill"
        page = snapshot.pages["en"].body.decode()
        assert "DRILL: this is an exercise, not a real emergency." in page
        assert "SIMULACRO" in snapshot.pages["es"].body.decode()
        live = feed(snapshot_of([record("a1")]))["alerts"][0]
        assert live["drill"] is False

    def test_translations_are_carried_and_used_by_the_spanish_page(self) -> None:
        spanish = {"es": {"text": "Fuga de gas en el edificio de Química. Evacúe ahora.",
                          "instruction": "Aléjese del edificio."}}
        snapshot = snapshot_of([record("a1", request={"translations": spanish})])
        alert = feed(snapshot)["alerts"][0]
        assert alert["translations"]["es"]["text"].startswith("Fuga de gas")
        page = snapshot.pages["es"].body.decode()
        assert "Fuga de gas en el edificio de Química" in page
        assert '<html lang="es">' in page and "Qué hacer" in page

    def test_the_page_escapes_what_an_alert_says(self) -> None:
        hostile = record("a1", text="<script>alert(1)</script> Evacuate the building now.")
        page = snapshot_of([hostile]).pages["en"].body.decode()
        assert "<script>" not in page and "&lt;script&gt;" in page

    def test_no_alert_says_so(self) -> None:
        snapshot = snapshot_of([])
        assert feed(snapshot) == {
            "institution": "Example University",
            "page": "https://alerts.example.edu/public/",
            "status": "none",
            "alerts": [],
            "all_clear": None,
        }
        assert "No active alerts" in snapshot.pages["en"].body.decode()
        assert "No hay alertas activas" in snapshot.pages["es"].body.decode()

    def test_an_empty_state_is_none(self) -> None:
        assert PublicState((), None).status == "none"


class TestLanguage:
    """?lang= wins, then the best Accept-Language, then English."""

    def test_choices(self) -> None:
        assert choose_language("es", "en") == "es"
        assert choose_language(None, "es-MX,es;q=0.9,en;q=0.8") == "es"
        assert choose_language(None, "fr, en;q=0.5, es;q=0.7") == "es"
        assert choose_language(None, "fr") == "en"
        assert choose_language("de", None) == "en"
        assert choose_language(None, "en-US,es;q=0.1") == "en"
