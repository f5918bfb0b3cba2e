"""`clarion directory import` and `clarion segments count|list`: the directory from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.observability import configure_logging
from dispatcher.settings import ConfigError, Settings, load_settings
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.directory import DirectoryStore
from segments.audience import AudienceResolver, load_campus
from segments.directory import (
    DirectoryFileError,
    DirectoryImporter,
    ImportReport,
    read_rows,
)
from segments.expression import AudienceError
from segments.imports import DirectoryImports, ImportOutcome
from segments.sync_cli import (
    outcome_status,
    print_outcome,
    print_report,
    progress_bars,
    register_actions,
)
from segments.zones import CampusDataError

# What a file imported from the shell is kept as (with its name: only the newest import of a
# source may be confirmed).
FILE_SOURCE = "file"
# Files smaller than this import in a moment: no progress bar.
PROGRESS_MIN_BYTES = 1 << 20


def register(subparsers: Any) -> None:
    """Add the `directory` and `segments` commands."""
    directory = subparsers.add_parser(
        "directory", help="the campus directory: import people, opt-in lists and devices"
    )
    actions = directory.add_subparsers(dest="directory_action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="upsert people (or devices) from a CSV or JSON Lines file",
        description=(
            "Upsert people keyed by id from a .csv or .jsonl file. Columns: id, first_name, "
            "last_name, email, phone, role, building, campus, language, groups (';'-separated), "
            "and optionally push, channels, opt_out, quiet_hours; other columns become "
            "attributes usable in segments. Bad rows are reported and skipped. An import of "
            "people that would change or remove more than [directory.safety_brake] "
            "max_change_share of the people of its roles is held for a person to confirm "
            "(`clarion directory imports confirm ID`). Exit status: 0 all rows imported, "
            "1 some rows rejected, 2 the file or config cannot be used, 3 held."
        ),
    )
    imp.add_argument("file", type=Path, help="a .csv or .jsonl file")
    imp.add_argument("--role", help="import an opt-in list (parent, neighbor...) with this role")
    imp.add_argument("--devices", action="store_true", help="the file lists devices, not people")
    imp.add_argument(
        "--remove-missing",
        action="store_true",
        help="remove people of the file's roles (or --role) who are not in the file",
    )
    imp.add_argument(
        "--confirmed",
        action="store_true",
        help="write it even past the safety brake (you have checked what it changes)",
    )
    imp.add_argument("--config", type=Path, help="config file (default: the embedded one)")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(func=import_command)
    register_actions(actions)

    segments = subparsers.add_parser("segments", help="count and list audience segments")
    seg_actions = segments.add_subparsers(dest="segments_action", required=True, metavar="ACTION")
    count = seg_actions.add_parser(
        "count",
        help="count who an audience reaches, per role and channel, without sending",
        description=(
            "Resolve an audience expression (e.g. 'role:student and zone:b', "
            "'all and not group:athletics') and print the counts that an alert would have."
        ),
    )
    count.add_argument("expr", help="segment expression; quote it for the shell")
    count.add_argument("--zones", default="", help="comma-separated zone ids to include")
    count.add_argument("--exclude-zones", default="", help="comma-separated zone ids to exclude")
    count.add_argument(
        "--kind",
        type=AlertKind,
        choices=list(AlertKind),
        default=AlertKind.EMERGENCY,
        help="alert kind: decides the default channels and the preference policy",
    )
    count.add_argument(
        "--channels",
        nargs="+",
        metavar="CHANNEL",
        help="channels (sms email push siren signage pa desktop; default: the kind's channels)",
    )
    count.add_argument(
        "--json", action="store_true", help='print {"total", "by_role", "by_channel"}'
    )
    count.add_argument("--config", type=Path, help="config file (default: the embedded one)")
    count.set_defaults(func=count_command)

    listing = seg_actions.add_parser("list", help="list the named segments of the config")
    listing.add_argument("--config", type=Path, help="config file (default: the embedded one)")
    listing.set_defaults(func=list_command)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    # Logs go to stderr, and only warnings: stdout carries the report or the JSON.
    configure_logging("warning", json_lines=settings.logging.json_lines)
    return settings


def _fail(message: str) -> int:
    print(f"clarion: {message}", file=sys.stderr)
    return 2


def import_command(args: argparse.Namespace) -> int:
    """Run `clarion directory import`."""
    try:
        settings = _settings(args)
        result = asyncio.run(_import(settings, args))
    except (ConfigError, DirectoryFileError, CampusDataError) as exc:
        return _fail(str(exc))
    if isinstance(result, ImportOutcome):
        if args.json:
            print(json.dumps({**result.report.to_json(), "import_id": result.id,
                              "state": result.state.value, "share": result.share}, indent=2))
        else:
            limit = settings.directory.safety_brake.max_change_share
            print_outcome(result, limit, sys.stdout)
        return outcome_status(result)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_report(result, sys.stdout)
    return 1 if result.rejected else 0


async def _import(settings: Settings, args: argparse.Namespace) -> ImportReport | ImportOutcome:
    if args.devices and args.role:
        raise DirectoryFileError("--role applies to people, not to --devices")
    campus = load_campus(settings.directory, settings.base_dir)
    db = await open_database(settings.store.url)
    try:
        try:
            size = args.file.stat().st_size
        except OSError:
            size = 0
        with progress_bars(
            args.file.name, show=size >= PROGRESS_MIN_BYTES and not args.json, size=size
        ) as bars:
            if args.devices:
                importer = DirectoryImporter(db, settings.directory, campus)
                return await importer.import_devices(
                    args.file, remove_missing=args.remove_missing, progress=bars.reading
                )
            imports = DirectoryImports(
                db, settings.directory, lambda: campus, audit=AuditLog(db)
            )
            return await imports.run(
                f"{FILE_SOURCE}:{args.file.name}", read_rows(args.file, bars.reading),
                detail=args.file.name, role=args.role, remove_missing=args.remove_missing,
                header_row=args.file.suffix.lower() == ".csv", brake=not args.confirmed,
                writing=bars.writing,
            )
    finally:
        await db.close()


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_channels(raw: Sequence[str] | None, default: Sequence[ChannelKind]) -> list[ChannelKind]:
    """Channel names from the command line (space- or comma-separated); raises ValueError."""
    if not raw:
        return list(default)
    out: list[ChannelKind] = []
    for name in (n for part in raw for n in _list(part)):
        try:
            out.append(ChannelKind(name.lower()))
        except ValueError:
            known = ", ".join(c.value for c in ChannelKind)
            raise ValueError(f"unknown channel {name!r} (one of {known})") from None
    return list(dict.fromkeys(out))


def count_command(args: argparse.Namespace) -> int:
    """Run `clarion segments count`."""
    try:
        settings = _settings(args)
        channels = parse_channels(
            args.channels, settings.dispatch.default_channels.get(args.kind, list(ChannelKind))
        )
        counts = asyncio.run(_count(settings, args, channels))
    except (ConfigError, CampusDataError, ValueError) as exc:
        # AudienceError is a ValueError: its message says where the expression is wrong.
        prefix = "audience: " if isinstance(exc, AudienceError) else ""
        return _fail(f"{prefix}{exc}")
    if args.json:
        print(json.dumps(counts))
        return 0
    width = max([len(k) for k in (*counts["by_role"], *counts["by_channel"])] + [5])
    print(f"{'total':<{width + 2}} {counts['total']:>8}")
    print("by role")
    for role, n in counts["by_role"].items():
        print(f"  {role:<{width}} {n:>8}")
    print("by channel")
    for channel, n in counts["by_channel"].items():
        print(f"  {channel:<{width}} {n:>8}")
    return 0


async def _count(
    settings: Settings, args: argparse.Namespace, channels: list[ChannelKind]
) -> dict[str, Any]:
    db = await open_database(settings.store.url)
    try:
        directory = DirectoryStore(db)
        if not await directory.has_people() and not await directory.has_devices():
            print(
                "clarion: the directory is empty; import it with `clarion directory import`"
                " (or start `clarion serve`, which loads the configured campus)",
                file=sys.stderr,
            )
        resolver = AudienceResolver(db, settings.directory, settings.base_dir)
        return await resolver.count(
            args.expr,
            _list(args.zones),
            args.kind,
            channels,
            exclude_zones=_list(args.exclude_zones),
        )
    finally:
        await db.close()


def list_command(args: argparse.Namespace) -> int:
    """Run `clarion segments list`."""
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(str(exc))
    named = settings.directory.segments
    if not named:
        print("no named segments: add them under [directory] segments = { name = \"expr\" }")
    width = max((len(n) for n in named), default=0)
    for name, text in sorted(named.items()):
        print(f"{name:<{width}}  {text}")
    return 0
