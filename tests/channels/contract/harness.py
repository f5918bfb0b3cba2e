"""Every channel against its real local server, behind one interface the contract suite drives.

A `ChannelHarness` starts a channel and the server it speaks to (aiosmtpd for `email.smtp`, the
sandbox's Twilio stand-in for `sms.twilio` and `voice.twilio`, its Telnyx stand-in for
`sms.telnyx`, the sandbox's HTTP sink for `push.apprise`, a throwaway mosquitto for the device
channels), scripts failures on that server, and reads back what arrived. A new channel gets
the whole suite by adding one harness to `HARNESSES`.

The suite builds its alerts, batches and deliveries with `make_batch` only: `AlertContext` is
changing shape, and this is the one place to follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import aiomqtt
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.base import Channel
from channels.broadcast_apprise import AppriseBroadcast, BroadcastSettings
from channels.devices import (
    WINDOW_MARKED,
    DesktopChannel,
    DeviceChannel,
    DeviceSettings,
    PaChannel,
    SignageChannel,
    SirenChannel,
    Topics,
)
from channels.email_smtp import SmtpEmail, SmtpSettings
from channels.failover import SmsFailover
from channels.push_apprise import ApprisePush, AppriseSettings
from channels.sandbox.broker import Mosquitto, free_port
from channels.sandbox.push import PushSink
from channels.sandbox.smtp import SmtpServer, SmtpSink
from channels.sandbox.stats import Stats
from channels.sandbox.telnyx import TelnyxSandbox
from channels.sandbox.twilio import DEFAULT_ACCOUNT_SID, TwilioSandbox
from channels.sms_telnyx import TelnyxSettings, TelnyxSms
from channels.sms_twilio import TwilioSettings, TwilioSms
from channels.voice_twilio import (
    GATHER_PATH,
    TWIML_PATH,
    TwilioVoice,
    VoiceSettings,
    call_twiml,
    callback_url,
)
from channels.webhook_signed import (
    ALERT_HEADER as WEBHOOK_ALERT,
)
from channels.webhook_signed import (
    EVENT_HEADER as WEBHOOK_EVENT,
)
from channels.webhook_signed import (
    SIGNATURE_HEADER,
    SignedWebhooks,
    WebhookSettings,
    verify,
)
from dispatcher.alerting.rendering import render
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    Delivery,
    Mode,
)
from dispatcher.policy.settings import RenderingSettings
from tests.channels.conftest import RecordingSink

TEXT = "Gas leak at North Hall. Evacuate the building now and stay clear of the area."
# Attack words: a channel that picks the siren pattern from the words before the mode fails.
DRILL_TEXT = "Active shooter exercise at the Library. Lock the doors and stay away from windows."
WORDS = RenderingSettings()
DRILL_WORDS = (WORDS.drill_prefix, WORDS.test_prefix)


# --- the one factory -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Who a delivery is for: the recipient id and the address the channel sends to."""

    recipient: str
    address: str


def make_batch(
    channel: ChannelKind,
    targets: Sequence[Target],
    *,
    alert_id: str = "A-1",
    mode: Mode = Mode.LIVE,
    kind: AlertKind = AlertKind.EMERGENCY,
    text: str = TEXT,
    ids: Sequence[int] | None = None,
    attempt: int = 1,
    zones: Sequence[str] = ("a", "b"),
    expires_in_s: float = 3600.0,
    rendered: bool = True,
) -> Batch:
    """The batch the engine would hand `channel`: its real rendering, one delivery per target.

    `rendered=False` gives the message-less context the engine passes to `withdraw`.
    """
    request = AlertRequest(kind=kind, mode=mode, text=text, zones=list(zones))
    messages = {"en": render(request, channel, "en", WORDS)} if rendered else {}
    now_ms = int(time.time() * 1000)
    expires_ms = now_ms + int(expires_in_s * 1000)
    context = AlertContext(
        alert_id=alert_id,
        kind=kind,
        mode=mode,
        now_ms=now_ms,
        expires_ms=expires_ms,
        messages=messages,
        zones=tuple(zones),
    )
    numbers = list(ids) if ids is not None else [100 + i for i in range(len(targets))]
    deliveries = tuple(
        Delivery(id=number, recipient=t.recipient, address=t.address, attempt=attempt)
        for number, t in zip(numbers, targets, strict=True)
    )
    return Batch(context, deliveries)


# --- the contract's table ------------------------------------------------------------------


class Expect(StrEnum):
    """What a failure must become: a retry later, or a failure now with its reason."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


class Reach(StrEnum):
    """Whom a scripted failure hits: the one scripted delivery, or the whole batch."""

    ONE = "one"
    ALL = "all"


class Protocol(StrEnum):
    """The wire a channel speaks, which sets the failures its harness must script."""

    HTTP = "http"
    SMTP = "smtp"
    MQTT = "mqtt"
    APPRISE = "apprise"
    """HTTP through Apprise's plugins, which report that a post failed but not its status: a
    refusal cannot be told from an outage, so every failure is retried until the deadline."""


# The transient vs permanent table, by family of failure: the same for every channel.
FAMILIES: Mapping[str, Expect] = {
    "http_429": Expect.TRANSIENT,
    "http_5xx": Expect.TRANSIENT,
    "http_4xx": Expect.PERMANENT,
    "smtp_4xx": Expect.TRANSIENT,
    "smtp_5xx": Expect.PERMANENT,
    "timeout": Expect.TRANSIENT,
    "away": Expect.TRANSIENT,
}

# The families a harness of each protocol must script, so no channel skips a row.
REQUIRED: Mapping[Protocol, frozenset[str]] = {
    Protocol.HTTP: frozenset({"http_429", "http_5xx", "http_4xx", "timeout", "away"}),
    Protocol.SMTP: frozenset({"smtp_4xx", "smtp_5xx", "timeout", "away"}),
    Protocol.MQTT: frozenset({"timeout", "away"}),
    Protocol.APPRISE: frozenset({"http_429", "http_5xx", "timeout", "away"}),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One row of a harness's failure table."""

    name: str
    family: str
    reach: Reach = Reach.ONE
    reason: str = ""
    """What a permanent failure's receipt must name (a status or provider code)."""

    @property
    def expect(self) -> Expect:
        """Transient or permanent, as the contract's table says for the family."""
        return FAMILIES[self.family]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One delivery as its server (or a device on the broker) received it."""

    recipient: str
    text: str
    marks: frozenset[str] = frozenset()
    """The drill markings found on the wire: none for a live alert."""


def text_marks(*texts: str) -> frozenset[str]:
    """`text_prefix` when the rendered drill or test words reached the wire."""
    found = any(words in t for t in texts for words in DRILL_WORDS)
    return frozenset({"text_prefix"}) if found else frozenset()


# --- real servers the harnesses share --------------------------------------------------------


class SilentServer:
    """A TCP listener that accepts connections and never says a word: a provider that hangs."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        """Listen on a free loopback port."""

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Drop every held connection and stop listening."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """An aiohttp app on a free loopback port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


# --- the harness -------------------------------------------------------------------------------


class ChannelHarness(ABC):
    """A channel started against its real local server, with failures scripted on that server."""

    name: ClassVar[str]
    kind: ClassVar[ChannelKind]
    protocol: ClassVar[Protocol]
    faults: ClassVar[tuple[Fault, ...]]
    drill_marks: ClassVar[frozenset[str]]
    """The markings every drill must carry on this channel's wire."""
    holds_display: ClassVar[bool] = False
    """True when what was sent stays on show (retained on a broker) until withdrawn."""
    fixtures: ClassVar[tuple[str, ...]] = ()
    """pytest fixtures the harness needs (by name), handed to its constructor."""

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        self.receipts = receipts
        self.channel: Channel | None = None
        self.book: dict[str, str] = {}
        """address -> recipient, for every target handed out."""
        self._silent: SilentServer | None = None

    @property
    def running(self) -> Channel:
        """The channel under test (started)."""
        assert self.channel is not None, "harness not started"
        return self.channel

    # what each harness provides

    @abstractmethod
    async def start(self) -> None:
        """Start the server, then the channel against it."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the channel, then the server."""

    @abstractmethod
    def address(self, index: int) -> str:
        """The address of the index-th recipient on this channel."""

    @abstractmethod
    async def arm(self, fault: Fault, target: Target) -> Target:
        """Script the fault on the server for this target (or the whole channel); the target
        to send to, which may point somewhere else (a dead or silent endpoint)."""

    @abstractmethod
    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """What reached the server (or the devices) for this alert so far."""

    def secrets(self) -> tuple[str, ...]:
        """Credentials the channel holds, which must never show in receipts, errors or logs."""
        return ()

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The forms of a target's contact details that must never show."""
        return (target.address,)

    async def heal(self) -> None:  # noqa: B027 - most faults need no undoing
        """Undo channel-wide faults: the channel talks to its working server again."""

    async def showing(self, alert_id: str) -> set[str]:
        """Recipients on whose display the alert is on show now (none for message channels)."""
        return set()

    # shared

    def target(self, index: int) -> Target:
        """The index-th recipient: a stable id and this channel's address for it."""
        address = self.address(index)
        recipient = f"{self.kind.value}-{index:04d}"
        self.book[address] = recipient
        return Target(recipient, address)

    def targets(self, count: int, start: int = 0) -> list[Target]:
        """`count` fresh recipients."""
        return [self.target(start + i) for i in range(count)]

    def batch(self, targets: Sequence[Target], **alert: Any) -> Batch:
        """A batch for this harness's channel kind (see make_batch)."""
        return make_batch(self.kind, targets, **alert)

    async def silent_port(self) -> int:
        """The port of a listener that never answers, started on first use."""
        if self._silent is None:
            self._silent = SilentServer()
            await self._silent.start()
        return self._silent.port

    async def _stop_silent(self) -> None:
        if self._silent is not None:
            await self._silent.stop()
            self._silent = None

    async def _close_channel(self) -> None:
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await channel.close()


# --- sms.twilio ---------------------------------------------------------------------------------


class TwilioHarness(ChannelHarness):
    """`sms.twilio` against the sandbox's Messages API stand-in."""

    name = "sms.twilio"
    kind = ChannelKind.SMS
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("hang", "timeout"),
        Fault("http_400", "http_4xx", reason="21600"),
        Fault("invalid_number", "http_4xx", reason="21211"),
        Fault("opted_out", "http_4xx", reason="21610"),
        Fault("not_mobile", "http_4xx", reason="21614"),
        Fault("bad_credentials", "http_4xx", Reach.ALL, reason="20003"),
        Fault("api_away", "away", Reach.ALL),
    )
    drill_marks = frozenset({"text_prefix"})
    _scripts: ClassVar[Mapping[str, str]] = {
        "http_429": "429",
        "http_500": "500",
        "http_503": "503",
        "hang": "hang",
        "http_400": "400",
        "invalid_number": "21211",
        "opted_out": "21610",
        "not_mobile": "21614",
    }
    _token = "twilio-auth-token-7c41d09e"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.api = TwilioSandbox(auth_token=self._token, stats=Stats(), callback_delay_s=0.01)
        self._runner: web.AppRunner | None = None
        self._url = ""

    async def start(self) -> None:
        """The Messages API and a status-callback route on one aiohttp app."""
        app = web.Application()
        self.api.attach(app)
        app.router.add_post("/callbacks", self._callback)
        self._runner, port = await serve(app)
        self._url = f"http://127.0.0.1:{port}"
        await self._open()

    async def _callback(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _open(self, **overrides: Any) -> None:
        await self._close_channel()
        raw: dict[str, Any] = {
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": self._token,
            "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 1000}],
            "api_base_url": self._url,
            "status_callback_url": f"{self._url}/callbacks",
            "timeout_s": 1.0,
            **overrides,
        }
        self.channel = TwilioSms(TwilioSettings.model_validate(raw))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, release hung requests, stop the server."""
        await self._close_channel()
        await self.api.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """A US mobile number."""
        return f"+1617555{index:04d}"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The number as dialled, without its +, and its national digits."""
        digits = target.address.lstrip("+")
        return (target.address, digits, digits[1:])

    def secrets(self) -> tuple[str, ...]:
        """The auth token."""
        return (self._token,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted replies per number; the whole API away or the token wrong."""
        if fault.name == "bad_credentials":
            await self._open(auth_token="wrong-token-for-twilio-55e1")
        elif fault.name == "api_away":
            await self._open(api_base_url=f"http://127.0.0.1:{free_port()}")
        else:
            self.api.script(target.address, self._scripts[fault.name])
        return target

    async def heal(self) -> None:
        """Back to the stand-in with the right token."""
        await self._open()

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Accepted messages whose status callback names the alert."""
        found = []
        for message in self.api.sent:
            query = parse_qs(urlsplit(message.status_callback).query)
            if query.get("a", [""])[0] == alert_id:
                recipient = self.book[message.to]
                found.append(Arrival(recipient, message.body, text_marks(message.body)))
        return found


# --- sms.telnyx ---------------------------------------------------------------------------------


class TelnyxHarness(ChannelHarness):
    """`sms.telnyx` against the sandbox's Messaging API v2 stand-in."""

    name = "sms.telnyx"
    kind = ChannelKind.SMS
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("hang", "timeout"),
        Fault("http_400", "http_4xx", reason="10015"),
        Fault("invalid_number", "http_4xx", reason="10002"),
        Fault("opted_out", "http_4xx", reason="40300"),
        Fault("bad_credentials", "http_4xx", Reach.ALL, reason="10009"),
        Fault("api_away", "away", Reach.ALL),
    )
    drill_marks = frozenset({"text_prefix"})
    _scripts: ClassVar[Mapping[str, str]] = {
        "http_429": "429",
        "http_500": "500",
        "http_503": "503",
        "hang": "hang",
        "http_400": "400",
        "invalid_number": "422",
        "opted_out": "40300",
    }
    _key = "KEY0187c2f4-telnyx-contract"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.api = TelnyxSandbox(api_key=self._key, stats=Stats(), callback_delay_s=0.01)
        self._runner: web.AppRunner | None = None
        self._url = ""

    async def start(self) -> None:
        """The Messaging API and a webhook route on one aiohttp app."""
        app = web.Application()
        self.api.attach(app)
        app.router.add_post("/webhooks", self._webhook)
        self._runner, port = await serve(app)
        self._url = f"http://127.0.0.1:{port}"
        await self._open()

    async def _webhook(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _open(self, **overrides: Any) -> None:
        await self._close_channel()
        raw: dict[str, Any] = {
            "api_key": self._key,
            "public_key": self.api.public_key,
            "senders": [{"number": "+16175550100", "type": "toll_free", "rate_per_second": 1000}],
            "api_base_url": self._url,
            "webhook_url": f"{self._url}/webhooks",
            "timeout_s": 1.0,
            **overrides,
        }
        self.channel = TelnyxSms(TelnyxSettings.model_validate(raw))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, release hung requests, stop the server."""
        await self._close_channel()
        await self.api.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """A US mobile number."""
        return f"+1617555{index:04d}"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The number as dialled, without its +, and its national digits."""
        digits = target.address.lstrip("+")
        return (target.address, digits, digits[1:])

    def secrets(self) -> tuple[str, ...]:
        """The API key."""
        return (self._key,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted replies per number; the whole API away or the key wrong."""
        if fault.name == "bad_credentials":
            await self._open(api_key="KEYwrong-for-telnyx-91d0")
        elif fault.name == "api_away":
            await self._open(api_base_url=f"http://127.0.0.1:{free_port()}")
        else:
            self.api.script(target.address, self._scripts[fault.name])
        return target

    async def heal(self) -> None:
        """Back to the stand-in with the right key."""
        await self._open()

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Accepted messages whose webhook URL names the alert."""
        return [
            Arrival(self.book[m.to], m.text, text_marks(m.text))
            for m in self.api.sent
            if m.alert_id == alert_id
        ]


# --- sms.failover -------------------------------------------------------------------------------


class FailoverHarness(ChannelHarness):
    """`sms.failover` over `sms.twilio` then `sms.telnyx`, both stand-ins on one server. A
    provider-side failure is scripted on both (the second provider's answer is the receipt);
    a recipient's own error and a timeout on the first only (they never move)."""

    name = "sms.failover"
    kind = ChannelKind.SMS
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("hang", "timeout"),
        Fault("http_400", "http_4xx", reason="21600"),
        Fault("invalid_number", "http_4xx", reason="21211"),
        Fault("opted_out", "http_4xx", reason="21610"),
        Fault("bad_credentials", "http_4xx", Reach.ALL, reason="10009"),
        Fault("api_away", "away", Reach.ALL),
    )
    drill_marks = frozenset({"text_prefix"})
    _both: ClassVar[Mapping[str, tuple[str, str]]] = {
        "http_429": ("429", "429"),
        "http_500": ("500", "500"),
    }
    _first: ClassVar[Mapping[str, str]] = {
        "hang": "hang", "http_400": "400", "invalid_number": "21211", "opted_out": "21610",
    }
    _token = "twilio-auth-token-failover-3b7e"
    _key = "KEYfailover-telnyx-6c2d"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        stats = Stats()
        self.twilio = TwilioSandbox(auth_token=self._token, stats=stats, callback_delay_s=0.01)
        self.telnyx = TelnyxSandbox(api_key=self._key, stats=stats, callback_delay_s=0.01)
        self._runner: web.AppRunner | None = None
        self._url = ""

    async def start(self) -> None:
        """Both APIs and a callback route on one aiohttp app."""
        app = web.Application()
        self.twilio.attach(app)
        self.telnyx.attach(app)
        app.router.add_post("/callbacks", self._callback)
        self._runner, port = await serve(app)
        self._url = f"http://127.0.0.1:{port}"
        await self._open()

    async def _callback(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _open(self, *, twilio: Mapping[str, Any] | None = None,
                    telnyx: Mapping[str, Any] | None = None) -> None:
        await self._close_channel()
        first = TwilioSms(TwilioSettings.model_validate({
            "account_sid": DEFAULT_ACCOUNT_SID, "auth_token": self._token,
            "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 1000}],
            "api_base_url": self._url, "status_callback_url": f"{self._url}/callbacks",
            "timeout_s": 1.0, **(twilio or {}),
        }))
        second = TelnyxSms(TelnyxSettings.model_validate({
            "api_key": self._key,
            "senders": [{"number": "+16175550100", "type": "toll_free",
                         "rate_per_second": 1000}],
            "api_base_url": self._url, "webhook_url": f"{self._url}/callbacks",
            "timeout_s": 1.0, **(telnyx or {}),
        }))
        self.channel = SmsFailover([first, second])
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, release hung requests, stop the server."""
        await self._close_channel()
        await self.twilio.close()
        await self.telnyx.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """A US mobile number."""
        return f"+1617555{index:04d}"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The number as dialled, without its +, and its national digits."""
        digits = target.address.lstrip("+")
        return (target.address, digits, digits[1:])

    def secrets(self) -> tuple[str, ...]:
        """Both providers' credentials."""
        return (self._token, self._key)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted replies per number; both APIs away, or both credentials wrong."""
        if fault.name == "bad_credentials":
            await self._open(twilio={"auth_token": "wrong-token-for-twilio-55e1"},
                             telnyx={"api_key": "KEYwrong-for-telnyx-91d0"})
        elif fault.name == "api_away":
            away = f"http://127.0.0.1:{free_port()}"
            await self._open(twilio={"api_base_url": away}, telnyx={"api_base_url": away})
        elif fault.name in self._both:
            first, second = self._both[fault.name]
            self.twilio.script(target.address, first)
            self.telnyx.script(target.address, second)
        else:
            self.twilio.script(target.address, self._first[fault.name])
        return target

    async def heal(self) -> None:
        """Back to both stand-ins with the right credentials."""
        await self._open()

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Messages either provider accepted for the alert."""
        found = []
        for message in self.twilio.sent:
            query = parse_qs(urlsplit(message.status_callback).query)
            if query.get("a", [""])[0] == alert_id:
                found.append(Arrival(self.book[message.to], message.body,
                                     text_marks(message.body)))
        found.extend(
            Arrival(self.book[m.to], m.text, text_marks(m.text))
            for m in self.telnyx.sent
            if m.alert_id == alert_id
        )
        return found


# --- voice.twilio -------------------------------------------------------------------------------


class VoiceHarness(ChannelHarness):
    """`voice.twilio` against the sandbox's Calls API stand-in, which fetches each answered
    call's TwiML from a route on the same app (built as the service builds it) and presses 1."""

    name = "voice.twilio"
    kind = ChannelKind.VOICE
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("hang", "timeout"),
        Fault("http_400", "http_4xx", reason="21600"),
        Fault("invalid_number", "http_4xx", reason="21211"),
        Fault("bad_credentials", "http_4xx", Reach.ALL, reason="20003"),
        Fault("api_away", "away", Reach.ALL),
    )
    drill_marks = frozenset({"preamble"})
    _scripts: ClassVar[Mapping[str, str]] = {
        "http_429": "429",
        "http_500": "500",
        "http_503": "503",
        "hang": "hang",
        "http_400": "400",
        "invalid_number": "21211",
    }
    _token = "twilio-voice-token-0b93f1a2"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.api = TwilioSandbox(auth_token=self._token, stats=Stats(), callback_delay_s=0.005)
        self._runner: web.AppRunner | None = None
        self._url = ""
        self._alerts: dict[str, AlertContext] = {}

    async def start(self) -> None:
        """The Calls API, the call's TwiML, its gather and status routes on one aiohttp app."""
        app = web.Application()
        self.api.attach(app)
        app.router.add_post(TWIML_PATH, self._twiml)
        app.router.add_post(GATHER_PATH, self._empty)
        app.router.add_post("/v1/callbacks/twilio/voice/status", self._empty)
        self._runner, port = await serve(app)
        self._url = f"http://127.0.0.1:{port}"
        await self._open()

    def batch(self, targets: Sequence[Target], **alert: Any) -> Batch:
        """A batch, whose alert the TwiML route then speaks."""
        made = super().batch(targets, **alert)
        if made.alert.messages:
            self._alerts[made.alert.alert_id] = made.alert
        return made

    async def _twiml(self, request: web.Request) -> web.Response:
        alert = self._alerts[request.query["a"]]
        settings = self.running.settings
        assert isinstance(settings, VoiceSettings)
        gather = callback_url(self._url, GATHER_PATH, int(request.query["d"]), alert.alert_id)
        body = call_twiml(
            alert.message("en"), settings.speech_voice("en"), gather, goodbye="Goodbye."
        )
        return web.Response(text=body, content_type="text/xml")

    async def _empty(self, request: web.Request) -> web.Response:
        return web.Response(text="<Response><Hangup/></Response>", content_type="text/xml")

    async def _open(self, **overrides: Any) -> None:
        await self._close_channel()
        raw: dict[str, Any] = {
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": self._token,
            "callers": [{"number": "+15555550101", "rate_per_second": 1000}],
            "area_code_rate_per_second": 0,
            "api_base_url": self._url,
            "callback_base_url": self._url,
            "timeout_s": 1.0,
            "batch_size": 100,
            "concurrency": 16,
            **overrides,
        }
        self.channel = TwilioVoice(VoiceSettings.model_validate(raw))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, release hung requests, stop the server."""
        await self._close_channel()
        await self.api.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """A US number."""
        return f"+1212555{index:04d}"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The number as dialled, without its +, and its national digits."""
        digits = target.address.lstrip("+")
        return (target.address, digits, digits[1:])

    def secrets(self) -> tuple[str, ...]:
        """The auth token."""
        return (self._token,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted replies per number; the whole API away or the token wrong."""
        if fault.name == "bad_credentials":
            await self._open(auth_token="wrong-token-for-twilio-9c2d")
        elif fault.name == "api_away":
            await self._open(api_base_url=f"http://127.0.0.1:{free_port()}")
        else:
            self.api.script(target.address, self._scripts[fault.name])
        return target

    async def heal(self) -> None:
        """Back to the stand-in with the right token."""
        await self._open()

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Calls placed for the alert, with what was said once each was answered."""
        calls = [c for c in self.api.calls if c.alert_id == alert_id]
        async with asyncio.timeout(10):
            for call in calls:
                await call.done.wait()
        found = []
        for call in calls:
            spoken = " ".join(call.spoken)
            opening = spoken[:80].lower()
            marks = frozenset({"preamble"}) if "drill" in opening or "test" in opening else set()
            found.append(Arrival(self.book[call.to], spoken, frozenset(marks)))
        return found


# --- email.smtp ---------------------------------------------------------------------------------


class RecordingSmtpSink(SmtpSink):
    """The sandbox's SMTP sink, also keeping each accepted copy whole (headers included),
    and able to hang on a recipient like a relay that stops answering."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self.mail: list[tuple[str, EmailMessage]] = []
        self.hang_on: set[str] = set()
        self.released = asyncio.Event()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Hang on a scripted address until released; else the sink's scripted reply."""
        if address.lower() in self.hang_on:
            await self.released.wait()
            return "421 4.4.2 Timeout"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Count as the sink does, and keep the message per recipient."""
        reply = await super().handle_DATA(server, session, envelope)
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mail.extend((rcpt.lower(), message) for rcpt in envelope.rcpt_tos)
        return reply


class SmtpHarness(ChannelHarness):
    """`email.smtp` against aiosmtpd, with AUTH, scripted RCPT replies and a hang."""

    name = "email.smtp"
    kind = ChannelKind.EMAIL
    protocol = Protocol.SMTP
    faults = (
        Fault("smtp_421", "smtp_4xx", Reach.ALL),  # 421 closes the connection: all retry
        Fault("smtp_451", "smtp_4xx"),
        Fault("smtp_452", "smtp_4xx"),
        Fault("smtp_550", "smtp_5xx", reason="550"),
        Fault("smtp_553", "smtp_5xx", reason="553"),
        Fault("smtp_554", "smtp_5xx", reason="554"),
        Fault("rcpt_hangs", "timeout", Reach.ALL),
        Fault("relay_away", "away", Reach.ALL),
    )
    drill_marks = frozenset({"drill_header", "text_prefix"})
    _password = "smtp-relay-password-31f0"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.sink = RecordingSmtpSink(Stats())
        self.server = SmtpServer(self.sink, "127.0.0.1", 0, credentials=("clarion", self._password))

    def _replies(self, target: Target) -> Mapping[str, str]:
        # Real relays quote the address they refuse: the channel must not pass it on.
        a = target.address
        return {
            "smtp_421": "421 4.7.0 Try again later, closing connection",
            "smtp_451": "451 4.3.0 Mailbox busy, try later",
            "smtp_452": f"452 4.2.2 <{a}>: mailbox full",
            "smtp_550": f"550 5.1.1 <{a}>: Recipient address rejected: User unknown",
            "smtp_553": f"553 5.1.3 <{a}>: malformed address",
            "smtp_554": "554 5.7.1 Delivery not authorized, message refused",
        }

    async def start(self) -> None:
        """The relay, then the channel logged in to it."""
        await self.server.start()
        await self._open()

    async def _open(self, **overrides: Any) -> None:
        await self._close_channel()
        raw: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "security": "none",
            "username": "clarion",
            "password": self._password,
            "timeout_s": 1.0,
            "pool_size": 2,
            "recipients_per_message": 50,
            **overrides,
        }
        self.channel = SmtpEmail(SmtpSettings.model_validate(raw))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, release a hung transaction, stop the relay."""
        await self._close_channel()
        self.sink.released.set()
        await self.server.stop()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """A student's address, their name in it."""
        return f"maria.gonzalez{index}@students.example.edu"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The address and its local part (the person's name)."""
        return (target.address, target.address.split("@")[0])

    def secrets(self) -> tuple[str, ...]:
        """The relay password."""
        return (self._password,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """A scripted RCPT reply, a relay that hangs mid-transaction, or none listening."""
        if fault.name == "rcpt_hangs":
            self.sink.hang_on.add(target.address.lower())
        elif fault.name == "relay_away":
            await self._open(port=free_port())
        else:
            self.sink.script(target.address, self._replies(target)[fault.name])
        return target

    async def heal(self) -> None:
        """The relay answers again."""
        self.sink.hang_on.clear()
        self.sink.released.set()
        await self._open()

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Accepted copies carrying the alert's header."""
        found = []
        for rcpt, message in self.sink.mail:
            if message.get("X-Clarion-Alert") != alert_id:
                continue
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            subject = str(message.get("Subject", ""))
            marks = set(text_marks(subject, text))
            if message.get("X-Clarion-Drill") == "yes" and message.get("X-Clarion-Mode") in (
                Mode.DRILL.value,
                Mode.TEST.value,
            ):
                marks.add("drill_header")
            found.append(Arrival(self.book[rcpt], text, frozenset(marks)))
        return found


# --- push.apprise -------------------------------------------------------------------------------


class AppriseHarness(ChannelHarness):
    """`push.apprise` with json:// gateway targets on the sandbox's push sink."""

    name = "push.apprise"
    kind = ChannelKind.PUSH
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("target_hangs", "timeout"),
        Fault("http_400", "http_4xx", reason="HTTP 400"),
        Fault("http_404", "http_4xx", reason="HTTP 404"),
        Fault("http_410", "http_4xx", reason="HTTP 410"),
        Fault("target_away", "away"),
    )
    drill_marks = frozenset({"text_prefix", "drill_flag"})
    _statuses: ClassVar[Mapping[str, int]] = {
        "http_429": 429,
        "http_500": 500,
        "http_503": 503,
        "http_400": 400,
        "http_404": 404,
        "http_410": 410,
    }
    _password = "push-hook-password-a7b3"
    _token = "push-hook-token-0d9c"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.sink = PushSink(stats=Stats())
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def start(self) -> None:
        """The sink, then the channel."""
        app = web.Application()
        self.sink.attach(app)
        self._runner, self._port = await serve(app)
        self.channel = ApprisePush(AppriseSettings.model_validate({"timeout_s": 1.0}))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, then the sink."""
        await self._close_channel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def _url(self, port: int, recipient: str) -> str:
        return (
            f"json://clarion:{self._password}@127.0.0.1:{port}/push/{recipient}"
            f"?+X-Token={self._token}"
        )

    def address(self, index: int) -> str:
        """A json:// webhook with credentials in it, as people's push URLs often carry."""
        return self._url(self._port, f"{self.kind.value}-{index:04d}")

    def secrets(self) -> tuple[str, ...]:
        """The URL's password and its token header."""
        return (self._password, self._token)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted statuses per target; a target URL that hangs or has nobody listening."""
        if fault.name in self._statuses:
            self.sink.script(target.recipient, self._statuses[fault.name])
            return target
        port = await self.silent_port() if fault.name == "target_hangs" else free_port()
        moved = Target(target.recipient, self._url(port, target.recipient))
        self.book[moved.address] = moved.recipient
        return moved

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Posts the sink accepted with the alert's header."""
        return [
            Arrival(
                m.recipient,
                m.text,
                text_marks(m.text, m.meta.get("title", ""))
                | ({"drill_flag"} if m.meta.get("drill") == "true" else set()),
            )
            for m in self.sink.stats.of("push", alert_id)
        ]


# --- sirens, signage, PA over MQTT ----------------------------------------------------------------


class DeviceHarness(ChannelHarness):
    """A device channel on a throwaway mosquitto; a watcher reads what the zones received."""

    protocol = Protocol.MQTT
    faults = (
        Fault("broker_away", "away", Reach.ALL),
        Fault("broker_silent", "timeout", Reach.ALL),
    )
    holds_display = True
    fixtures = ("mosquitto",)
    channel_class: ClassVar[type[DeviceChannel]]
    _password = "mqtt-password-e2c8"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.broker: Mosquitto = fixtures["mosquitto"]
        self.topics = Topics("clarion/v1")
        self.seen: list[dict[str, Any]] = []
        self.zone_of: dict[str, str] = {}
        """device id -> zone, for every device handed out."""
        self._watcher: asyncio.Task[None] | None = None
        self._opened = 0

    async def start(self) -> None:
        """The watcher, then the channel on the broker."""
        await self._watch()
        await self._open()

    async def _open(self, **overrides: Any) -> None:
        await self._close_channel()
        self._opened += 1
        raw: dict[str, Any] = {
            "port": self.broker.port,
            "username": "clarion",
            "password": self._password,
            "client_id": f"contract-{self.kind.value}-{self._opened}",
            "ack_timeout_s": 30.0,
            "connect_grace_s": 0.5,
            "timeout_s": 1.0,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.5,
            **overrides,
        }
        channel = self.channel_class(DeviceSettings.model_validate(raw))
        await channel.start(self.receipts)
        self.channel = channel
        if "port" not in overrides:
            assert await channel.bus.wait_connected(10), "the channel did not reach the broker"

    async def _watch(self) -> None:
        """Subscribe a watcher to every zone; its messages land in `seen`."""
        subscribed = asyncio.Event()

        async def run() -> None:
            async with aiomqtt.Client(
                "127.0.0.1", self.broker.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                await client.subscribe(self.topics.active_filter, qos=1)
                await client.subscribe(self._marker_filter, qos=1)
                subscribed.set()
                async for message in client.messages:
                    raw = message.payload
                    payload = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
                    self.seen.append({"topic": message.topic.value, "payload": payload})

        self._watcher = asyncio.get_running_loop().create_task(run(), name="contract.watcher")
        async with asyncio.timeout(10):
            await subscribed.wait()

    @property
    def _marker_filter(self) -> str:
        return "contract/marker/#"

    async def _settle(self) -> None:
        """Wait until the watcher has everything published before now.

        A marker published now reaches the watcher after anything the broker routed before.
        """
        if self._watcher is None or self._watcher.done():
            return
        marker = f"contract/marker/{time.monotonic_ns()}"
        async with aiomqtt.Client(
            "127.0.0.1", self.broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.publish(marker, b"x", qos=1)
        async with asyncio.timeout(10):
            while not any(m["topic"] == marker for m in self.seen):
                await asyncio.sleep(0.01)

    async def _unwatch(self) -> None:
        task, self._watcher = self._watcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task

    async def stop(self) -> None:
        """The channel, then the watcher (the broker fixture stops itself)."""
        await self._close_channel()
        await self._unwatch()
        await self._stop_silent()

    def address(self, index: int) -> str:
        """The device's zone: two zones, so a batch spans more than one."""
        return "a" if index % 2 == 0 else "b"

    def target(self, index: int) -> Target:
        """A device: its id is the recipient, its zone the address."""
        target = Target(f"{self.kind.value}-{index:04d}", self.address(index))
        self.zone_of[target.recipient] = target.address
        return target

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """Devices have no contact data; their credentials are checked as secrets."""
        return ()

    def secrets(self) -> tuple[str, ...]:
        """The broker password."""
        return (self._password,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """The broker stopped, or a listener that never answers CONNECT."""
        if fault.name == "broker_away":
            await self._unwatch()
            await self.broker.stop()
        else:
            await self._open(port=await self.silent_port())
        return target

    async def heal(self) -> None:
        """The broker back on its port, the channel reconnected, the watcher resubscribed."""
        if not self.broker.running:
            await self.broker.start()
        if self._watcher is None:
            await self._watch()
        channel = self.channel
        if isinstance(channel, DeviceChannel) and channel.settings.port == self.broker.port:
            assert await channel.bus.wait_connected(10)
        else:
            await self._open()

    def _zones_of(self, alert_id: str) -> dict[str, dict[str, Any]]:
        """zone -> the latest payload of the alert that zone's topic carried (devices keep the
        first they see and de-duplicate by alert id: the latest carries every class)."""
        latest: dict[str, dict[str, Any]] = {}
        for message in self.seen:
            zone = self.topics.zone_of(message["topic"])
            if zone is None or not message["payload"]:
                continue
            payload = json.loads(message["payload"])
            if payload.get("identifier") == alert_id:
                latest[zone] = payload
        return latest

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Each known device whose zone received the alert, with that payload's markings."""
        await self._settle()
        zones = self._zones_of(alert_id)
        return [
            Arrival(device, json.dumps(zones[zone]), self.marks(zones[zone]))
            for device, zone in self.zone_of.items()
            if zone in zones
        ]

    def marks(self, payload: Mapping[str, Any]) -> frozenset[str]:
        """The drill markings every device class reads: the flag and the CAP status."""
        found = set()
        if payload.get("drill") is True:
            found.add("drill_flag")
        if payload.get("status") in ("Exercise", "Test"):
            found.add("cap_status")
        return frozenset(found | self.class_marks(payload.get(self.kind.value) or {}))

    @abstractmethod
    def class_marks(self, section: Mapping[str, Any]) -> set[str]:
        """The markings of this class's own section of the payload."""

    async def showing(self, alert_id: str) -> set[str]:
        """Devices whose zone's retained topic holds the alert now, as a device booting sees."""
        held = {z for z in set(self.zone_of.values()) if await self._retained(z) == alert_id}
        return {device for device, zone in self.zone_of.items() if zone in held}

    async def _retained(self, zone: str) -> str | None:
        """The alert id a new subscriber to the zone gets, or None when nothing is retained."""
        marker = f"contract/marker/{time.monotonic_ns()}"
        async with aiomqtt.Client(
            "127.0.0.1", self.broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe(self.topics.active(zone), qos=1)
            await client.subscribe(marker, qos=1)
            await client.publish(marker, b"x", qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    if message.topic.value == marker:
                        return None
                    if message.retain and isinstance(message.payload, bytes) and message.payload:
                        return str(json.loads(message.payload).get("identifier"))
        return None


class SirenHarness(DeviceHarness):
    """`siren.mqtt`: drills play the test pattern."""

    name = "siren.mqtt"
    kind = ChannelKind.SIREN
    channel_class = SirenChannel
    drill_marks = frozenset({"drill_flag", "cap_status", "test_pattern"})

    def class_marks(self, section: Mapping[str, Any]) -> set[str]:
        """`test_pattern` when the siren is told to play the test pattern."""
        return {"test_pattern"} if section.get("pattern") == "test" else set()


class SignageHarness(DeviceHarness):
    """`signage.mqtt`: drills carry the banner."""

    name = "signage.mqtt"
    kind = ChannelKind.SIGNAGE
    channel_class = SignageChannel
    drill_marks = frozenset({"drill_flag", "cap_status", "banner"})

    def class_marks(self, section: Mapping[str, Any]) -> set[str]:
        """`banner` when the sign is told to show a drill or test banner."""
        return {"banner"} if section.get("banner") else set()


class PaHarness(DeviceHarness):
    """`pa.mqtt`: drills are announced as drills."""

    name = "pa.mqtt"
    kind = ChannelKind.PA
    channel_class = PaChannel
    drill_marks = frozenset({"drill_flag", "cap_status", "preamble"})

    def class_marks(self, section: Mapping[str, Any]) -> set[str]:
        """`preamble` when the speech opens by saying it is a drill or a test."""
        speech = str(section.get("speech", "")).lower()
        opening = speech[:80]
        return {"preamble"} if "drill" in opening or "test" in opening else set()


class DesktopHarness(DeviceHarness):
    """`desktop.mqtt`: drills carry the banner and open the marked window, not full screen."""

    name = "desktop.mqtt"
    kind = ChannelKind.DESKTOP
    channel_class = DesktopChannel
    drill_marks = frozenset({"drill_flag", "cap_status", "banner", "marked_window"})

    def class_marks(self, section: Mapping[str, Any]) -> set[str]:
        """`banner` for a drill banner, `marked_window` for the drill's smaller window."""
        found = {"banner"} if section.get("banner") else set()
        if section.get("window") == WINDOW_MARKED:
            found.add("marked_window")
        return found


# --- broadcast targets and webhook subscribers ------------------------------------------------


class ConfiguredHarness(ChannelHarness):
    """A channel whose destinations its config names: every target the suite can hand out is
    configured at start (by name), with a twin that hangs and one nobody listens at."""

    slots: ClassVar[int] = 64

    def address(self, index: int) -> str:
        """The destination's name, which is what a delivery carries."""
        return f"{self.kind.value}-{index:04d}"

    def contact_data(self, target: Target) -> tuple[str, ...]:
        """The destination's URL: its name may show, where it is may not."""
        return (self.urls[target.address],)

    def named(self, port: int, silent: int, away: int) -> dict[str, tuple[str, int]]:
        """name -> (path recipient, port) for every destination the harness configures."""
        out: dict[str, tuple[str, int]] = {}
        for i in range(self.slots):
            name = self.address(i)
            out[name] = (name, port)
            out[f"hang-{i:04d}"] = (name, silent)
            out[f"away-{i:04d}"] = (name, away)
        return out

    def moved(self, fault: Fault, target: Target) -> Target:
        """The target's twin that hangs or that nobody listens at."""
        twin = "hang" if fault.name == "target_hangs" else "away"
        moved = Target(target.recipient, f"{twin}-{target.address.rsplit('-', 1)[1]}")
        self.book[moved.address] = moved.recipient
        return moved

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.urls: dict[str, str] = {}


class BroadcastHarness(ConfiguredHarness):
    """`broadcast.apprise` with Apprise's own JSON webhook plugin posting to the sandbox's sink."""

    name = "broadcast.apprise"
    kind = ChannelKind.BROADCAST
    protocol = Protocol.APPRISE
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("target_hangs", "timeout"),
        Fault("target_away", "away"),
    )
    drill_marks = frozenset({"text_prefix"})
    _statuses: ClassVar[Mapping[str, int]] = {"http_429": 429, "http_500": 500, "http_503": 503}
    _password = "broadcast-hook-password-5e21"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self.sink = PushSink(stats=Stats())
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """The sink, then the channel with every target configured."""
        app = web.Application()
        self.sink.attach(app)
        self._runner, port = await serve(app)
        silent = await self.silent_port()
        for name, (recipient, at) in self.named(port, silent, free_port()).items():
            self.urls[name] = f"json://clarion:{self._password}@127.0.0.1:{at}/push/{recipient}"
        self.channel = AppriseBroadcast(BroadcastSettings.model_validate({
            "timeout_s": 1.0,
            "targets": [
                {"name": n, "url": u, "kinds": list(AlertKind)} for n, u in self.urls.items()
            ],
        }))
        await self.channel.start(self.receipts)

    async def stop(self) -> None:
        """Close the channel, then the sink."""
        await self._close_channel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def secrets(self) -> tuple[str, ...]:
        """The password in every target's URL."""
        return (self._password,)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted statuses per target; its twin that hangs or that nobody listens at."""
        if fault.name in self._statuses:
            self.sink.script(target.recipient, self._statuses[fault.name])
            return target
        return self.moved(fault, target)

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Posts the sink accepted with the alert's header."""
        return [
            Arrival(m.recipient, m.text, text_marks(m.text, m.meta.get("title", "")))
            for m in self.sink.stats.of("push", alert_id)
        ]


class WebhookHarness(ConfiguredHarness):
    """`webhook.signed` against a receiver that checks every signature before it answers."""

    name = "webhook.signed"
    kind = ChannelKind.WEBHOOK
    protocol = Protocol.HTTP
    faults = (
        Fault("http_429", "http_429"),
        Fault("http_500", "http_5xx"),
        Fault("http_503", "http_5xx"),
        Fault("target_hangs", "timeout"),
        Fault("http_400", "http_4xx", reason="HTTP 400"),
        Fault("http_404", "http_4xx", reason="HTTP 404"),
        Fault("http_410", "http_4xx", reason="HTTP 410"),
        Fault("target_away", "away"),
    )
    drill_marks = frozenset({"text_prefix", "drill_flag"})
    _statuses: ClassVar[Mapping[str, int]] = {
        "http_429": 429, "http_500": 500, "http_503": 503,
        "http_400": 400, "http_404": 404, "http_410": 410,
    }
    _secret = "webhook-signing-secret-7c4f0e"
    _token = "webhook-url-token-a19d"

    def __init__(self, receipts: RecordingSink, **fixtures: Any) -> None:
        super().__init__(receipts, **fixtures)
        self._runner: web.AppRunner | None = None
        self._script: dict[str, list[int]] = {}
        self._arrived: list[tuple[str, str, dict[str, Any]]] = []
        self.cancels: list[tuple[str, str]] = []
        """(subscriber, alert id) of every take-down received."""

    async def start(self) -> None:
        """The receiver, then the channel with every subscriber configured."""
        app = web.Application()
        app.router.add_post("/hooks/{recipient}", self._receive)
        self._runner, port = await serve(app)
        silent = await self.silent_port()
        for name, (recipient, at) in self.named(port, silent, free_port()).items():
            self.urls[name] = f"http://127.0.0.1:{at}/hooks/{recipient}?token={self._token}"
        self.channel = SignedWebhooks(WebhookSettings.model_validate({
            "timeout_s": 1.0,
            "subscribers": [
                {"name": n, "url": u, "secret": self._secret} for n, u in self.urls.items()
            ],
        }))
        await self.channel.start(self.receipts)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self._secret, request.headers.get(SIGNATURE_HEADER, ""), body,
                      now=time.time()):
            return web.Response(status=401)
        recipient = request.match_info["recipient"]
        if request.headers.get(WEBHOOK_EVENT) == "cancel":
            # A take-down, not a delivery of the alert.
            self.cancels.append((recipient, request.headers[WEBHOOK_ALERT]))
            return web.Response(status=204)
        queued = self._script.get(recipient)
        if queued:
            return web.Response(status=queued.pop(0))
        self._arrived.append((recipient, request.headers[WEBHOOK_ALERT], json.loads(body)))
        return web.Response(status=204)

    async def stop(self) -> None:
        """Close the channel, then the receiver."""
        await self._close_channel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._stop_silent()

    def secrets(self) -> tuple[str, ...]:
        """The signing secret and the URLs' token."""
        return (self._secret, self._token)

    async def arm(self, fault: Fault, target: Target) -> Target:
        """Scripted statuses per subscriber; its twin that hangs or that nobody listens at."""
        if fault.name in self._statuses:
            self._script.setdefault(target.recipient, []).append(self._statuses[fault.name])
            return target
        return self.moved(fault, target)

    async def arrivals(self, alert_id: str) -> list[Arrival]:
        """Signed posts the receiver accepted for the alert."""
        return [
            Arrival(
                recipient, body["text"],
                text_marks(body["text"], body["title"])
                | ({"drill_flag"} if body["drill"] else set()),
            )
            for recipient, alert, body in self._arrived
            if alert == alert_id
        ]


# Every channel the contract covers; a new channel adds its harness here.
HARNESSES: tuple[type[ChannelHarness], ...] = (
    SmtpHarness,
    TwilioHarness,
    TelnyxHarness,
    FailoverHarness,
    VoiceHarness,
    AppriseHarness,
    SirenHarness,
    SignageHarness,
    PaHarness,
    DesktopHarness,
    BroadcastHarness,
    WebhookHarness,
)
BY_NAME: Mapping[str, type[ChannelHarness]] = {h.name: h for h in HARNESSES}


def fault_cases(
    harnesses: Iterable[type[ChannelHarness]] = HARNESSES,
    *,
    reach: Reach | None = None,
    expect: Expect | None = None,
) -> list[tuple[str, Fault]]:
    """(harness name, fault) for every row of every harness's table, optionally filtered."""
    return [
        (h.name, f)
        for h in harnesses
        for f in h.faults
        if (reach is None or f.reach is reach) and (expect is None or f.expect is expect)
    ]
