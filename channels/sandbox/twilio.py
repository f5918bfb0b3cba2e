"""A Twilio Messages and Calls API stand-in: form bodies, Basic auth, 201 JSON, errors, signed
callbacks; a call's TwiML is fetched from its Url and a simulated person presses a key."""

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
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import structlog
from aiohttp import web
from defusedxml import ElementTree
from twilio.request_validator import RequestValidator

from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sms_twilio import sms_segments

log = structlog.get_logger("clarion.sandbox.twilio")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-token"  # noqa: S105 - the local stand-in's, as in the config
API_VERSION = "2010-04-01"
MESSAGES_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"
CALLS_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls.json"
CALL_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{sid}}.json"
MESSAGE_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{sid}}.json"
# How a call may be scripted to end: answered (then a key, or none), or not.
CALL_ENDS = frozenset({"completed", "busy", "no-answer", "failed"})
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Status callbacks in flight at once. Twilio's own senders are many but bounded; here a backlog
# waits its turn in a queue instead of each callback timing out on a busy event loop.
CALLBACK_SENDERS = 64
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
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


@dataclass(frozen=True, slots=True)
class CallFate:
    """How a placed call ends: answered (`completed`) with a key pressed ("" for none), or
    busy, unanswered or failed."""

    status: str = "completed"
    digits: str = "1"


@dataclass
class PlacedCall:
    """One accepted call as the stand-in keeps it, with what happened on it."""

    sid: str
    to: str
    from_: str
    url: str
    status_callback: str
    events: tuple[str, ...]
    arrived: float
    """The loop's clock when the Calls API accepted it."""
    spoken: list[str] = field(default_factory=list)
    """The `<Say>` texts of the call's TwiML, once answered."""
    language: str = ""
    digits: str = ""
    reply: list[str] = field(default_factory=list)
    """The `<Say>` texts TwiML answered the key with."""
    statuses: list[tuple[str, int]] = field(default_factory=list)
    """(CallStatus posted, HTTP status the service answered)."""
    twiml_status: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the call has ended (status callbacks sent)."""
    canceled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the Calls API was asked to cancel it while it rang."""
    answered: bool = False

    @property
    def alert_id(self) -> str:
        """The alert named in the call's status callback query."""
        return parse_qs(urlsplit(self.status_callback).query).get("a", [""])[0]


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
    call_answer_rate: float = 1.0
    call_busy_rate: float = 0.0
    call_help_rate: float = 0.0
    call_press_rate: float = 1.0
    callback_senders: int = CALLBACK_SENDERS
    seed: int | None = None
    stats: Stats = field(default_factory=Stats)
    sent: list[SentMessage] = field(default_factory=list)
    status_of: dict[str, Fate] = field(default_factory=dict)
    """Each accepted message's status now (by SID), whether or not its callbacks arrived:
    what the Message resource answers."""
    fetches: int = 0
    """Message and Call resources fetched by SID."""
    calls: list[PlacedCall] = field(default_factory=list)
    callbacks_sent: list[tuple[str, str, int]] = field(default_factory=list)
    requests: int = 0
    _by_sid: dict[str, SentMessage] = field(default_factory=dict)
    _replies: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _fates: dict[str, deque[Fate]] = field(default_factory=lambda: defaultdict(deque))
    _call_fates: dict[str, deque[CallFate]] = field(default_factory=lambda: defaultdict(deque))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _callbacks: deque[tuple[float, SentMessage, str, list[Fate]]] = field(default_factory=deque)
    _callback_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _senders: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _closed: bool = False
    _hang: asyncio.Event = field(default_factory=asyncio.Event)
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    """Calls are answered only while this is set (it is, unless a test holds them ringing)."""

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.answering.set()

    def forget(self, sid: str) -> None:
        """Drop a message, as Twilio does once its retention ends: its resource is then 404."""
        self._by_sid.pop(sid, None)
        self.status_of.pop(sid, None)

    def script(self, number: str, *replies: str) -> None:
        """Answer the next requests to `number` with these (see API_REPLIES), then 201."""
        unknown = set(replies) - API_REPLIES
        if unknown:
            raise ValueError(f"unknown scripted replies: {sorted(unknown)}")
        self._replies[number].extend(replies)

    def fate(self, number: str, status: str = "delivered", error_code: int | None = None) -> None:
        """End the next accepted message to `number` with this status (and error code)."""
        self._fates[number].append(Fate(status, error_code))

    def call_fate(self, number: str, status: str = "completed", digits: str = "1") -> None:
        """End the next accepted call to `number` so (see CALL_ENDS), pressing `digits`."""
        if status not in CALL_ENDS:
            raise ValueError(f"unknown call end {status!r}")
        self._call_fates[number].append(CallFate(status, digits))

    def attach(self, app: web.Application) -> None:
        """Add the Messages and Calls APIs to the sandbox's HTTP app."""
        app[TWILIO] = self
        app.router.add_post(MESSAGES_PATH, self._create)
        app.router.add_get(MESSAGES_PATH, self._list)
        app.router.add_post(CALLS_PATH, self._create_call)
        app.router.add_post(CALL_PATH, self._update_call)
        app.router.add_get(MESSAGE_PATH, self._fetch_message)
        app.router.add_get(CALL_PATH, self._fetch_call)

    async def close(self) -> None:
        """Release hung requests, cancel pending callbacks, close the client session."""
        self._closed = True
        self._hang.set()
        self._callbacks.clear()
        for task in [*self._tasks, *self._senders]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._senders, return_exceptions=True)
        self._senders.clear()
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

    async def _fetch_message(self, request: web.Request) -> web.Response:
        """A Message resource by SID, with its status now (404 for one never accepted)."""
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        self.fetches += 1
        sid = request.match_info["sid"]
        message = self._by_sid.get(sid)
        if message is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        fate = self.status_of.get(sid, Fate("queued"))
        return web.json_response({
            **self._resource(message), "status": fate.status, "error_code": fate.error_code,
        })

    async def _fetch_call(self, request: web.Request) -> web.Response:
        """A Call resource by SID, with its status now."""
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        self.fetches += 1
        call = next((c for c in self.calls if c.sid == request.match_info["sid"]), None)
        if call is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        status = call.statuses[-1][0] if call.statuses else "queued"
        return web.json_response({**self._call_resource(call), "status": status})

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
        self._by_sid[message.sid] = message
        self.status_of[message.sid] = Fate("accepted" if service else "queued")
        query = parse_qs(urlsplit(message.status_callback).query)
        alert_id = query.get("a", [""])[0]
        self.stats.record(
            "sms", alert_id, to, body, sid=message.sid, validity_period=validity, sender=sender
        )
        if message.status_callback:
            self._report(message, service)
        else:
            self.status_of[message.sid] = self._fate_of(to)
        asks = ASKS_FOR_REPLY in body or ASKS_FOR_REPLY_ES in body
        if asks and self._random.random() < self.answer_rate:
            self._spawn(self._answer_sms(message))
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

    def _report(self, m: SentMessage, service: str) -> None:
        """Queue `sent`, then the final status, each posted `callback_delay_s` after the one
        before and signed like Twilio signs them."""
        if self._closed:
            return  # accepted while closing: its callbacks are not sent, as on a crash
        fate = self._fate_of(m.to)
        steps = [Fate("sent"), fate] if fate.status in ("delivered", "undelivered") else [fate]
        loop = asyncio.get_running_loop()
        self._callbacks.append((loop.time() + self.callback_delay_s, m, service, steps))
        self._callback_ready.set()
        while len(self._senders) < self.callback_senders:
            self._senders.append(loop.create_task(self._send_callbacks()))

    async def _send_callbacks(self) -> None:
        """One sender: the oldest callback due, then the next (the queue is in due order, as
        every step waits the same delay)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._callbacks:
                self._callback_ready.clear()
                await self._callback_ready.wait()
                continue
            due, m, service, steps = self._callbacks.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            step, rest = steps[0], steps[1:]
            # The resource says so from now on, whether or not the callback gets through.
            self.status_of[m.sid] = step
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
            if rest:
                self._callbacks.append((loop.time() + self.callback_delay_s, m, service, rest))
                self._callback_ready.set()

    async def _answer_sms(self, m: SentMessage) -> None:
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
            # The form encoded here: aiohttp's FormData costs more than the request itself.
            async with self._session.post(
                url, data=urlencode(params), headers={**FORM, "X-Twilio-Signature": signature}
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

    # --- calls ------------------------------------------------------------------------------

    async def _create_call(self, request: web.Request) -> web.Response:
        self.requests += 1
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        to = str(form.get("To", ""))
        sender = str(form.get("From", ""))
        url = str(form.get("Url", ""))
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not sender:
            return twilio_error(400, 21213, "No 'From' number is specified")
        if not url and not form.get("Twiml"):
            return twilio_error(400, 21205, "Url parameter is required.")
        reply = self._next_reply(to)
        if reply != "201":
            return await self._scripted(reply, to)
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        call = PlacedCall(
            sid="CA" + secrets.token_hex(16),
            to=to,
            from_=sender,
            url=url,
            status_callback=str(form.get("StatusCallback", "")),
            events=tuple(str(e) for e in form.getall("StatusCallbackEvent", [])),
            arrived=asyncio.get_running_loop().time(),
        )
        self.calls.append(call)
        self._spawn(self._run_call(call))
        return web.json_response(self._call_resource(call), status=201)

    async def _update_call(self, request: web.Request) -> web.Response:
        """`Status=canceled` stops a call that still rings; an answered one cannot be."""
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        call = next((c for c in self.calls if c.sid == request.match_info["sid"]), None)
        if call is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        form = await request.post()
        if str(form.get("Status", "")) == "canceled":
            if call.answered or call.done.is_set():
                return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.canceled.set()
        return web.json_response(
            {**self._call_resource(call), "status": "canceled" if call.canceled.is_set()
             else "in-progress"}
        )

    def _call_resource(self, call: PlacedCall) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}.json"
        return {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": call.from_,
            "from_formatted": call.from_,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "sid": call.sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {},
            "to": call.to,
            "to_formatted": call.to,
            "uri": uri,
        }

    def _call_fate_of(self, to: str) -> CallFate:
        queued = self._call_fates.get(to)
        if queued:
            return queued.popleft()
        roll = self._random.random()
        if roll < self.call_busy_rate:
            return CallFate("busy", "")
        if roll < self.call_busy_rate + (1 - self.call_answer_rate):
            return CallFate("no-answer", "")
        if self._random.random() >= self.call_press_rate:
            return CallFate("completed", "")
        return CallFate("completed", "2" if self._random.random() < self.call_help_rate else "1")

    async def _run_call(self, call: PlacedCall) -> None:
        """Ring, then answer (fetch the TwiML, press a key) or not, posting each status."""
        try:
            fate = self._call_fate_of(call.to)
            for event, status in (("initiated", "initiated"), ("ringing", "ringing")):
                await asyncio.sleep(self.callback_delay_s)
                if event in call.events:
                    await self._call_status(call, status)
            if fate.status != "completed":
                await asyncio.sleep(self.callback_delay_s)
                await self._call_status(call, fate.status)
                return
            if not await self._picked_up(call):
                await self._call_status(call, "canceled")
                return
            call.answered = True
            if "answered" in call.events:
                await self._call_status(call, "in-progress")
            await self._answer_call(call, fate)
            await asyncio.sleep(self.callback_delay_s)
            await self._call_status(call, "completed", CallDuration="20")
        finally:
            call.done.set()

    async def _picked_up(self, call: PlacedCall) -> bool:
        """Ring until answered (the `answering` gate open), or False if canceled first."""
        if call.canceled.is_set():
            return False
        answer = asyncio.ensure_future(self.answering.wait())
        cancel = asyncio.ensure_future(call.canceled.wait())
        try:
            await asyncio.wait({answer, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            answer.cancel()
            cancel.cancel()
        return not call.canceled.is_set()

    async def _answer_call(self, call: PlacedCall, fate: CallFate) -> None:
        """Fetch the call's TwiML as Twilio does, then press the key at its `<Gather>`."""
        params = self._call_params(call, "in-progress")
        status, twiml = await self._fetch(call.url, params)
        call.twiml_status = status
        if status != 200:
            return
        says, language, action = _read_twiml(twiml)
        call.spoken, call.language = says, language
        query = parse_qs(urlsplit(call.status_callback).query)
        self.stats.record(
            "voice", query.get("a", [""])[0], call.to, " ".join(says), sid=call.sid,
            sender=call.from_,
        )
        if not fate.digits or not action:
            return
        call.digits = fate.digits
        status, reply = await self._fetch(action, {**params, "Digits": fate.digits})
        if status == 200:
            call.reply = _read_twiml(reply)[0]

    def _call_params(self, call: PlacedCall, status: str, **extra: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            **extra,
        }

    async def _call_status(self, call: PlacedCall, status: str, **extra: str) -> None:
        if not call.status_callback:
            return
        params = self._call_params(call, status, **extra)
        signature = RequestValidator(self.auth_token).compute_signature(
            call.status_callback, params
        )
        answered = await self._post(call.status_callback, params, signature)
        call.statuses.append((status, answered))

    async def _fetch(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        """POST signed form parameters and read the TwiML the service answers."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        try:
            async with self._session.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sandbox.twiml_failed", error=type(exc).__name__)
            return 0, ""


def _read_twiml(text: str) -> tuple[list[str], str, str]:
    """A TwiML document's `<Say>` texts (in order), the first one's language, and the first
    `<Gather>` action."""
    root = ElementTree.fromstring(text)
    says = [(node.text or "").strip() for node in root.iter("Say")]
    first = next(root.iter("Say"), None)
    gather = next(root.iter("Gather"), None)
    language = first.get("language", "") if first is not None else ""
    action = gather.get("action", "") if gather is not None else ""
    return says, language, action


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
    voice = parser.add_argument_group("Twilio Calls API stand-in (simulated people answering)")
    voice.add_argument("--voice-answer-rate", type=float, default=0.9, help="share answering")
    voice.add_argument("--voice-busy-rate", type=float, default=0.0, help="share busy")
    voice.add_argument(
        "--voice-press-rate", type=float, default=0.9, help="share of answered pressing a key"
    )
    voice.add_argument(
        "--voice-help-rate", type=float, default=0.1, help="share of keys that are 2 (need help)"
    )


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
        call_answer_rate=args.voice_answer_rate,
        call_busy_rate=args.voice_busy_rate,
        call_press_rate=args.voice_press_rate,
        call_help_rate=args.voice_help_rate,
        seed=args.sms_seed,
        answer_rate=args.answer_rate,
        answer_delay_s=args.answer_delay,
        need_help_rate=args.need_help_rate,
        inbound_url=args.inbound_url,
        stats=sandbox.stats,
    )
    twilio.attach(sandbox.app)
    sandbox.stats.declare("sms", "voice")
    sandbox.on_close(twilio.close)
    sandbox.endpoints["twilio"] = MESSAGES_PATH.format(account_sid=twilio.account_sid)
    sandbox.endpoints["twilio_calls"] = CALLS_PATH.format(account_sid=twilio.account_sid)
    return twilio
