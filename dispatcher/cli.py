"""The `clarion` command: the service, the sandbox, and the operator's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from channels.sandbox import cli as sandbox_cli
from dispatcher import commands, providers_cli, webhooks_cli
from dispatcher.access import cli as token_cli
from dispatcher.alerting import lint
from dispatcher.cap import cli as cap_cli
from dispatcher.console import cli as console_cli
from dispatcher.desktop import cli as desktop_cli
from dispatcher.drills import cli as drill_cli
from dispatcher.incidents import cli as incident_cli
from segments import cli as segments_cli

# Each module adds its own subcommands with `register(subparsers)`; a subcommand sets
# `func(args) -> int` as its default.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    commands,
    lint,
    segments_cli,
    sandbox_cli,
    cap_cli,
    drill_cli,
    token_cli,
    providers_cli,
    console_cli,
    incident_cli,
    desktop_cli,
    webhooks_cli,
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="clarion", description="Emergency notification dispatch for college campuses."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
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
