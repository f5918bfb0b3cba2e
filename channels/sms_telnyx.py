"""`sms.telnyx`: text messages through Telnyx's Messaging API v2, one receipt per recipient.

Each message is `POST /v2/messages` (JSON: `from`, `to`, `text`, `webhook_url`, or
`messaging_profile_id` for a number pool). Delivery receipts come back as Ed25519-signed
webhooks (`message.sent`, `message.finalized`) to the `webhook_url` given per message, whose
query names the delivery and the alert; inbound messages (`message.received`) come to the
messaging profile's webhook. Both routes are in `dispatcher/api/telnyx.py`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import structlog
from pydantic import Field, SecretStr, model_validator

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
from channels.sms_twilio import SenderSettings, sms_segments, status_callback_url
from channels.telnyx_rest import TELNYX_API, TelnyxError, TelnyxRest
from dispatcher.access.credentials import reveal
from dispatcher.domain import Batch, ChannelKind, Delivery, Outcome, ProviderAnswer, Receipt

log = structlog.get_logger("clarion.channel.sms")

CALLBACK_PATH = "/v1/callbacks/telnyx"
INBOUND_PATH = "/v1/callbacks/telnyx/inbound"
# Share of timeout_s a batch may wait for its senders' pace (the engine allows 3 x timeout_s).
PACE_SHARE = 1.5
# Telnyx message ids are UUIDs; Twilio's SIDs are not, so a reference names its provider.
MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Telnyx error codes worth naming in a receipt; the API's `detail` is never kept, because
# it quotes the numbers.
TELNYX_ERRORS: dict[str, str] = {
    "10001": "inactive phone number",
    "10002": "invalid phone number",
    "10009": "authentication failed",
    "10010": "authorization failed",
    "10011": "too many requests",
    "10016": "phone number must be in +E.164 format",
    "40001": "not routable",
    "40002": "blocked as spam (temporary)",
    "40003": "blocked as spam (permanent)",
    "40004": "rejected by destination",
    "40005": "message expired",
    "40006": "recipient unavailable",
    "40008": "undeliverable",
    "40011": "rate limit",
    "40300": "blocked due to STOP message",
}
# The error Telnyx answers for a number that sent STOP.
OPTED_OUT = "40300"
# Errors of the account or the sender, not the recipient: another provider may send it.
PROVIDER_FAULTS = frozenset({"10009", "10010", "10011", "40003", "40011"})


class TelnyxSettings(ChannelSettings):
    """`[channels."sms.telnyx"]`: the API key, who sends, and where webhooks go."""

    api_key: SecretStr
    public_key: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9+/]{43}=)?$",
        description="the account's Ed25519 public key (base64), which signs every webhook",
    )
    messaging_profile_id: str = Field(default="", pattern=r"^[0-9a-fA-F-]{0,64}$")
    senders: list[SenderSettings] = Field(default_factory=list)
    api_base_url: str = Field(default=TELNYX_API, pattern=r"^https?://")
    webhook_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description=f"public URL of {CALLBACK_PATH}; empty: the service's public_url + that path",
    )
    webhook_window_s: int = Field(
        default=300, ge=1, le=3600, description="a webhook signed longer ago is refused"
    )
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_way_to_send(self) -> TelnyxSettings:
        if bool(self.messaging_profile_id) == bool(self.senders):
            raise ValueError("set either messaging_profile_id or senders (not both)")
        return self


def default_callback_url(service_base_url: str) -> str:
    """The delivery-receipt webhook URL when none is configured."""
    return service_base_url.rstrip("/") + CALLBACK_PATH


def error_detail(code: str, http_status: int | None = None) -> str:
    """A receipt's words for a Telnyx error code: code and meaning, never the API's detail."""
    known = TELNYX_ERRORS.get(code)
    text = f"telnyx {code or '?'}" + (f" ({known})" if known else "")
    return f"{text}, HTTP {http_status}" if http_status else text


# --- webhooks ----------------------------------------------------------------------------------

_STATUS_OUTCOMES = {
    "queued": Outcome.ACCEPTED,
    "sending": Outcome.ACCEPTED,
    "sent": Outcome.ACCEPTED,
    "delivery_unconfirmed": Outcome.ACCEPTED,
    "delivered": Outcome.DELIVERED,
    "sending_failed": Outcome.FAILED,
    "delivery_failed": Outcome.FAILED,
}


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A Telnyx delivery-receipt webhook, as a receipt for the ledger."""

    outcome: Outcome
    message_id: str
    status: str
    delivery_id: int | None
    alert_id: str | None
    detail: str
    to: str
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A `message.received` webhook: who wrote to which of our numbers, and what."""

    from_: str
    to: str
    text: str


def read_event(raw: bytes) -> tuple[str, Mapping[str, Any]] | None:
    """A webhook's `data.event_type` and `data.payload`; None when the body is not one."""
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    data = found.get("data") if isinstance(found, dict) else None
    if not isinstance(data, dict):
        return None
    payload = data.get("payload")
    event_type = data.get("event_type")
    if not isinstance(payload, dict) or not isinstance(event_type, str):
        return None
    return event_type, payload


def parse_status_event(
    payload: Mapping[str, Any], query: Mapping[str, str]
) -> StatusEvent | None:
    """A `message.sent` or `message.finalized` payload as a receipt; None if it is not one."""
    recipient = _first_recipient(payload)
    status = str(recipient.get("status") or "").lower()
    outcome = _STATUS_OUTCOMES.get(status)
    message_id = str(payload.get("id") or "")
    if outcome is None or not message_id:
        return None
    raw_id = query.get("d", "")
    delivery_id = int(raw_id) if _is_delivery_id(raw_id) else None
    code = _first_error_code(payload)
    detail = f"{status}: {error_detail(code)}" if outcome is Outcome.FAILED and code else status
    return StatusEvent(
        outcome, message_id, status, delivery_id, query.get("a") or None,
        f"sms.telnyx: {detail}", str(recipient.get("phone_number") or ""),
        opted_out=outcome is Outcome.FAILED and code == OPTED_OUT,
    )


def parse_inbound(payload: Mapping[str, Any]) -> InboundMessage | None:
    """A `message.received` payload; None without a sender."""
    sender = payload.get("from")
    phone = str(sender.get("phone_number") or "") if isinstance(sender, dict) else ""
    if not phone:
        return None
    to = str(_first_recipient(payload).get("phone_number") or "")
    return InboundMessage(phone, to, str(payload.get("text") or ""))


def _first_recipient(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    to = payload.get("to")
    if isinstance(to, list) and to and isinstance(to[0], dict):
        return to[0]
    return {}


def _first_error_code(payload: Mapping[str, Any]) -> str:
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "")
        return code if code.isascii() and code.isdigit() and len(code) <= 8 else ""
    return ""


def _message_answer(message: Mapping[str, Any]) -> ProviderAnswer | None:
    """A fetched message as an answer; None while it is still under way."""
    status = str(_first_recipient(message).get("status") or "").lower()
    outcome = _STATUS_OUTCOMES.get(status)
    if outcome is None or outcome is Outcome.ACCEPTED:
        return None
    code = _first_error_code(message)
    detail = f"{status}: {error_detail(code)}" if outcome is Outcome.FAILED and code else status
    return ProviderAnswer(outcome, f"sms.telnyx: {detail} (asked the provider)")


def _is_delivery_id(raw: str) -> bool:
    return 0 < len(raw) <= 18 and raw.isascii() and raw.isdigit()


# --- the channel -----------------------------------------------------------------------------


class TelnyxSms(Channel):
    """SMS through Telnyx: senders in parallel, each at its own rate; status by webhook."""

    name: ClassVar[str] = "sms.telnyx"
    kind: ClassVar[ChannelKind] = ChannelKind.SMS
    settings_model: ClassVar[type[ChannelSettings]] = TelnyxSettings
    reconciles: ClassVar[bool] = True

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, TelnyxSettings)
        self.settings: TelnyxSettings = settings
        self._rest = TelnyxRest(
            settings.api_base_url, reveal(settings.api_key), timeout_s=settings.timeout_s
        )
        self._senders = self._build_senders(settings, self.right_of_way)
        # Answers to inbound messages on their way: Telnyx wants its webhook answered within
        # two seconds, so they are sent beside it (and closed with the channel).
        self._replies: set[asyncio.Task[bool]] = set()

    @staticmethod
    def _build_senders(settings: TelnyxSettings, way: RightOfWay) -> list[Sender]:
        return paced_senders(
            settings.messaging_profile_id, [(s.number, s.rate) for s in settings.senders],
            settings.concurrency, way,
        )

    def owns_ref(self, provider_ref: str) -> bool:
        """True for a message id Telnyx gave (a UUID)."""
        return bool(MESSAGE_ID.match(provider_ref))

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the HTTP session (receipts arrive by webhook)."""
        self._rest.open()

    async def close(self) -> None:
        """Finish the answers on their way (a few seconds at most), close the HTTP session."""
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=self.settings.timeout_s)
            late = list(self._replies)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._rest.close()

    def reply_soon(self, to: str, from_: str, text: str) -> None:
        """Send `reply` beside the caller, which need not wait for Telnyx."""
        task = asyncio.get_running_loop().create_task(self.reply(to, from_, text))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def reconcile(self, provider_refs: Sequence[str], /) -> dict[str, ProviderAnswer]:
        """Each message's status from `GET /v2/messages/{id}`, a few at a time."""
        slots = asyncio.Semaphore(8)
        found: dict[str, ProviderAnswer] = {}

        async def one(ref: str) -> None:
            async with slots:
                try:
                    async with asyncio.timeout(self.settings.timeout_s):
                        message = await self._rest.fetch("messages", ref)
                except TelnyxError as exc:
                    if exc.status == 404:
                        found[ref] = ProviderAnswer(
                            Outcome.FAILED, "sms.telnyx: unknown to the provider when asked"
                        )
                    else:
                        log.info("telnyx.fetch_failed", status=exc.status, code=exc.code)
                    return
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    log.info("telnyx.fetch_failed", error=type(exc).__name__)
                    return
                answer = _message_answer(message)
                if answer is not None:
                    found[ref] = answer

        await asyncio.gather(*(one(ref) for ref in dict.fromkeys(provider_refs)))
        return found

    async def reply(self, to: str, from_: str, text: str) -> bool:
        """Answer an inbound message from the number it came to; False if Telnyx refused."""
        body: dict[str, Any] = {"to": to, "text": text}
        if from_:
            body["from"] = from_
        elif self.settings.messaging_profile_id:
            body["messaging_profile_id"] = self.settings.messaging_profile_id
        else:
            body["from"] = self._senders[0].from_
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                await self._rest.create("messages", body)
        except (TelnyxError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("telnyx.reply_failed", error=type(exc).__name__)
            return False
        return True

    def cost(self, batch: Batch, /) -> float:
        """Segments of the longest rendering in the batch."""
        return float(
            max(sms_segments(batch.alert.message(d.language).text) for d in batch.deliveries)
        )

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Send each delivery from the next free sender; receipts in delivery order."""
        pace_until = asyncio.get_running_loop().time() + self.settings.timeout_s * PACE_SHARE

        async def send_one(sender: Sender, delivery: Delivery) -> SmsResult:
            return await self._send_one(sender, batch, delivery, pace_until)

        done = await over_senders(
            batch.deliveries, self._senders, send_one, _AUTH_FAILED
        )
        raise_when_all_failed_alike(done, provider="telnyx", auth_detail=AUTH_DETAIL)
        return [r.receipt(d) for d, r in zip(batch.deliveries, done, strict=True)]

    async def _send_one(
        self, sender: Sender, batch: Batch, delivery: Delivery, pace_until: float
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
        body: dict[str, Any] = {"to": delivery.address, "text": text}
        if sender.pool:
            body["messaging_profile_id"] = sender.pool
        else:
            body["from"] = sender.from_
        if hook := self.settings.webhook_url:
            body["webhook_url"] = status_callback_url(hook, delivery.id, batch.alert.alert_id)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                message = await self._rest.create("messages", body)
        except TelnyxError as exc:
            result = _classify_rest_error(exc)
        except TimeoutError:
            result = SmsResult(Outcome.RETRY, "telnyx timed out", cause="timeout")
        except (aiohttp.ClientConnectionError, OSError) as exc:
            result = SmsResult(
                Outcome.RETRY, f"telnyx unreachable ({type(exc).__name__})", cause="unreachable",
                provider_fault=isinstance(exc, aiohttp.ClientConnectorError),
            )
        except aiohttp.ClientError as exc:
            result = SmsResult(Outcome.RETRY, f"telnyx client error ({type(exc).__name__})")
        else:
            status = str(_first_recipient(message).get("status") or "queued")
            return SmsResult(Outcome.ACCEPTED, status, str(message.get("id") or ""))
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


AUTH_DETAIL = "telnyx rejected the API key (10009)"
_AUTH_FAILED = SmsResult(
    Outcome.FAILED, error_detail("10009", 401), cause="auth", provider_fault=True
)
_GAVE_WAY = SmsResult(Outcome.DEFERRED, GAVE_WAY)


def _classify_rest_error(exc: TelnyxError) -> SmsResult:
    status = exc.status
    if status in (401, 403):
        return _AUTH_FAILED
    detail = error_detail(exc.code, status)
    if is_transient_http(status):
        return SmsResult(
            Outcome.RETRY, detail, retry_after_s=exc.retry_after_s, provider_fault=True
        )
    return SmsResult(
        Outcome.FAILED, detail, opted_out=exc.code == OPTED_OUT,
        provider_fault=exc.code in PROVIDER_FAULTS,
    )

