"""The `clarion` command: the service, the sandbox, and the operator's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

# Each module adds its own subcommands with `register(subparsers)`; a subcommand sets
# `func(args) -> int` as its default.
COMMAND_MODULES = (
    "dispatcher.commands",
    "dispatcher.lint",
    "segments.cli",
    "channels.sandbox.cli",
    "dispatcher.cap_cli",
    "dispatcher.drills",
    "dispatcher.tokens",
    "dispatcher.console.cli",
    "dispatcher.incidents.cli",
    "dispatcher.desktop_cli",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="clarion", description="Emergency notification dispatch for college campuses."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
