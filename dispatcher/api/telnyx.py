"""Telnyx's signed webhooks: delivery receipts become late receipts, and inbound messages to a
Telnyx number are answers, STOP/START or HELP, as on the Twilio number."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from channels.registry import provider_channel
from channels.sms_telnyx import (
    CALLBACK_PATH,
    INBOUND_PATH,
    TelnyxSms,
    parse_inbound,
    parse_status_event,
    read_event,
)
from channels.telnyx_rest import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid
from dispatcher.api.answers import reply_text
from dispatcher.api.openapi import JSON, Body, Param, Reply, Route, refused
from dispatcher.domain import ChannelKind, LateReceipt, recipient_hash
from dispatcher.edge import error, read_body, service_of
from dispatcher.service import Service

log = structlog.get_logger("clarion.api.callbacks")

routes = web.RouteTableDef()


class TelnyxEvent(BaseModel):
    """A Telnyx webhook: `data` (event_type, payload) and `meta`; other fields are kept."""

    model_config = ConfigDict(extra="allow")

    data: dict[str, Any]
    meta: dict[str, Any] | None = None


async def _verified(
    request: web.Request, service: Service
) -> tuple[TelnyxSms, tuple[str, Any]] | web.Response:
    """The channel and the event, or the response refusing the request."""
    channel = provider_channel(service.channels, TelnyxSms.name)
    if not isinstance(channel, TelnyxSms):
        return error(404, "sms.telnyx is not configured")
    raw = await read_body(request)
    settings = channel.settings
    if not signature_valid(
        settings.public_key, raw,
        request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER),
        now_s=service.clock.now_ms() / 1000, window_s=settings.webhook_window_s,
    ):
        log.warning("callback.signature_invalid", provider="telnyx",
                    signed=SIGNATURE_HEADER in request.headers)
        return error(403, f"invalid, stale or missing {SIGNATURE_HEADER}")
    event = read_event(raw)
    if event is None:
        return error(422, "not a Telnyx webhook event")
    return channel, event


@routes.post(CALLBACK_PATH)
@routes.post(INBOUND_PATH)
async def telnyx_webhook(request: web.Request) -> web.Response:
    """A delivery receipt or an inbound message from Telnyx; 403 (nothing recorded) unless
    signed with the account's key within the replay window."""
    service = service_of(request)
    verified = await _verified(request, service)
    if isinstance(verified, web.Response):
        return verified
    channel, (event_type, payload) = verified
    if event_type == "message.received":
        await _inbound(service, channel, payload)
        return web.Response(status=204)
    if event_type not in ("message.sent", "message.finalized"):
        return web.Response(status=204)
    status = parse_status_event(payload, request.query)
    if status is None:
        return web.Response(status=204)
    if status.opted_out and status.to:
        await service.responses.carrier_refused([status.to])
    recorded = await service.engine.late_receipt(
        LateReceipt(
            ChannelKind.SMS, status.outcome, delivery_id=status.delivery_id,
            provider_ref=status.message_id, alert_id=status.alert_id, detail=status.detail,
            opted_out=status.opted_out,
        )
    )
    log.debug("callback.recorded", provider="telnyx", status=status.status,
              delivery_id=status.delivery_id, matched=recorded)
    return web.Response(status=204)


async def _inbound(service: Service, channel: TelnyxSms, payload: Any) -> None:
    """Record an inbound message; its answer goes from the number it came to, beside the
    webhook's reply."""
    message = parse_inbound(payload)
    if message is None:
        return
    answer = await service.responses.sms_reply(message.from_, message.text)
    log.info("sms.inbound", provider="telnyx", recipient=recipient_hash(message.from_),
             keyword=answer.keyword.value, recorded=answer.recorded is not None)
    words = reply_text(answer, service.settings.answers.help_text)
    if words:
        channel.reply_soon(message.from_, message.to, words)


_SIGNED = (
    Param(SIGNATURE_HEADER, "header", str),
    Param(TIMESTAMP_HEADER, "header", str),
)
_REPLIES = {
    204: Reply("recorded (or not a receipt)"),
    403: refused(f"missing, invalid or stale {SIGNATURE_HEADER}: nothing recorded"),
    404: refused("sms.telnyx is not configured"),
    422: refused("not a Telnyx webhook event"),
}
ROUTES = (
    Route("post", CALLBACK_PATH,
          "Telnyx delivery receipt webhook (message.sent, message.finalized; Ed25519-signed)",
          auth=False, params=_SIGNED, body=Body(TelnyxEvent, media=(JSON,)), replies=_REPLIES),
    Route("post", INBOUND_PATH,
          "Telnyx inbound message webhook: replies 1/2/SAFE/HELP/SI/AYUDA, STOP, START",
          auth=False, params=_SIGNED, body=Body(TelnyxEvent, media=(JSON,)), replies=_REPLIES),
)
