"""Provider callbacks: Twilio's signed status reports become late receipts."""

from __future__ import annotations

import structlog
from aiohttp import web

from channels.registry import provider_channel
from channels.sms_twilio import (
    TwilioSettings,
    default_callback_url,
    parse_status_callback,
    public_callback_url,
    signature_valid,
)
from dispatcher.access.credentials import reveal
from dispatcher.domain import ChannelKind, LateReceipt
from dispatcher.edge import SERVICE, error, read_form

log = structlog.get_logger("clarion.api.callbacks")

routes = web.RouteTableDef()


@routes.post("/v1/callbacks/twilio")
async def twilio_status(request: web.Request) -> web.Response:
    """Record a message status from Twilio; 403 (and nothing recorded) unless signed."""
    service = request.app[SERVICE]
    channel = provider_channel(service.channels, "sms.twilio")
    settings = channel.settings if channel is not None else None
    if not isinstance(settings, TwilioSettings):
        return error(404, "sms.twilio is not configured")
    params = await read_form(request)
    # Twilio signed the URL it was given, which behind a proxy is not the one we see.
    configured = settings.status_callback_url or default_callback_url(
        service.settings.service.base_url()
    )
    url = public_callback_url(configured, request.query_string)
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_valid(reveal(settings.auth_token), url, params, signature):
        log.warning("callback.signature_invalid", provider="twilio", signed=bool(signature))
        return error(403, "invalid or missing X-Twilio-Signature")
    event = parse_status_callback(params, request.query)
    if event is None:
        return web.Response(status=204)
    if event.opted_out and params.get("To"):
        # The carrier says this number sent STOP: no SMS to it from now on.
        await service.responses.carrier_refused([str(params["To"])])
    # The engine is the ReceiptSink: it stamps the time, counts, and closes finished alerts.
    recorded = await service.engine.late_receipt(
        LateReceipt(
            ChannelKind.SMS,
            event.outcome,
            delivery_id=event.delivery_id,
            provider_ref=event.message_sid,
            alert_id=event.alert_id,
            # Beside another provider, each receipt names the one that sent it.
            detail=event.detail if service.channels.get(ChannelKind.SMS) is channel
            else f"sms.twilio: {event.detail}",
            opted_out=event.opted_out,
        )
    )
    log.debug(
        "callback.recorded",
        provider="twilio",
        status=event.status,
        delivery_id=event.delivery_id,
        matched=recorded,
    )
    return web.Response(status=204)
