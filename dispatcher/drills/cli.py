"""`clarion drill run|list`, `clarion report` and `clarion purge`.

`drill run NAME` asks the running service to fire the drill (POST /v1/drills/{name}/run with
the API token), so the alert goes through the same intake, engine and records as a scheduled
one, and follows it with a progress bar. `drill list`, `report` and `purge` read the config
and the store directly: they need no running service, so a compliance officer can export the
records of an archived store too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from dispatcher.clock import Clock
from dispatcher.commands import _accepted, _client_args, _follow, _token
from dispatcher.drills.schedule import describe
from dispatcher.drills.scheduler import DrillRun, recent_runs
from dispatcher.incidents.statistics import section_html
from dispatcher.observability import configure_logging
from dispatcher.records import CleryReport, purge, render_html, report_csv
from dispatcher.service import Service
from dispatcher.settings import Settings, settings_or_exit
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database


def register(sub: Any) -> None:
    """Add `drill`, `report` and `purge`."""
    drill = sub.add_parser("drill", help="scheduled drills: run one now, list the schedule")
    drill_sub = drill.add_subparsers(dest="drill_command", required=True, metavar="COMMAND")
    run = drill_sub.add_parser("run", help="fire a configured drill now (through the service)")
    run.add_argument("name")
    run.add_argument("--no-wait", action="store_true", help="return after the 202")
    _client_args(run)
    run.set_defaults(func=cmd_drill_run)
    listing = drill_sub.add_parser("list", help="the configured drills and their next times")
    listing.add_argument("--config", type=Path)
    listing.add_argument("--count", type=int, default=3, help="next times shown per drill")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=cmd_drill_list)

    report = sub.add_parser("report", help="the Clery report of a calendar year")
    report.add_argument("--year", type=int, help="default: the current year")
    report.add_argument("--format", choices=["csv", "html", "json"],
                        help="default: from --out's extension, else csv")
    report.add_argument("--out", type=Path, help="write here instead of stdout")
    report.add_argument("--config", type=Path)
    report.set_defaults(func=cmd_report)

    purge = sub.add_parser(
        "purge", help="remove records past store.retention_days (the audit log is kept)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    purge.add_argument("--config", type=Path)
    purge.set_defaults(func=cmd_purge)


# -- drill run -------------------------------------------------------------------------------------


def cmd_drill_run(args: argparse.Namespace) -> int:
    """POST /v1/drills/{name}/run, then follow the alert like `clarion send`."""
    return asyncio.run(_drill_run(args.url, _token(args), args.name, wait=not args.no_wait))


async def _drill_run(url: str, token: str, name: str, *, wait: bool) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        reply = await _accepted(http, url, f"/v1/drills/{name}/run")
        if reply is None:
            return 1
        alert_id = reply["id"]
        print(f"drill {name}: alert {alert_id} accepted", flush=True)
        if not wait:
            return 0
        return await _follow(http, url, alert_id)


# -- drill list ------------------------------------------------------------------------------------


def _quiet_logs(settings: Settings) -> None:
    """Logs to stderr, so stdout carries only the command's output (a CSV, a table)."""
    configure_logging(settings.logging.level, json_lines=settings.logging.json_lines)


def cmd_drill_list(args: argparse.Namespace) -> int:
    """Print each drill with its next times and its last run."""
    settings = settings_or_exit(args.config)
    _quiet_logs(settings)
    return asyncio.run(_drill_list(settings, count=max(args.count, 1), as_json=args.json))


async def _drill_list(settings: Settings, *, count: int, as_json: bool) -> int:
    drills = settings.drills
    last: dict[str, DrillRun] = {}
    db = await open_database(settings.store.url) if _store_exists(settings) else None
    if db is not None:
        try:
            for name in drills.schedule:
                runs = await recent_runs(db, name, 1)
                if runs:
                    last[name] = runs[0]
        finally:
            await db.close()
    now = Clock().now_ms()
    docs = []
    for name in drills.schedule:
        doc = describe(drills, name, now, count)
        doc["last_run"] = last[name].as_json() if name in last else None
        docs.append(doc)
    if as_json:
        print(json.dumps({"timezone": drills.timezone, "drills": docs}, indent=2))
        return 0
    if not docs:
        print("no drills are scheduled (add them under [drills.schedule.NAME] in the config)")
        return 0
    table = Table(title=f"Scheduled drills ({drills.timezone})")
    for column in ("drill", "mode", "cron", "next", "last run"):
        table.add_column(column)
    for doc in docs:
        nxt = "\n".join(_short(t) for t in doc["next"]) or "not scheduled (enabled = false)"
        run = doc["last_run"]
        last_run = f"{_short(run['scheduled_for'])} {run['status']}" if run else "never"
        table.add_row(doc["name"], doc["mode"], f"{doc['cron']}\n{doc['timezone']}", nxt,
                      last_run)
    Console().print(table)
    return 0


def _short(iso_time: str) -> str:
    moment = datetime.fromisoformat(iso_time)
    return moment.strftime("%a %Y-%m-%d %H:%M %Z").strip() or iso_time


def _store_exists(settings: Settings) -> bool:
    """Whether there is a store to read: a listing never creates an empty SQLite file."""
    url = settings.store.url
    if not url.startswith("sqlite:///"):
        return True
    path = Path(url.removeprefix("sqlite:///"))
    return (path if path.is_absolute() else Path.cwd() / path).exists()


# -- report ----------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """Write the year's Clery report; warnings also go to stderr."""
    settings = settings_or_exit(args.config)
    _quiet_logs(settings)
    fmt = args.format
    if fmt is None:
        suffix = args.out.suffix.lower().lstrip(".") if args.out else ""
        fmt = suffix if suffix in ("csv", "html", "json") else "csv"
    report, crimes = asyncio.run(_report(settings, args.year))
    if fmt == "html":
        text = render_html(report).replace("</body>", section_html(crimes) + "</body>", 1)
    elif fmt == "json":
        text = json.dumps({**report.to_json(), **crimes}, indent=2)
    else:
        text = report_csv(report, crimes)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(report.records)} alerts, {report.year})", file=sys.stderr)
    for warning in report.warnings:
        ref = f" [alert {warning.alert_id}]" if warning.alert_id else ""
        print(f"warning: {warning.message}{ref}", file=sys.stderr)
    return 0


async def _report(
    settings: Settings, year: int | None
) -> tuple[CleryReport, dict[str, Any]]:
    """The year's alert and drill records, and its crime log part (statistics, decisions)."""
    drills = settings.drills
    now = Clock().now_ms()
    if year is None:
        year = datetime.fromtimestamp(now / 1000, tz=drills.zone()).year
    # The records and the incident registry as the composition root builds them.
    service = await Service.open(settings)
    try:
        report = await service.records.report(year, now_ms=now)
        crimes = await service.incidents.report_section(year)
        return report, crimes
    finally:
        await service.db.close()


# -- purge -----------------------------------------------------------------------------------------


def cmd_purge(args: argparse.Namespace) -> int:
    """Remove what is past retention and say what was removed."""
    settings = settings_or_exit(args.config)
    _quiet_logs(settings)
    return asyncio.run(_purge(settings, dry_run=args.dry_run))


async def _purge(settings: Settings, *, dry_run: bool) -> int:
    db = await open_database(settings.store.url)
    try:
        result = await purge(db, AuditLog(db), retention_days=settings.store.retention_days,
                             now_ms=Clock().now_ms(), dry_run=dry_run)
    finally:
        await db.close()
    summary = result.as_json()
    verb = "would remove" if dry_run else "removed"
    print(
        f"{verb} {summary['alerts']} alerts created before {summary['cutoff']} "
        f"(retention {summary['retention_days']} days): {summary['versions']} content "
        f"versions, {summary['deliveries']} deliveries, {summary['receipts']} receipts, "
        f"{summary['notes']} notes, {summary['drill_runs']} drill runs; "
        "the audit log is kept" + ("" if dry_run else " and records this purge")
    )
    return 0
