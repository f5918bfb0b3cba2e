"""The Clery records as values: what is kept about each alert, test or drill, and the year's
report of them (written out by `csv` and `html`).

A record is assembled (in `build`) from what the store already keeps: the alert row (who
chose the audience and content, when sending began and ended), its `clery` document (who
confirmed the emergency, any delay and its reason, the drill's description), every content
version, the delivery outcomes per channel and the receipts' times, the scheduled run that
fired it, and the follow-up notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.domain import AlertKind, AlertState, Mode
from dispatcher.store.pauses import Pause

MAX_NOTE = 4000
# The order of urgency: device channels first, then SMS and push, then voice, then email.
CHANNEL_ORDER = ("siren", "signage", "pa", "desktop", "webhook", "sms", "push", "broadcast",
                 "voice", "email")


class Category(StrEnum):
    """How the report files an alert."""

    EMERGENCY_NOTIFICATION = "emergency_notification"
    TIMELY_WARNING = "timely_warning"
    ADVISORY = "advisory"
    ALL_CLEAR = "all_clear"
    TEST = "test"

    @property
    def heading(self) -> str:
        """The section heading."""
        return _TITLES[self]


_TITLES = {
    Category.EMERGENCY_NOTIFICATION: "Emergency notifications",
    Category.TIMELY_WARNING: "Timely warnings",
    Category.TEST: "Tests and drills",
    Category.ALL_CLEAR: "All-clears",
    Category.ADVISORY: "Advisories",
}


def category_of(kind: AlertKind, mode: Mode) -> Category:
    """Drills and tests are tests whatever their kind; real emergencies never are."""
    if mode is not Mode.LIVE:
        return Category.TEST
    return {
        AlertKind.EMERGENCY: Category.EMERGENCY_NOTIFICATION,
        AlertKind.TIMELY_WARNING: Category.TIMELY_WARNING,
        AlertKind.ADVISORY: Category.ADVISORY,
        AlertKind.ALL_CLEAR: Category.ALL_CLEAR,
    }[kind]


@dataclass(frozen=True, slots=True)
class Note:
    """A follow-up note added after an alert or a drill."""

    id: int
    alert_id: str
    at: int
    author: str
    text: str

    def as_json(self, zone: ZoneInfo) -> dict[str, Any]:
        """The note for the API."""
        return {"id": self.id, "alert_id": self.alert_id, "at": iso(self.at, zone),
                "at_ms": self.at, "author": self.author, "text": self.text}


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an alert's content."""

    version: int
    created_at: int
    created_by: str
    summary: str


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a delivery-over-time line: ms after sending began, deliveries so far."""

    after_ms: int
    count: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per channel, how many deliveries had reached the provider or device over time, and how
    many were confirmed delivered (SMS callbacks, device acks)."""

    reached: dict[str, tuple[Point, ...]] = field(default_factory=dict)
    confirmed: dict[str, tuple[Point, ...]] = field(default_factory=dict)
    span_ms: int = 0


@dataclass(frozen=True, slots=True)
class DestinationResult:
    """The receipt of one broadcast target or webhook subscriber, by its configured name."""

    channel: str
    name: str
    state: str
    attempts: int
    detail: str
    at: int


@dataclass(frozen=True, slots=True)
class CleryRecord:
    """Everything the Clery Act asks to keep about one alert, test or drill."""

    alert_id: str
    category: Category
    kind: AlertKind
    mode: Mode
    state: AlertState
    created_at: int
    confirmed_by_name: str | None
    confirmed_by_title: str | None
    confirmed_at: int | None
    chosen_by: str
    approved_by: str | None
    sending_at: int | None
    done_at: int | None
    delay_reason: str | None
    versions: tuple[Version, ...]
    audience: str
    zones: tuple[str, ...]
    audience_counts: dict[str, Any]
    deliveries: dict[str, dict[str, int]]
    references_id: str | None
    notes: tuple[Note, ...]
    timeline: Timeline
    drill_description: str | None = None
    announced: bool | None = None
    procedures_publicized: bool | None = None
    scheduled_drill: str | None = None
    scheduled_for: int | None = None
    responses: dict[str, Any] | None = None
    """Answers to the alert's question: counts and time to 50 / 90 % answered."""
    pauses: tuple[Pause, ...] = ()
    """When a channel of it waited behind a more urgent alert (a drill behind a live one)."""
    destinations: tuple[DestinationResult, ...] = ()
    """One receipt per campus account (broadcast target) and system (webhook subscriber)."""

    @property
    def confirmation_to_sending_s(self) -> float | None:
        """Seconds from confirmation to the first send, when both happened."""
        if self.confirmed_at is None or self.sending_at is None:
            return None
        return round((self.sending_at - self.confirmed_at) / 1000, 3)

    @property
    def started_at(self) -> int:
        """When the alert or drill started: sending began, or it was stored."""
        return self.sending_at if self.sending_at is not None else self.created_at

    @property
    def is_test(self) -> bool:
        """A drill or a technical test."""
        return self.category is Category.TEST

    def qualifies(self, modes: Iterable[Mode]) -> bool:
        """Counts as the yearly test of the emergency procedures: a test of a qualifying mode
        that was not withdrawn and that began sending."""
        return (
            self.is_test
            and self.mode in set(modes)
            and self.state is not AlertState.CANCELLED
            and self.sending_at is not None
        )

    def as_json(self, zone: ZoneInfo) -> dict[str, Any]:
        """The record for the API and the JSON report."""
        doc: dict[str, Any] = {
            "alert_id": self.alert_id,
            "category": self.category.value,
            "kind": self.kind.value,
            "mode": self.mode.value,
            "state": self.state.value,
            "created_at": iso(self.created_at, zone),
            "confirmed_by": (
                {"name": self.confirmed_by_name, "title": self.confirmed_by_title}
                if self.confirmed_by_name else None
            ),
            "confirmed_at": iso(self.confirmed_at, zone),
            "audience_and_content_chosen_by": self.chosen_by,
            "approved_by": self.approved_by,
            "sending_began_at": iso(self.sending_at, zone),
            "confirmation_to_sending_s": self.confirmation_to_sending_s,
            "delay_reason": self.delay_reason,
            "ended_at": iso(self.done_at, zone),
            "content_versions": [
                {"version": v.version, "created_at": iso(v.created_at, zone),
                 "created_by": v.created_by, "content": v.summary}
                for v in self.versions
            ],
            "audience": {"expression": self.audience, "zones": list(self.zones),
                         "counts": self.audience_counts},
            "deliveries": self.deliveries,
            "references": self.references_id,
            "follow_up_notes": [n.as_json(zone) for n in self.notes],
            "delivery_timeline": {
                "span_ms": self.timeline.span_ms,
                "reached": {k: [[p.after_ms, p.count] for p in v]
                            for k, v in self.timeline.reached.items()},
                "confirmed": {k: [[p.after_ms, p.count] for p in v]
                              for k, v in self.timeline.confirmed.items()},
            },
        }
        if self.responses is not None:
            doc["responses"] = self.responses
        if self.destinations:
            doc["destinations"] = [
                {"channel": d.channel, "name": d.name, "state": d.state,
                 "attempts": d.attempts, "detail": d.detail, "at": iso(d.at, zone)}
                for d in self.destinations
            ]
        if self.pauses:
            doc["paused"] = [
                {"channel": p.channel.value, "behind": p.behind_alert_id,
                 "from": iso(p.started_at, zone), "until": iso(p.ended_at, zone),
                 "seconds": round(p.seconds(self.done_at or p.started_at), 3)}
                for p in self.pauses
            ]
        if self.is_test:
            doc["drill"] = {
                "description": self.drill_description,
                "date": local_date(self.started_at, zone),
                "start": iso(self.started_at, zone),
                "end": iso(self.done_at, zone),
                "announced": self.announced,
                "procedures_publicized": self.procedures_publicized,
                "scheduled_drill": self.scheduled_drill,
                "scheduled_for": iso(self.scheduled_for, zone),
                "paused_s": round(self.paused_s, 3),
            }
        return doc

    @property
    def paused_s(self) -> float:
        """Seconds some channel of it waited behind a more urgent alert, channels overlapping
        counted once."""
        spans = sorted((p.started_at, p.ended_at or self.done_at or p.started_at)
                       for p in self.pauses)
        total, end = 0, 0
        for start, stop in spans:
            start = max(start, end)
            if stop > start:
                total += stop - start
                end = stop
        return total / 1000


@dataclass(frozen=True, slots=True)
class ReportWarning:
    """Something an auditor would ask about, with the alert it concerns if any."""

    code: str
    message: str
    alert_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The warning for the API."""
        return {"code": self.code, "message": self.message, "alert_id": self.alert_id}


@dataclass(frozen=True, slots=True)
class Unrun:
    """A scheduled occurrence of a drill that did not send (skipped, refused, held)."""

    drill: str
    scheduled_for: int
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class CleryReport:
    """The calendar year's notifications and tests, ready for the Annual Security Report."""

    year: int
    institution: str
    zone: ZoneInfo
    generated_at: int
    records: tuple[CleryRecord, ...]
    unrun: tuple[Unrun, ...]
    warnings: tuple[ReportWarning, ...]
    qualifying_modes: tuple[Mode, ...]

    def of(self, category: Category) -> list[CleryRecord]:
        """The records of one category, oldest first."""
        return [r for r in self.records if r.category is category]

    def summary(self) -> dict[str, int]:
        """Counts per category and of qualifying tests."""
        tests = [r for r in self.records if r.qualifies(self.qualifying_modes)]
        return {
            **{c.value: len(self.of(c)) for c in Category},
            "qualifying_tests": len(tests),
            "tests_with_procedures_publicized": sum(bool(r.procedures_publicized)
                                                    for r in tests),
            "scheduled_drills_not_run": len(self.unrun),
        }

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON document."""
        return {
            "year": self.year,
            "institution": self.institution,
            "timezone": self.zone.key,
            "generated_at": iso(self.generated_at, self.zone),
            "summary": self.summary(),
            "warnings": [w.as_json() for w in self.warnings],
            "records": [r.as_json(self.zone) for r in self.records],
            "scheduled_drills_not_run": [
                {"drill": u.drill, "scheduled_for": iso(u.scheduled_for, self.zone),
                 "status": u.status, "detail": u.detail}
                for u in self.unrun
            ],
        }



def iso(ms: int | None, zone: ZoneInfo) -> str | None:
    """A time in ms as ISO 8601 in the zone, to the second; None stays None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=zone).isoformat(timespec="seconds")


def local_date(ms: int, zone: ZoneInfo) -> str:
    """The calendar date of a time in ms, in the zone."""
    return datetime.fromtimestamp(ms / 1000, tz=zone).date().isoformat()


def in_channel_order(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    """Items keyed by channel kind, device channels first; unknown kinds last by name."""
    rank = {c: i for i, c in enumerate(CHANNEL_ORDER)}
    return sorted(mapping.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0]))


def note_text(value: Any) -> str:
    """A follow-up note's text from a request body; raises ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("text: a non-empty string")
    text = value.strip()
    if len(text) > MAX_NOTE:
        raise ValueError(f"text: at most {MAX_NOTE} characters")
    return text
