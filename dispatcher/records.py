"""Clery records: every alert's decisions on file, the yearly report, follow-up notes, retention.

A record is assembled from what the store already keeps: the alert row (who chose the audience
and content, when sending began and ended), its `clery` document (who confirmed the emergency,
any delay and its reason, the drill's description), every content version, the delivery
outcomes per channel and the receipts' times, the scheduled run that fired it, and the
follow-up notes. The yearly report lists the calendar year's emergency notifications, timely
warnings and tests (in the institution's time zone) as JSON, CSV, or a self-contained HTML page
with a delivery-over-time chart per alert, and warns about what an auditor would ask for.

Retention: `purge` removes alerts older than `store.retention_days` with everything that hangs
off them. The audit log is never purged: each entry hashes the one before it, so removing any
entry would break `clarion audit verify` from there on. Its entries carry decisions (who, what
kind, which audience), not message text or contact details, and each purge appends an entry of
its own naming the alerts it removed, so the chain also shows when and what was purged.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dispatcher.domain import AlertKind, AlertState, Mode
from dispatcher.drill_schedule import DrillSettings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database
from dispatcher.store.ledger import DeliveryLedger

log = structlog.get_logger("clarion.records")

# Confirmation to sending slower than this, with no reason on file, is worth a warning.
DELAY_WARNING_S = 300
# Points per delivery-over-time line: enough for a smooth curve, few enough for a small page.
TIMELINE_BUCKETS = 60
MAX_NOTE = 4000
REACHED = ("accepted", "delivered")
CHANNEL_ORDER = ("siren", "signage", "pa", "desktop", "sms", "push", "email")
CHANNEL_COLORS = {
    "siren": "#b3261e",
    "signage": "#7b5800",
    "pa": "#6a3d9a",
    "desktop": "#8a4b08",
    "sms": "#1f6feb",
    "push": "#0f7b6c",
    "email": "#5f6368",
}


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
        return {"id": self.id, "alert_id": self.alert_id, "at": _iso(self.at, zone),
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
            "created_at": _iso(self.created_at, zone),
            "confirmed_by": (
                {"name": self.confirmed_by_name, "title": self.confirmed_by_title}
                if self.confirmed_by_name else None
            ),
            "confirmed_at": _iso(self.confirmed_at, zone),
            "audience_and_content_chosen_by": self.chosen_by,
            "approved_by": self.approved_by,
            "sending_began_at": _iso(self.sending_at, zone),
            "confirmation_to_sending_s": self.confirmation_to_sending_s,
            "delay_reason": self.delay_reason,
            "ended_at": _iso(self.done_at, zone),
            "content_versions": [
                {"version": v.version, "created_at": _iso(v.created_at, zone),
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
        if self.is_test:
            doc["drill"] = {
                "description": self.drill_description,
                "date": _date(self.started_at, zone),
                "start": _iso(self.started_at, zone),
                "end": _iso(self.done_at, zone),
                "announced": self.announced,
                "procedures_publicized": self.procedures_publicized,
                "scheduled_drill": self.scheduled_drill,
                "scheduled_for": _iso(self.scheduled_for, zone),
            }
        return doc


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
            "generated_at": _iso(self.generated_at, self.zone),
            "summary": self.summary(),
            "warnings": [w.as_json() for w in self.warnings],
            "records": [r.as_json(self.zone) for r in self.records],
            "scheduled_drills_not_run": [
                {"drill": u.drill, "scheduled_for": _iso(u.scheduled_for, self.zone),
                 "status": u.status, "detail": u.detail}
                for u in self.unrun
            ],
        }

    def to_csv(self) -> str:
        """One row per alert, then the scheduled drills that did not run and the warnings."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.records:
            writer.writerow(_csv_row(r, self.zone, self.qualifying_modes))
        blank = dict.fromkeys(CSV_COLUMNS, "")
        for u in self.unrun:
            writer.writerow({**blank, "record": "scheduled_drill_not_run", "scheduled_drill":
                             u.drill, "scheduled_for": _iso(u.scheduled_for, self.zone),
                             "state": u.status, "message": u.detail}.values())
        for w in self.warnings:
            writer.writerow({**blank, "record": "warning", "alert_id": w.alert_id or "",
                             "category": w.code, "message": w.message}.values())
        return out.getvalue()

    def to_html(self) -> str:
        """A readable, self-contained page: no scripts, fonts or images from elsewhere."""
        return render_html(self)


CSV_COLUMNS = (
    "record", "alert_id", "category", "kind", "mode", "state", "created_at",
    "confirmed_by_name", "confirmed_by_title", "confirmed_at",
    "audience_and_content_chosen_by", "approved_by", "sending_began_at",
    "confirmation_to_sending_s", "delay_reason", "content_versions", "content",
    "audience", "zones", "audience_total", "audience_by_channel", "delivery_results",
    "references", "drill_description", "drill_date", "drill_start", "drill_end",
    "announced", "procedures_publicized", "qualifying_test", "scheduled_drill",
    "scheduled_for", "follow_up_notes", "message",
)


def _csv_row(r: CleryRecord, zone: ZoneInfo, modes: Sequence[Mode]) -> list[str]:
    def yes(value: bool | None) -> str:
        return "" if value is None else ("yes" if value else "no")

    test = r.is_test
    values = {
        "record": "alert",
        "alert_id": r.alert_id,
        "category": r.category.value,
        "kind": r.kind.value,
        "mode": r.mode.value,
        "state": r.state.value,
        "created_at": _iso(r.created_at, zone) or "",
        "confirmed_by_name": r.confirmed_by_name or "",
        "confirmed_by_title": r.confirmed_by_title or "",
        "confirmed_at": _iso(r.confirmed_at, zone) or "",
        "audience_and_content_chosen_by": r.chosen_by,
        "approved_by": r.approved_by or "",
        "sending_began_at": _iso(r.sending_at, zone) or "",
        "confirmation_to_sending_s": _num(r.confirmation_to_sending_s),
        "delay_reason": r.delay_reason or "",
        "content_versions": str(len(r.versions)),
        "content": " || ".join(
            f"v{v.version} {_iso(v.created_at, zone)} by {v.created_by}: {v.summary}"
            for v in r.versions
        ),
        "audience": r.audience,
        "zones": " ".join(r.zones),
        "audience_total": str(r.audience_counts.get("total", "")),
        "audience_by_channel": _pairs(r.audience_counts.get("by_channel") or {}),
        "delivery_results": "; ".join(
            f"{ch}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
            for ch, counts in _ordered(r.deliveries)
        ),
        "references": r.references_id or "",
        "drill_description": (r.drill_description or "") if test else "",
        "drill_date": _date(r.started_at, zone) if test else "",
        "drill_start": (_iso(r.started_at, zone) or "") if test else "",
        "drill_end": (_iso(r.done_at, zone) or "") if test else "",
        "announced": yes(r.announced) if test else "",
        "procedures_publicized": yes(r.procedures_publicized) if test else "",
        "qualifying_test": yes(r.qualifies(modes)) if test else "",
        "scheduled_drill": r.scheduled_drill or "",
        "scheduled_for": _iso(r.scheduled_for, zone) or "",
        "follow_up_notes": " || ".join(
            f"{_iso(n.at, zone)} {n.author}: {n.text}" for n in r.notes
        ),
        "message": "",
    }
    return [values[c] for c in CSV_COLUMNS]


def _iso(ms: int | None, zone: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=zone).isoformat(timespec="seconds")


def _date(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone).date().isoformat()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _pairs(mapping: dict[str, Any]) -> str:
    return "; ".join(f"{k} {v}" for k, v in mapping.items())


def _ordered(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    rank = {c: i for i, c in enumerate(CHANNEL_ORDER)}
    return sorted(mapping.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0]))


def _summary(request: dict[str, Any]) -> str:
    """A content version in one line: its text, or the template and its fields."""
    text = request.get("text")
    if text:
        headline = request.get("headline")
        return f"{headline}: {text}" if headline else str(text)
    fields = ", ".join(f"{k}={v}" for k, v in sorted((request.get("fields") or {}).items()))
    return f"template {request.get('template')} ({fields})"


def year_bounds(year: int, zone: ZoneInfo) -> tuple[int, int]:
    """The calendar year in the institution's time zone, as [start, end) in ms."""
    start = datetime(year, 1, 1, tzinfo=zone)
    end = datetime(year + 1, 1, 1, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


class CleryRecords:
    """Builds records and reports from the store, and keeps the follow-up notes."""

    def __init__(
        self,
        db: Database,
        alerts: AlertStore,
        ledger: DeliveryLedger,
        audit: AuditLog,
        drills: DrillSettings,
        *,
        institution: str = "",
    ) -> None:
        self._db = db
        self._alerts = alerts
        self._ledger = ledger
        self._audit = audit
        self.drills = drills
        self.zone = drills.zone()
        self.institution = institution

    # -- notes ---------------------------------------------------------------------------------

    async def add_note(self, alert_id: str, *, author: str, text: str, now_ms: int) -> Note:
        """Append a follow-up note, audited with a hash of its text in the same transaction."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO alert_notes (alert_id, at, author, text) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (alert_id, now_ms, author, text),
            )
            note_id = int(rows[0]["id"])
            # The hash, not the text: the note is purged with its alert, the audit entry stays.
            await self._audit.append(
                tx, at=now_ms, actor=author, action="alert.note_added", alert_id=alert_id,
                detail={"note_id": note_id, "sha256": digest, "chars": len(text)},
            )
        log.info("alert.note_added", alert_id=alert_id, note_id=note_id, actor=author)
        return Note(note_id, alert_id, now_ms, author, text)

    async def notes(self, alert_id: str) -> list[Note]:
        """The alert's follow-up notes, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, alert_id, at, author, text FROM alert_notes WHERE alert_id = ?"
            " ORDER BY id",
            (alert_id,),
        )
        return [Note(int(r["id"]), r["alert_id"], int(r["at"]), r["author"], r["text"])
                for r in rows]

    # -- records -------------------------------------------------------------------------------

    async def record(self, alert_id: str) -> CleryRecord | None:
        """One alert's record, or None."""
        alert = await self._alerts.get(alert_id)
        return None if alert is None else await self._build(alert)

    async def report(self, year: int, *, now_ms: int) -> CleryReport:
        """The year's report, with its warnings."""
        start, end = year_bounds(year, self.zone)
        records = tuple([await self._build(a) for a in await self._alerts.in_year(start, end)])
        rows = await self._db.fetchall(
            "SELECT drill_name, scheduled_for, status, detail FROM drill_runs"
            " WHERE scheduled_for >= ? AND scheduled_for < ? AND status IN (?, ?, ?)"
            " ORDER BY scheduled_for",
            (start, end, "skipped", "failed", "held"),
        )
        unrun = tuple(
            Unrun(r["drill_name"], int(r["scheduled_for"]), r["status"], r["detail"])
            for r in rows
        )
        modes = tuple(self.drills.qualifying_modes)
        warnings = _warnings(year, records, unrun, modes, year_over=now_ms >= end)
        return CleryReport(year, self.institution, self.zone, now_ms, records, unrun,
                           tuple(warnings), modes)

    async def _build(self, alert: AlertRecord) -> CleryRecord:
        clery = alert.clery
        confirmed = clery.get("confirmed_by") or {}
        drill = clery.get("drill") or {}
        versions = await self._alerts.versions(alert.id)
        run = await self._db.fetchone(
            "SELECT drill_name, scheduled_for, source FROM drill_runs WHERE alert_id = ?"
            " ORDER BY id LIMIT 1",
            (alert.id,),
        )
        scheduled = run is not None and run["source"] == "schedule"
        counts = await self._ledger.counts(alert.id)
        return CleryRecord(
            alert_id=alert.id,
            category=category_of(alert.kind, alert.mode),
            kind=alert.kind,
            mode=alert.mode,
            state=alert.state,
            created_at=alert.created_at,
            confirmed_by_name=confirmed.get("name"),
            confirmed_by_title=confirmed.get("title"),
            confirmed_at=clery.get("confirmed_at") or alert.confirmed_at,
            chosen_by=str(clery.get("chosen_by") or alert.created_by),
            approved_by=clery.get("approved_by"),
            sending_at=alert.sending_at,
            done_at=alert.done_at,
            delay_reason=clery.get("delay_reason"),
            versions=tuple(
                Version(v["version"], v["created_at"], v["created_by"], _summary(v["request"]))
                for v in versions
            ),
            audience=alert.audience,
            zones=alert.zones,
            audience_counts=alert.audience_counts,
            deliveries=dict(_ordered(counts)),
            references_id=alert.references_id,
            notes=tuple(await self.notes(alert.id)),
            timeline=await self._timeline(alert),
            drill_description=drill.get("description"),
            announced=drill.get("announced") if drill else None,
            procedures_publicized=drill.get("procedures_publicized") if drill else None,
            scheduled_drill=run["drill_name"] if scheduled and run is not None else None,
            scheduled_for=int(run["scheduled_for"]) if scheduled and run is not None else None,
        )

    async def _timeline(self, alert: AlertRecord) -> Timeline:
        """Deliveries reached and confirmed over time, bucketed in SQL (alerts can be large)."""
        marks = ", ".join("?" for _ in REACHED)
        bounds = await self._db.fetchone(
            f"SELECT MIN(at) AS lo, MAX(at) AS hi FROM receipts WHERE alert_id = ?"
            f" AND status IN ({marks})",
            (alert.id, *REACHED),
        )
        if bounds is None or bounds["lo"] is None:
            return Timeline()
        base = alert.sending_at if alert.sending_at is not None else int(bounds["lo"])
        base = min(base, int(bounds["lo"]))
        span = max(int(bounds["hi"]) - base, 1)
        bucket = max(math.ceil(span / TIMELINE_BUCKETS), 1)
        per_delivery = (
            "SELECT channel, delivery_id, MIN(at) AS reached_at,"
            " MIN(CASE WHEN status = 'delivered' THEN at END) AS confirmed_at"
            f" FROM receipts WHERE alert_id = ? AND status IN ({marks})"
            " GROUP BY channel, delivery_id"
        )
        series: dict[str, dict[str, tuple[Point, ...]]] = {}
        for column in ("reached_at", "confirmed_at"):
            rows = await self._db.fetchall(
                f"SELECT channel, ({column} - ?) / ? AS b, COUNT(*) AS n FROM ({per_delivery}) d"
                f" WHERE {column} IS NOT NULL GROUP BY channel, b ORDER BY channel, b",
                (base, bucket, alert.id, *REACHED),
            )
            by_channel: dict[str, list[tuple[int, int]]] = {}
            for r in rows:
                by_channel.setdefault(r["channel"], []).append((max(int(r["b"]), 0), int(r["n"])))
            series[column] = {ch: _cumulative(buckets, bucket, span)
                              for ch, buckets in by_channel.items()}
        return Timeline(series["reached_at"], series["confirmed_at"], span)


def _cumulative(buckets: list[tuple[int, int]], bucket_ms: int, span: int) -> tuple[Point, ...]:
    points = [Point(0, 0)]
    total = 0
    for index, n in sorted(buckets):
        total += n
        points.append(Point(min((index + 1) * bucket_ms, span), total))
    if points[-1].after_ms < span:
        points.append(Point(span, total))
    return tuple(points)


def _warnings(
    year: int,
    records: Sequence[CleryRecord],
    unrun: Sequence[Unrun],
    modes: Sequence[Mode],
    *,
    year_over: bool,
) -> list[ReportWarning]:
    found: list[ReportWarning] = []
    tests = [r for r in records if r.qualifies(modes)]
    so_far = "" if year_over else " yet"
    kinds = " or ".join(m.value for m in modes)
    if not tests:
        found.append(ReportWarning(
            "no_qualifying_test",
            f"No test of the emergency response and evacuation procedures in {year}{so_far}: "
            f"at least one is required each calendar year (a {kinds} that was sent; real "
            "emergencies do not count).",
        ))
    if not any(r.procedures_publicized for r in tests):
        found.append(ReportWarning(
            "no_publicized_test",
            f"No test in {year} {'had' if year_over else 'has had'} the emergency response "
            f"and evacuation procedures publicized with it{so_far}: at least one each "
            "calendar year must.",
        ))
    for r in records:
        if r.category is Category.EMERGENCY_NOTIFICATION and not r.confirmed_by_name:
            found.append(ReportWarning(
                "missing_confirmation",
                "Emergency notification without a record of who confirmed the emergency.",
                r.alert_id,
            ))
        delay = r.confirmation_to_sending_s
        if r.mode is Mode.LIVE and delay is not None and delay > DELAY_WARNING_S and not (
            r.delay_reason
        ):
            found.append(ReportWarning(
                "unexplained_delay",
                f"Sending began {delay / 60:.1f} min after confirmation with no delay reason "
                "on file.",
                r.alert_id,
            ))
        if r.is_test and not r.drill_description:
            found.append(ReportWarning(
                "test_without_description",
                "Test or drill without a description of the exercise (send `drill` details "
                "with it, or add a follow-up note).",
                r.alert_id,
            ))
    if unrun:
        found.append(ReportWarning(
            "scheduled_drills_not_run",
            f"{len(unrun)} scheduled drill occurrence(s) in {year} did not run (listed).",
        ))
    return found


# -- retention ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge removed (or, dry, would remove)."""

    cutoff_ms: int
    retention_days: int
    dry_run: bool
    alert_ids: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """For the CLI and the log."""
        return {
            "cutoff": _iso(self.cutoff_ms, ZoneInfo("UTC")),
            "retention_days": self.retention_days,
            "dry_run": self.dry_run,
            "alerts": len(self.alert_ids),
            **self.counts,
        }


PURGE_CHUNK = 200
PURGE_ACTOR = "retention"


async def purge(
    db: Database,
    audit: AuditLog,
    *,
    retention_days: int,
    now_ms: int,
    dry_run: bool = False,
    chunk: int = PURGE_CHUNK,
) -> PurgeResult:
    """Remove finished alerts created before the retention cutoff, with their versions,
    deliveries, receipts, notes and drill runs; never an audit entry.

    Each chunk is removed in one transaction together with a `records.purged` audit entry
    naming its alerts, so the chain records every purge and stays intact.
    """
    cutoff = now_ms - retention_days * 86_400_000
    totals = dict.fromkeys(("versions", "deliveries", "receipts", "notes", "drill_runs"), 0)
    purged: list[str] = []
    after = ""
    while True:
        rows = await db.fetchall(
            "SELECT id FROM alerts WHERE created_at < ? AND state != ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (cutoff, AlertState.DISPATCHING.value, after, chunk),
        )
        ids = [r["id"] for r in rows]
        if not ids:
            break
        after = ids[-1]
        counts = await (_count(db, ids) if dry_run else _delete(db, audit, ids, cutoff,
                                                               retention_days, now_ms))
        for key, n in counts.items():
            totals[key] += n
        purged.extend(ids)
    # Skipped occurrences have no alert: they go by their own time.
    if dry_run:
        stale = await db.fetchval(
            "SELECT COUNT(*) FROM drill_runs WHERE alert_id IS NULL AND scheduled_for < ?",
            (cutoff,),
        )
    else:
        stale = await db.execute(
            "DELETE FROM drill_runs WHERE alert_id IS NULL AND scheduled_for < ?", (cutoff,)
        )
    totals["drill_runs"] += int(stale or 0)
    result = PurgeResult(cutoff, retention_days, dry_run, tuple(purged), totals)
    event = "records.purge_planned" if dry_run else "records.purged"
    log.info(event, **result.as_json())
    return result


def _in(ids: Sequence[str]) -> str:
    return ",".join("?" for _ in ids)


async def _count(db: Database, ids: Sequence[str]) -> dict[str, int]:
    marks = _in(ids)
    queries = {
        "versions": f"SELECT COUNT(*) FROM alert_versions WHERE alert_id IN ({marks})",
        "deliveries": f"SELECT COUNT(*) FROM deliveries WHERE alert_id IN ({marks})",
        "receipts": f"SELECT COUNT(*) FROM receipts WHERE alert_id IN ({marks})",
        "notes": f"SELECT COUNT(*) FROM alert_notes WHERE alert_id IN ({marks})",
        "drill_runs": f"SELECT COUNT(*) FROM drill_runs WHERE alert_id IN ({marks})",
    }
    return {key: int(await db.fetchval(sql, ids) or 0) for key, sql in queries.items()}


async def _delete(
    db: Database,
    audit: AuditLog,
    ids: Sequence[str],
    cutoff: int,
    retention_days: int,
    now_ms: int,
) -> dict[str, int]:
    marks = _in(ids)
    params = list(ids)
    async with db.transaction() as tx:
        counts = {
            "receipts": await tx.execute(
                f"DELETE FROM receipts WHERE alert_id IN ({marks}) OR delivery_id IN"
                f" (SELECT id FROM deliveries WHERE alert_id IN ({marks}))",
                params + params,
            ),
            "deliveries": await tx.execute(
                f"DELETE FROM deliveries WHERE alert_id IN ({marks})", params
            ),
            "versions": await tx.execute(
                f"DELETE FROM alert_versions WHERE alert_id IN ({marks})", params
            ),
            "notes": await tx.execute(
                f"DELETE FROM alert_notes WHERE alert_id IN ({marks})", params
            ),
            "drill_runs": await tx.execute(
                f"DELETE FROM drill_runs WHERE alert_id IN ({marks})", params
            ),
        }
        await tx.execute(f"DELETE FROM alerts WHERE id IN ({marks})", params)
        await audit.append(
            tx, at=now_ms, actor=PURGE_ACTOR, action="records.purged",
            detail={"cutoff": cutoff, "retention_days": retention_days, "alerts": list(ids),
                    **counts},
        )
    return counts


# -- the HTML report ------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
max-width:980px;margin:2rem auto;padding:0 1.2rem}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.25rem;margin:2rem 0 .6rem;
border-bottom:2px solid #1b1b1b;padding-bottom:.2rem}h3{font-size:1.05rem;margin:0 0 .4rem}
.meta{color:#555;margin:0 0 1rem}.warn{background:#fff4e5;border-left:4px solid #b35c00;
padding:.6rem 1rem;margin:.4rem 0}.ok{background:#e8f5e9;border-left:4px solid #2e7d32;
padding:.6rem 1rem}table{border-collapse:collapse;width:100%;margin:.4rem 0 .8rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f3f3f3}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.card{border:1px solid #ccc;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0;
break-inside:avoid}.card dl{display:grid;grid-template-columns:14rem 1fr;gap:.15rem 1rem;
margin:.4rem 0}.card dt{color:#555}.card dd{margin:0}.tag{display:inline-block;
font-size:.8rem;padding:0 .4rem;border-radius:3px;background:#eee;margin-left:.4rem}
.tag.drill{background:#e3f2fd}.none{color:#777;font-style:italic}
svg{max-width:100%;height:auto}.legend span{margin-right:1rem;white-space:nowrap}
.swatch{display:inline-block;width:.9rem;height:.25rem;vertical-align:middle;
margin-right:.3rem}@media print{body{margin:0}.card{page-break-inside:avoid}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(ms: int | None, zone: ZoneInfo) -> str:
    if ms is None:
        return '<span class="none">not recorded</span>'
    moment = datetime.fromtimestamp(ms / 1000, tz=zone)
    return _e(moment.strftime("%Y-%m-%d %H:%M:%S %Z"))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return '<span class="none">not applicable</span>'
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def render_html(report: CleryReport) -> str:
    """The report as one HTML page with inline CSS and SVG charts."""
    zone = report.zone
    summary = report.summary()
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Clery Act notifications and tests, {report.year}</title>",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Emergency notifications, timely warnings and tests: {report.year}</h1>",
        f"<p class=\"meta\">{_e(report.institution)} · calendar year {report.year} "
        f"({_e(zone.key)}) · generated {_when(report.generated_at, zone)}</p>",
    ]
    if report.warnings:
        parts.append("<h2>Warnings</h2>")
        for w in report.warnings:
            ref = f" (alert {_e(w.alert_id)})" if w.alert_id else ""
            parts.append(f"<div class=\"warn\"><strong>{_e(w.code)}</strong>: "
                         f"{_e(w.message)}{ref}</div>")
    else:
        parts.append("<div class=\"ok\">A qualifying test with publicized procedures is on "
                     "file for this year; nothing else needs attention.</div>")
    parts.append("<h2>Summary</h2><table><tr><th>What</th><th class=\"n\">Count</th></tr>")
    labels = [
        (Category.EMERGENCY_NOTIFICATION.value, "Emergency notifications"),
        (Category.TIMELY_WARNING.value, "Timely warnings"),
        (Category.TEST.value, "Tests and drills"),
        ("qualifying_tests", "Tests that count toward the yearly requirement"),
        ("tests_with_procedures_publicized", "… with emergency procedures publicized"),
        (Category.ALL_CLEAR.value, "All-clears"),
        (Category.ADVISORY.value, "Advisories"),
        ("scheduled_drills_not_run", "Scheduled drill occurrences that did not run"),
    ]
    for key, label in labels:
        parts.append(f"<tr><td>{_e(label)}</td><td class=\"n\">{summary[key]}</td></tr>")
    parts.append("</table>")
    for category in (Category.EMERGENCY_NOTIFICATION, Category.TIMELY_WARNING, Category.TEST,
                     Category.ALL_CLEAR, Category.ADVISORY):
        records = report.of(category)
        if not records and category in (Category.ALL_CLEAR, Category.ADVISORY):
            continue
        parts.append(f"<h2>{_e(category.heading)}</h2>")
        if not records:
            parts.append("<p class=\"none\">None this year.</p>")
        for record in records:
            parts.append(_card(record, zone, report.qualifying_modes))
    if report.unrun:
        parts.append("<h2>Scheduled drills that did not run</h2><table><tr><th>Drill</th>"
                     "<th>Scheduled for</th><th>Outcome</th><th>Why</th></tr>")
        for u in report.unrun:
            parts.append(f"<tr><td>{_e(u.drill)}</td><td>{_when(u.scheduled_for, zone)}</td>"
                         f"<td>{_e(u.status)}</td><td>{_e(u.detail)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _card(r: CleryRecord, zone: ZoneInfo, modes: Sequence[Mode]) -> str:
    title = r.versions[-1].summary if r.versions else r.alert_id
    tag = f'<span class="tag drill">{_e(r.mode.value)}</span>' if r.is_test else ""
    rows: list[tuple[str, str]] = []
    if r.is_test:
        rows += [
            ("Description of the exercise", _e(r.drill_description) if r.drill_description
             else '<span class="none">not recorded</span>'),
            ("Date", _e(_date(r.started_at, zone))),
            ("Start", _when(r.started_at, zone)),
            ("End", _when(r.done_at, zone)),
            ("Announced", _yes(r.announced)),
            ("Emergency procedures publicized with it", _yes(r.procedures_publicized)),
            ("Counts toward the yearly test", _yes(r.qualifies(modes))),
        ]
        if r.scheduled_drill:
            rows.append(("Scheduled drill",
                         f"{_e(r.scheduled_drill)} (for {_when(r.scheduled_for, zone)})"))
    confirmed = (f"{_e(r.confirmed_by_name)}, {_e(r.confirmed_by_title)}"
                 if r.confirmed_by_name else '<span class="none">not recorded</span>')
    rows += [
        ("Alert", f"{_e(r.alert_id)} ({_e(r.kind.value)}, {_e(r.state.value)})"),
        ("Confirmed by", confirmed),
        ("Confirmed at", _when(r.confirmed_at, zone)),
        ("Audience and content chosen by", _e(r.chosen_by)),
    ]
    if r.approved_by:
        rows.append(("Approved by", _e(r.approved_by)))
    rows += [
        ("Sending began", _when(r.sending_at, zone)),
        ("Confirmation to sending", _duration(r.confirmation_to_sending_s)),
        ("Delay and its reason", _e(r.delay_reason) if r.delay_reason
         else '<span class="none">none recorded</span>'),
        ("Audience", f"{_e(r.audience)}"
         + (f" in zones {_e(', '.join(r.zones))}" if r.zones else "")
         + f" · {_e(r.audience_counts.get('total', 0))} recipients"),
    ]
    if r.references_id:
        rows.append(("Refers to alert", _e(r.references_id)))
    out = [f'<div class="card"><h3>{_e(title)}{tag}</h3><dl>']
    out += [f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows]
    out.append("</dl>")
    out.append("<table><tr><th>Content version</th><th>When</th><th>By</th><th>Content</th>"
               "</tr>")
    for v in r.versions:
        out.append(f"<tr><td>{v.version}</td><td>{_when(v.created_at, zone)}</td>"
                   f"<td>{_e(v.created_by)}</td><td>{_e(v.summary)}</td></tr>")
    out.append("</table>")
    out.append(_results_table(r))
    out.append(delivery_chart(r))
    if r.notes:
        out.append("<table><tr><th>Follow-up note</th><th>By</th><th>Note</th></tr>")
        for n in r.notes:
            out.append(f"<tr><td>{_when(n.at, zone)}</td><td>{_e(n.author)}</td>"
                       f"<td>{_e(n.text)}</td></tr>")
        out.append("</table>")
    elif r.is_test:
        out.append('<p class="none">No follow-up notes yet.</p>')
    out.append("</div>")
    return "\n".join(out)


def _yes(value: bool | None) -> str:
    if value is None:
        return '<span class="none">not recorded</span>'
    return "yes" if value else "no"


def _results_table(r: CleryRecord) -> str:
    if not r.deliveries:
        return '<p class="none">No deliveries.</p>'
    heads = ("total", "delivered", "accepted", "failed", "suppressed", "queued", "sending")
    out = ["<table><tr><th>Channel</th>"
           + "".join(f'<th class="n">{h}</th>' for h in heads) + "</tr>"]
    for channel, counts in r.deliveries.items():
        out.append(f"<tr><td>{_e(channel)}</td>"
                   + "".join(f'<td class="n">{counts.get(h, 0)}</td>' for h in heads) + "</tr>")
    out.append("</table>")
    return "".join(out)


def delivery_chart(r: CleryRecord, width: int = 640, height: int = 220) -> str:
    """Share of each channel's deliveries that reached the provider or device over time
    (solid) and that were confirmed delivered (dashed), as inline SVG."""
    timeline = r.timeline
    if not timeline.reached:
        return '<p class="none">No delivery receipts to chart.</p>'
    left, right, top, bottom = 48, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(timeline.span_ms, 1)

    def x(ms: int) -> float:
        return left + plot_w * ms / span

    def y(share: float) -> float:
        return top + plot_h * (1 - share)

    unit, divisor = ("min", 60_000) if span >= 180_000 else ("s", 1000)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="Deliveries over time per channel for alert {_e(r.alert_id)}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = y(share)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" '
                   'stroke="#e2e2e2"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end" '
                   f'fill="#555">{int(share * 100)}%</text>')
    for i in range(5):
        ms = span * i / 4
        xx = x(int(ms))
        out.append(f'<text x="{xx:.1f}" y="{height - bottom + 16}" font-size="11" '
                   f'text-anchor="middle" fill="#555">{ms / divisor:.1f}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="11" '
               f'text-anchor="middle" fill="#555">{unit} after sending began</text>')
    legend = []
    for channel, points in _ordered(timeline.reached):
        total = max(r.deliveries.get(channel, {}).get("total", 0), points[-1].count, 1)
        color = CHANNEL_COLORS.get(channel, "#333")
        out.append(_polyline(points, total, x, y, color, dashed=False))
        confirmed = timeline.confirmed.get(channel)
        if confirmed:
            out.append(_polyline(confirmed, total, x, y, color, dashed=True))
        legend.append(f'<span><i class="swatch" style="background:{color}"></i>'
                      f"{_e(channel)}: {points[-1].count} of {total} reached"
                      + (f", {confirmed[-1].count} confirmed" if confirmed else "")
                      + "</span>")
    out.append("</svg>")
    note = ('<div class="legend">' + "".join(legend) + "<br><small>Solid: reached the "
            "provider or device. Dashed: confirmed delivered (SMS status callbacks, device "
            "acknowledgements).</small></div>")
    return "".join(out) + note


def _polyline(points: Sequence[Point], total: int, x: Any, y: Any, color: str, *,
              dashed: bool) -> str:
    coords = " ".join(f"{x(p.after_ms):.1f},{y(min(p.count / total, 1.0)):.1f}"
                      for p in points)
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"'
            f"{dash}/>")


def note_text(value: Any) -> str:
    """A follow-up note's text from a request body; raises ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("text: a non-empty string")
    text = value.strip()
    if len(text) > MAX_NOTE:
        raise ValueError(f"text: at most {MAX_NOTE} characters")
    return text


def dump_json(report: CleryReport) -> str:
    """The JSON report as text."""
    return json.dumps(report.to_json(), indent=2)
