"""`voice.twilio`: text-to-speech calls through Twilio's Calls API, paced per number and area code.

A call is placed with a `Url` back to this service: Twilio fetches the call's TwiML from it when
the person answers (`call_twiml`: the alert spoken in their language, then "press 1 if you are
safe, 2 if you need help", twice), posts the key pressed to the gather URL, and reports the
call's progress to the status URL. All three are signed with the account's auth token.
A call is accepted when Twilio queues it; it is delivered once answered, and failed (with the
reason) when busy, unanswered or failed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import phonenumbers
import structlog
from pydantic import Field, SecretStr, model_validator
from twilio.twiml.voice_response import Gather, VoiceResponse

from channels.base import GAVE_WAY, Channel, ChannelSettings, ReceiptSink
from channels.errors import PermanentChannelError, TransientChannelError, is_transient_http
from channels.pacing import GiveWay, RightOfWay, UrgentLimiter, UrgentSlots
from channels.sms_twilio import TWILIO_ERRORS, ask_twilio
from channels.twilio_rest import TWILIO_API, TwilioError, TwilioRest
from dispatcher.access.credentials import SettingsModel, reveal
from dispatcher.domain import (
    AlertContext,
    Batch,
    ChannelKind,
    Delivery,
    Message,
    Outcome,
    ProviderAnswer,
    Receipt,
)

log = structlog.get_logger("clarion.channel.voice")

# This service's routes Twilio calls back (dispatcher/api/voice.py).
TWIML_PATH = "/v1/callbacks/twilio/voice"
GATHER_PATH = "/v1/callbacks/twilio/voice/gather"
STATUS_PATH = "/v1/callbacks/twilio/voice/status"
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
# Share of timeout_s a batch may wait for its numbers' and area codes' pace.
PACE_SHARE = 1.5
# The keys a person presses, and the answer each records.
DIGIT_ANSWERS: Mapping[str, str] = {"1": "safe", "2": "need_help"}

# Twilio error codes calls meet, besides those SMS shares; never the API's own message,
# which quotes the number.
VOICE_ERRORS: Mapping[int, str] = {
    13223: "invalid phone number format",
    13224: "invalid phone number",
    13225: "call blocked (fraud prevention)",
    13227: "no international calling permission",
    21210: "From number not verified",
    21215: "geographic permission missing",
    21216: "number blocked",
    21217: "phone number does not appear to be valid",
}
_ERRORS = {**TWILIO_ERRORS, **VOICE_ERRORS}


# --- settings -----------------------------------------------------------------------------


class CallerSettings(SettingsModel):
    """One number calls are placed from."""

    number: str = Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164")
    rate_per_second: float = Field(
        default=1.0, gt=0, description="calls per second from this number (Twilio's default CPS)"
    )


class SpeechVoice(SettingsModel):
    """How `<Say>` speaks one language: its language tag and Twilio voice."""

    language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="e.g. en-US")
    voice: str = Field(default="", description="e.g. Polly.Joanna; empty: Twilio's default")


def _default_voices() -> dict[str, SpeechVoice]:
    return {
        "en": SpeechVoice(language="en-US", voice="Polly.Joanna"),
        "es": SpeechVoice(language="es-US", voice="Polly.Lupe"),
        "fr": SpeechVoice(language="fr-CA", voice="Polly.Chantal"),
        "zh": SpeechVoice(language="cmn-CN", voice="Polly.Zhiyu"),
    }


class VoiceSettings(ChannelSettings):
    """`[channels."voice.twilio"]`: the account, the calling numbers, pacing and speech."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    callers: list[CallerSettings] = Field(min_length=1)
    api_base_url: str = Field(default=TWILIO_API, pattern=r"^https?://")
    callback_base_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description=f"public URL Twilio reaches this service on ({TWIML_PATH}...); "
        "empty: the service's public_url",
    )
    area_code_rate_per_second: float = Field(
        default=2.0,
        ge=0,
        description="calls per second into one area code (NANP NPA, elsewhere the national "
        "destination code) from all numbers together; 0 means no limit",
    )
    ring_timeout_s: int = Field(default=30, ge=5, le=600, description="ring this long, at most")
    time_limit_s: int = Field(default=180, ge=30, le=14400, description="longest call")
    gather_timeout_s: int = Field(default=6, ge=1, le=60, description="wait for a key this long")
    voices: dict[str, SpeechVoice] = Field(
        default_factory=_default_voices, description="language -> <Say> language tag and voice"
    )
    timeout_s: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _distinct_callers(self) -> VoiceSettings:
        numbers = [c.number for c in self.callers]
        if len(set(numbers)) != len(numbers):
            raise ValueError("callers must be distinct numbers")
        return self

    def speech_voice(self, language: str) -> SpeechVoice:
        """The voice for a language; a language with none configured keeps its code."""
        return self.voices.get(language) or SpeechVoice(language=language)


# --- pure functions: area codes, URLs, TwiML, callbacks --------------------------------------


def area_code(number: str) -> str:
    """The destination area a number rings in: `+1 617` for NANP, else country and national
    destination code; the number's first digits when it cannot be parsed."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number[:5]
    national = str(parsed.national_number)
    if parsed.country_code == 1:
        return f"+1 {national[:3]}"
    size = phonenumbers.length_of_national_destination_code(parsed)
    return f"+{parsed.country_code} {national[:size]}" if size else f"+{parsed.country_code}"


def callback_url(base: str, path: str, delivery_id: int, alert_id: str) -> str:
    """A URL Twilio calls back for one call: its delivery and alert ride in the signed query."""
    query = urlencode({"d": delivery_id, "a": alert_id})
    return f"{base.rstrip('/')}{path}?{query}"


def signed_url(base: str, path: str, query_string: str) -> str:
    """The URL Twilio signed for a request that came to `path` with this query."""
    root = urlsplit(base)._replace(query="", fragment="").geturl().rstrip("/")
    return f"{root}{path}?{query_string}" if query_string else f"{root}{path}"


def call_twiml(
    message: Message,
    voice: SpeechVoice,
    gather_url: str,
    *,
    goodbye: str,
    question: str = "",
    ask: bool = True,
    gather_timeout_s: int = 6,
    repeats: int = 2,
) -> str:
    """The call's TwiML: the alert, the question and the keypad words (`message.body`) inside
    `<Gather numDigits="1">`, said `repeats` times (a key pressed during either ends it), then
    goodbye. `ask=False` (the alert asks nothing) says the alert alone, `repeats` times."""
    said = {"language": voice.language, **({"voice": voice.voice} if voice.voice else {})}
    response = VoiceResponse()
    for _ in range(repeats):
        if not ask:
            response.say(message.speech or message.text, **said)
            continue
        gather = Gather(
            num_digits=1,
            action=gather_url,
            method="POST",
            timeout=gather_timeout_s,
            action_on_empty_result=False,
        )
        gather.say(message.speech or message.text, **said)
        if question:
            gather.say(question, **said)
        if message.body:
            gather.say(message.body, **said)
        response.append(gather)
    response.say(goodbye, **said)
    response.hangup()
    return str(response)


def answer_twiml(voice: SpeechVoice, words: str) -> str:
    """TwiML saying `words` and hanging up (the thanks after a key, or nothing at all)."""
    response = VoiceResponse()
    if words:
        said = {"language": voice.language, **({"voice": voice.voice} if voice.voice else {})}
        response.say(words, **said)
    response.hangup()
    return str(response)


def ask_again_twiml(voice: SpeechVoice, prompt: str, gather_url: str, timeout_s: int) -> str:
    """TwiML asking for a key once more, after one that means nothing."""
    said = {"language": voice.language, **({"voice": voice.voice} if voice.voice else {})}
    response = VoiceResponse()
    gather = Gather(num_digits=1, action=gather_url, method="POST", timeout=timeout_s,
                    action_on_empty_result=False)
    gather.say(prompt, **said)
    response.append(gather)
    response.hangup()
    return str(response)


def digit_answer(params: Mapping[str, Any]) -> str | None:
    """The answer a `<Gather>` callback's Digits mean: "safe", "need_help", or None."""
    return DIGIT_ANSWERS.get(str(params.get("Digits") or "").strip())


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A Twilio call status callback, as a receipt for the ledger."""

    outcome: Outcome
    call_sid: str
    status: str
    delivery_id: int | None
    alert_id: str | None
    detail: str


_CALL_OUTCOMES = {
    "queued": Outcome.ACCEPTED,
    "initiated": Outcome.ACCEPTED,
    "ringing": Outcome.ACCEPTED,
    "in-progress": Outcome.DELIVERED,
    "answered": Outcome.DELIVERED,
    "completed": Outcome.DELIVERED,
    "busy": Outcome.FAILED,
    "no-answer": Outcome.FAILED,
    "failed": Outcome.FAILED,
    "canceled": Outcome.FAILED,
}


def parse_call_status(params: Mapping[str, Any], query: Mapping[str, str]) -> CallEvent | None:
    """Map a callback's CallStatus to an outcome; None for what is not a call status."""
    status = str(params.get("CallStatus") or "").lower()
    outcome = _CALL_OUTCOMES.get(status)
    sid = str(params.get("CallSid") or "")
    if outcome is None or not sid:
        return None
    delivery_id = delivery_ref(query)
    detail = "answered" if status == "in-progress" else status
    code = str(params.get("ErrorCode") or "")
    if outcome is Outcome.FAILED and code:
        detail = f"{status}: {call_error_detail(code)}"
    elif outcome is Outcome.FAILED:
        detail = f"call {status}"
    return CallEvent(outcome, sid, status, delivery_id, query.get("a") or None, detail)


def _call_answer(call: Mapping[str, Any]) -> ProviderAnswer | None:
    """A fetched Call resource as an answer; None while the call is still under way."""
    status = str(call.get("status") or "").lower()
    outcome = _CALL_OUTCOMES.get(status)
    if outcome is None or outcome is Outcome.ACCEPTED or status == "in-progress":
        return None
    detail = "answered" if outcome is Outcome.DELIVERED else f"call {status}"
    return ProviderAnswer(outcome, f"{detail} (asked the provider)")


def delivery_ref(query: Mapping[str, str]) -> int | None:
    """The delivery id of a callback's query, when it is one Clarion could have written."""
    raw = query.get("d", "")
    if 0 < len(raw) <= 18 and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def call_error_detail(code: int | str | None, http_status: int | None = None) -> str:
    """A receipt's words for a Twilio error code: code and meaning, never the API's message."""
    digits = str(code or "")
    known = _ERRORS.get(int(digits)) if digits.isascii() and digits.isdigit() else None
    text = f"twilio {code}" + (f" ({known})" if known else "")
    return f"{text}, HTTP {http_status}" if http_status else text


# --- the channel -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Caller:
    """A calling number with its own pace."""

    number: str
    limiter: UrgentLimiter


@dataclass(frozen=True, slots=True)
class _Result:
    """One delivery's fate before it becomes a receipt; `cause` groups whole-batch failures."""

    outcome: Outcome
    detail: str = ""
    provider_ref: str = ""
    retry_after_s: float | None = None
    cause: str = ""


def _pace(rate: float, way: RightOfWay) -> UrgentLimiter:
    # One call at a time, evenly spaced: no burst at the start of a batch.
    return UrgentLimiter(1, 1.0 / rate, way)


class TwilioVoice(Channel):
    """Voice calls through Twilio: paced per calling number and per destination area code."""

    name: ClassVar[str] = "voice.twilio"
    kind: ClassVar[ChannelKind] = ChannelKind.VOICE
    settings_model: ClassVar[type[ChannelSettings]] = VoiceSettings
    reconciles: ClassVar[bool] = True

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, VoiceSettings)
        self.settings: VoiceSettings = settings
        self._rest = TwilioRest(
            settings.api_base_url,
            settings.account_sid,
            reveal(settings.auth_token),
            timeout_s=settings.timeout_s,
        )
        way = self.right_of_way
        self._callers = [
            _Caller(c.number, _pace(c.rate_per_second, way)) for c in settings.callers
        ]
        self._next_caller = 0
        self._areas: dict[str, UrgentLimiter] = {}
        self._requests = UrgentSlots(settings.concurrency, way)
        # Calls this process placed, by alert (with its expiry): a cancel stops those ringing.
        self._placed: dict[str, tuple[int, list[str]]] = {}

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the HTTP session (status comes by callback, not through `receipts`)."""
        self._rest.open()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._rest.close()

    async def take_down(self, alert: AlertContext, /) -> None:
        """The alert was cancelled: cancel its calls that still queue or ring (an answered
        call's TwiML then says nothing and hangs up)."""
        _, sids = self._placed.pop(alert.alert_id, (0, []))
        if not sids:
            return
        async def cancel(sid: str) -> bool:
            try:
                # A cancel is as urgent as anything: it goes first and never gives way.
                async with self._requests.slot(0), asyncio.timeout(self.settings.timeout_s):
                    await self._rest.update("Calls", sid, [("Status", "canceled")])
            except (TwilioError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                # An answered or ended call cannot be canceled; Twilio says so with a 4xx.
                log.info("voice.cancel_failed", channel=self.name, alert_id=alert.alert_id,
                         error=type(exc).__name__)
                return False
            return True

        done = await asyncio.gather(*(cancel(sid) for sid in sids))
        log.info("voice.calls_canceled", channel=self.name, alert_id=alert.alert_id,
                 canceled=sum(done), placed=len(sids))

    def _remember(self, alert: AlertContext, sid: str) -> None:
        now = alert.now_ms
        for gone in [a for a, (until, _) in self._placed.items() if until < now]:
            del self._placed[gone]
        self._placed.setdefault(alert.alert_id, (alert.expires_ms, []))[1].append(sid)

    async def reconcile(self, provider_refs: Sequence[str], /) -> dict[str, ProviderAnswer]:
        """Each call's status from its Call resource (GET .../Calls/{Sid}.json)."""

        async def fetch(sid: str) -> Mapping[str, Any]:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self._rest.fetch("Calls", sid)

        return await ask_twilio(provider_refs, fetch, _call_answer)

    def _area_limiter(self, number: str) -> UrgentLimiter | None:
        rate = self.settings.area_code_rate_per_second
        if rate <= 0:
            return None
        key = area_code(number)
        found = self._areas.get(key)
        if found is None:
            found = self._areas[key] = _pace(rate, self.right_of_way)
        return found

    def _caller(self) -> _Caller:
        caller = self._callers[self._next_caller % len(self._callers)]
        self._next_caller += 1
        return caller

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Place each call once its area code and a calling number allow; receipts in order."""
        if batch.alert.expires_ms / 1000 - time.time() < 1:
            expired = _Result(Outcome.FAILED, "alert expired before calling")
            return [_receipt(d, expired) for d in batch.deliveries]
        # Pacing waits end in time for the last request to finish within the engine's limit.
        pace_until = asyncio.get_running_loop().time() + self.settings.timeout_s * PACE_SHARE
        auth_failed = asyncio.Event()

        async def one(delivery: Delivery) -> _Result:
            if auth_failed.is_set():
                return _AUTH_FAILED
            result = await self._call(batch, delivery, pace_until, auth_failed)
            if result.cause == "auth":
                auth_failed.set()
            return result

        async with asyncio.TaskGroup() as tasks:
            running = [tasks.create_task(one(d)) for d in batch.deliveries]
        results = [task.result() for task in running]
        _raise_when_all_failed_alike(results)
        return [_receipt(d, r) for d, r in zip(batch.deliveries, results, strict=True)]

    async def _call(
        self,
        batch: Batch,
        delivery: Delivery,
        pace_until: float,
        auth_failed: asyncio.Event,
    ) -> _Result:
        area = self._area_limiter(delivery.address)
        caller = self._caller()
        rank = batch.alert.rank
        try:
            async with asyncio.timeout_at(pace_until):
                if area is not None:
                    await area.acquire(1, rank)
                await caller.limiter.acquire(1, rank)
        except TimeoutError:
            return _Result(Outcome.RETRY, "not called: numbers or area code at their call rate")
        except GiveWay:
            return _GAVE_WAY
        if auth_failed.is_set():
            return _AUTH_FAILED
        base = self.settings.callback_base_url
        alert_id = batch.alert.alert_id
        form = [
            ("To", delivery.address),
            ("From", caller.number),
            ("Url", callback_url(base, TWIML_PATH, delivery.id, alert_id)),
            ("Method", "POST"),
            ("StatusCallback", callback_url(base, STATUS_PATH, delivery.id, alert_id)),
            *(("StatusCallbackEvent", event) for event in STATUS_EVENTS),
            ("StatusCallbackMethod", "POST"),
            ("Timeout", str(self.settings.ring_timeout_s)),
            ("TimeLimit", str(self.settings.time_limit_s)),
        ]
        try:
            await self._requests.acquire(rank)
        except GiveWay:
            return _GAVE_WAY
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                call = await self._rest.create("Calls", form)
        except TwilioError as exc:
            result = _classify_rest_error(exc, exc.retry_after_s)
        except TimeoutError:
            result = _Result(Outcome.RETRY, "twilio timed out", cause="timeout")
        except (aiohttp.ClientConnectionError, OSError) as exc:
            result = _Result(
                Outcome.RETRY, f"twilio unreachable ({type(exc).__name__})", cause="unreachable"
            )
        except aiohttp.ClientError as exc:
            result = _Result(Outcome.RETRY, f"twilio client error ({type(exc).__name__})")
        else:
            sid = str(call.get("sid") or "")
            if sid:
                self._remember(batch.alert, sid)
            return _Result(Outcome.ACCEPTED, f"call {call.get('status') or 'queued'}", sid)
        finally:
            self._requests.release()
        log.info(
            "voice.call_failed",
            channel=self.name,
            alert_id=alert_id,
            delivery_id=delivery.id,
            recipient=delivery.tag,
            outcome=str(result.outcome),
            detail=result.detail,
        )
        return result


_AUTH_FAILED = _Result(Outcome.FAILED, call_error_detail(20003, 401), cause="auth")
_GAVE_WAY = _Result(Outcome.DEFERRED, GAVE_WAY)


def _classify_rest_error(exc: TwilioError, retry_after: float | None) -> _Result:
    status = int(exc.status or 0)
    if status in (401, 403):
        return _AUTH_FAILED
    detail = call_error_detail(exc.code, status)
    if is_transient_http(status):
        if retry_after is not None and not math.isfinite(retry_after):
            retry_after = None
        return _Result(Outcome.RETRY, detail, retry_after_s=retry_after)
    return _Result(Outcome.FAILED, detail)


def _raise_when_all_failed_alike(results: Sequence[_Result]) -> None:
    causes = {r.cause for r in results}
    if len(causes) != 1:
        return
    cause = causes.pop()
    if cause == "auth":
        raise PermanentChannelError("twilio rejected the account credentials (20003)")
    if cause == "unreachable":
        raise TransientChannelError("twilio API unreachable")


def _receipt(delivery: Delivery, result: _Result) -> Receipt:
    return Receipt(
        delivery.id, result.outcome, result.detail, result.provider_ref, result.retry_after_s
    )
