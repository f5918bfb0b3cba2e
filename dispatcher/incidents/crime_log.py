"""The daily crime log: one public entry per reported crime, as HTML, CSV or JSON.

Only the log's own fields leave here: never victim or reporter details, the Clery category or
why an entry was held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.csv_export import CsvExport
from dispatcher.incidents.model import Incident
from dispatcher.templating import environment

COLUMNS = ("case", "date_reported", "time_reported", "nature", "occurred", "location",
           "disposition")
_PAGE = environment("dispatcher.incidents").get_template("crime_log.html")


@dataclass(frozen=True, slots=True)
class CrimeLogEntry:
    """One line of the public log."""

    case: str
    date_reported: str
    time_reported: str
    nature: str
    occurred: str
    location: str
    disposition: str

    def as_json(self) -> dict[str, str]:
        """The entry's public fields."""
        return {c: getattr(self, c) for c in COLUMNS}


def _stamp(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=zone)


def _occurred(incident: Incident, zone: ZoneInfo) -> str:
    if incident.occurred_from is None:
        return "unknown"
    start = _stamp(incident.occurred_from, zone).strftime("%Y-%m-%d %H:%M")
    if incident.occurred_to is None or incident.occurred_to == incident.occurred_from:
        return start
    return f"{start} to {_stamp(incident.occurred_to, zone).strftime('%Y-%m-%d %H:%M')}"


def entry_of(incident: Incident, zone: ZoneInfo) -> CrimeLogEntry:
    """The public entry for an incident."""
    reported = _stamp(incident.reported_at, zone)
    return CrimeLogEntry(
        case=incident.case_number,
        date_reported=reported.strftime("%Y-%m-%d"),
        time_reported=reported.strftime("%H:%M"),
        nature=incident.nature,
        occurred=_occurred(incident, zone),
        location=incident.location,
        disposition=incident.disposition.value.replace("_", " "),
    )


@dataclass(frozen=True, slots=True)
class CrimeLogPage:
    """One page of the public log: the entries of a span of days, newest first."""

    institution: str
    first_day: str
    last_day: str
    page: int
    has_older: bool
    entries: tuple[CrimeLogEntry, ...]

    def as_json(self) -> dict[str, Any]:
        """The page as `?format=json` serves it."""
        return {
            "institution": self.institution,
            "from": self.first_day,
            "to": self.last_day,
            "page": self.page,
            "older": f"/public/crime-log?format=json&page={self.page + 1}"
            if self.has_older else None,
            "entries": [e.as_json() for e in self.entries],
        }

    def to_csv(self) -> str:
        """The page as `?format=csv` serves it."""
        sheet = CsvExport(COLUMNS)
        for e in self.entries:
            sheet.row(getattr(e, c) for c in COLUMNS)
        return sheet.text()

    def to_html(self) -> str:
        """The page as people read it: one card per entry, readable on a phone."""
        return _PAGE.render(log=self)
