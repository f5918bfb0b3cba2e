"""`clarion cap`: an alert request as CAP 1.2 XML, or an upstream CAP alert as a request."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dispatcher.alerting.request import AlertRequest, problems
from dispatcher.cap.areas import areas_for_zones
from dispatcher.cap.format import CapReference, parse_cap, render_cap
from dispatcher.settings import ConfigError, load_settings


def register(sub: Any) -> None:
    """Add `clarion cap`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "cap",
        help="print an alert request (JSON on stdin) as CAP 1.2 XML",
        description="Reads one alert request as JSON on stdin and writes its CAP 1.2 XML.",
    )
    parser.add_argument("--config", type=Path, help="TOML config (sender, institution, zones)")
    parser.add_argument("--identifier", help="CAP identifier (default: a new UUID)")
    parser.add_argument("--sender", help="CAP sender (default: [service] sender)")
    parser.add_argument("--sent", help="ISO date-time with offset (default: now)")
    parser.add_argument("--cancel", action="store_true", help="render the Cancel message")
    parser.add_argument(
        "--parse", action="store_true",
        help="the reverse: read a CAP alert on stdin, print the alert request JSON",
    )
    parser.set_defaults(func=cmd_cap)


def cmd_cap(args: argparse.Namespace) -> int:
    """Render stdin's request as CAP (or, with --parse, CAP as a request); exit 2 on bad input."""
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    raw = sys.stdin.buffer.read()
    if args.parse:
        try:
            request = parse_cap(raw)
        except ValueError as exc:
            return _fail(str(exc))
        sys.stdout.write(json.dumps(request, indent=2, ensure_ascii=False) + "\n")
        return 0
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _fail(f"stdin is not JSON: {exc}")
    try:
        request_model = AlertRequest.model_validate(data)
    except ValidationError as exc:
        found = "; ".join(f"{p['field']}: {p['message']}" for p in problems(exc))
        return _fail(f"invalid alert request: {found}")
    try:
        sent = datetime.fromisoformat(args.sent) if args.sent else datetime.now(UTC)
        sender = args.sender or settings.service.sender
        identifier = args.identifier or f"urn:uuid:{uuid.uuid4()}"
        references = []
        if request_model.references:
            # Without a store the earlier message's time is unknown; this one's stands in.
            references.append(CapReference(sender, request_model.references, sent))
        xml = render_cap(
            request_model,
            identifier=identifier,
            sender=sender,
            sent=sent,
            default_expires_s=settings.dispatch.expires_s.get(request_model.kind, 3600),
            cancelled=args.cancel,
            references=references,
            areas=areas_for_zones(request_model.zones, settings, request_model.exclude_zones),
            web=settings.rendering.web or None,
            sender_name=settings.service.institution,
        )
    except ValueError as exc:
        return _fail(str(exc))
    sys.stdout.buffer.write(xml)
    sys.stdout.flush()
    return 0


def _fail(message: str) -> int:
    print(f"clarion cap: {message}", file=sys.stderr)
    return 2
