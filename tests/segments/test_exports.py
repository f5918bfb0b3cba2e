"""Student-system exports read on a schedule: column maps, watched folders, the safety brake."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dispatcher.cli import main as cli_main
from dispatcher.refusals import Conflict
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.imports import ImportState
from segments.audience import load_campus
from segments.exports import ExportWatcher
from segments.imports import DirectoryImports, ImportOutcome
from segments.settings import DirectorySettings
from segments.sync import DirectorySync
from segments.sync_settings import ExportSettings
from segments.synthetic import write_campus
from tests.pg import pg_cluster, pg_url
from tests.segments.helpers import Campus, make_campus_files

__all__ = ["pg_cluster", "pg_url"]

BANNER_COLUMNS = {
    "id": "SPRIDEN_ID", "first_name": "FIRST_NAME", "last_name": "LAST_NAME",
    "email": "EMAIL_ADDR", "phone": "CELL_PHONE", "class_year": "CLASS_YR",
}
HEADER = "SPRIDEN_ID,FIRST_NAME,LAST_NAME,EMAIL_ADDR,CELL_PHONE,CLASS_YR,BIRTH_DATE\n"


def banner_line(n: int, email: str = "") -> str:
    email = email or f"s{n}@example.edu"
    return f"A{n:05d},Sam,Student{n},{email},201-555-{n:04d},2028,2001-01-{n % 28 + 1:02d}\n"


def banner(path: Path, ids: range, *, bad_email_at: int | None = None) -> Path:
    lines = [HEADER] + [
        banner_line(n, "not-an-address" if n == bad_email_at else "") for n in ids
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def export(path: Path, **changes: Any) -> ExportSettings:
    raw: dict[str, Any] = {"path": str(path), "role": "student", "columns": BANNER_COLUMNS}
    raw.update(changes)
    return ExportSettings.model_validate(raw)


def imports_of(campus: Campus, share: float = 0.10, **exports: ExportSettings) -> DirectoryImports:
    settings = campus.with_settings(
        safety_brake={"max_change_share": share},
        exports={k: v.model_dump(mode="json") for k, v in exports.items()},
    ).settings
    campus_map = load_campus(settings, campus.base)
    return DirectoryImports(campus.db, settings, lambda: campus_map, audit=AuditLog(campus.db))


async def stored(campus: Campus) -> dict[str, dict[str, Any]]:
    rows = await campus.db.fetchall("SELECT * FROM people ORDER BY id")
    return {r["id"]: dict(r) for r in rows}  # type: ignore[call-overload]


def only(outcomes: list[ImportOutcome | int]) -> ImportOutcome:
    assert len(outcomes) == 1 and not isinstance(outcomes[0], int), outcomes
    return outcomes[0]


class TestColumnMap:
    """Only the mapped columns of an export are read, and problems name the export's own."""

    async def test_mapped_columns_only(self, campus: Campus) -> None:
        path = banner(campus.base / "students.csv", range(1, 6), bad_email_at=3)
        watcher = ExportWatcher("banner", export(path), path)
        outcome = only(await watcher.look(imports_of(campus)))
        assert (outcome.report.added, outcome.state) == (4, ImportState.APPLIED)
        assert [(p.row, p.reason) for p in outcome.report.rejected] == [
            (4, "email is not a valid address (column 'EMAIL_ADDR')")
        ]
        person = (await stored(campus))["A00001"]
        assert (person["role"], person["phone"]) == ("student", "+12015550001")
        # The birth date column is not in the map: it never reaches the store.
        assert json.loads(person["attrs"]) == {"class_year": "2028"}
        assert "2001-01" not in json.dumps(await stored(campus))

    async def test_unmapped_columns_may_repeat(self, campus: Campus) -> None:
        path = campus.base / "students.csv"
        path.write_text(
            "SPRIDEN_ID,FIRST_NAME,LAST_NAME,EMAIL_ADDR,CELL_PHONE,CLASS_YR,FILLER,FILLER\n"
            "A00001,Sam,One,s1@example.edu,201-555-0001,2028,,\n",
            encoding="utf-8",
        )
        outcome = only(await ExportWatcher("banner", export(path), path).look(imports_of(campus)))
        assert outcome.report.added == 1

    async def test_a_mapped_column_missing_from_the_header(self, campus: Campus) -> None:
        path = campus.base / "students.csv"
        path.write_text("SPRIDEN_ID,FIRST_NAME\nA1,Sam\n", encoding="utf-8")
        watcher = ExportWatcher("banner", export(path), path)
        imports = imports_of(campus)
        assert await watcher.look(imports) == [1]
        entry = await imports.get(1)
        assert entry.state is ImportState.FAILED
        assert "line 1: the column map names 'last_name', 'email_addr'" in entry.error

    async def test_an_unreadable_line_is_named(self, campus: Campus) -> None:
        path = campus.base / "students.csv"
        # A quote never closed: the rest of the file would be one field past the size limit.
        tail = 'A2,"Sam,' + "x" * 200_000 + "\n"
        path.write_text(HEADER + banner_line(1) + tail, encoding="utf-8")
        imports = imports_of(campus)
        assert await ExportWatcher("banner", export(path), path).look(imports) == [1]
        assert "line 3: not readable as CSV" in (await imports.get(1)).error
        assert await stored(campus) == {}


class TestScheduledPath:
    """A file the student system overwrites is imported whenever it changes."""

    async def test_an_unchanged_file_is_not_imported_again(self, campus: Campus) -> None:
        path = banner(campus.base / "students.csv", range(1, 21))
        watcher, imports = ExportWatcher("banner", export(path), path), imports_of(campus)
        assert only(await watcher.look(imports)).report.added == 20
        assert await watcher.look(imports) == []
        banner(path, range(1, 22))
        assert only(await watcher.look(imports)).report.added == 1

    async def test_a_truncated_export_is_held_once_then_discarded(self, campus: Campus) -> None:
        path = banner(campus.base / "students.csv", range(1, 21))
        watcher, imports = ExportWatcher("banner", export(path), path), imports_of(campus)
        await watcher.look(imports)
        banner(path, range(1, 4))
        held = only(await watcher.look(imports))
        assert held.held and (held.report.removed, held.share) == (17, 0.85)
        assert len(await stored(campus)) == 20
        # The same truncated file at the next look is not held a second time.
        assert await watcher.look(imports) == []
        entry = await imports.discard(held.id, actor="registrar")
        assert (entry.state, entry.decided_by) == (ImportState.DISCARDED, "registrar")
        assert len(await stored(campus)) == 20
        assert await imports.store.plan(held.id) == []

    async def test_only_the_newest_held_import_may_be_confirmed(self, campus: Campus) -> None:
        path = banner(campus.base / "students.csv", range(1, 21))
        watcher, imports = ExportWatcher("banner", export(path), path), imports_of(campus)
        await watcher.look(imports)
        banner(path, range(1, 4))
        first = only(await watcher.look(imports))
        banner(path, range(1, 3))
        second = only(await watcher.look(imports))
        with pytest.raises(Conflict, match=f"import {second.id} from export:banner came after"):
            await imports.confirm(first.id, actor="registrar")
        await imports.confirm(second.id, actor="registrar")
        assert sorted(await stored(campus)) == ["A00001", "A00002"]


class TestWatchedFolder:
    """Each new file of a watched folder is imported once it is whole, then moved aside."""

    async def test_files_are_imported_when_settled_and_moved(self, campus: Campus) -> None:
        folder = campus.base / "drop"
        folder.mkdir()
        banner(folder / "students-1.csv", range(1, 11))
        watcher, imports = ExportWatcher("banner", export(folder), folder), imports_of(campus)
        # First sight: it may still be being written.
        assert await watcher.look(imports) == []
        outcome = only(await watcher.look(imports))
        assert outcome.report.added == 10
        assert (folder / "done" / "students-1.csv").is_file()
        assert not (folder / "students-1.csv").exists()
        (folder / "broken.csv").write_text("NAME\nx\n", encoding="utf-8")
        await watcher.look(imports)
        [failed] = await watcher.look(imports)
        assert isinstance(failed, int)
        assert (folder / "failed" / "broken.csv").is_file()
        entry = await imports.get(failed)
        assert (entry.state, entry.detail) == (ImportState.FAILED, "broken.csv")


class TestSchedule:
    """The service's loop looks at each export as soon as it starts."""

    async def test_the_loop_imports_and_stops(self, campus: Campus) -> None:
        path = banner(campus.base / "students.csv", range(1, 6))
        imports = imports_of(campus, banner=export(path, every_s=3600))
        sync = DirectorySync(imports, imports._settings, campus.base)
        await sync.start()
        try:
            deadline = time.monotonic() + 30
            while await imports.store.latest("export:banner") is None:
                assert time.monotonic() < deadline, "the export was not imported"
                await asyncio.sleep(0.05)
        finally:
            await sync.stop()
        assert len(await stored(campus)) == 5


class TestPostgres:
    """The kept imports and held plans on PostgreSQL, as on SQLite."""

    async def test_held_and_confirmed(self, tmp_path: Path, pg_url: str) -> None:
        make_campus_files(tmp_path)
        db = await open_database(pg_url)
        try:
            campus = Campus(tmp_path, db, DirectorySettings(
                people="people.csv", devices="devices.csv", buildings="buildings.csv"
            ))
            path = banner(tmp_path / "students.csv", range(1, 701))
            watcher, imports = ExportWatcher("banner", export(path), path), imports_of(campus)
            assert only(await watcher.look(imports)).report.added == 700
            banner(path, range(1, 4))
            held = only(await watcher.look(imports))
            assert held.held and held.report.removed == 697
            # More records than one part of a kept plan holds.
            banner(path, range(1, 601))
            bigger = only(await watcher.look(imports))
            assert bigger.held and len(await imports.store.plan(bigger.id)) == 3
            entry = await imports.confirm(bigger.id, actor="registrar")
            assert (entry.state, entry.report["removed"]) == (ImportState.CONFIRMED, 100)
            assert len(await stored(campus)) == 600
            assert [e.state for e in await imports.store.recent()] == [
                ImportState.CONFIRMED, ImportState.HELD, ImportState.APPLIED
            ]
        finally:
            await db.close()


class TestCommand:
    """`clarion directory imports run NAME` imports an export now."""

    def test_run_now_then_nothing_new(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write_campus(tmp_path, 0, 0)
        banner(tmp_path / "students.csv", range(1, 4), bad_email_at=2)
        config = tmp_path / "clarion.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "clarion.db"}"\n\n'
            '[directory]\nbuildings = "buildings.csv"\n\n'
            '[directory.exports.banner]\npath = "students.csv"\nrole = "student"\n'
            f"columns = {json.dumps(BANNER_COLUMNS).replace(':', ' =')}\n",
            encoding="utf-8",
        )
        args = ["directory", "imports", "run", "banner", "--config", str(config)]
        assert cli_main(args) == 1
        assert capsys.readouterr().out.splitlines() == [
            "people: 3 rows: 2 added, 0 changed, 0 unchanged, 0 removed, 1 rejected",
            "rejected:",
            "  row 3: email is not a valid address (column 'EMAIL_ADDR')",
            "kept as import 1",
        ]
        assert cli_main(args) == 0
        assert capsys.readouterr().out == "banner: nothing new to import\n"
        assert cli_main(["directory", "imports", "run", "nope", "--config", str(config)]) == 2
        assert "no export 'nope' in [directory.exports] (banner)" in capsys.readouterr().err
