"""`clarion incident add|list|show|decide|disposition|hold|release`: the crime log from a shell.

Each command calls a running service's API (`--url`, `--token` or $CLARION_API_TOKEN) and
prints its JSON answer, with every moment as a local date-time ("2026-11-25 09:00:00-05:00",
in this machine's time zone) instead of the API's epoch milliseconds; the exit status is 0 on
success, 1 when the service refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import aiohttp

from dispatcher.incidents.model import Bias, Category, Disposition, Geography, Source
from dispatcher.settings import TOKEN_ENV

DEFAULT_URL = "http://127.0.0.1:8025"
# The fields of the API's incident documents that hold a moment in epoch milliseconds, besides
# those named `..._at`.
MOMENTS = frozenset({"at", "occurred_from", "occurred_to"})


def local_times(doc: Any, zone: tzinfo | None = None) -> Any:
    """The API's answer with each moment as a local date-time, in `zone` (default: this
    machine's time zone)."""
    if isinstance(doc, dict):
        return {key: _local(value, zone) if _moment(key, value) else local_times(value, zone)
                for key, value in doc.items()}
    if isinstance(doc, list):
        return [local_times(value, zone) for value in doc]
    return doc


def _moment(key: str, value: Any) -> bool:
    named = key in MOMENTS or key.endswith("_at")
    return named and isinstance(value, int) and not isinstance(value, bool)


def _local(ms: int, zone: tzinfo | None) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)
    return moment.isoformat(sep=" ", timespec="seconds")


def register(sub: Any) -> None:
    """Add `clarion incident ...`."""
    parser = sub.add_parser("incident", help="the daily crime log and timely-warning decisions")
    commands = parser.add_subparsers(dest="incident_command", required=True, metavar="COMMAND")

    add = commands.add_parser("add", help="record a reported crime")
    add.add_argument("--file", type=Path, help="a JSON incident ('-' for stdin)")
    add.add_argument("--reported-at", help="ISO time (default: now)")
    add.add_argument("--occurred-from", help="ISO time the crime began")
    add.add_argument("--occurred-to", help="ISO time it ended (a range)")
    add.add_argument("--location", help="general location, never a residence's address")
    add.add_argument("--geography", choices=[g.value for g in Geography])
    add.add_argument("--category", choices=[c.value for c in Category])
    add.add_argument("--bias", choices=[b.value for b in Bias])
    add.add_argument("--nature", help="what happened, in plain words")
    add.add_argument("--disposition", choices=[d.value for d in Disposition])
    add.add_argument("--source", choices=[s.value for s in Source])
    _client_args(add)
    add.set_defaults(func=cmd_add)

    listing = commands.add_parser("list", help="recent incidents, late entries, overdue decisions")
    listing.add_argument("--days", type=int, default=60)
    _client_args(listing)
    listing.set_defaults(func=cmd_list)

    show = commands.add_parser("show", help="one incident with its history")
    show.add_argument("id")
    show.add_argument("--private", action="store_true",
                      help="include victim and reporter details (allowed roles; audited)")
    _client_args(show)
    show.set_defaults(func=cmd_show)

    decide = commands.add_parser("decide", help="close the timely-warning decision")
    decide.add_argument("id")
    choice = decide.add_mutually_exclusive_group(required=True)
    choice.add_argument("--warn", dest="warn", action="store_true")
    choice.add_argument("--no-warning", dest="warn", action="store_false")
    decide.add_argument("--reasons", required=True)
    decide.add_argument("--send", action="store_true",
                        help="send the prefilled timely warning through POST /v1/alerts")
    _client_args(decide)
    decide.set_defaults(func=cmd_decide)

    disposition = commands.add_parser("disposition", help="change an incident's disposition")
    disposition.add_argument("id")
    disposition.add_argument("disposition", choices=[d.value for d in Disposition])
    disposition.add_argument("--note", default="")
    _client_args(disposition)
    disposition.set_defaults(func=cmd_disposition)

    hold = commands.add_parser("hold", help="hold an entry back from the public log")
    hold.add_argument("id")
    hold.add_argument("--reason", required=True)
    _client_args(hold)
    hold.set_defaults(func=cmd_hold)

    release = commands.add_parser("release", help="release a held entry to the public log")
    release.add_argument("id")
    _client_args(release)
    release.set_defaults(func=cmd_release)


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("CLARION_URL", DEFAULT_URL))
    parser.add_argument("--token", default=None, help=f"API token (default ${TOKEN_ENV})")


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    status, doc = asyncio.run(_request(args.url, token, method, path, body))
    print(json.dumps(local_times(doc), indent=2))
    return 0 if status < 400 else 1


async def _request(
    url: str, token: str, method: str, path: str, body: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, url.rstrip("/") + path, json=body) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def incident_body(args: argparse.Namespace) -> dict[str, Any]:
    """The incident from `--file` with the flags given on top."""
    body: dict[str, Any] = {}
    if args.file is not None:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text("utf-8")
        body = json.loads(text)
    for flag in ("reported_at", "occurred_from", "occurred_to", "location", "geography",
                 "category", "bias", "nature", "disposition", "source"):
        value = getattr(args, flag)
        if value is not None:
            body[flag] = value
    if "reported_at" not in body:
        body["reported_at"] = datetime.now(tz=UTC).isoformat()
    return body


def cmd_add(args: argparse.Namespace) -> int:
    """`clarion incident add`."""
    return _call(args, "POST", "/v1/incidents", incident_body(args))


def cmd_list(args: argparse.Namespace) -> int:
    """`clarion incident list`."""
    return _call(args, "GET", f"/v1/incidents?days={args.days}")


def cmd_show(args: argparse.Namespace) -> int:
    """`clarion incident show`."""
    suffix = "?include=private" if args.private else ""
    return _call(args, "GET", f"/v1/incidents/{args.id}{suffix}")


def cmd_decide(args: argparse.Namespace) -> int:
    """`clarion incident decide`, then (with --send) the warning through the normal path."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    status, doc = asyncio.run(_request(args.url, token, "POST", f"/v1/incidents/{args.id}/decision",
                                       {"warn": args.warn, "reasons": args.reasons}))
    if status < 400 and args.send and doc.get("alert_request"):
        sent_status, sent = asyncio.run(
            _request(args.url, token, "POST", "/v1/alerts", doc["alert_request"]))
        doc["alert"] = sent
        status = sent_status
    print(json.dumps(local_times(doc), indent=2))
    return 0 if status < 400 else 1


def cmd_disposition(args: argparse.Namespace) -> int:
    """`clarion incident disposition`."""
    return _call(args, "PATCH", f"/v1/incidents/{args.id}",
                 {"disposition": args.disposition, "note": args.note})


def cmd_hold(args: argparse.Namespace) -> int:
    """`clarion incident hold`."""
    return _call(args, "POST", f"/v1/incidents/{args.id}/hold", {"reason": args.reason})


def cmd_release(args: argparse.Namespace) -> int:
    """`clarion incident release`."""
    return _call(args, "POST", f"/v1/incidents/{args.id}/release")
