"""`clarion token`: API tokens kept in the store (`add`, `revoke`, `list`: each a person's,
with an expiry, revoked on every node at once), and `[[auth.tokens]]` config entries."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dispatcher.access.auth import Role, token_sha256
from dispatcher.access.tokens import DEFAULT_EXPIRY_DAYS, TokenRegistry
from dispatcher.clock import Clock
from dispatcher.observability import configure_logging
from dispatcher.refusals import Refused
from dispatcher.settings import Settings, settings_or_exit
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.tokens import TokenStore
from dispatcher.store.users import UserStore

CLI_ACTOR = "clarion-cli"

TOKEN_BYTES = 32


def register(subparsers: Any) -> None:
    """Add `clarion token new` and `clarion token hash`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "token", help="make API tokens and their config entries (stored as SHA-256)"
    )
    sub = parser.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    new = sub.add_parser(
        "new",
        help="print a fresh token (once) and its [[auth.tokens]] entry",
        description="The token goes to the caller; only the entry, with its hash, goes "
        "into the config.",
    )
    new.add_argument("--name", required=True, help="who holds it (audit, rate limits)")
    new.add_argument("--role", default=Role.DISPATCHER.value, choices=[r.value for r in Role])
    new.add_argument("--segments", default="", help="comma-separated scopes (named segments)")
    new.add_argument("--signed", action="store_true",
                     help="also make an HMAC secret: requests must then be signed")
    new.set_defaults(func=cmd_new)
    hashed = sub.add_parser(
        "hash", help="read a token on stdin and print its sha256 for the config"
    )
    hashed.set_defaults(func=cmd_hash)

    add = sub.add_parser(
        "add", help="make a token kept in the store (hashed) for a person; printed once",
    )
    add.add_argument("name", help="the token's name (audit, rate limits)")
    add.add_argument("--person", required=True,
                     help="who holds it: their console user name when they have one")
    add.add_argument("--role", default=Role.DISPATCHER.value, choices=[r.value for r in Role])
    add.add_argument("--segments", default="", help="comma-separated scopes (named segments)")
    add.add_argument("--expires-in-days", type=int, default=DEFAULT_EXPIRY_DAYS,
                     help=f"days until it stops working (default {DEFAULT_EXPIRY_DAYS})")
    add.add_argument("--config", type=Path)
    add.set_defaults(func=cmd_add)
    revoke = sub.add_parser(
        "revoke", help="revoke a token (stored or configured): refused on every node at once",
    )
    revoke.add_argument("name")
    revoke.add_argument("--config", type=Path)
    revoke.set_defaults(func=cmd_revoke)
    listing = sub.add_parser("list", help="list the tokens, configured and stored")
    listing.add_argument("--config", type=Path)
    listing.set_defaults(func=cmd_list)


def _settings(path: Path | None) -> Settings:
    settings = settings_or_exit(path)
    configure_logging("warning", json_lines=settings.logging.json_lines)
    return settings


async def _with_registry(settings: Settings, work: Any) -> int:
    db = await open_database(settings.store.url)
    try:
        registry = TokenRegistry(settings.auth, TokenStore(db), UserStore(db), AuditLog(db),
                                 Clock())
        code: int = await work(registry)
        return code
    except Refused as exc:
        print(f"clarion: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await db.close()


def cmd_add(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Make a stored token and print it once."""
    out = out or sys.stdout
    settings = _settings(args.config)
    segments = tuple(s.strip() for s in args.segments.split(",") if s.strip())
    unknown = [s for s in segments if s not in settings.directory.segments]
    if unknown:
        print(f"clarion: not named segments: {', '.join(unknown)}", file=sys.stderr)
        return 2

    async def work(registry: TokenRegistry) -> int:
        issued = await registry.issue(args.name, person=args.person, role=Role(args.role),
                                      segments=segments, expires_in_days=args.expires_in_days,
                                      actor=CLI_ACTOR)
        print(f"token {args.name} for {issued.record.person} ({args.role}), expires "
              f"{_when(issued.record.expires_at)}", file=out)
        print(f"token (shown once): {issued.token}", file=out)
        return 0

    return asyncio.run(_with_registry(settings, work))


def cmd_revoke(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Revoke a token by name."""
    out = out or sys.stdout
    settings = _settings(args.config)

    async def work(registry: TokenRegistry) -> int:
        await registry.revoke(args.name, actor=CLI_ACTOR)
        print(f"token {args.name} revoked", file=out)
        return 0

    return asyncio.run(_with_registry(settings, work))


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print every token, one a line: name, person, role, source, state."""
    out = out or sys.stdout
    settings = _settings(args.config)

    async def work(registry: TokenRegistry) -> int:
        for t in await registry.listed():
            state = ("revoked" if t.revoked_at is not None
                     else "active" if t.usable else "expired")
            print(f"{t.name}\t{t.person}\t{t.role}\t{t.source}\t{state}\t"
                  f"expires {_when(t.expires_at)}", file=out)
        return 0

    return asyncio.run(_with_registry(settings, work))


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML)."""
    return json.dumps(value)


def entry(name: str, role: str, token: str, segments: list[str], hmac_secret: str = "") -> str:
    """The `[[auth.tokens]]` table for a token."""
    lines = [
        "[[auth.tokens]]",
        f"name = {toml_string(name)}",
        f"role = {toml_string(role)}",
        f"sha256 = {toml_string(token_sha256(token))}",
    ]
    if segments:
        lines.append(f"segments = [{', '.join(toml_string(s) for s in segments)}]")
    if hmac_secret:
        # The secret itself belongs in a file or the environment, not in the config.
        lines.append('hmac_secret_env = "CLARION_HMAC_' + _env_name(name) + '"')
    return "\n".join(lines)


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def cmd_new(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print the token, its secret when signed, and the config entry."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    secret = secrets.token_urlsafe(TOKEN_BYTES) if args.signed else ""
    segments = [s.strip() for s in args.segments.split(",") if s.strip()]
    print(f"token (give it to {args.name}; it is not shown again): {token}", file=out)
    if secret:
        print(f"HMAC secret (set CLARION_HMAC_{_env_name(args.name)} on the service, and give "
              f"it to {args.name}): {secret}", file=out)
    print("\nAdd to the config:\n", file=out)
    print(entry(args.name, args.role, token, segments, secret), file=out)
    return 0


def cmd_hash(args: argparse.Namespace, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Print the sha256 of the token read on stdin."""
    token = stdin.read().strip()
    if not token:
        print("clarion token hash: give the token on stdin", file=sys.stderr)
        return 2
    print(token_sha256(token), file=out)
    return 0
