"""`clarion webhooks`: the configured webhook subscribers, and each one's delivery log."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from channels.webhook_signed import SignedWebhooks, WebhookSettings
from dispatcher.settings import Settings, settings_or_exit
from dispatcher.store.database import open_database
from dispatcher.store.webhook_log import WebhookLog


def register(subparsers: Any) -> None:
    """Add `clarion webhooks list|log`."""
    parser = subparsers.add_parser("webhooks", help="webhook subscribers and their delivery log")
    commands = parser.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    listed = commands.add_parser("list", help="the subscribers, their format and alert kinds")
    listed.add_argument("--config", type=Path, help="TOML config (default: the embedded one)")
    listed.set_defaults(func=cmd_list)
    log = commands.add_parser("log", help="a subscriber's latest tries, newest first")
    log.add_argument("name", help="the subscriber's name")
    log.add_argument("--alert", help="only the tries of this alert")
    log.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    log.add_argument("--config", type=Path, help="TOML config (default: the embedded one)")
    log.set_defaults(func=cmd_log)




def _subscribers(settings: Settings) -> WebhookSettings:
    raw = settings.channels.get(SignedWebhooks.name, {})
    found = SignedWebhooks.settings_model.model_validate(raw)
    assert isinstance(found, WebhookSettings)
    return found


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print each subscriber, one a line: name, format, kinds (never its URL or secret)."""
    out = out or sys.stdout
    for s in _subscribers(settings_or_exit(args.config)).subscribers:
        print(f"{s.name}\t{s.format}\t{','.join(k.value for k in s.kinds)}", file=out)
    return 0


def cmd_log(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print a subscriber's tries, one a line: when, alert, try, status, outcome, ms, detail."""
    out = out or sys.stdout
    settings = settings_or_exit(args.config)
    if args.name not in {s.name for s in _subscribers(settings).subscribers}:
        print(f"clarion: no webhook subscriber {args.name!r} in the config", file=sys.stderr)
        return 2

    async def read() -> int:
        db = await open_database(settings.store.url)
        try:
            tries = await WebhookLog(db).of(args.name, limit=args.limit, alert_id=args.alert)
        finally:
            await db.close()
        for t in tries:
            when = datetime.fromtimestamp(t.at / 1000, tz=UTC).isoformat(timespec="seconds")
            status = "-" if t.status is None else str(t.status)
            print(f"{when}\t{t.alert_id}\ttry {t.attempt}\t{status}\t{t.outcome}\t{t.ms} ms\t"
                  f"{t.detail}", file=out)
        return 0

    return asyncio.run(read())
