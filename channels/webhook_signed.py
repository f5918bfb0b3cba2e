"""`webhook.signed`: alerts posted to campus systems (desktop pop-up vendors, CAD, building
management, signage players), each post signed so the receiver knows it came from Clarion.

Each subscriber is named in the config with its URL, its own signing secret, the body it takes
(`cap`: the alert's CAP 1.2 document, as `GET /v1/alerts/{id}/cap` serves it; `json`: the body
below) and the alert kinds it takes. One delivery per subscriber and alert goes through the
outbox like any other, so it has the engine's retries (backoff between tries, until the
alert's expiry), urgency order, drills and cancellation.

The request:

    POST <subscriber URL>
    Content-Type: application/json            (or application/cap+xml)
    Clarion-Signature: t=1767225600,v1=<64 lowercase hex digits>
    Clarion-Alert: <alert id>
    Clarion-Event: alert                      (or cancel)
    Clarion-Delivery: <delivery id>           (the same on every try: receivers deduplicate by it)
    Clarion-Attempt: <1, 2, ...>

`v1` is the lowercase hex HMAC-SHA256, keyed with the subscriber's secret, of the bytes
`<t>.<body>`: the timestamp as sent, a full stop, then the body exactly as received. `t` is
when the post was signed (seconds since 1970): a receiver refuses a signature older than a few
minutes, so a captured request cannot be replayed later. During a change of secret a header
may carry several `v1=` values; one valid value is enough.

The JSON body:

    {"version": "1.0", "event": "alert", "alert_id": "...", "kind": "emergency",
     "mode": "live", "drill": false, "title": "...", "text": "...", "language": "en",
     "zones": ["north"], "references": null, "expires_at": "2026-12-05T03:00:00+00:00",
     "sent_at": "..."}

When an alert is cancelled, every subscriber of its kind is told once to take it down: the CAP
Cancel message, or `{"version": "1.0", "event": "cancel", "alert_id": ..., "kind", "mode",
"drill", "sent_at"}`, with `Clarion-Event: cancel` and no delivery header. That post is not a
delivery (an all clear, which is one, ends an alert for good); its try is logged all the same.

`title` and `text` are the alert as every other channel renders it (policy-checked, and a drill
or test marked "[DRILL] THIS IS A TEST"). A 2xx answer accepts the delivery; 408, 425, 429 and
5xx, a timeout or no connection are tried again, with the engine's backoff (a Retry-After is
noted in the log, not obeyed: the channel would wait for it as a whole); any other answer fails
it. The channel's breaker does not open unless configured: each subscriber is a service of its
own. Every try is written to the subscriber's delivery log (`webhook_attempts`).
The URL and the secret never reach a log, a receipt or the store: deliveries name the
subscriber only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Final, Literal, Protocol

import aiohttp
import structlog
from pydantic import Field, SecretStr, model_validator

from channels.base import Channel, ChannelSettings, ReceiptSink
from channels.breaker import BreakerSettings, independent_breaker
from channels.errors import is_transient_http
from dispatcher.access.credentials import SettingsModel, reveal
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    Delivery,
    Outcome,
    Receipt,
)
from dispatcher.store.webhook_log import WebhookAttempt

log = structlog.get_logger("clarion.channel.webhook")

SIGNATURE_HEADER: Final = "Clarion-Signature"
ALERT_HEADER: Final = "Clarion-Alert"
EVENT_HEADER: Final = "Clarion-Event"
DELIVERY_HEADER: Final = "Clarion-Delivery"
ATTEMPT_HEADER: Final = "Clarion-Attempt"
BODY_VERSION: Final = "1.0"
CAP_TYPE: Final = "application/cap+xml"
JSON_TYPE: Final = "application/json"
NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"

CapSource = Callable[[str], Awaitable[bytes | None]]
"""The alert's CAP document by alert id (None when the alert is not found)."""


class AttemptLog(Protocol):
    """Where each try is written (`dispatcher.store.webhook_log.WebhookLog`)."""

    async def record(self, attempts: Sequence[WebhookAttempt], /) -> None:
        """Append one batch's attempts."""
        ...


class Subscriber(SettingsModel):
    """`[[channels."webhook.signed".subscribers]]`: one campus system."""

    name: str = Field(pattern=NAME_PATTERN, description="shown in receipts and the log")
    url: SecretStr = Field(description="https URL posted to; or url_file / url_env")
    secret: SecretStr = Field(description="HMAC key; or secret_file / secret_env")
    format: Literal["cap", "json"] = "json"
    kinds: list[AlertKind] = Field(
        default_factory=lambda: list(AlertKind), description="the alert kinds it takes"
    )

    @model_validator(mode="after")
    def _usable(self) -> Subscriber:
        if not reveal(self.url).startswith(("https://", "http://")):
            raise ValueError(f"subscriber {self.name}: url must be http(s)")
        if len(reveal(self.secret)) < 16:
            raise ValueError(f"subscriber {self.name}: secret must be at least 16 characters")
        return self


class WebhookSettings(ChannelSettings):
    """`[channels."webhook.signed"]`: the subscribers, and the time each post may take."""

    batch_size: int = Field(default=20, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, description="connect and read timeout per post")
    connections: int = Field(default=16, ge=1, le=256, description="posts in flight")
    subscribers: list[Subscriber] = Field(default_factory=list)
    breaker: BreakerSettings = Field(
        default_factory=lambda: independent_breaker(),
        description="off unless configured: each subscriber is a service of its own",
    )

    @model_validator(mode="after")
    def _unique(self) -> WebhookSettings:
        names = [s.name for s in self.subscribers]
        if len(names) != len(set(names)):
            raise ValueError("subscriber names must be unique")
        return self


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Clarion-Signature` value of a body signed at `timestamp` (see the module)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: int = 300) -> bool:
    """True when the header holds a valid `v1` of the body, signed within `tolerance_s`."""
    timestamp, found = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            found.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in found)


def json_body(alert: AlertContext, language: str, sent: datetime) -> bytes:
    """The JSON body (see the module)."""
    message = alert.message(language)
    return json.dumps(
        {
            "version": BODY_VERSION,
            "event": "alert",
            "alert_id": alert.alert_id,
            "kind": alert.kind.value,
            "mode": alert.mode.value,
            "drill": alert.drill,
            "title": message.title,
            "text": message.text,
            "language": language,
            "zones": list(alert.zones),
            "references": alert.references,
            "expires_at": _iso(alert.expires_ms),
            "sent_at": sent.isoformat(timespec="seconds"),
        },
        ensure_ascii=False,
    ).encode()


def cancel_body(alert: AlertContext, sent: datetime) -> bytes:
    """The JSON body that withdraws an alert (see the module)."""
    return json.dumps(
        {
            "version": BODY_VERSION,
            "event": "cancel",
            "alert_id": alert.alert_id,
            "kind": alert.kind.value,
            "mode": alert.mode.value,
            "drill": alert.drill,
            "sent_at": sent.isoformat(timespec="seconds"),
        },
        ensure_ascii=False,
    ).encode()


@dataclass(frozen=True, slots=True)
class _Tried:
    """One post's fate, before it becomes a receipt and a log entry."""

    outcome: Outcome
    detail: str
    status: int | None = None


class SignedWebhooks(Channel):
    """Signed posts to the configured subscribers, one delivery per subscriber and alert."""

    name: ClassVar[str] = "webhook.signed"
    kind: ClassVar[ChannelKind] = ChannelKind.WEBHOOK
    settings_model: ClassVar[type[ChannelSettings]] = WebhookSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, WebhookSettings)
        self.settings: WebhookSettings = settings
        self._subscribers = {s.name: s for s in settings.subscribers}
        self._session: aiohttp.ClientSession | None = None
        self._log: AttemptLog | None = None
        self._cap: CapSource | None = None

    def attach(self, *, log: AttemptLog | None = None, cap: CapSource | None = None) -> None:
        """Given by the composition root: where tries are logged, and the alerts' CAP."""
        self._log = log
        self._cap = cap

    def destinations(self, kind: AlertKind, /) -> Sequence[str]:
        """The subscribers that take alerts of this kind."""
        return [s.name for s in self.settings.subscribers if kind in s.kinds]

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the session the posts share."""
        self._http()

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def take_down(self, alert: AlertContext, /) -> None:
        """The alert was cancelled: tell every subscriber of its kind to take it down (the CAP
        Cancel, or the JSON cancel event), once each, the try written to its log."""
        names = self.destinations(alert.kind)
        if not names:
            return
        cap: bytes | None = None
        if any(self._subscribers[n].format == "cap" for n in names) and self._cap is not None:
            cap = await self._cap(alert.alert_id)
        started_ms = int(time.time() * 1000)
        tries = await asyncio.gather(*(self._withdraw(alert, n, cap) for n in names))
        await self._record([
            WebhookAttempt(name, alert.alert_id, 0, 1, started_ms, tried.status,
                           f"cancel_{tried.outcome.value}", tried.detail, ms)
            for name, (tried, ms) in zip(names, tries, strict=True)
        ], alert.alert_id)

    async def _withdraw(
        self, alert: AlertContext, name: str, cap: bytes | None
    ) -> tuple[_Tried, int]:
        started = time.perf_counter()
        subscriber = self._subscribers[name]
        sent = datetime.now(UTC)
        if subscriber.format == "cap":
            if cap is None:
                return _Tried(Outcome.FAILED, "the alert's CAP Cancel is not available"), 0
            body, content_type = cap, CAP_TYPE
        else:
            body, content_type = cancel_body(alert, sent), JSON_TYPE
        tried = await self._signed_post(subscriber, body, content_type, sent, {
            ALERT_HEADER: alert.alert_id, EVENT_HEADER: "cancel",
        })
        if tried.outcome is not Outcome.ACCEPTED:
            log.warning("webhook.cancel_failed", channel=self.name, alert_id=alert.alert_id,
                        subscriber=name, detail=tried.detail)
        return tried, round((time.perf_counter() - started) * 1000)

    async def _record(self, attempts: list[WebhookAttempt], alert_id: str) -> None:
        if self._log is None:
            return
        try:
            await self._log.record(attempts)
        except Exception as exc:
            # The receipts still count: a log that could not be written loses history,
            # not deliveries.
            log.error("webhook.log_failed", alert_id=alert_id, error=type(exc).__name__)

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Post to every subscriber of the batch; a failed post is a receipt."""
        alert = batch.alert
        cap: bytes | None = None
        if any(
            s.format == "cap"
            for d in batch.deliveries
            if (s := self._subscribers.get(d.address)) is not None
        ):
            cap = await self._cap(alert.alert_id) if self._cap is not None else None
        started_ms = int(time.time() * 1000)
        tries = await asyncio.gather(
            *(self._deliver(alert, delivery, cap) for delivery in batch.deliveries)
        )
        attempts = []
        receipts = []
        for delivery, (tried, ms) in zip(batch.deliveries, tries, strict=True):
            attempts.append(WebhookAttempt(
                delivery.address, alert.alert_id, delivery.id, delivery.attempt, started_ms,
                tried.status, tried.outcome.value, tried.detail, ms,
            ))
            if tried.outcome is not Outcome.ACCEPTED:
                log.info(
                    "webhook.send_failed", channel=self.name, alert_id=alert.alert_id,
                    delivery_id=delivery.id, subscriber=delivery.address,
                    outcome=str(tried.outcome), detail=tried.detail,
                )
            receipts.append(Receipt(delivery.id, tried.outcome, tried.detail))
        await self._record(attempts, alert.alert_id)
        return receipts

    async def _deliver(
        self, alert: AlertContext, delivery: Delivery, cap: bytes | None
    ) -> tuple[_Tried, int]:
        started = time.perf_counter()
        tried = await self._post(alert, delivery, cap)
        return tried, round((time.perf_counter() - started) * 1000)

    async def _post(self, alert: AlertContext, delivery: Delivery, cap: bytes | None) -> _Tried:
        """One signed post to one subscriber."""
        subscriber = self._subscribers.get(delivery.address)
        if subscriber is None:
            return _Tried(Outcome.FAILED, "subscriber no longer configured")
        sent = datetime.now(UTC)
        if subscriber.format == "cap":
            if cap is None:
                return _Tried(Outcome.RETRY, "the alert's CAP document is not available")
            body, content_type = cap, CAP_TYPE
        else:
            body, content_type = json_body(alert, delivery.language, sent), JSON_TYPE
        return await self._signed_post(subscriber, body, content_type, sent, {
            ALERT_HEADER: alert.alert_id,
            EVENT_HEADER: "alert",
            DELIVERY_HEADER: str(delivery.id),
            ATTEMPT_HEADER: str(delivery.attempt),
        })

    async def _signed_post(
        self, subscriber: Subscriber, body: bytes, content_type: str, sent: datetime,
        extra: dict[str, str],
    ) -> _Tried:
        """Sign the body and post it; the answer, or why there was none."""
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Clarion",
            SIGNATURE_HEADER: signature(reveal(subscriber.secret), int(sent.timestamp()), body),
            **extra,
        }
        try:
            async with self._http().post(
                reveal(subscriber.url), data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()  # all of it, so the connection can be reused
        except TimeoutError:
            return _Tried(Outcome.RETRY, "timed out")
        except (aiohttp.ClientError, OSError) as exc:
            # The exception's text can hold the URL; its type is enough.
            return _Tried(Outcome.RETRY, f"not sent ({type(exc).__name__})")
        status = response.status
        if 200 <= status < 300:
            return _Tried(Outcome.ACCEPTED, f"HTTP {status}", status)
        if is_transient_http(status):
            # A subscriber's Retry-After is noted, not obeyed: the engine would hold the whole
            # channel for it, and one campus system must not hold up the others.
            wait = _seconds(response.headers.get("Retry-After"))
            noted = f" (Retry-After {wait:g} s)" if wait is not None else ""
            return _Tried(Outcome.RETRY, f"HTTP {status}{noted}", status)
        return _Tried(Outcome.FAILED, f"HTTP {status}", status)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout_s = self.settings.timeout_s
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.connections),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=timeout_s * 1.5, sock_connect=timeout_s / 2, sock_read=timeout_s
                ),
            )
        return self._session

    def describe(self) -> dict[str, object]:
        """Settings as they may be shown: each subscriber's URL and secret masked."""
        shown = super().describe()
        shown["subscribers"] = [
            {"name": s.name, "url": "***", "secret": "***", "format": s.format,
             "kinds": [k.value for k in s.kinds]}
            for s in self.settings.subscribers
        ]
        return shown


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After in seconds; the HTTP-date form is left to the backoff."""
    try:
        seconds = float(retry_after or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
