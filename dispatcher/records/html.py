"""The report as one self-contained HTML page, with a delivery-over-time chart (inline SVG)
per alert: no scripts, fonts or images from elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.domain import Mode
from dispatcher.records.model import (
    Category,
    CleryRecord,
    CleryReport,
    Point,
    in_channel_order,
    local_date,
)

CHANNEL_COLORS = {
    "siren": "#b3261e",
    "signage": "#7b5800",
    "pa": "#6a3d9a",
    "desktop": "#8a4b08",
    "sms": "#1f6feb",
    "push": "#0f7b6c",
    "voice": "#9c2f6b",
    "email": "#5f6368",
}
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
    return escape("" if value is None else str(value))


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


def _share_time(seconds: float | None) -> str:
    return _duration(seconds) if seconds is not None else "not reached"


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
            ("Date", _e(local_date(r.started_at, zone))),
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
    if r.responses is not None:
        a = r.responses
        rows.append(("Answers", f"{_e(a.get('safe', 0))} safe · {_e(a.get('need_help', 0))}"
                     f" need help · {_e(a.get('no_answer', 0))} no answer"
                     f" · 50 % answered in {_share_time(a.get('time_to_50_percent_s'))}"
                     f" · 90 % in {_share_time(a.get('time_to_90_percent_s'))}"))
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
    for channel, points in in_channel_order(timeline.reached):
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


def _polyline(
    points: Sequence[Point],
    total: int,
    x: Callable[[int], float],
    y: Callable[[float], float],
    color: str,
    *,
    dashed: bool,
) -> str:
    coords = " ".join(f"{x(p.after_ms):.1f},{y(min(p.count / total, 1.0)):.1f}"
                      for p in points)
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"'
            f"{dash}/>")
