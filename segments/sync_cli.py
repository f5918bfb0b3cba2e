"""`clarion directory sync ldap` and `clarion directory imports list|show|confirm|discard|run`:
the kept imports and the safety brake from the shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from dispatcher.observability import configure_logging
from dispatcher.refusals import Refused
from dispatcher.settings import ConfigError, Settings, load_settings
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.imports import ImportEntry, ImportState
from segments.audience import load_campus, resolve_path
from segments.directory import DirectoryFileError, ImportReport, ProgressFn
from segments.exports import ExportWatcher
from segments.imports import DirectoryImports, ImportOutcome
from segments.ldap_sync import LdapSyncError, sync_ldap
from segments.zones import CampusDataError

T = TypeVar("T")

# Exit statuses beside 0 (done), 1 (some rows rejected) and 2 (cannot be used).
HELD_EXIT = 3


def register_actions(actions: Any) -> None:
    """Add `sync` and `imports` under `clarion directory`."""
    sync = actions.add_parser("sync", help="sync the directory from LDAP / Active Directory")
    sources = sync.add_subparsers(dest="sync_source", required=True, metavar="SOURCE")
    ldap = sources.add_parser(
        "ldap",
        help="read people and groups from [directory.ldap] now",
        description=(
            "Read the people and their groups from the server of [directory.ldap] (paged), "
            "map them with its attributes and roles, and import them through the safety "
            "brake. Exit status: 0 imported, 1 some entries rejected, 2 the server or config "
            f"cannot be used, {HELD_EXIT} held for a person to confirm."
        ),
    )
    _common(ldap)
    ldap.add_argument(
        "--confirmed", action="store_true",
        help="write it even past the safety brake (you have checked what it changes)",
    )
    ldap.set_defaults(func=sync_ldap_command)

    imports = actions.add_parser(
        "imports", help="kept directory imports: list, show, confirm or discard held ones"
    )
    steps = imports.add_subparsers(dest="imports_action", required=True, metavar="ACTION")
    listing = steps.add_parser("list", help="the latest imports, newest first")
    listing.add_argument("--state", choices=[s.value for s in ImportState])
    listing.add_argument("--limit", type=int, default=20)
    _common(listing)
    listing.set_defaults(func=list_command)
    for name, help_text, func in (
        ("show", "one import's report", show_command),
        ("confirm", "write a held import as it was planned", confirm_command),
        ("discard", "drop a held import without writing it", discard_command),
    ):
        step = steps.add_parser(name, help=help_text)
        step.add_argument("id", type=int, help="the import's number")
        _common(step)
        step.set_defaults(func=func)
    run = steps.add_parser(
        "run", help="import a configured export now ([directory.exports.NAME])"
    )
    run.add_argument("export", help="the export's name")
    run.add_argument("--confirmed", action="store_true",
                     help="write it even past the safety brake")
    _common(run)
    run.set_defaults(func=run_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="config file (default: the embedded one)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def cli_actor() -> str:
    """Who decides from the shell: the account running the command."""
    return f"cli:{getpass.getuser()}"


def _fail(message: str) -> int:
    print(f"clarion: {message}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    configure_logging("warning", json_lines=settings.logging.json_lines)
    return settings


def _with_imports(
    args: argparse.Namespace, work: Callable[[DirectoryImports, Settings], Awaitable[T]]
) -> T:
    settings = _settings(args)

    async def run() -> T:
        campus = load_campus(settings.directory, settings.base_dir)
        db = await open_database(settings.store.url)
        try:
            imports = DirectoryImports(
                db, settings.directory, lambda: campus, audit=AuditLog(db)
            )
            return await work(imports, settings)
        finally:
            await db.close()

    return asyncio.run(run())


def outcome_status(outcome: ImportOutcome) -> int:
    """The exit status of an import: held, some rows rejected, or done."""
    if outcome.held:
        return HELD_EXIT
    return 1 if outcome.report.rejected else 0


def print_outcome(outcome: ImportOutcome, limit: float, out: TextIO) -> None:
    """The import's report and, when held, what to do next."""
    print_report(outcome.report, out)
    if outcome.held:
        print(
            f"held as import {outcome.id}: it would change or remove "
            f"{outcome.share:.0%} of the people it concerns (the safety brake allows "
            f"{limit:.0%}); nothing was written.\n"
            f"check it, then `clarion directory imports confirm {outcome.id}` "
            f"(or `discard {outcome.id}`)",
            file=out,
        )
    else:
        print(f"kept as import {outcome.id}", file=out)


def print_report(report: ImportReport, out: TextIO) -> None:
    """The import report for a person at a terminal (rows are the file's lines)."""
    skipped = f", {report.skipped} skipped" if report.skipped else ""
    print(
        f"{report.kind}: {report.rows} rows: {report.added} added, {report.changed} changed, "
        f"{report.unchanged} unchanged, {report.removed} removed, "
        f"{len(report.rejected)} rejected{skipped}",
        file=out,
    )
    if report.rejected:
        print("rejected:", file=out)
        for problem in report.rejected:
            print(f"  row {problem.row}: {problem.reason}", file=out)
    if report.warnings:
        print("warnings:", file=out)
        for problem in report.warnings:
            print(f"  row {problem.row}: {problem.reason}", file=out)


@dataclass(frozen=True, slots=True)
class Bars:
    """Progress callbacks of one import at a terminal (None where nothing is shown)."""

    reading: ProgressFn | None = None
    counting: Callable[[int], None] | None = None
    writing: ProgressFn | None = None


@contextmanager
def progress_bars(what: str, *, show: bool = True, size: int | None = None) -> Iterator[Bars]:
    """Bars on stderr for reading `what` (bytes of `size`, or entries counted) and then for
    writing the people, when stderr is a terminal."""
    if not show or not sys.stderr.isatty():
        yield Bars()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        read_task = bar.add_task(f"reading {what}", total=size)
        write_task: list[TaskID] = []

        def reading(done: int, total: int) -> None:
            bar.update(read_task, completed=done, total=total)

        def counting(done: int) -> None:
            bar.update(read_task, completed=done)

        def writing(done: int, total: int) -> None:
            if not write_task:
                write_task.append(bar.add_task("writing people", total=total))
            bar.update(write_task[0], completed=done, total=total)

        yield Bars(reading, counting, writing)


def sync_ldap_command(args: argparse.Namespace) -> int:
    """Run `clarion directory sync ldap`."""
    try:
        settings = _settings(args)
        ldap = settings.directory.ldap
        if not ldap.base_dn:
            return _fail("set [directory.ldap] url, base_dn and the bind account first")

        async def work(imports: DirectoryImports, settings: Settings) -> ImportOutcome:
            with progress_bars(ldap.url, show=not args.json) as bars:
                outcome = await sync_ldap(
                    imports, ldap, settings.base_dir, brake=not args.confirmed,
                    entries=bars.counting, writing=bars.writing,
                )
            assert outcome is not None  # only a scheduled sync skips an unchanged server
            return outcome

        outcome = _with_imports(args, work)
    except (ConfigError, CampusDataError, LdapSyncError, DirectoryFileError) as exc:
        return _fail(str(exc))
    _show_outcome(args, outcome, settings)
    return outcome_status(outcome)


def _show_outcome(args: argparse.Namespace, outcome: ImportOutcome, settings: Settings) -> None:
    if args.json:
        print(json.dumps({
            "id": outcome.id, "state": outcome.state.value, "share": outcome.share,
            "report": outcome.report.to_json(),
        }, indent=2))
    else:
        print_outcome(outcome, settings.directory.safety_brake.max_change_share, sys.stdout)


def run_command(args: argparse.Namespace) -> int:
    """Run `clarion directory imports run EXPORT`."""
    try:
        settings = _settings(args)
        export = settings.directory.exports.get(args.export)
        if export is None:
            known = ", ".join(sorted(settings.directory.exports)) or "none configured"
            return _fail(f"no export {args.export!r} in [directory.exports] ({known})")
        watcher = ExportWatcher(args.export, export, resolve_path(settings.base_dir, export.path))

        async def work(imports: DirectoryImports, _: Settings) -> list[ImportOutcome | int]:
            with progress_bars(args.export, show=not args.json) as bars:
                return await watcher.look(
                    imports, wait_settled=False, brake=not args.confirmed,
                    progress=bars.reading, writing=bars.writing,
                )

        outcomes = _with_imports(args, work)
    except (ConfigError, CampusDataError, DirectoryFileError) as exc:
        return _fail(str(exc))
    if not outcomes:
        print(f"{args.export}: nothing new to import")
        return 0
    status = 0
    for outcome in outcomes:
        if isinstance(outcome, int):
            print(f"import {outcome} failed: see `clarion directory imports show {outcome}`")
            status = 2
            continue
        _show_outcome(args, outcome, settings)
        status = max(status, outcome_status(outcome))
    return status


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def list_command(args: argparse.Namespace) -> int:
    """Run `clarion directory imports list`."""
    state = ImportState(args.state) if args.state else None

    async def work(imports: DirectoryImports, _: Settings) -> list[ImportEntry]:
        return await imports.store.recent(limit=max(1, args.limit), state=state)

    try:
        entries = _with_imports(args, work)
    except (ConfigError, CampusDataError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps([e.as_json() for e in entries], indent=2))
        return 0
    if not entries:
        print("no directory imports kept yet")
    for entry in entries:
        report = entry.report
        counts = (
            f"+{report.get('added', 0)} ~{report.get('changed', 0)} "
            f"-{report.get('removed', 0)} !{len(report.get('rejected', []))}"
            if report else entry.error
        )
        print(f"{entry.id:>5}  {_when(entry.started_at)}  {entry.state.value:<9}  "
              f"{entry.share:>4.0%}  {entry.source:<16}  {counts}")
    return 0


def show_entry(entry: ImportEntry, out: TextIO) -> None:
    """One kept import for a person at a terminal."""
    print(f"import {entry.id}: {entry.source} {entry.detail}".rstrip(), file=out)
    print(f"state: {entry.state.value}"
          + (f" by {entry.decided_by} at {_when(entry.decided_at)}" if entry.decided_by else ""),
          file=out)
    print(f"started: {_when(entry.started_at)}, share changed or removed: {entry.share:.1%}",
          file=out)
    if entry.error:
        print(f"error: {entry.error}", file=out)
    if entry.report:
        print_report(ImportReport.of_json(entry.report), out)


def _decision(
    args: argparse.Namespace,
    decide: Callable[[DirectoryImports], Awaitable[ImportEntry]],
) -> int:
    async def work(imports: DirectoryImports, _: Settings) -> ImportEntry:
        return await decide(imports)

    try:
        entry = _with_imports(args, work)
    except (ConfigError, CampusDataError) as exc:
        return _fail(str(exc))
    except Refused as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(entry.as_json(), indent=2))
    else:
        show_entry(entry, sys.stdout)
    return 0


def show_command(args: argparse.Namespace) -> int:
    """Run `clarion directory imports show ID`."""
    return _decision(args, lambda imports: imports.get(args.id))


def confirm_command(args: argparse.Namespace) -> int:
    """Run `clarion directory imports confirm ID`."""
    async def confirm(imports: DirectoryImports) -> ImportEntry:
        with progress_bars(f"import {args.id}", show=not args.json) as bars:
            return await imports.confirm(args.id, actor=cli_actor(), writing=bars.writing)

    return _decision(args, confirm)


def discard_command(args: argparse.Namespace) -> int:
    """Run `clarion directory imports discard ID`."""
    return _decision(args, lambda imports: imports.discard(args.id, actor=cli_actor()))

