"""Hearing back over HTTP: Twilio's signed inbound SMS webhook (answers and STOP/START/HELP)
and an alert's tallies, with the need-help list for the roles allowed to read it."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import structlog
from aiohttp import web

from channels.sms_twilio import TwilioSettings, public_callback_url, signature_valid
from dispatcher.api.common import caller_of, error, read_form, service_of
from dispatcher.credentials import reveal
from dispatcher.domain import ChannelKind, recipient_hash
from dispatcher.responses import Keyword, SmsReply
from dispatcher.service import Service

log = structlog.get_logger("clarion.api.answers")

routes = web.RouteTableDef()

INBOUND_PATH = "/v1/callbacks/twilio/inbound"

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
    channel = service.channels.get(ChannelKind.SMS)
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
    tally = await service.responses.tally(alert_id)
    doc: dict[str, Any] = tally.as_json()
    if service.permissions.may_see_need_help(caller, record.request.audience):
        people = await service.responses.need_help(alert_id, actor=caller.name)
        doc["need_help_people"] = [
            {"person_id": p.person_id, "name": f"{p.first_name} {p.last_name}".strip(),
             "building": p.building, "phone": p.phone, "email": p.email,
             "answered_on": p.channel, "answered_at": p.answered_at}
            for p in people
        ]
    return web.json_response(doc, headers={"Cache-Control": "no-store"})


OPENAPI_PATHS: dict[str, Any] = {
    INBOUND_PATH: {
        "post": {
            "summary": "Twilio inbound SMS webhook: replies 1/2/SAFE/HELP/SI/AYUDA, STOP, START",
            "security": [],
            "requestBody": {"content": {"application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {
                    "From": {"type": "string"}, "To": {"type": "string"},
                    "Body": {"type": "string"}, "MessageSid": {"type": "string"}}}}}},
            "responses": {"200": {"description": "TwiML"},
                          "403": {"description": "missing or invalid X-Twilio-Signature"}},
        }
    },
    "/v1/alerts/{id}/responses": {
        "get": {
            "summary": "answers to the alert's question: counts per zone and building",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "counts; need_help_people for allowed roles"},
                          "404": {"description": "no such alert"}},
        }
    },
}
