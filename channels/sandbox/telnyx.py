"""A Telnyx Messaging API v2 stand-in: JSON bodies, Bearer keys, `{"data": ...}` answers,
`{"errors": [...]}` errors, and delivery receipts and inbound messages posted as webhooks
signed with an Ed25519 key, as Telnyx signs them (`telnyx-signature-ed25519` over
`"{timestamp}|{raw body}"`, `telnyx-timestamp` in Unix seconds)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import random
import re
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sms_twilio import sms_segments
from channels.telnyx_rest import SIGNATURE_HEADER, TIMESTAMP_HEADER

log = structlog.get_logger("clarion.sandbox.telnyx")

DEFAULT_API_KEY = "KEYsandbox-telnyx"  # the local stand-in's, as in the config
# A fixed key pair for the sandbox, so `make run`'s config can name its public half.
DEFAULT_SIGNING_SEED = bytes(range(32))
MESSAGES_PATH = "/v2/messages"
MESSAGE_PATH = "/v2/messages/{id}"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
TELNYX: web.AppKey[TelnyxSandbox] = web.AppKey("telnyx_sandbox")
# What the API may be scripted to answer for a number, besides 200.
API_REPLIES = frozenset({"200", "400", "401", "422", "429", "500", "503", "40300", "hang"})


def telnyx_error(status: int, code: str, title: str, **headers: str) -> web.Response:
    """Telnyx's error body: a list of errors, each with code, title and detail."""
    body = {"errors": [{"code": code, "title": title, "detail": title}]}
    return web.json_response(body, status=status, headers=headers)


def public_key_of(private: Ed25519PrivateKey) -> str:
    """The base64 public key, as the Mission Control Portal shows it."""
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(private: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """The `telnyx-signature-ed25519` header for a body sent at `timestamp`."""
    return base64.b64encode(private.sign(timestamp.encode("ascii") + b"|" + body)).decode()


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted message as the stand-in keeps it."""

    id: str
    to: str
    from_: str
    text: str
    webhook_url: str
    parts: int

    @property
    def alert_id(self) -> str:
        """The alert named in the message's webhook query."""
        return parse_qs(urlsplit(self.webhook_url).query).get("a", [""])[0]


@dataclass
class TelnyxSandbox:
    """The Messaging API with per-number scripts, a failing share, and signed webhooks."""

    api_key: str = DEFAULT_API_KEY
    signing_key: Ed25519PrivateKey = field(
        default_factory=lambda: Ed25519PrivateKey.from_private_bytes(DEFAULT_SIGNING_SEED)
    )
    error_rate: float = 0.0
    rate_429: float = 0.0
    retry_after_s: int = 1
    failed_rate: float = 0.0
    callback_delay_s: float = 0.05
    opted_out: set[str] = field(default_factory=set)
    seed: int | None = None
    stats: Stats = field(default_factory=Stats)
    sent: list[SentMessage] = field(default_factory=list)
    status_of: dict[str, str] = field(default_factory=dict)
    webhooks_sent: list[tuple[str, str, int]] = field(default_factory=list)
    """(message id or sender, event type, HTTP status the service answered)."""
    requests: int = 0
    clock_skew_s: float = 0.0
    """Added to the webhook timestamps (a stale signature when far in the past)."""
    _replies: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _closed: bool = False
    _hang: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.stats.declare("sms")

    @property
    def public_key(self) -> str:
        """The base64 Ed25519 public key the service checks webhooks with."""
        return public_key_of(self.signing_key)

    def script(self, number: str, *replies: str) -> None:
        """Answer the next requests to `number` with these (see API_REPLIES), then 200."""
        unknown = set(replies) - API_REPLIES
        if unknown:
            raise ValueError(f"unknown scripted replies: {sorted(unknown)}")
        self._replies[number].extend(replies)

    def attach(self, app: web.Application) -> None:
        """Add the Messaging API to an HTTP app."""
        app[TELNYX] = self
        app.router.add_post(MESSAGES_PATH, self._create)
        app.router.add_get(MESSAGE_PATH, self._fetch)

    async def close(self) -> None:
        """Release hung requests, cancel pending webhooks, close the client session."""
        self._closed = True
        self._hang.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(key, self.api_key)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return telnyx_error(401, "10009", "Authentication failed")
        found = next((m for m in self.sent if m.id == request.match_info["id"]), None)
        if found is None:
            return telnyx_error(404, "10005", "Resource not found")
        return web.json_response({"data": self.resource(found, self.status_of[found.id])})

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorized(request):
            return telnyx_error(401, "10009", "Authentication failed")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return telnyx_error(400, "10015", "Bad Request")
        if not isinstance(body, dict):
            return telnyx_error(400, "10015", "Bad Request")
        to = str(body.get("to") or "")
        text = str(body.get("text") or "")
        sender = str(body.get("from") or "")
        if not to or not text:
            return telnyx_error(422, "10004", "Missing required parameter")
        if not sender and not body.get("messaging_profile_id"):
            return telnyx_error(422, "10004", "Missing required parameter")
        reply = self._next_reply(to)
        if reply != "200":
            return await self._scripted(reply)
        if not E164.match(to):
            return telnyx_error(422, "10016", "Phone number must be in +E.164 format")
        if to in self.opted_out:
            return telnyx_error(400, "40300", "Blocked due to STOP message")
        message = SentMessage(
            id=str(uuid.uuid4()), to=to, from_=sender or "+15550000000", text=text,
            webhook_url=str(body.get("webhook_url") or ""), parts=sms_segments(text),
        )
        self.sent.append(message)
        self.status_of[message.id] = "queued"
        self.stats.record("sms", message.alert_id, to, text, id=message.id, provider="telnyx")
        if message.webhook_url:
            self._spawn(self._report(message))
        else:
            self.status_of[message.id] = self._final_status()
        return web.json_response({"data": self.resource(message, "queued")})

    def _next_reply(self, to: str) -> str:
        queued = self._replies.get(to)
        if queued:
            return queued.popleft()
        roll = self._random.random()
        if roll < self.rate_429:
            return "429"
        if roll < self.rate_429 + self.error_rate:
            return "500"
        return "200"

    async def _scripted(self, reply: str) -> web.Response:
        if reply == "hang":
            await self._hang.wait()
            return telnyx_error(503, "10007", "Unexpected error")
        if reply == "429":
            return telnyx_error(429, "10011", "Too many requests",
                                **{"Retry-After": str(self.retry_after_s)})
        if reply == "401":
            return telnyx_error(401, "10009", "Authentication failed")
        if reply in ("500", "503"):
            return telnyx_error(int(reply), "10007", "Unexpected error")
        if reply == "40300":
            return telnyx_error(400, "40300", "Blocked due to STOP message")
        if reply == "422":
            return telnyx_error(422, "10002", "Invalid phone number")
        return telnyx_error(400, "10015", "Bad Request")

    def _final_status(self) -> str:
        return "delivery_failed" if self._random.random() < self.failed_rate else "delivered"

    def resource(self, m: SentMessage, status: str) -> dict[str, Any]:
        """A message as the API and its webhooks show it, with this status."""
        errors: list[dict[str, str]] = []
        if status == "delivery_failed":
            errors = [{"code": "40008", "title": "Undeliverable", "detail": "Undeliverable"}]
        return {
            "record_type": "message",
            "direction": "outbound",
            "id": m.id,
            "type": "SMS",
            "from": {"phone_number": m.from_, "carrier": "Telnyx", "line_type": "Wireless"},
            "to": [{"phone_number": m.to, "status": status, "carrier": "T-Mobile USA",
                    "line_type": "Wireless"}],
            "text": m.text,
            "parts": m.parts,
            "encoding": "GSM-7",
            "webhook_url": m.webhook_url or None,
            "errors": errors,
        }

    async def _report(self, m: SentMessage) -> None:
        """`message.sent`, then `message.finalized`, each signed and posted to the message's
        webhook_url `callback_delay_s` after the one before."""
        final = self._final_status()
        for event_type, status in (("message.sent", "sent"), ("message.finalized", final)):
            await asyncio.sleep(self.callback_delay_s)
            self.status_of[m.id] = status
            code = await self.post_event(m.webhook_url, event_type, self.resource(m, status))
            self.webhooks_sent.append((m.id, event_type, code))

    async def send_inbound(self, url: str, from_: str, to: str, text: str) -> int:
        """A person's message to one of our numbers, as a signed `message.received`."""
        payload = {
            "record_type": "message", "direction": "inbound", "id": str(uuid.uuid4()),
            "type": "SMS", "text": text,
            "from": {"phone_number": from_, "carrier": "T-Mobile USA", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "webhook_delivered"}],
        }
        code = await self.post_event(url, "message.received", payload)
        self.webhooks_sent.append((from_, "message.received", code))
        return code

    def event_body(self, event_type: str, payload: dict[str, Any]) -> bytes:
        """A webhook body as Telnyx writes it."""
        return json.dumps({
            "data": {
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "occurred_at": datetime.now(UTC).isoformat(),
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1},
        }).encode()

    def signed_headers(self, body: bytes) -> dict[str, str]:
        """The signature headers for a body sent now (shifted by `clock_skew_s`)."""
        timestamp = str(int(time.time() + self.clock_skew_s))
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.signing_key, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
        }

    async def post_event(self, url: str, event_type: str, payload: dict[str, Any]) -> int:
        """Post one signed webhook; the HTTP status the receiver answered (0: unreachable)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body = self.event_body(event_type, payload)
        try:
            async with self._session.post(
                url, data=body, headers=self.signed_headers(body)
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sandbox.webhook_failed", error=type(exc).__name__)
            return 0

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stand-in's options on `clarion sandbox`."""
    group = parser.add_argument_group("Telnyx Messaging API stand-in")
    group.add_argument("--telnyx-api-key", default=DEFAULT_API_KEY)
    group.add_argument("--telnyx-error-rate", type=float, default=0.0,
                       help="share of requests answered 500")
    group.add_argument("--telnyx-429-rate", type=float, default=0.0,
                       help="share of requests answered 429 (10011)")
    group.add_argument("--telnyx-failed-rate", type=float, default=0.0,
                       help="share of messages ending delivery_failed (40008)")
    group.add_argument("--telnyx-callback-delay", type=float, default=0.05,
                       help="seconds per webhook step")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> TelnyxSandbox:
    """Serve the Messaging API on the sandbox's HTTP listener."""
    telnyx = TelnyxSandbox(
        api_key=args.telnyx_api_key,
        error_rate=args.telnyx_error_rate,
        rate_429=args.telnyx_429_rate,
        failed_rate=args.telnyx_failed_rate,
        callback_delay_s=args.telnyx_callback_delay,
        stats=sandbox.stats,
    )
    telnyx.attach(sandbox.app)
    sandbox.on_close(telnyx.close)
    sandbox.endpoints["telnyx"] = MESSAGES_PATH
    sandbox.endpoints["telnyx_public_key"] = telnyx.public_key
    return telnyx
