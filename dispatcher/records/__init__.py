"""Clery records: every alert's decisions on file, the yearly report, follow-up notes, retention.

`model` holds the records and the calendar year's report as values, `build` assembles them
from the store, `csv` and `html` (with its SVG chart) write the report out, and `retention`
purges what is past `store.retention_days`. The SQL they need lives in `dispatcher.store`.
"""

from __future__ import annotations

from dispatcher.records.build import DELAY_WARNING_S, CleryRecords, DrillCalendar, year_bounds
from dispatcher.records.csv import CSV_COLUMNS, report_csv
from dispatcher.records.html import delivery_chart, render_html
from dispatcher.records.model import (
    MAX_NOTE,
    Category,
    CleryRecord,
    CleryReport,
    Note,
    Point,
    ReportWarning,
    Timeline,
    Unrun,
    Version,
    category_of,
    note_text,
)
from dispatcher.records.retention import PURGE_ACTOR, PurgeResult, purge

__all__ = [
    "CSV_COLUMNS",
    "DELAY_WARNING_S",
    "MAX_NOTE",
    "PURGE_ACTOR",
    "Category",
    "CleryRecord",
    "CleryRecords",
    "CleryReport",
    "DrillCalendar",
    "Note",
    "Point",
    "PurgeResult",
    "ReportWarning",
    "Timeline",
    "Unrun",
    "Version",
    "category_of",
    "delivery_chart",
    "note_text",
    "purge",
    "render_html",
    "report_csv",
    "year_bounds",
]
