"""The report as one self-contained HTML page, with a delivery-over-time chart (inline SVG)
per alert: no scripts, fonts or images from elsewhere. The markup is in `templates/`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatcher.records.model import (
    Category,
    CleryRecord,
    CleryReport,
    Point,
    in_channel_order,
    local_date,
)
from dispatcher.templating import environment

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
SUMMARY_LABELS = (
    (Category.EMERGENCY_NOTIFICATION.value, "Emergency notifications"),
    (Category.TIMELY_WARNING.value, "Timely warnings"),
    (Category.TEST.value, "Tests and drills"),
    ("qualifying_tests", "Tests that count toward the yearly requirement"),
    ("tests_with_procedures_publicized", "… with emergency procedures publicized"),
    (Category.ALL_CLEAR.value, "All-clears"),
    (Category.ADVISORY.value, "Advisories"),
    ("scheduled_drills_not_run", "Scheduled drill occurrences that did not run"),
)
RESULT_HEADS = ("total", "delivered", "accepted", "failed", "suppressed", "queued", "sending")
# Sections in the report's order; the last two are left out in a year without any.
SECTIONS = (Category.EMERGENCY_NOTIFICATION, Category.TIMELY_WARNING, Category.TEST,
            Category.ALL_CLEAR, Category.ADVISORY)
OPTIONAL = (Category.ALL_CLEAR, Category.ADVISORY)

_TEMPLATES = environment("dispatcher.records")
_REPORT = _TEMPLATES.get_template("report.html")
_CHART = _TEMPLATES.get_template("chart.html")


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def render_html(report: CleryReport) -> str:
    """The report as one HTML page with inline CSS and SVG charts."""
    zone = report.zone

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    sections = [(c, report.of(c)) for c in SECTIONS]
    return _REPORT.render(
        report=report,
        summary=report.summary(),
        summary_labels=SUMMARY_LABELS,
        sections=[(c, found) for c, found in sections if found or c not in OPTIONAL],
        modes=report.qualifying_modes,
        result_heads=RESULT_HEADS,
        when=when,
        span=_span,
        local_date=lambda ms: local_date(ms, zone),
        chart_of=chart_of,
    )


@dataclass(frozen=True, slots=True)
class GridLine:
    """A horizontal line of the chart at a share of deliveries, with its label."""

    y: str
    label_y: str
    label: str


@dataclass(frozen=True, slots=True)
class Line:
    """One channel's line: its points as SVG coordinates."""

    points: str
    color: str
    dashed: bool


@dataclass(frozen=True, slots=True)
class LegendItem:
    """One channel's entry under the chart."""

    color: str
    channel: str
    reached: int
    total: int
    confirmed: int | None


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the chart template draws, in SVG user units."""

    alert_id: str
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    right: int
    middle: str
    tick_y: int
    unit: str
    grid: tuple[GridLine, ...]
    ticks: tuple[tuple[str, str], ...]
    lines: tuple[Line, ...]
    legend: tuple[LegendItem, ...]


def chart_of(r: CleryRecord, width: int = 640, height: int = 220) -> Chart | None:
    """The chart of a record's delivery timeline; None when no delivery was ever reached."""
    timeline = r.timeline
    if not timeline.reached:
        return None
    left, right, top, bottom = 48, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(timeline.span_ms, 1)

    def x(ms: int) -> float:
        return left + plot_w * ms / span

    def y(share: float) -> float:
        return top + plot_h * (1 - share)

    unit, divisor = ("min", 60_000) if span >= 180_000 else ("s", 1000)
    grid = tuple(GridLine(f"{y(share):.1f}", f"{y(share) + 4:.1f}", f"{int(share * 100)}%")
                 for share in (0.0, 0.25, 0.5, 0.75, 1.0))
    ticks = tuple((f"{x(int(span * i / 4)):.1f}", f"{span * i / 4 / divisor:.1f}")
                  for i in range(5))
    lines: list[Line] = []
    legend: list[LegendItem] = []
    for channel, points in in_channel_order(timeline.reached):
        total = max(r.deliveries.get(channel, {}).get("total", 0), points[-1].count, 1)
        color = CHANNEL_COLORS.get(channel, "#333")
        lines.append(Line(_coordinates(points, total, x, y), color, dashed=False))
        confirmed = timeline.confirmed.get(channel)
        if confirmed:
            lines.append(Line(_coordinates(confirmed, total, x, y), color, dashed=True))
        legend.append(LegendItem(color, channel, points[-1].count, total,
                                 confirmed[-1].count if confirmed else None))
    return Chart(
        alert_id=r.alert_id, width=width, height=height, left=left, top=top, plot_w=plot_w,
        plot_h=plot_h, right=left + plot_w, middle=f"{left + plot_w / 2:.1f}",
        tick_y=height - bottom + 16, unit=unit, grid=grid, ticks=ticks, lines=tuple(lines),
        legend=tuple(legend),
    )


def delivery_chart(r: CleryRecord, width: int = 640, height: int = 220) -> str:
    """Share of each channel's deliveries that reached the provider or device over time
    (solid) and that were confirmed delivered (dashed), as inline SVG."""
    return _CHART.render(c=chart_of(r, width, height))


def _coordinates(
    points: Sequence[Point],
    total: int,
    x: Callable[[int], float],
    y: Callable[[float], float],
) -> str:
    return " ".join(f"{x(p.after_ms):.1f},{y(min(p.count / total, 1.0)):.1f}" for p in points)
