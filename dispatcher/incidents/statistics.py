"""The Annual Security Report's crime statistics: three calendar years, by category and place.

A crime counts in the year it was reported. On-campus counts include student housing, which
is also shown on its own (as the report's tables do). Unfounded crimes are left out of the
counts and counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.incidents.model import Disposition, Geography, Incident, Section, sections_of
from dispatcher.templating import environment

COLUMNS = ("on_campus", "on_campus_housing", "noncampus", "public_property")
_SECTION = environment("dispatcher.incidents").get_template("statistics.html")


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
    """The yearly report's crime statistics, law enforcement requests and timely-warning
    decisions as HTML."""
    stats = section["crime_statistics"]
    return _SECTION.render(
        columns=COLUMNS,
        years=stats["years"],
        counts=[(name, sorted(rows.items())) for name, rows in sorted(stats["counts"].items())],
        unfounded=", ".join(f"{y}: {sum(by.values())}"
                            for y, by in sorted(stats["unfounded"].items())),
        requests=section["law_enforcement_requests"],
        decisions=section.get("timely_warning_decisions", []),
    )
