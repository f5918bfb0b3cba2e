"""`clarion user add|passwd|disable|enable|list`: the console's people, kept in the store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from dispatcher.access.auth import Role
from dispatcher.clock import Clock
from dispatcher.console.accounts import (
    Accounts,
    generate_password,
    hash_password,
    name_problem,
    password_problem,
)
from dispatcher.observability import configure_logging
from dispatcher.settings import Settings, settings_or_exit
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.users import UserExists, UserStore

PASSWORD_ENV = "CLARION_USER_PASSWORD"  # noqa: S105 - a variable name
CLI_ACTOR = "clarion-cli"


def register(sub: Any) -> None:
    """Add `clarion user ...`."""
    user = sub.add_parser("user", help="console users: add, passwd, disable, enable, list")
    user_sub = user.add_subparsers(dest="user_command", required=True)

    add = user_sub.add_parser("add", help="add a console user (prints a generated password)")
    add.add_argument("name")
    # A scim token provisions people; no one signs in to the console with that role.
    roles = [r.value for r in Role if r is not Role.SCIM]
    add.add_argument("--role", default="dispatcher", choices=roles)
    add.add_argument("--segments", default="",
                     help="comma-separated named segments this user may target (scopes)")
    add.add_argument("--full-name", default="")
    add.add_argument("--title", default="")
    add.add_argument("--password-stdin", action="store_true",
                     help=f"read the password from stdin (or ${PASSWORD_ENV}); else generate one")
    add.add_argument("--config", type=Path)
    add.set_defaults(func=cmd_add)

    passwd = user_sub.add_parser("passwd", help="set a new password (ends their sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.add_argument("--config", type=Path)
    passwd.set_defaults(func=cmd_passwd)

    for verb, help_text in (("disable", "stop a user signing in (ends their sessions)"),
                            ("enable", "let a disabled user sign in again")):
        p = user_sub.add_parser(verb, help=help_text)
        p.add_argument("name")
        p.add_argument("--config", type=Path)
        p.set_defaults(func=cmd_disable if verb == "disable" else cmd_enable)

    listing = user_sub.add_parser("list", help="list the console users")
    listing.add_argument("--config", type=Path)
    listing.set_defaults(func=cmd_list)




def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set, and whether it was generated (so it must be printed)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV], False
    if sys.stdin.isatty():
        first = getpass.getpass("New password (empty to generate one): ")
        if first:
            if getpass.getpass("Again: ") != first:
                print("clarion: the passwords differ", file=sys.stderr)
                raise SystemExit(2)
            return first, False
    return generate_password(), True


async def _with_accounts(settings: Settings, work: Any) -> int:
    db = await open_database(settings.store.url)
    try:
        code: int = await work(Accounts(UserStore(db), AuditLog(db), Clock()))
        return code
    finally:
        await db.close()


def _quiet(settings: Settings) -> None:
    configure_logging("warning", json_lines=settings.logging.json_lines)


def cmd_add(args: argparse.Namespace) -> int:
    """Add a user; a generated password is printed once."""
    settings = settings_or_exit(args.config)
    _quiet(settings)
    name = args.name.strip().lower()
    problem = name_problem(name, {t.name for t in settings.auth.tokens})
    if problem:
        print(f"clarion: user name {name!r}: {problem}", file=sys.stderr)
        return 2
    segments = tuple(s.strip() for s in args.segments.split(",") if s.strip())
    unknown = [s for s in segments if s not in settings.directory.segments]
    if unknown:
        print(f"clarion: not named segments: {', '.join(unknown)} (directory.segments: "
              f"{', '.join(sorted(settings.directory.segments)) or 'none'})", file=sys.stderr)
        return 2
    password, generated = _password(args)
    problem = password_problem(password)
    if problem:
        print(f"clarion: password: {problem}", file=sys.stderr)
        return 2

    async def work(accounts: Accounts) -> int:
        if await accounts.users.token_named(name):
            print(f"clarion: user name {name!r}: {name!r} is an API token's name",
                  file=sys.stderr)
            return 2
        try:
            await accounts.add_user(name, password, role=Role(args.role), segments=segments,
                                    full_name=args.full_name, title=args.title, actor=CLI_ACTOR)
        except UserExists:
            print(f"clarion: user {name!r} exists (use `clarion user passwd`)", file=sys.stderr)
            return 1
        print(f"user {name} added ({args.role})")
        if generated:
            print(f"password (shown once): {password}")
        return 0

    return asyncio.run(_with_accounts(settings, work))


def cmd_passwd(args: argparse.Namespace) -> int:
    """Set a user's password and end their sessions."""
    settings = settings_or_exit(args.config)
    _quiet(settings)
    password, generated = _password(args)
    problem = password_problem(password)
    if problem:
        print(f"clarion: password: {problem}", file=sys.stderr)
        return 2

    async def work(accounts: Accounts) -> int:
        now = Clock().now_ms()
        if not await accounts.users.set_password(args.name, hash_password(password), now):
            print(f"clarion: no user {args.name!r}", file=sys.stderr)
            return 1
        await accounts.record(CLI_ACTOR, "console.password_set", {"user": args.name})
        print(f"password of {args.name} changed; their sessions ended")
        if generated:
            print(f"password (shown once): {password}")
        return 0

    return asyncio.run(_with_accounts(settings, work))


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    settings = settings_or_exit(args.config)
    _quiet(settings)

    async def work(accounts: Accounts) -> int:
        now = Clock().now_ms()
        if not await accounts.users.set_disabled(args.name, disabled, now):
            print(f"clarion: no user {args.name!r}", file=sys.stderr)
            return 1
        action = "console.user_disabled" if disabled else "console.user_enabled"
        await accounts.record(CLI_ACTOR, action, {"user": args.name})
        print(f"user {args.name} {'disabled' if disabled else 'enabled'}")
        return 0

    return asyncio.run(_with_accounts(settings, work))


def cmd_disable(args: argparse.Namespace) -> int:
    """Disable a user."""
    return _set_disabled(args, True)


def cmd_enable(args: argparse.Namespace) -> int:
    """Enable a user again."""
    return _set_disabled(args, False)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the users: name, role, scopes, state."""
    settings = settings_or_exit(args.config)
    _quiet(settings)

    async def work(accounts: Accounts) -> int:
        for u in await accounts.users.all():
            scopes = ",".join(u.segments) or "-"
            state = "disabled" if u.disabled else "active"
            print(f"{u.name}\t{u.role}\t{scopes}\t{state}")
        return 0

    return asyncio.run(_with_accounts(settings, work))
