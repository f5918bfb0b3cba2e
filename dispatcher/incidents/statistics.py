"""The Annual Security Report's crime statistics: three calendar years, by category and place.

A crime counts in the year it was reported. On-campus counts include student housing, which
is also shown on its own (as the report's tables do). Unfounded crimes are left out of the
counts and counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.incidents.model import Disposition, Geography, Incident, Section, sections_of

COLUMNS = ("on_campus", "on_campus_housing", "noncampus", "public_property")


def _columns(geography: Geography) -> tuple[str, ...]:
    if geography is Geography.ON_CAMPUS_HOUSING:
        return ("on_campus", "on_campus_housing")
    if geography is Geography.NONE:
        return ()
    return (geography.value,)


def row_key(section: Section, incident: Incident) -> str:
    """The row a crime counts on: its category, and for a hate crime its bias too."""
    assert incident.category is not None
    if section is Section.HATE_CRIMES and incident.bias is not None:
        return f"{incident.category.value}/{incident.bias.value}"
    return incident.category.value


@dataclass(frozen=True, slots=True)
class CrimeStatistics:
    """Counts per section, row, column and year; unfounded crimes per year and section."""

    years: tuple[int, ...]
    counts: dict[str, dict[str, dict[str, dict[int, int]]]]
    unfounded: dict[int, dict[str, int]]

    def as_json(self) -> dict[str, Any]:
        """The statistics as the API and the report serve them."""
        return {
            "years": list(self.years),
            "columns": list(COLUMNS),
            "counts": {
                section: {row: {col: {str(y): n for y, n in by_year.items()}
                                for col, by_year in cols.items()}
                          for row, cols in rows.items()}
                for section, rows in self.counts.items()
            },
            "unfounded": {str(y): dict(by) for y, by in self.unfounded.items()},
        }

    def rows(self) -> list[tuple[str, str, str, int, int]]:
        """(section, row, column, year, count) for every non-zero cell, for tables."""
        out = []
        for section, rows in sorted(self.counts.items()):
            for row, cols in sorted(rows.items()):
                for col in COLUMNS:
                    for year in self.years:
                        n = cols.get(col, {}).get(year, 0)
                        if n:
                            out.append((section, row, col, year, n))
        return out


def count(incidents: Iterable[Incident], years: Sequence[int], zone: ZoneInfo) -> CrimeStatistics:
    """Count classified incidents reported in `years` (calendar years in `zone`)."""
    wanted = tuple(years)
    counts: dict[str, dict[str, dict[str, dict[int, int]]]] = {}
    unfounded: dict[int, dict[str, int]] = {y: {} for y in wanted}
    for incident in incidents:
        year = datetime.fromtimestamp(incident.reported_at / 1000, tz=zone).year
        if year not in wanted:
            continue
        sections = sections_of(incident.category, incident.bias)
        columns = _columns(incident.geography)
        if not sections or not columns:
            continue
        for section in sections:
            if incident.disposition is Disposition.UNFOUNDED:
                by = unfounded[year]
                by[section.value] = by.get(section.value, 0) + 1
                continue
            row = counts.setdefault(section.value, {}).setdefault(row_key(section, incident), {})
            for col in columns:
                cell = row.setdefault(col, {})
                cell[year] = cell.get(year, 0) + 1
    return CrimeStatistics(wanted, counts, unfounded)


def section_html(section: dict[str, Any]) -> str:
    """The yearly report's crime statistics and law enforcement requests as HTML."""
    stats = section["crime_statistics"]
    years = stats["years"]
    head = "".join(f'<th scope="col">{escape(c)} {y}</th>' for c in COLUMNS for y in years)
    body = []
    for name, rows in sorted(stats["counts"].items()):
        for row, cols in sorted(rows.items()):
            cells = "".join(f"<td>{cols.get(c, {}).get(str(y), 0)}</td>"
                            for c in COLUMNS for y in years)
            body.append(f"<tr><th scope=\"row\">{escape(name)}: {escape(row)}</th>{cells}</tr>")
    unfounded = ", ".join(
        f"{y}: {sum(by.values())}" for y, by in sorted(stats["unfounded"].items())
    )
    requests = "".join(
        f"<li>{escape(str(r['year']))}: {escape(r['agency'])}, asked {escape(r['requested_on'])}"
        f"; {escape(r['response'] or 'no response recorded')}</li>"
        for r in section["law_enforcement_requests"]
    ) or "<li>No request to local law enforcement is recorded.</li>"
    return (
        "<section><h2>Crime statistics</h2>"
        f"<table><thead><tr><th scope=\"col\">Offense</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f"<p>Unfounded crimes (not counted above): {escape(unfounded)}</p>"
        f"<h3>Statistics requested from local law enforcement</h3><ul>{requests}</ul>"
        f"{_decisions_html(section.get('timely_warning_decisions', []))}</section>"
    )


def _decisions_html(decisions: list[dict[str, Any]]) -> str:
    """Each Clery crime's timely-warning decision, with the alerts it led to."""
    if not decisions:
        return "<h3>Timely-warning decisions</h3><p>No Clery crime needed a decision.</p>"
    rows = "".join(
        f"<tr><td>{escape(d['incident_id'])}</td><td>{escape(d['nature'])}</td>"
        f"<td>{escape(d['category'] or '')}</td><td>{escape(d['decision'])}</td>"
        f"<td>{escape(d['decided_by'] or '')}</td><td>{escape(d['reasons'])}</td>"
        f"<td>{escape(', '.join(d['alerts']) or 'none')}</td></tr>"
        for d in decisions
    )
    return (
        "<h3>Timely-warning decisions</h3><table><thead><tr><th scope=\"col\">Incident</th>"
        "<th scope=\"col\">Nature</th><th scope=\"col\">Classification</th>"
        "<th scope=\"col\">Decision</th><th scope=\"col\">Decided by</th>"
        "<th scope=\"col\">Reasons</th><th scope=\"col\">Alerts</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
