"""`clarion provider drain|undrain|list`: take a provider out of its kind's order by hand (before
maintenance, say) and put it back; kept in the store, so every node honours it within seconds."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from channels.registry import CHANNELS
from dispatcher.clock import Clock
from dispatcher.observability import configure_logging
from dispatcher.settings import Settings, settings_or_exit
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.providers import ProviderDrains


def register(subparsers: Any) -> None:
    """Add `clarion provider drain`, `undrain` and `list`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provider", help="drain an SMS or voice provider before maintenance, and undrain it"
    )
    sub = parser.add_subparsers(dest="provider_command", required=True, metavar="COMMAND")
    drain = sub.add_parser(
        "drain", help="send nothing more through NAME: the next provider of its kind takes over",
        description="Every node stops handing NAME new messages within seconds; messages it "
        "already accepted still report their status.",
    )
    drain.add_argument("name", help="the provider's channel name, e.g. sms.twilio")
    drain.add_argument("--reason", default="", help="why (kept with the drain and audited)")
    drain.add_argument("--config", type=Path)
    drain.set_defaults(func=cmd_drain)
    undrain = sub.add_parser("undrain", help="put NAME back in its place in the order")
    undrain.add_argument("name")
    undrain.add_argument("--config", type=Path)
    undrain.set_defaults(func=cmd_undrain)
    listing = sub.add_parser("list", help="the providers drained now")
    listing.add_argument("--config", type=Path)
    listing.set_defaults(func=cmd_list)


def _settings(path: Path | None) -> Settings:
    settings = settings_or_exit(path)
    configure_logging("warning", json_lines=settings.logging.json_lines)
    return settings


def _known(name: str) -> bool:
    if name in CHANNELS:
        return True
    print(f"clarion: unknown provider {name!r} (known: {', '.join(sorted(CHANNELS))})",
          file=sys.stderr)
    return False


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_drain(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Drain a provider."""
    out = out or sys.stdout
    if not _known(args.name):
        return 2
    settings = _settings(args.config)

    async def work() -> int:
        db = await open_database(settings.store.url)
        try:
            now = Clock().now_ms()
            added = await ProviderDrains(db).drain(
                args.name, actor=_actor(), reason=args.reason, now_ms=now
            )
            if added:
                await AuditLog(db).record(
                    at=now, actor=_actor(), action="provider.drained",
                    detail={"provider": args.name, "reason": args.reason},
                )
        finally:
            await db.close()
        print(f"{args.name} drained" if added else f"{args.name} was already drained", file=out)
        return 0

    return asyncio.run(work())


def cmd_undrain(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Undrain a provider."""
    out = out or sys.stdout
    if not _known(args.name):
        return 2
    settings = _settings(args.config)

    async def work() -> int:
        db = await open_database(settings.store.url)
        try:
            removed = await ProviderDrains(db).undrain(args.name)
            if removed:
                await AuditLog(db).record(
                    at=Clock().now_ms(), actor=_actor(), action="provider.undrained",
                    detail={"provider": args.name},
                )
        finally:
            await db.close()
        print(f"{args.name} undrained" if removed else f"{args.name} was not drained", file=out)
        return 0

    return asyncio.run(work())


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """List the drained providers."""
    out = out or sys.stdout
    settings = _settings(args.config)

    async def work() -> int:
        db = await open_database(settings.store.url)
        try:
            drains = await ProviderDrains(db).all()
        finally:
            await db.close()
        if not drains:
            print("no provider is drained", file=out)
        for d in drains:
            since = datetime.fromtimestamp(d.drained_at / 1000, UTC).isoformat(timespec="seconds")
            why = f"  {d.reason}" if d.reason else ""
            print(f"{d.name}  since {since}  by {d.drained_by}{why}", file=out)
        return 0

    return asyncio.run(work())
