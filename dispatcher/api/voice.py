"""Twilio's voice callbacks: the call's TwiML, the key pressed, and call status as late receipts.

Every request is checked against X-Twilio-Signature over the public URL it was sent to; a
forged or unsigned one gets 403 and nothing is read, said or recorded.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ConfigDict

from channels.registry import provider_channel
from channels.sms_twilio import signature_valid
from channels.voice_twilio import (
    DIGIT_ANSWERS,
    GATHER_PATH,
    STATUS_PATH,
    TWIML_PATH,
    VoiceSettings,
    answer_twiml,
    ask_again_twiml,
    call_twiml,
    callback_url,
    delivery_ref,
    digit_answer,
    parse_call_status,
    signed_url,
)
from dispatcher.access.credentials import reveal
from dispatcher.alerting.rendering import spoken
from dispatcher.api.openapi import (
    CALLBACK_QUERY,
    FORM,
    TWILIO_SIGNATURE,
    Body,
    Reply,
    Route,
    refused,
)
from dispatcher.domain import AlertState, ChannelKind, LateReceipt
from dispatcher.edge import SERVICE, error, read_form
from dispatcher.refusals import Refused
from dispatcher.service import Service
from dispatcher.store.ledger import DeliveryRef

log = structlog.get_logger("clarion.api.voice")

routes = web.RouteTableDef()

TWIML = "text/xml"


class CallForm(BaseModel):
    """The form of Twilio's voice callbacks (the fields read; others are kept)."""

    model_config = ConfigDict(extra="allow")

    CallSid: str | None = None
    CallStatus: str | None = None
    Digits: str | None = None
    ErrorCode: str | None = None


def _voice_settings(service: Service) -> VoiceSettings | None:
    channel = provider_channel(service.channels, "voice.twilio")
    settings = channel.settings if channel is not None else None
    return settings if isinstance(settings, VoiceSettings) else None


async def _signed_form(
    request: web.Request, settings: VoiceSettings, path: str
) -> MultiDictProxy[Any] | None:
    """The form Twilio posted, or None when the signature does not prove it was Twilio."""
    params = await read_form(request)
    base = settings.callback_base_url or request.app[SERVICE].settings.service.base_url()
    url = signed_url(base, path, request.query_string)
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_valid(reveal(settings.auth_token), url, params, signature):
        log.warning("callback.signature_invalid", provider="twilio", route=path,
                    signed=bool(signature))
        return None
    return params


async def _call_delivery(service: Service, request: web.Request) -> DeliveryRef | None:
    """The voice delivery the signed query names, when it belongs to the alert named too."""
    delivery_id = delivery_ref(request.query)
    if delivery_id is None:
        return None
    found = await service.ledger.delivery(delivery_id)
    if found is None or found.channel is not ChannelKind.VOICE:
        return None
    if found.alert_id != request.query.get("a"):
        return None
    return found


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type=TWIML)


@routes.post(TWIML_PATH)
async def call_answered(request: web.Request) -> web.Response:
    """The TwiML of an answered call: the alert in the person's language, then the question."""
    service = request.app[SERVICE]
    settings = _voice_settings(service)
    if settings is None:
        return error(404, "voice.twilio is not configured")
    if await _signed_form(request, settings, TWIML_PATH) is None:
        return error(403, "invalid or missing X-Twilio-Signature")
    words = service.settings.rendering
    delivery = await _call_delivery(service, request)
    record = await service.alerts.get(delivery.alert_id) if delivery is not None else None
    if delivery is None or record is None or record.state is AlertState.CANCELLED:
        # Nothing to say (or no longer true): hang up rather than play Twilio's error.
        log.info("voice.call_without_alert", found=delivery is not None)
        return _twiml(answer_twiml(settings.speech_voice("en"), ""))
    messages = service.engine.rendering(record, ChannelKind.VOICE)
    language = delivery.language if delivery.language in messages else next(iter(messages))
    voice = settings.speech_voice(language)
    gather = callback_url(
        settings.callback_base_url or service.settings.service.base_url(),
        GATHER_PATH, delivery.id, delivery.alert_id,
    )
    # The keypad question only while the alert asks one the keys can answer.
    question = await service.responses.question(record.id)
    ask = (
        question is not None
        and question.is_open(service.clock.now_ms())
        and set(DIGIT_ANSWERS.values()) <= set(question.options)
    )
    asked = question.texts.get(language, "") if question is not None and ask else ""
    return _twiml(call_twiml(
        messages[language], voice, gather,
        goodbye=words.word(language, "voice_goodbye"),
        question=spoken(asked),
        ask=ask,
        gather_timeout_s=settings.gather_timeout_s,
    ))


@routes.post(GATHER_PATH)
async def key_pressed(request: web.Request) -> web.Response:
    """The key a person pressed: 1 safe, 2 needs help, recorded as their answer; thanks."""
    service = request.app[SERVICE]
    settings = _voice_settings(service)
    if settings is None:
        return error(404, "voice.twilio is not configured")
    params = await _signed_form(request, settings, GATHER_PATH)
    if params is None:
        return error(403, "invalid or missing X-Twilio-Signature")
    words = service.settings.rendering
    delivery = await _call_delivery(service, request)
    if delivery is None:
        return _twiml(answer_twiml(settings.speech_voice("en"), ""))
    language = delivery.language
    voice = settings.speech_voice(language)
    option = digit_answer(params)
    if option is None:
        again = callback_url(
            settings.callback_base_url or service.settings.service.base_url(),
            GATHER_PATH, delivery.id, delivery.alert_id,
        )
        return _twiml(ask_again_twiml(
            voice, words.word(language, "voice_prompt"), again, settings.gather_timeout_s
        ))
    try:
        await service.responses.record_answer(
            alert_id=delivery.alert_id,
            person_id=delivery.recipient,
            option=option,
            channel=ChannelKind.VOICE.value,
        )
    except Refused as exc:
        # The alert asks nothing (any more) or not this: nothing to record, the call ends.
        log.info("voice.answer_refused", alert_id=delivery.alert_id, delivery_id=delivery.id,
                 reason=type(exc).__name__)
        return _twiml(answer_twiml(voice, words.word(language, "voice_goodbye")))
    log.info("voice.answer_recorded", alert_id=delivery.alert_id, delivery_id=delivery.id,
             option=option)
    return _twiml(answer_twiml(voice, words.word(language, "voice_thanks")))


@routes.post(STATUS_PATH)
async def call_status(request: web.Request) -> web.Response:
    """A call's progress as a late receipt: answered or completed is delivered; busy, no
    answer, failed or canceled is failed with the reason. States only move forward."""
    service = request.app[SERVICE]
    settings = _voice_settings(service)
    if settings is None:
        return error(404, "voice.twilio is not configured")
    params = await _signed_form(request, settings, STATUS_PATH)
    if params is None:
        return error(403, "invalid or missing X-Twilio-Signature")
    event = parse_call_status(params, request.query)
    if event is None:
        return web.Response(status=204)
    recorded = await service.engine.late_receipt(
        LateReceipt(
            ChannelKind.VOICE,
            event.outcome,
            delivery_id=event.delivery_id,
            provider_ref=event.call_sid,
            alert_id=event.alert_id,
            detail=event.detail,
        )
    )
    log.debug("callback.recorded", provider="twilio", status=event.status,
              delivery_id=event.delivery_id, matched=recorded)
    return web.Response(status=204)


def _signed(path: str, summary: str, ok: dict[int, Reply]) -> Route:
    return Route(
        "post", path, summary, auth=False,
        params=(TWILIO_SIGNATURE, *CALLBACK_QUERY),
        body=Body(CallForm, media=(FORM,), required=False),
        replies={**ok,
                 403: refused("missing or invalid X-Twilio-Signature: nothing recorded"),
                 404: refused("voice.twilio is not configured")},
    )


_TWIML_OK = {200: Reply("TwiML", text=(TWIML,))}

ROUTES = (
    _signed(TWIML_PATH,
            "Twilio fetches an answered call's TwiML (signed with X-Twilio-Signature)",
            _TWIML_OK),
    _signed(GATHER_PATH, "The key a person pressed on a call: 1 safe, 2 need help (signed)",
            _TWIML_OK),
    _signed(STATUS_PATH, "Twilio call status callback, a late receipt (signed)",
            {204: Reply("recorded (or not a receipt)")}),
)
