"""An HTTP sink for Apprise's `json://` targets: `POST /push/{recipient}`, failures on cue."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats

ALERT_HEADER = "X-Clarion-Alert"
PUSH_PATH = "/push/{recipient}"


@dataclass
class PushSink:
    """Records each notification Apprise posts; answers scripted statuses when told to."""

    stats: Stats = field(default_factory=Stats)
    error_rate: float = 0.0
    delay_s: float = 0.0
    seed: int | None = None
    requests: int = 0
    _script: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def script(self, recipient: str, *statuses: int) -> None:
        """Answer the next posts for `recipient` with these HTTP statuses in turn (then 200)."""
        self._script[recipient].extend(statuses)

    def attach(self, app: web.Application) -> None:
        """Add the sink to the sandbox's HTTP app."""
        app[PUSH] = self
        app.router.add_post(PUSH_PATH, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        recipient = request.match_info["recipient"]
        queued = self._script.get(recipient)
        status = queued.popleft() if queued else 200
        if status == 200 and self._random.random() < self.error_rate:
            status = 503
        if status >= 300:
            return web.json_response({"error": "scripted"}, status=status)
        try:
            payload = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "body is not a JSON object"}, status=400)
        self.stats.record(
            "push",
            request.headers.get(ALERT_HEADER, ""),
            recipient,
            str(payload.get("message", "")),
            title=str(payload.get("title", "")),
            type=str(payload.get("type", "")),
        )
        return web.json_response({"ok": True})


PUSH: web.AppKey[PushSink] = web.AppKey("sandbox.push")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The push sink's flags."""
    group = parser.add_argument_group("Apprise json:// sink")
    group.add_argument("--push-error-rate", type=float, default=0.0, help="share answered 503")
    group.add_argument("--push-delay", type=float, default=0.0, help="seconds per request")
    group.add_argument("--push-seed", type=int, default=None, help="seed for the error share")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> PushSink:
    """Serve the sink on the sandbox's HTTP listener."""
    sink = PushSink(
        stats=sandbox.stats,
        error_rate=args.push_error_rate,
        delay_s=args.push_delay,
        seed=args.push_seed,
    )
    sink.attach(sandbox.app)
    sandbox.stats.declare("push")
    sandbox.endpoints["push"] = PUSH_PATH
    return sink
