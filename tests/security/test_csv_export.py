"""One CSV writer for every export, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.csv_export import CsvExport, neutral
from tests.security.conftest import FIRE, bearer
from tests.support import Running


class TestNeutral:
    """Formula starts become text; everything else is left alone."""

    @pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
    def test_formula_starts(self, cell: str) -> None:
        """Each is written with a leading apostrophe."""
        assert neutral(cell) == "'" + cell

    @pytest.mark.parametrize("cell", ["Dana", "1", "", "a=b", "'quoted"])
    def test_plain_cells(self, cell: str) -> None:
        """Plain text and numbers are unchanged."""
        assert neutral(cell) == cell

    def test_document(self) -> None:
        """Header and rows, CRLF line ends, every cell neutral."""
        sheet = CsvExport(["a", "b"])
        sheet.row(["=x", 2])
        assert sheet.text() == "a,b\r\n'=x,2\r\n"


class TestEveryExport:
    """The Clery report's CSV neutralises what people typed."""

    async def test_clery_report(self, secure: Running) -> None:
        """A confirming name and title that start formulas arrive as text."""
        body = {**FIRE, "mode": "drill",
                "confirmed_by": {"name": "=HYPERLINK(\"http://x\")", "title": "@Chief"}}
        sent = await secure.client.post("/v1/alerts", json=body, headers=bearer("admin"))
        assert sent.status == 202, await sent.text()
        await secure.wait_state((await sent.json())["id"])
        year = datetime.now(UTC).year
        resp = await secure.client.get(f"/v1/reports/clery?year={year}&format=csv",
                                       headers=bearer("admin"))
        assert resp.status == 200
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        alert = next(r for r in rows if r["record"] == "alert")
        assert alert["confirmed_by_name"] == "'=HYPERLINK(\"http://x\")"
        assert alert["confirmed_by_title"] == "'@Chief"
        cells = [c for r in rows for c in r.values() if c]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]

    def test_one_writer(self) -> None:
        """No module but `csv_export.py` writes CSV."""
        root = Path(__file__).resolve().parents[2] / "dispatcher"
        pattern = re.compile(r"csv\.(writer|DictWriter)\(")
        writers = [str(p.relative_to(root)) for p in root.rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8"))]
        assert writers == ["csv_export.py"]
