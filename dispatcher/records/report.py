"""The calendar year's report: its records, the drills that did not run, the warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.domain import Mode
from dispatcher.records.csv import report_csv
from dispatcher.records.html import render_html
from dispatcher.records.model import Category, CleryRecord, ReportWarning, Unrun, iso


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

    def to_csv(self) -> str:
        """One row per alert, then the scheduled drills that did not run and the warnings."""
        return report_csv(self)

    def to_html(self) -> str:
        """A readable, self-contained page: no scripts, fonts or images from elsewhere."""
        return render_html(self)
