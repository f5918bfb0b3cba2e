"""A Twilio Messages API stand-in: form bodies, Basic auth, 201 JSON, errors, signed callbacks."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import random
import re
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sms_twilio import sms_segments

log = structlog.get_logger("clarion.sandbox.twilio")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-token"  # noqa: S105 - the local stand-in's, as in the config
API_VERSION = "2010-04-01"
MESSAGES_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# What the API may be scripted to answer for a number, besides 201.
API_REPLIES = frozenset(
    {"201", "400", "401", "429", "500", "503", "21211", "21610", "21614", "hang"}
)


def twilio_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    """Twilio's error body: code, message, more_info, status."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Fate:
    """How an accepted message ends: its final status and error code."""

    status: str = "delivered"
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted message as the stand-in keeps it."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    validity_period: str
    num_segments: int


@dataclass
class TwilioSandbox:
    """The Messages API with per-number scripts, random error shares, and callbacks."""

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    error_rate: float = 0.0
    rate_429: float = 0.0
    retry_after_s: int = 1
    undelivered_rate: float = 0.0
    failed_rate: float = 0.0
    callback_delay_s: float = 0.05
    answer_rate: float = 0.0
    answer_delay_s: float = 2.0
    need_help_rate: float = 0.1
    inbound_url: str = ""
    answers_sent: list[tuple[str, str, int]] = field(default_factory=list)
    opted_out: set[str] = field(default_factory=set)
    seed: int | None = None
    stats: Stats = field(default_factory=Stats)
    sent: list[SentMessage] = field(default_factory=list)
    callbacks_sent: list[tuple[str, str, int]] = field(default_factory=list)
    requests: int = 0
    _replies: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _fates: dict[str, deque[Fate]] = field(default_factory=lambda: defaultdict(deque))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _closed: bool = False
    _hang: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def script(self, number: str, *replies: str) -> None:
        """Answer the next requests to `number` with these (see API_REPLIES), then 201."""
        unknown = set(replies) - API_REPLIES
        if unknown:
            raise ValueError(f"unknown scripted replies: {sorted(unknown)}")
        self._replies[number].extend(replies)

    def fate(self, number: str, status: str = "delivered", error_code: int | None = None) -> None:
        """End the next accepted message to `number` with this status (and error code)."""
        self._fates[number].append(Fate(status, error_code))

    def attach(self, app: web.Application) -> None:
        """Add the Messages API to the sandbox's HTTP app."""
        app[TWILIO] = self
        app.router.add_post(MESSAGES_PATH, self._create)
        app.router.add_get(MESSAGES_PATH, self._list)

    async def close(self) -> None:
        """Release hung requests, cancel pending callbacks, close the client session."""
        self._closed = True
        self._hang.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and request.match_info["account_sid"] == self.account_sid
        )

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        return web.json_response({"messages": [self._resource(m) for m in self.sent[-50:]]})

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        to = str(form.get("To", ""))
        body = str(form.get("Body", ""))
        sender = str(form.get("From", ""))
        service = str(form.get("MessagingServiceSid", ""))
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        validity = str(form.get("ValidityPeriod", ""))
        if validity and not (validity.isdigit() and 1 <= int(validity) <= 36000):
            return twilio_error(400, 21609, "Invalid ValidityPeriod.")
        reply = self._next_reply(to)
        if reply != "201":
            return await self._scripted(reply, to)
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.opted_out:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        message = SentMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=sender,
            body=body,
            status_callback=str(form.get("StatusCallback", "")),
            validity_period=validity,
            num_segments=sms_segments(body),
        )
        self.sent.append(message)
        query = parse_qs(urlsplit(message.status_callback).query)
        alert_id = query.get("a", [""])[0]
        self.stats.record(
            "sms", alert_id, to, body, sid=message.sid, validity_period=validity, sender=sender
        )
        if message.status_callback:
            self._spawn(self._report(message, service))
        asks = ASKS_FOR_REPLY in body or ASKS_FOR_REPLY_ES in body
        if asks and self._random.random() < self.answer_rate:
            self._spawn(self._answer(message))
        resource = self._resource(message, service=service)
        return web.json_response(resource, status=201)

    def _next_reply(self, to: str) -> str:
        queued = self._replies.get(to)
        if queued:
            return queued.popleft()
        roll = self._random.random()
        if roll < self.rate_429:
            return "429"
        if roll < self.rate_429 + self.error_rate:
            return "500"
        return "201"

    async def _scripted(self, reply: str, to: str) -> web.Response:
        if reply == "hang":
            # A provider that never answers: the client's own timeout must end it.
            await self._hang.wait()
            return twilio_error(503, 20503, "Service Unavailable")
        if reply == "429":
            return twilio_error(
                429, 20429, "Too Many Requests", **{"Retry-After": str(self.retry_after_s)}
            )
        if reply == "401":
            return twilio_error(401, 20003, "Authenticate")
        if reply in ("500", "503"):
            return twilio_error(int(reply), 20500, "Internal Server Error")
        if reply == "21211":
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if reply == "21610":
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if reply == "21614":
            return twilio_error(400, 21614, f"'To' number {to} is not a valid mobile number")
        return twilio_error(400, 21600, "Bad request")

    def _resource(self, m: SentMessage, *, service: str = "") -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{m.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": m.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": m.from_ or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": str(m.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": m.sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": m.to,
            "uri": uri,
        }

    def _fate_of(self, to: str) -> Fate:
        queued = self._fates.get(to)
        if queued:
            return queued.popleft()
        roll = self._random.random()
        if roll < self.undelivered_rate:
            return Fate("undelivered", 30003)
        if roll < self.undelivered_rate + self.failed_rate:
            return Fate("failed", 30008)
        return Fate()

    async def _report(self, m: SentMessage, service: str) -> None:
        """Post `sent`, then the final status, each signed like Twilio signs them."""
        fate = self._fate_of(m.to)
        steps = [Fate("sent"), fate] if fate.status in ("delivered", "undelivered") else [fate]
        for step in steps:
            await asyncio.sleep(self.callback_delay_s)
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
                "From": m.from_,
                "MessageSid": m.sid,
                "MessageStatus": step.status,
                "SmsSid": m.sid,
                "SmsStatus": step.status,
                "To": m.to,
            }
            if service:
                params["MessagingServiceSid"] = service
            if step.error_code is not None:
                params["ErrorCode"] = str(step.error_code)
            signature = RequestValidator(self.auth_token).compute_signature(
                m.status_callback, params
            )
            status = await self._post(m.status_callback, params, signature)
            self.callbacks_sent.append((m.sid, step.status, status))

    async def _answer(self, m: SentMessage) -> None:
        """A simulated person replies "1" or "2" through the signed inbound message webhook."""
        await asyncio.sleep(self._random.uniform(0, self.answer_delay_s))
        url = self.inbound_url or _inbound_url(m.status_callback)
        if not url:
            return
        reply = "2" if self._random.random() < self.need_help_rate else "1"
        params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": self.account_sid,
                  "From": m.to, "To": m.from_, "Body": reply, "NumMedia": "0"}
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        status = await self._post(url, params, signature)
        self.answers_sent.append((m.to, reply, status))

    async def _post(self, url: str, params: dict[str, str], signature: str) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Twilio gives up on an unreachable callback URL too; the service must cope.
            log.warning("sandbox.callback_failed", error=type(exc).__name__)
            return 0

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            # A message accepted while closing: its callbacks are not sent, as on a crash.
            coro.close()
            return
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


TWILIO: web.AppKey[TwilioSandbox] = web.AppKey("sandbox.twilio")
# The SMS of an alert that asks a question ends with this (English) or its Spanish.
ASKS_FOR_REPLY = "Reply 1 SAFE"
ASKS_FOR_REPLY_ES = "Responda 1"


def _inbound_url(status_callback: str) -> str:
    """The service's inbound webhook, beside the status callback it gave."""
    if not status_callback:
        return ""
    parts = urlsplit(status_callback)
    return f"{parts.scheme}://{parts.netloc}/v1/callbacks/twilio/inbound"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The Twilio stand-in's flags."""
    group = parser.add_argument_group("Twilio Messages API stand-in")
    group.add_argument("--twilio-account-sid", default=DEFAULT_ACCOUNT_SID)
    group.add_argument("--twilio-auth-token", default=DEFAULT_AUTH_TOKEN)
    group.add_argument("--sms-error-rate", type=float, default=0.0, help="share answered 500")
    group.add_argument("--sms-429-rate", type=float, default=0.0, help="share answered 429")
    group.add_argument("--sms-retry-after", type=int, default=1, help="Retry-After of a 429 (s)")
    group.add_argument(
        "--sms-undelivered-rate", type=float, default=0.0, help="share ending undelivered (30003)"
    )
    group.add_argument(
        "--sms-failed-rate", type=float, default=0.0, help="share ending failed (30008)"
    )
    group.add_argument("--sms-callback-delay", type=float, default=0.05, help="seconds per step")
    group.add_argument(
        "--sms-opted-out",
        action="append",
        default=[],
        metavar="NUMBER",
        help="answer 21610 for this number (repeatable)",
    )
    group.add_argument("--sms-seed", type=int, default=None, help="seed for the error shares")
    group.add_argument("--answer-rate", type=float, default=0.0,
                       help="share of people who answer an SMS that asks a question "
                       "(`make run`: 0.8)")
    group.add_argument("--answer-delay", type=float, default=20.0,
                       help="answers arrive within this many seconds (uniform)")
    group.add_argument("--need-help-rate", type=float, default=0.05,
                       help="share of answers that say need help")
    group.add_argument("--inbound-url", default="",
                       help="the service's inbound SMS webhook (default: beside the status "
                       "callback)")


async def attach(sandbox: Sandbox, args: argparse.Namespace) -> TwilioSandbox:
    """Serve the Messages API on the sandbox's HTTP listener."""
    twilio = TwilioSandbox(
        account_sid=args.twilio_account_sid,
        auth_token=args.twilio_auth_token,
        error_rate=args.sms_error_rate,
        rate_429=args.sms_429_rate,
        retry_after_s=args.sms_retry_after,
        undelivered_rate=args.sms_undelivered_rate,
        failed_rate=args.sms_failed_rate,
        callback_delay_s=args.sms_callback_delay,
        opted_out=set(args.sms_opted_out),
        seed=args.sms_seed,
        answer_rate=args.answer_rate,
        answer_delay_s=args.answer_delay,
        need_help_rate=args.need_help_rate,
        inbound_url=args.inbound_url,
        stats=sandbox.stats,
    )
    twilio.attach(sandbox.app)
    sandbox.stats.declare("sms")
    sandbox.on_close(twilio.close)
    sandbox.endpoints["twilio"] = MESSAGES_PATH.format(account_sid=twilio.account_sid)
    return twilio
