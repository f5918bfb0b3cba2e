"""`sms.twilio`: text messages through Twilio's Messages API, one receipt per recipient."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import structlog
from pydantic import Field, SecretStr, model_validator
from twilio.request_validator import RequestValidator

from channels.base import GAVE_WAY, Channel, ChannelSettings, ReceiptSink
from channels.errors import is_transient_http
from channels.pacing import GiveWay, RightOfWay
from channels.sms_senders import (
    Sender,
    SmsResult,
    over_senders,
    paced_senders,
    raise_when_all_failed_alike,
)
from channels.twilio_rest import TWILIO_API, TwilioError, TwilioRest
from dispatcher.access.credentials import SettingsModel, reveal
from dispatcher.domain import Batch, ChannelKind, Delivery, Outcome, ProviderAnswer, Receipt
from dispatcher.policy import gsm

log = structlog.get_logger("clarion.channel.sms")

CALLBACK_PATH = "/v1/callbacks/twilio"
# Share of timeout_s a batch may wait for its senders' pace (the engine allows 3 x timeout_s).
PACE_SHARE = 1.5
# Twilio accepts ValidityPeriod between 1 and 36000 seconds.
MAX_VALIDITY_S = 36000

# Twilio error codes worth naming in a receipt; the API's own message is never kept,
# because it quotes the destination number.
TWILIO_ERRORS: dict[int, str] = {
    20003: "authentication failed",
    20429: "too many requests",
    21211: "invalid To number",
    21408: "region not enabled",
    21606: "From number cannot send SMS",
    21608: "unverified number on a trial account",
    21610: "recipient opted out (STOP)",
    21612: "route not reachable",
    21614: "To number cannot receive SMS",
    21617: "body too long",
    30001: "queue overflow",
    30002: "account suspended",
    30003: "unreachable handset",
    30004: "message blocked",
    30005: "unknown handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown delivery error",
    30034: "sender not registered (A2P 10DLC)",
}
# The error Twilio answers for a number that sent STOP to the carrier.
OPTED_OUT = 21610
# Errors of the account or the sender, not the recipient: another provider may send it.
PROVIDER_FAULTS = frozenset({20003, 20429, 21606, 30001, 30002, 30034})


# --- settings -----------------------------------------------------------------------------


class SenderType(StrEnum):
    """What kind of number sends, which sets how fast the carriers accept it."""

    LONG_CODE = "long_code"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"

    @property
    def default_rate(self) -> float:
        """Message segments per second the number may send."""
        return _DEFAULT_RATES[self]


_DEFAULT_RATES = {
    SenderType.LONG_CODE: 1.0,
    SenderType.TOLL_FREE: 3.0,
    SenderType.SHORT_CODE: 100.0,
}


class SenderSettings(SettingsModel):
    """One number in the sender pool."""

    number: str = Field(pattern=r"^(\+[1-9]\d{6,14}|\d{5,6})$", description="E.164 or short code")
    type: SenderType = SenderType.LONG_CODE
    rate_per_second: float | None = Field(
        default=None, gt=0, description="segments per second; default by type (1, 3 or 100)"
    )

    @property
    def rate(self) -> float:
        """The segments per second this number is allowed."""
        return self.rate_per_second or self.type.default_rate


class TwilioSettings(ChannelSettings):
    """`[channels."sms.twilio"]`: the account, who sends, and where status callbacks go."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    messaging_service_sid: str = Field(default="", pattern=r"^(MG[0-9a-fA-F]{32})?$")
    senders: list[SenderSettings] = Field(default_factory=list)
    api_base_url: str = Field(default=TWILIO_API, pattern=r"^https?://")
    status_callback_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description=f"public URL of {CALLBACK_PATH}; empty: the service's public_url + that path",
    )
    validity_period_s: int = Field(default=600, ge=1, le=MAX_VALIDITY_S)
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_way_to_send(self) -> TwilioSettings:
        if bool(self.messaging_service_sid) == bool(self.senders):
            raise ValueError("set either messaging_service_sid or senders (not both)")
        return self


# --- pure functions: segments, callbacks ---------------------------------------------------

def sms_segments(text: str) -> int:
    """Segments carriers bill for `text` (an empty body still costs one)."""
    return max(1, gsm.count(text).segments)


def default_callback_url(service_base_url: str) -> str:
    """The status callback URL when none is configured: the service's public URL + the path."""
    return service_base_url.rstrip("/") + CALLBACK_PATH


def public_callback_url(configured: str, query_string: str) -> str:
    """The URL Twilio signed: the configured one, with the query the request came with."""
    base = urlsplit(configured)._replace(query="", fragment="").geturl()
    return f"{base}?{query_string}" if query_string else base


def status_callback_url(base: str, delivery_id: int, alert_id: str) -> str:
    """The StatusCallback for one message: its delivery and alert ride in the signed query."""
    sep = "&" if urlsplit(base).query else "?"
    return f"{base}{sep}{urlencode({'d': delivery_id, 'a': alert_id})}"


def signature_valid(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str | None
) -> bool:
    """True when `X-Twilio-Signature` proves Twilio (holding our auth token) sent this."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A Twilio status callback, as a receipt for the ledger."""

    outcome: Outcome
    message_sid: str
    status: str
    delivery_id: int | None
    alert_id: str | None
    detail: str
    opted_out: bool = False
    """The carrier says the number sent it STOP."""


_STATUS_OUTCOMES = {
    "accepted": Outcome.ACCEPTED,
    "scheduled": Outcome.ACCEPTED,
    "queued": Outcome.ACCEPTED,
    "sending": Outcome.ACCEPTED,
    "sent": Outcome.ACCEPTED,
    "delivered": Outcome.DELIVERED,
    "read": Outcome.DELIVERED,
    "undelivered": Outcome.FAILED,
    "failed": Outcome.FAILED,
    "canceled": Outcome.FAILED,
}


def parse_status_callback(
    params: Mapping[str, Any], query: Mapping[str, str]
) -> StatusEvent | None:
    """Map a callback's MessageStatus to an outcome; None for statuses that are not receipts."""
    status = str(params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    outcome = _STATUS_OUTCOMES.get(status)
    sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
    if outcome is None or not sid:
        return None
    raw_id = query.get("d", "")
    delivery_id = int(raw_id) if _is_delivery_id(raw_id) else None
    detail = status
    code = str(params.get("ErrorCode") or "")
    if outcome is Outcome.FAILED and code:
        detail = f"{status}: {error_detail(code)}"
    return StatusEvent(
        outcome, sid, status, delivery_id, query.get("a") or None, detail,
        opted_out=outcome is Outcome.FAILED and _is_opted_out(code),
    )


def _is_opted_out(code: int | str | None) -> bool:
    """True for Twilio's error code of a number that sent STOP to the carrier."""
    return str(code or "").strip() == str(OPTED_OUT)


def _message_answer(message: Mapping[str, Any]) -> ProviderAnswer | None:
    """A fetched Message resource as an answer; None while it is still under way."""
    status = str(message.get("status") or "").lower()
    outcome = _STATUS_OUTCOMES.get(status)
    if outcome is None or outcome is Outcome.ACCEPTED:
        return None
    code = message.get("error_code")
    detail = f"{status}: {error_detail(code)}" if outcome is Outcome.FAILED and code else status
    return ProviderAnswer(outcome, f"{detail} (asked the provider)")


UNKNOWN_TO_PROVIDER = "unknown to the provider when asked (twilio 20404)"


async def ask_twilio(
    sids: Sequence[str],
    fetch: Callable[[str], Awaitable[Mapping[str, Any]]],
    answer: Callable[[Mapping[str, Any]], ProviderAnswer | None],
    *,
    at_once: int = 8,
) -> dict[str, ProviderAnswer]:
    """Fetch each resource by its SID, a few at a time: its answer, or FAILED when Twilio no
    longer knows it (404); those still under way, or that could not be fetched, are left out."""
    slots = asyncio.Semaphore(at_once)
    found: dict[str, ProviderAnswer] = {}

    async def one(sid: str) -> None:
        async with slots:
            try:
                resource = await fetch(sid)
            except TwilioError as exc:
                if exc.status == 404:
                    found[sid] = ProviderAnswer(Outcome.FAILED, UNKNOWN_TO_PROVIDER)
                else:
                    log.info("twilio.fetch_failed", status=exc.status, code=exc.code)
                return
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.info("twilio.fetch_failed", error=type(exc).__name__)
                return
            result = answer(resource)
            if result is not None:
                found[sid] = result

    await asyncio.gather(*(one(sid) for sid in dict.fromkeys(sids)))
    return found


def _is_delivery_id(raw: str) -> bool:
    """A delivery id as Clarion writes it: ASCII digits that fit a signed 64-bit column."""
    return 0 < len(raw) <= 18 and raw.isascii() and raw.isdigit()


def error_detail(code: int | str | None, http_status: int | None = None) -> str:
    """A receipt's words for a Twilio error code: code and meaning, never the API's message."""
    digits = str(code or "")
    known = TWILIO_ERRORS.get(int(digits)) if digits.isascii() and digits.isdigit() else None
    text = f"twilio {code}" + (f" ({known})" if known else "")
    return f"{text}, HTTP {http_status}" if http_status else text


# --- the channel -----------------------------------------------------------------------------


class TwilioSms(Channel):
    """SMS through Twilio: senders in parallel, each at its own rate; status by callback."""

    name: ClassVar[str] = "sms.twilio"
    kind: ClassVar[ChannelKind] = ChannelKind.SMS
    settings_model: ClassVar[type[ChannelSettings]] = TwilioSettings
    reconciles: ClassVar[bool] = True

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, TwilioSettings)
        self.settings: TwilioSettings = settings
        self._rest = TwilioRest(
            settings.api_base_url,
            settings.account_sid,
            reveal(settings.auth_token),
            timeout_s=settings.timeout_s,
        )
        self._senders = self._build_senders(settings, self.right_of_way)

    @staticmethod
    def _build_senders(settings: TwilioSettings, way: RightOfWay) -> list[Sender]:
        return paced_senders(
            settings.messaging_service_sid, [(s.number, s.rate) for s in settings.senders],
            settings.concurrency, way,
        )

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the HTTP session (status arrives by callback, not through `receipts`)."""
        self._rest.open()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._rest.close()

    async def reconcile(self, provider_refs: Sequence[str], /) -> dict[str, ProviderAnswer]:
        """Each message's status from its Message resource (GET .../Messages/{Sid}.json)."""

        async def fetch(sid: str) -> Mapping[str, Any]:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self._rest.fetch("Messages", sid)

        return await ask_twilio(provider_refs, fetch, _message_answer)

    def cost(self, batch: Batch, /) -> float:
        """Segments of the longest rendering in the batch."""
        return float(
            max(sms_segments(batch.alert.message(d.language).text) for d in batch.deliveries)
        )

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Send each delivery from the next free sender; receipts in delivery order."""
        remaining_s = batch.alert.expires_ms / 1000 - time.time()
        validity = min(self.settings.validity_period_s, math.floor(remaining_s))
        if validity < 1:
            # Sending an expired alert would mislead; say so on every delivery.
            expired = SmsResult(Outcome.FAILED, "alert expired before sending")
            return [expired.receipt(d) for d in batch.deliveries]

        # Waiting for a sender's pace ends in time for the last request to finish well within
        # the engine's limit on a batch: an abandoned batch would resend what was accepted.
        pace_until = asyncio.get_running_loop().time() + self.settings.timeout_s * PACE_SHARE

        async def send_one(sender: Sender, delivery: Delivery) -> SmsResult:
            return await self._send_one(sender, batch, delivery, validity, pace_until)

        done = await over_senders(
            batch.deliveries, self._senders, send_one, _AUTH_FAILED
        )
        raise_when_all_failed_alike(done, provider="twilio", auth_detail=AUTH_DETAIL)
        return [r.receipt(d) for d, r in zip(batch.deliveries, done, strict=True)]

    async def _send_one(
        self,
        sender: Sender,
        batch: Batch,
        delivery: Delivery,
        validity: int,
        pace_until: float,
    ) -> SmsResult:
        text = batch.alert.message(delivery.language).text
        if sender.limiter is not None:
            try:
                async with asyncio.timeout_at(pace_until):
                    await sender.limiter.acquire(
                        min(sms_segments(text), sender.limiter.max_rate), batch.alert.rank
                    )
            except TimeoutError:
                return SmsResult(
                    Outcome.RETRY, "not sent: senders at their rate limit", provider_fault=True
                )
            except GiveWay:
                return _GAVE_WAY
        elif self.right_of_way.yields(batch.alert.rank):
            return _GAVE_WAY
        form: list[tuple[str, str]] = [
            ("To", delivery.address),
            ("Body", text),
            ("ValidityPeriod", str(validity)),
        ]
        if sender.pool:
            form.append(("MessagingServiceSid", sender.pool))
        else:
            form.append(("From", sender.from_))
        if callback := self.settings.status_callback_url:
            form.append(
                ("StatusCallback", status_callback_url(callback, delivery.id, batch.alert.alert_id))
            )
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                message = await self._rest.create("Messages", form)
        except TwilioError as exc:
            result = _classify_rest_error(exc, exc.retry_after_s)
        except TimeoutError:
            result = SmsResult(Outcome.RETRY, "twilio timed out", cause="timeout")
        except (aiohttp.ClientConnectionError, OSError) as exc:
            result = SmsResult(
                Outcome.RETRY, f"twilio unreachable ({type(exc).__name__})", cause="unreachable",
                # Refused before the request went out: nothing can have been sent.
                provider_fault=isinstance(exc, aiohttp.ClientConnectorError),
            )
        except aiohttp.ClientError as exc:
            result = SmsResult(Outcome.RETRY, f"twilio client error ({type(exc).__name__})")
        else:
            status = str(message.get("status") or "queued")
            return SmsResult(Outcome.ACCEPTED, status, str(message.get("sid") or ""))
        log.info(
            "sms.send_failed",
            channel=self.name,
            alert_id=batch.alert.alert_id,
            delivery_id=delivery.id,
            recipient=delivery.tag,
            outcome=str(result.outcome),
            detail=result.detail,
        )
        return result


AUTH_DETAIL = "twilio rejected the account credentials (20003)"
_AUTH_FAILED = SmsResult(
    Outcome.FAILED, error_detail(20003, 401), cause="auth", provider_fault=True
)
_GAVE_WAY = SmsResult(Outcome.DEFERRED, GAVE_WAY)


def _classify_rest_error(exc: TwilioError, retry_after: float | None) -> SmsResult:
    status = int(exc.status or 0)
    if status in (401, 403):
        return _AUTH_FAILED
    detail = error_detail(exc.code, status)
    if is_transient_http(status):
        return SmsResult(Outcome.RETRY, detail, retry_after_s=retry_after, provider_fault=True)
    return SmsResult(
        Outcome.FAILED, detail, opted_out=_is_opted_out(exc.code),
        provider_fault=exc.code in PROVIDER_FAULTS,
    )


