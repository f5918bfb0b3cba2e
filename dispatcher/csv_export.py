"""The one CSV writer of every export (the Clery report, the crime log): a cell that a
spreadsheet would run as a formula is written with a leading apostrophe, so it shows as text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# What starts a formula (or a DDE payload) in Excel, LibreOffice and Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: object) -> str:
    """A cell as text no spreadsheet will evaluate."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class CsvExport:
    """A CSV document built row by row (CRLF line ends, as RFC 4180), every cell neutral."""

    def __init__(self, header: Sequence[str]) -> None:
        self._out = io.StringIO()
        self._writer = csv.writer(self._out, lineterminator="\r\n")
        self.row(header)

    def row(self, cells: Iterable[object]) -> None:
        """Append one row."""
        self._writer.writerow([neutral(c) for c in cells])

    def text(self) -> str:
        """The document so far."""
        return self._out.getvalue()
