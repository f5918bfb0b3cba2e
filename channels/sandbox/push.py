"""A push gateway stand-in: `POST /push/{recipient}` with the JSON body `push.apprise` posts
to gateways (documented in `channels/push_apprise.py`), failures on cue.

Simulated people also tap the answer link an alert's question puts in its push message: the
sink opens the page (GET) and presses a button (POST), as a phone's browser does."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiohttp import web

from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats

log = structlog.get_logger("clarion.sandbox.push")

ALERT_HEADER = "X-Clarion-Alert"
PUSH_PATH = "/push/{recipient}"
# The per-person answer link (dispatcher/public/answer.py) in a push message.
ANSWER_LINK = re.compile(r"https?://\S+/public/answer/[0-9A-Za-z_-]+/[0-9A-Za-z._~-]+")


@dataclass
class PushSink:
    """Records each notification posted to it; answers scripted statuses when told to."""

    stats: Stats = field(default_factory=Stats)
    error_rate: float = 0.0
    delay_s: float = 0.0
    seed: int | None = None
    click_rate: float = 0.0
    click_delay_s: float = 20.0
    need_help_rate: float = 0.05
    requests: int = 0
    clicks: list[tuple[str, int]] = field(default_factory=list)
    """(option, HTTP status of the tap) for every answer link tapped."""
    _script: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

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
        problem = _body_problem(payload)
        if problem:
            return web.json_response({"error": problem}, status=400)
        self.stats.record(
            "push",
            request.headers.get(ALERT_HEADER) or str(payload.get("alert_id", "")),
            recipient,
            payload["message"],
            title=str(payload.get("title", "")),
            type=str(payload.get("type", "")),
            drill=str(payload.get("drill", "")).lower(),
        )
        link = ANSWER_LINK.search(str(payload.get("message", "")))
        if link and self._random.random() < self.click_rate:
            task = asyncio.create_task(self._tap(link.group()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def _tap(self, url: str) -> None:
        """Open the answer page, then press one of its buttons after a human pause."""
        await asyncio.sleep(self._random.uniform(0, self.click_delay_s))
        option = "need_help" if self._random.random() < self.need_help_rate else "safe"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.get(url) as page:
                await page.read()
            async with self._session.post(url, data={"option": option}) as tap:
                await tap.read()
                self.clicks.append((option, tap.status))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.clicks.append((option, 0))
            log.warning("sandbox.answer_tap_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Cancel pending taps and close the client session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


PUSH: web.AppKey[PushSink] = web.AppKey("sandbox.push")
# The body's fields and their types; `alert_id` and `drill` are Clarion's, the rest are also
# what Apprise's own json:// webhook posts (Apprise sends addresses with options itself).
_FIELDS: dict[str, type] = {
    "version": str,
    "title": str,
    "message": str,
    "type": str,
    "attachments": list,
    "alert_id": str,
    "drill": bool,
}
_REQUIRED = ("title", "message")


def _body_problem(payload: object) -> str:
    """What is wrong with a posted body, or "" when it is one a gateway accepts."""
    if not isinstance(payload, dict):
        return "body is not a JSON object"
    for name in _REQUIRED:
        if name not in payload:
            return f"{name} missing"
    for name, kind in _FIELDS.items():
        if name in payload and not isinstance(payload[name], kind):
            return f"{name} is not a {kind.__name__}"
    return ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The push sink's flags."""
    group = parser.add_argument_group("push gateway (json://) sink")
    group.add_argument("--push-error-rate", type=float, default=0.0, help="share answered 503")
    group.add_argument("--push-delay", type=float, default=0.0, help="seconds per request")
    group.add_argument("--push-seed", type=int, default=None, help="seed for the error share")
    group.add_argument("--push-click-rate", type=float, default=0.0,
                       help="share of people who tap the answer link in a push message "
                       "(`make run`: 0.5)")
    group.add_argument("--push-click-delay", type=float, default=20.0,
                       help="taps arrive within this many seconds (uniform)")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> PushSink:
    """Serve the sink on the sandbox's HTTP listener."""
    sink = PushSink(
        stats=sandbox.stats,
        error_rate=args.push_error_rate,
        delay_s=args.push_delay,
        seed=args.push_seed,
        click_rate=args.push_click_rate,
        click_delay_s=args.push_click_delay,
        need_help_rate=getattr(args, "need_help_rate", 0.05),
    )
    sink.attach(sandbox.app)
    sandbox.on_close(sink.close)
    sandbox.stats.declare("push")
    sandbox.endpoints["push"] = PUSH_PATH
    return sink
