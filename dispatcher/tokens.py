"""`clarion token`: make API tokens and the `[[auth.tokens]]` entries that store them hashed."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any, TextIO

from dispatcher.auth import Role, token_sha256

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
