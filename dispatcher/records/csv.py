"""The report as CSV: one row per alert, then the drills that did not run, the warnings and,
when given, the crime part (statistics, timely-warning decisions, requests to local police)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.csv_export import CsvExport
from dispatcher.domain import Mode
from dispatcher.records.model import CleryRecord, CleryReport, in_channel_order, iso, local_date

CSV_COLUMNS = (
    "record", "alert_id", "category", "kind", "mode", "state", "created_at",
    "confirmed_by_name", "confirmed_by_title", "confirmed_at",
    "audience_and_content_chosen_by", "approved_by", "sending_began_at",
    "confirmation_to_sending_s", "delay_reason", "content_versions", "content",
    "audience", "zones", "audience_total", "audience_by_channel", "delivery_results",
    "references", "drill_description", "drill_date", "drill_start", "drill_end",
    "announced", "procedures_publicized", "qualifying_test", "scheduled_drill",
    "scheduled_for", "follow_up_notes", "message",
    # The crime part of the report (rows whose record is a crime statistic, an unfounded
    # count, a timely-warning decision or a request to local law enforcement).
    "incident_id", "section", "crime", "geography", "year", "count", "location", "decision",
    "decided_by", "decided_at", "reasons", "agency", "requested_on", "response",
    # An alert that asked a question: its answers.
    "answers_safe", "answers_need_help", "answers_none", "answered_50_percent_s",
    "answered_90_percent_s",
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
        "created_at": iso(r.created_at, zone) or "",
        "confirmed_by_name": r.confirmed_by_name or "",
        "confirmed_by_title": r.confirmed_by_title or "",
        "confirmed_at": iso(r.confirmed_at, zone) or "",
        "audience_and_content_chosen_by": r.chosen_by,
        "approved_by": r.approved_by or "",
        "sending_began_at": iso(r.sending_at, zone) or "",
        "confirmation_to_sending_s": _num(r.confirmation_to_sending_s),
        "delay_reason": r.delay_reason or "",
        "content_versions": str(len(r.versions)),
        "content": " || ".join(
            f"v{v.version} {iso(v.created_at, zone)} by {v.created_by}: {v.summary}"
            for v in r.versions
        ),
        "audience": r.audience,
        "zones": " ".join(r.zones),
        "audience_total": str(r.audience_counts.get("total", "")),
        "audience_by_channel": _pairs(r.audience_counts.get("by_channel") or {}),
        "delivery_results": "; ".join(
            f"{ch}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
            for ch, counts in in_channel_order(r.deliveries)
        ),
        "references": r.references_id or "",
        "drill_description": (r.drill_description or "") if test else "",
        "drill_date": local_date(r.started_at, zone) if test else "",
        "drill_start": (iso(r.started_at, zone) or "") if test else "",
        "drill_end": (iso(r.done_at, zone) or "") if test else "",
        "announced": yes(r.announced) if test else "",
        "procedures_publicized": yes(r.procedures_publicized) if test else "",
        "qualifying_test": yes(r.qualifies(modes)) if test else "",
        "scheduled_drill": r.scheduled_drill or "",
        "scheduled_for": iso(r.scheduled_for, zone) or "",
        "follow_up_notes": " || ".join(
            f"{iso(n.at, zone)} {n.author}: {n.text}" for n in r.notes
        ),
        "message": "",
    }
    if r.responses is not None:
        a = r.responses
        values.update({
            "answers_safe": str(a.get("safe", 0)),
            "answers_need_help": str(a.get("need_help", 0)),
            "answers_none": str(a.get("no_answer", 0)),
            "answered_50_percent_s": _num(a.get("time_to_50_percent_s")),
            "answered_90_percent_s": _num(a.get("time_to_90_percent_s")),
        })
    return [values.get(c, "") for c in CSV_COLUMNS]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _pairs(mapping: dict[str, Any]) -> str:
    return "; ".join(f"{k} {v}" for k, v in mapping.items())


def report_csv(report: CleryReport, crimes: dict[str, Any] | None = None) -> str:
    """One row per alert, then the scheduled drills that did not run, the warnings and the
    crime part of the report (`IncidentRegistry.report_section`) when it is given."""
    writer = CsvExport(CSV_COLUMNS)
    for r in report.records:
        writer.row(_csv_row(r, report.zone, report.qualifying_modes))
    blank = dict.fromkeys(CSV_COLUMNS, "")
    for u in report.unrun:
        writer.row({**blank, "record": "scheduled_drill_not_run", "scheduled_drill":
                         u.drill, "scheduled_for": iso(u.scheduled_for, report.zone),
                         "state": u.status, "message": u.detail}.values())
    for w in report.warnings:
        writer.row({**blank, "record": "warning", "alert_id": w.alert_id or "",
                         "category": w.code, "message": w.message}.values())
    if crimes is not None:
        for row in _crime_rows(crimes, report.zone):
            writer.row({**blank, **row}.values())
    return writer.text()


def _crime_rows(crimes: dict[str, Any], zone: ZoneInfo) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    stats = crimes["crime_statistics"]
    for section, crimes_of in sorted(stats["counts"].items()):
        for crime, columns in sorted(crimes_of.items()):
            for geography in stats["columns"]:
                for year, count in sorted(columns.get(geography, {}).items()):
                    rows.append({"record": "crime_statistic", "section": section,
                                 "crime": crime, "geography": geography, "year": year,
                                 "count": str(count)})
    for year, by_category in sorted(stats["unfounded"].items()):
        for category, count in sorted(by_category.items()):
            rows.append({"record": "unfounded_crime", "year": year, "category": category,
                         "count": str(count)})
    for d in crimes["timely_warning_decisions"]:
        rows.append({
            "record": "timely_warning_decision", "incident_id": d["incident_id"],
            "created_at": iso(d["reported_at"], zone) or "", "category": d["category"] or "",
            "geography": d["geography"], "content": d["nature"], "location": d["location"],
            "decision": d["decision"], "decided_by": d["decided_by"] or "",
            "decided_at": iso(d["decided_at"], zone) or "",
            "reasons": d["reasons"] or "", "alert_id": " ".join(d["alerts"]),
        })
    for r in crimes["law_enforcement_requests"]:
        rows.append({"record": "law_enforcement_request", "year": str(r["year"]),
                     "agency": r["agency"], "requested_on": r["requested_on"],
                     "response": r["response"]})
    return rows
