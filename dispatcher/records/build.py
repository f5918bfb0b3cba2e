"""Builds the Clery records and the yearly report from what the store keeps, with the
warnings an auditor would ask about."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import MAXYEAR, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from dispatcher.answers.responses import Responses
from dispatcher.domain import Mode
from dispatcher.observability import redact_text
from dispatcher.records.model import (
    Category,
    CleryRecord,
    CleryReport,
    DestinationResult,
    Note,
    Point,
    ReportWarning,
    Timeline,
    Unrun,
    Version,
    category_of,
    in_channel_order,
)
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database
from dispatcher.store.ledger import DeliveryLedger
from dispatcher.store.pauses import AlertPauses
from dispatcher.store.records import RecordStore, StoredNote

log = structlog.get_logger("clarion.records")

# Confirmation to sending slower than this, with no reason on file, is worth a warning.
DELAY_WARNING_S = 300
# Points per delivery-over-time line: enough for a smooth curve, few enough for a small page.
TIMELINE_BUCKETS = 60
# Broadcast targets and webhook subscribers listed per channel: more than a campus configures.
MAX_DESTINATIONS = 200


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
    start = int(datetime(year, 1, 1, tzinfo=zone).timestamp() * 1000)
    if year == MAXYEAR:
        # 10000-01-01 is past what datetime holds: the year ends a day after 31 December.
        last = datetime(year, 12, 31, tzinfo=zone)
        return start, int(last.timestamp() * 1000) + 86_400_000
    end = datetime(year + 1, 1, 1, tzinfo=zone)
    return start, int(end.timestamp() * 1000)


class DrillCalendar(Protocol):
    """What the records need of the drill settings: the institution's zone, and which modes
    count as the yearly test."""

    @property
    def qualifying_modes(self) -> Sequence[Mode]:
        """Modes that count as the yearly test of the emergency procedures."""
        ...

    def zone(self) -> ZoneInfo:
        """The institution's time zone."""
        ...


class CleryRecords:
    """Builds records and reports from the store, and keeps the follow-up notes."""

    def __init__(
        self,
        db: Database,
        alerts: AlertStore,
        ledger: DeliveryLedger,
        audit: AuditLog,
        drills: DrillCalendar,
        *,
        institution: str = "",
        responses: Responses | None = None,
    ) -> None:
        self._alerts = alerts
        self._responses = responses
        self._ledger = ledger
        self._store = RecordStore(db, audit)
        self._pauses = AlertPauses(db)
        self.drills = drills
        self.zone = drills.zone()
        self.institution = institution

    # -- notes ---------------------------------------------------------------------------------

    async def add_note(self, alert_id: str, *, author: str, text: str, now_ms: int) -> Note:
        """Append a follow-up note, audited with a hash of its text in the same transaction."""
        stored = await self._store.add_note(alert_id, author=author, text=text, now_ms=now_ms)
        log.info("alert.note_added", alert_id=alert_id, note_id=stored.id, actor=author)
        return _note(stored)

    async def notes(self, alert_id: str) -> list[Note]:
        """The alert's follow-up notes, oldest first."""
        return [_note(n) for n in await self._store.notes(alert_id)]

    # -- records -------------------------------------------------------------------------------

    async def record(self, alert_id: str) -> CleryRecord | None:
        """One alert's record, or None."""
        alert = await self._alerts.get(alert_id)
        return None if alert is None else await self._build(alert)

    async def report(self, year: int, *, now_ms: int) -> CleryReport:
        """The year's report, with its warnings."""
        start, end = year_bounds(year, self.zone)
        records = tuple([await self._build(a) for a in await self._alerts.in_year(start, end)])
        unrun = tuple(
            Unrun(u.drill_name, u.scheduled_for, u.status, u.detail)
            for u in await self._store.unrun_occurrences(start, end)
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
        run = await self._store.run_origin(alert.id)
        scheduled = run if run is not None and run.source == "schedule" else None
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
                Version(v.version, v.created_at, v.created_by, _summary(v.request))
                for v in versions
            ),
            audience=alert.audience,
            zones=alert.zones,
            audience_counts=alert.audience_counts,
            deliveries=dict(in_channel_order(counts)),
            references_id=alert.references_id,
            notes=tuple(await self.notes(alert.id)),
            timeline=await self._timeline(alert),
            drill_description=drill.get("description"),
            announced=drill.get("announced") if drill else None,
            procedures_publicized=drill.get("procedures_publicized") if drill else None,
            scheduled_drill=scheduled.drill_name if scheduled is not None else None,
            scheduled_for=scheduled.scheduled_for if scheduled is not None else None,
            responses=await self._answers(alert),
            pauses=tuple(await self._pauses.of(alert.id)),
            destinations=tuple(await self._destinations(alert)),
        )

    async def _destinations(self, alert: AlertRecord) -> list[DestinationResult]:
        """The receipts of the broadcast targets and webhook subscribers it went to."""
        return [
            DestinationResult(r["channel"], r["recipient"], r["state"], int(r["attempts"]),
                              redact_text(r["detail"] or ""), int(r["updated_at"]))
            for kind in alert.channels if kind.is_institutional
            for r in await self._ledger.page(
                alert.id, after=0, limit=MAX_DESTINATIONS, channel=kind
            )
        ]

    async def _answers(self, alert: AlertRecord) -> dict[str, Any] | None:
        """Counts of the alert's answers and the time to 50 / 90 % answered, if it asked."""
        if self._responses is None or alert.request.ask is None:
            return None
        tally = await self._responses.tally(alert.id)
        if not tally.asked:
            return None
        return {**tally.total.as_json(),
                "time_to_50_percent_s": tally.answered_50_s,
                "time_to_90_percent_s": tally.answered_90_s,
                "escalation_rounds": tally.escalation_rounds}

    async def _timeline(self, alert: AlertRecord) -> Timeline:
        """Deliveries reached and confirmed over time, in at most TIMELINE_BUCKETS steps."""
        bounds = await self._store.receipt_span(alert.id)
        if bounds is None:
            return Timeline()
        base = alert.sending_at if alert.sending_at is not None else bounds.first_ms
        base = min(base, bounds.first_ms)
        span = max(bounds.last_ms - base, 1)
        bucket = max(math.ceil(span / TIMELINE_BUCKETS), 1)
        series: dict[bool, dict[str, tuple[Point, ...]]] = {}
        for confirmed in (False, True):
            by_channel: dict[str, list[tuple[int, int]]] = {}
            for b in await self._store.receipt_buckets(
                alert.id, base_ms=base, bucket_ms=bucket, confirmed=confirmed
            ):
                by_channel.setdefault(b.channel, []).append((b.bucket, b.count))
            series[confirmed] = {ch: _cumulative(buckets, bucket, span)
                                 for ch, buckets in by_channel.items()}
        return Timeline(series[False], series[True], span)


def _note(stored: StoredNote) -> Note:
    return Note(stored.id, stored.alert_id, stored.at, stored.author, stored.text)


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
