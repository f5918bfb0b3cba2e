"""`clarion lint`: judge alert requests read as JSON Lines, one verdict per line.

Exit 0 when every message is clean (no violation at all), 1 when any has a violation (a
warning counts), 2 on malformed input, with a message on stderr naming the line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from dispatcher.alerting.rendering import render, render_alert
from dispatcher.alerting.request import AlertRequest, problems
from dispatcher.alerting.templates import TemplateError, expand
from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.places import campus_places
from dispatcher.policy import evaluate
from dispatcher.policy.gsm import count
from dispatcher.settings import ConfigError, Settings, load_settings

__all__ = ["LintInputError", "campus_places", "lint_one", "main", "register", "run"]

KINDS = ", ".join(k.value for k in AlertKind)


class LintInputError(ValueError):
    """A lint input that is not an alert request; the message says what is wrong."""


def register(subparsers: Any) -> None:
    """Add `clarion lint`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lint",
        help="check alert texts (JSON Lines on stdin) against the message policy",
        description="Reads one alert request per line (at least kind and text) and writes one "
        "JSON verdict per line. Exit 0: all clean; 1: some violation; 2: malformed input.",
    )
    parser.add_argument("--config", type=Path, default=None, help="config file (TOML)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `clarion lint` command."""
    return main(sys.stdin, sys.stdout, sys.stderr, config=args.config)


def main(stdin: TextIO, stdout: TextIO, stderr: TextIO, *, config: Path | None = None) -> int:
    """Lint every line of stdin; all input is checked before any verdict is written."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"clarion lint: {exc}", file=stderr)
        return 2
    objects: list[tuple[int, Any]] = []
    bad: list[str] = []
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            objects.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
    verdicts: list[dict[str, Any]] = []
    places = campus_places(settings)
    for number, obj in objects:
        try:
            verdicts.append(lint_one(obj, settings, places=places))
        except LintInputError as exc:
            bad.append(f"line {number}: {exc}")
    if bad:
        for message in sorted(bad, key=lambda m: int(m.split(":")[0].split()[1])):
            print(f"clarion lint: {message}", file=stderr)
        return 2
    dirty = False
    for verdict in verdicts:
        stdout.write(json.dumps(verdict, ensure_ascii=False) + "\n")
        dirty = dirty or bool(verdict["violations"])
    stdout.flush()
    return 1 if dirty else 0


def parse_lint_request(obj: Any) -> AlertRequest:
    """An alert request from a lint input; keys outside the request model (labels such as
    "expect" in a test corpus) are ignored. Raises LintInputError."""
    if not isinstance(obj, dict):
        raise LintInputError(f"expected a JSON object, got {type(obj).__name__}")
    if "kind" not in obj:
        raise LintInputError(f"missing kind (one of {KINDS})")
    if obj["kind"] not in {k.value for k in AlertKind}:
        raise LintInputError(f"unknown kind {obj['kind']!r} (expected one of {KINDS})")
    if obj.get("template") is None:
        if "text" not in obj or obj["text"] is None:
            raise LintInputError("missing text")
        if not isinstance(obj["text"], str):
            raise LintInputError("text must be a string")
        if not obj["text"].strip():
            raise LintInputError("empty text")
    known = {k: v for k, v in obj.items() if k in AlertRequest.model_fields}
    try:
        return AlertRequest.model_validate(known)
    except ValidationError as exc:
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems(exc))
        raise LintInputError(detail) from None


def lint_one(
    obj: Any, settings: Settings, *, places: frozenset[str] | None = None
) -> dict[str, Any]:
    """The verdict on one lint input, in the contract's JSON shape. Raises LintInputError.

    `places` are the campus place names (read from the directory when not given); a confidentiality
    violation carries a `suggestion`, a neutral rewrite of its span."""
    request = parse_lint_request(obj)
    try:
        request = expand(request, templates_folder(settings))
    except TemplateError as exc:
        raise LintInputError(str(exc)) from None
    channels = request.channels or list(ChannelKind)
    rendered = render_alert(request, channels, settings.rendering, limits=settings.policy)
    overridden = frozenset(request.override.rules) if request.override else frozenset()
    if places is None:
        places = campus_places(settings)
    verdict = evaluate(
        request, rendered, settings.policy, overridden=overridden, places=places
    ).to_json()
    if "sms" not in verdict["segments"]:
        # The contract always reports the SMS size, even for a message not sent by SMS.
        sms = render(request, ChannelKind.SMS, request.language, settings.rendering)
        measured = count(sms.text)
        verdict["segments"]["sms"] = measured.segments
        verdict["encoding"]["sms"] = measured.encoding.value
    return verdict


def templates_folder(settings: Settings) -> Path:
    """The config's own templates folder when it has one, else the embedded templates."""
    return settings.templates_dir()
