"""Hearing back over HTTP: Twilio's signed inbound SMS webhook (answers and STOP/START/HELP)
and an alert's tallies, with the need-help list for the roles allowed to read it."""

from __future__ import annotations

from xml.sax.saxutils import escape

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from channels.registry import provider_channel
from channels.sms_twilio import TwilioSettings, public_callback_url, signature_valid
from dispatcher.access.credentials import reveal
from dispatcher.answers.responses import Keyword, SmsReply
from dispatcher.api.openapi import FORM, Body, Reply, Route, refused
from dispatcher.domain import recipient_hash
from dispatcher.edge import caller_of, error, read_form, reply, service_of, unless_none
from dispatcher.service import Service
from dispatcher.store.responses import NeedsHelp

log = structlog.get_logger("clarion.api.answers")

routes = web.RouteTableDef()

INBOUND_PATH = "/v1/callbacks/twilio/inbound"


class InboundSms(BaseModel):
    """The form of Twilio's inbound SMS webhook (the fields read; others are kept)."""

    model_config = ConfigDict(extra="allow")

    From: str | None = None
    To: str | None = None
    Body: str | None = None
    MessageSid: str | None = None


class AnswerCounts(BaseModel):
    """Safe, need help and no answer, and their total."""

    safe: int
    need_help: int
    no_answer: int
    total: int


class PersonNeedingHelp(BaseModel):
    """Someone who answered that they need help, and how to reach them."""

    person_id: str
    name: str
    building: str
    phone: str
    email: str
    answered_on: str
    answered_at: int

    @classmethod
    def of(cls, person: NeedsHelp) -> PersonNeedingHelp:
        """The person as the tally lists them."""
        return cls(person_id=person.person_id,
                   name=f"{person.first_name} {person.last_name}".strip(),
                   building=person.building, phone=person.phone, email=person.email,
                   answered_on=person.channel, answered_at=person.answered_at)


class AnswerTally(AnswerCounts):
    """The answers to an alert's question, in all and per zone and building; the people who
    need help only for the roles allowed to read them."""

    alert_id: str
    asked: bool
    by_zone: dict[str, AnswerCounts]
    by_building: dict[str, AnswerCounts]
    time_to_50_percent_s: float | None
    time_to_90_percent_s: float | None
    escalation_rounds: int
    need_help_people: list[PersonNeedingHelp] | None = unless_none()

# What the TwiML answer says, by language; English when a language has no entry.
_REPLIES = {
    "en": {
        Keyword.SAFE: "Thank you. You are marked SAFE. Reply 2 if you need help.",
        Keyword.NEED_HELP: "Help is on the way: you are marked NEED HELP. If you can, call 911.",
        Keyword.STOP: "",
        Keyword.START: "You will get campus alerts by SMS again. Reply STOP to stop.",
        Keyword.UNKNOWN: "Reply 1 if you are SAFE, 2 if you need HELP.",
    },
    "es": {
        Keyword.SAFE: "Gracias. Está marcado A SALVO. Responda 2 si necesita ayuda.",
        Keyword.NEED_HELP: "La ayuda va en camino: está marcado NECESITA AYUDA. Si puede, llame "
                           "al 911.",
        Keyword.STOP: "",
        Keyword.START: "Volverá a recibir alertas del campus por SMS. Responda STOP para parar.",
        Keyword.UNKNOWN: "Responda 1 si está A SALVO, 2 si necesita AYUDA.",
    },
}


def reply_text(reply: SmsReply, help_text: str) -> str:
    """The words answering an inbound SMS (empty: no reply message)."""
    if reply.keyword is Keyword.INFO or (reply.keyword is Keyword.UNKNOWN and not reply.asked):
        return help_text
    words = _REPLIES.get(reply.language, _REPLIES["en"])
    return words.get(reply.keyword, "")


def twiml(message: str) -> web.Response:
    """A TwiML Messaging response with one message, or none."""
    body = f"<Message>{escape(message)}</Message>" if message else ""
    return web.Response(
        text=f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
        content_type="application/xml",
    )


def _twilio_settings(service: Service) -> TwilioSettings | None:
    channel = provider_channel(service.channels, "sms.twilio")
    settings = channel.settings if channel is not None else None
    return settings if isinstance(settings, TwilioSettings) else None


@routes.post(INBOUND_PATH)
async def twilio_inbound(request: web.Request) -> web.Response:
    """An SMS to our number: an answer, STOP/START or HELP; 403 (nothing recorded) unless
    signed by Twilio."""
    service = service_of(request)
    settings = _twilio_settings(service)
    if settings is None:
        return error(404, "sms.twilio is not configured")
    params = await read_form(request)
    url = public_callback_url(service.settings.service.base_url() + INBOUND_PATH,
                              request.query_string)
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_valid(reveal(settings.auth_token), url, params, signature):
        log.warning("callback.signature_invalid", provider="twilio.inbound", signed=bool(signature))
        return error(403, "invalid or missing X-Twilio-Signature")
    phone = str(params.get("From") or "")
    body = str(params.get("Body") or "")
    if not phone:
        return twiml("")
    reply = await service.responses.sms_reply(phone, body)
    log.info("sms.inbound", recipient=recipient_hash(phone), keyword=reply.keyword.value,
             recorded=reply.recorded is not None)
    return twiml(reply_text(reply, service.settings.answers.help_text))


@routes.get("/v1/alerts/{id}/responses")
async def alert_responses(request: web.Request) -> web.Response:
    """Safe, need help and no answer, per zone and building; the need-help list with contact
    details only for roles allowed to read it (each read audited)."""
    service = service_of(request)
    caller = caller_of(request)
    alert_id = request.match_info["id"]
    record = await service.alerts.get(alert_id)
    if record is None:
        return error(404, f"no alert {alert_id}")
    tally = AnswerTally.model_validate((await service.responses.tally(alert_id)).as_json())
    if service.permissions.may_see_need_help(caller, record.request.audience):
        people = await service.responses.need_help(alert_id, actor=caller.name)
        tally.need_help_people = [PersonNeedingHelp.of(p) for p in people]
    return reply(tally, headers={"Cache-Control": "no-store"})


ROUTES = (
    Route("post", INBOUND_PATH,
          "Twilio inbound SMS webhook: replies 1/2/SAFE/HELP/SI/AYUDA, STOP, START",
          auth=False, body=Body(InboundSms, media=(FORM,), required=False),
          replies={200: Reply("TwiML", text=("application/xml",)),
                   403: refused("missing or invalid X-Twilio-Signature"),
                   404: refused("sms.twilio is not configured")}),
    Route("get", "/v1/alerts/{id}/responses",
          "Answers to the alert's question: counts per zone and building",
          replies={200: Reply("counts; need_help_people for allowed roles", AnswerTally),
                   404: refused("no such alert")}),
)


