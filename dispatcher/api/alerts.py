"""Alert routes: create, read, list deliveries, stream progress, cancel."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from channels.devices import DeviceChannel
from dispatcher.api.common import (
    EventWriter,
    caller_of,
    error,
    held_response,
    read_body,
    read_json,
    service_of,
)
from dispatcher.cap import parse_cap
from dispatcher.domain import AlertState, ChannelKind, DeliveryState, recipient_hash
from dispatcher.intake import Held
from dispatcher.observability import redact_text
from dispatcher.request import parse_request, problems
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord
from segments.zones import zones_overlapping

routes = web.RouteTableDef()

MAX_IDEMPOTENCY_KEY = 200
CAP_TYPES = frozenset({"application/cap+xml", "application/xml", "text/xml"})


@routes.post("/v1/alerts")
async def create_alert(request: web.Request) -> web.Response:
    """Validate, check policy, store durably, then 202 with the alert's id."""
    service = service_of(request)
    if request.content_type in CAP_TYPES:
        body = await read_cap(request)
    else:
        body = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        return error(
            422,
            "invalid request",
            problems=[
                {"field": "Idempotency-Key", "message": f"1 to {MAX_IDEMPOTENCY_KEY} characters"}
            ],
        )
    try:
        alert_request = parse_request(body)
    except ValidationError as exc:
        service.metrics.rejected.labels("validation").inc()
        return error(422, "invalid request", problems=problems(exc))
    accepted = await service.intake.submit(alert_request, caller_of(request), idempotency_key=key)
    if isinstance(accepted, Held):
        return held_response(accepted)
    return web.json_response(
        {
            "id": accepted.id,
            "status_url": f"/v1/alerts/{accepted.id}",
            "audience": accepted.audience,
            "warnings": accepted.warnings,
        },
        status=202,
    )


async def read_cap(request: web.Request) -> dict[str, Any]:
    """A CAP 1.2 document (an upstream county or NWS alert) as an alert request."""
    raw = await read_body(request)
    try:
        zones = service_of(request).audience.zones
        return parse_cap(raw, zones_of=lambda polygon: zones_overlapping(zones, polygon))
    except ValueError as exc:
        service_of(request).metrics.rejected_input.labels("cap").inc()
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(
                {"error": "invalid CAP", "problems": [{"field": "(body)", "message": str(exc)}]}
            ),
            content_type="application/json",
        ) from None


async def _alert_or_404(service: Service, alert_id: str) -> AlertRecord:
    record = await service.alerts.get(alert_id)
    if record is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no alert {alert_id}"}), content_type="application/json"
        )
    return record


async def status_document(service: Service, record: AlertRecord) -> dict[str, Any]:
    """What `GET /v1/alerts/{id}` returns."""
    channels = await service.ledger.counts(record.id)
    offline = {
        kind.value: [p.as_json() for p in channel.offline_in(record.zones)]
        for kind, channel in service.channels.items()
        if kind in record.channels and isinstance(channel, DeviceChannel)
    }
    return {
        "id": record.id,
        "kind": record.kind.value,
        "mode": record.mode.value,
        "state": record.state.value,
        "audience": record.audience_counts,
        "channels": channels,
        "created_at": record.created_at,
        "sending_at": record.sending_at,
        "done_at": record.done_at,
        "expires_at": record.expires_at,
        "references": record.references_id,
        "content_version": record.content_version,
        "devices_offline": {k: v for k, v in offline.items() if v},
        # Channels that wait now behind a more urgent alert (a drill behind a live emergency).
        "waiting_behind": {
            p.channel.value: {"alert_id": p.behind_alert_id, "since": p.started_at}
            for p in await service.pauses.of(record.id) if p.ended_at is None
        },
    }


@routes.get("/v1/alerts/{id}")
async def get_alert(request: web.Request) -> web.Response:
    """State, audience counts and per-channel delivery counts."""
    service = service_of(request)
    record = await _alert_or_404(service, request.match_info["id"])
    return web.json_response(await status_document(service, record))


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(
                {
                    "error": "invalid request",
                    "problems": [
                        {"field": name, "message": f"a whole number from {low} to {high}"}
                    ],
                }
            ),
            content_type="application/json",
        )
    return value


def _enum_param(request: web.Request, name: str, enum: Any) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(
                {
                    "error": "invalid request",
                    "problems": [{"field": name, "message": f"one of {allowed}"}],
                }
            ),
            content_type="application/json",
        ) from None


@routes.get("/v1/alerts/{id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Deliveries in pages (`after` cursor); recipients appear only as a stable hash."""
    service = service_of(request)
    record = await _alert_or_404(service, request.match_info["id"])
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    channel = _enum_param(request, "channel", ChannelKind)
    state = _enum_param(request, "state", DeliveryState)
    rows = await service.ledger.page(
        record.id, after=after, limit=limit, channel=channel, state=state
    )
    items = [
        {
            "id": r["id"],
            "channel": r["channel"],
            "recipient": recipient_hash(r["recipient"]),
            "role": r["role"],
            "language": r["language"],
            "state": r["state"],
            "attempts": r["attempts"],
            "provider_ref": r["provider_ref"],
            "detail": redact_text(r["detail"]) if r["detail"] else None,
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]
    nxt = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next": nxt})


# How old an answer tally an event stream may show (one count serves every viewer).
TALLY_EVERY_S = 2.0


async def _still_asked(service: Service, alert_id: str) -> bool:
    """The alert's question is open and the alert not withdrawn."""
    question = await service.responses.question(alert_id)
    if question is None or not question.is_open(service.clock.now_ms()):
        return False
    current = await service.alerts.get(alert_id)
    return current is not None and current.state is not AlertState.CANCELLED


@routes.get("/v1/alerts/{id}/events")
async def alert_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `progress` whenever the counts change, then the final state. An
    alert that asks a question carries its tally (`responses`, per zone and building) in each
    `progress`, and after the final state goes on with `responses` events whenever answers
    change, until the question closes."""
    service = service_of(request)
    record = await _alert_or_404(service, request.match_info["id"])
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    asks = record.request.ask is not None
    stream = EventWriter(request, response)
    status: dict[str, Any] = {}
    while True:
        current = await service.alerts.get(record.id)
        if current is None:
            break
        status = await status_document(service, current)
        if asks:
            status["responses"] = (
                await service.responses.recent_tally(record.id, TALLY_EVERY_S)).as_json()
        doc = json.dumps(status)
        await stream.changed("progress", doc)
        if current.state is not AlertState.DISPATCHING:
            await stream.event(current.state.value, doc)
            break
        await stream.wait(0.25)
    # Answers keep coming after the last delivery is settled.
    answers = EventWriter(request, response, json.dumps(status.get("responses")))
    while asks and await _still_asked(service, record.id):
        await answers.wait(TALLY_EVERY_S)
        tally = await service.responses.recent_tally(record.id, TALLY_EVERY_S)
        await answers.changed("responses", json.dumps(tally.as_json()))
    await response.write_eof()
    return response


@routes.post("/v1/alerts/{id}/cancel")
async def cancel_alert(request: web.Request) -> web.Response:
    """Withdraw an alert: queued deliveries are not sent, devices take it down."""
    service = service_of(request)
    caller = caller_of(request)
    record = await _alert_or_404(service, request.match_info["id"])
    service.permissions.check_cancel(caller, record.mode, record.request.audience)
    reason = ""
    if request.can_read_body:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str):
            return error(
                422, "invalid request", problems=[{"field": "reason", "message": "a string"}]
            )
        reason = body.get("reason", "")
    if record.state is AlertState.CANCELLED:
        return web.json_response({"id": record.id, "state": "cancelled", "deliveries_stopped": 0})
    stopped = await service.engine.cancel(record, actor=caller.name, reason=reason)
    return web.json_response({"id": record.id, "state": "cancelled", "deliveries_stopped": stopped})
