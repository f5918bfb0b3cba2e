"""Alert routes: create, read, list deliveries, stream progress, cancel."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from dispatcher.alerting.intake import Held
from dispatcher.alerting.request import parse_request, problems
from dispatcher.cap.format import parse_cap
from dispatcher.domain import AlertState, ChannelKind, DeliveryState
from dispatcher.edge import (
    EventWriter,
    caller_of,
    error,
    held_response,
    read_body,
    read_json,
    service_of,
)
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord
from dispatcher.views.progress import Progress
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


@routes.get("/v1/alerts/{id}")
async def get_alert(request: web.Request) -> web.Response:
    """State, audience counts and per-channel delivery counts."""
    service = service_of(request)
    record = await _alert_or_404(service, request.match_info["id"])
    return web.json_response((await service.views.status(record)).to_json())


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
    page = await service.views.deliveries(
        record.id, after=after, limit=limit, channel=channel, state=state
    )
    return web.json_response(page.to_json())


# How often a viewer looks at its alert's shared progress (in memory: the store is read once
# per change for every viewer, by the alert's progress stream).
LOOK_EVERY_S = 0.25


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
    stream = EventWriter(request, response)
    # After the final state: answers keep coming after the last delivery is settled.
    answers: EventWriter | None = None
    async with service.progress.watch(record.id) as watch:
        progress = await watch.first()
        shown: tuple[Progress | None, str] = (None, "")
        while progress is not None:
            if answers is None:
                if progress is not shown[0]:
                    # Written out once per progress read, not once per look.
                    shown = (progress, json.dumps(progress.event_json()))
                doc = shown[1]
                await stream.changed("progress", doc)
                if progress.final:
                    await stream.event(progress.record.state.value, doc)
                    tally = progress.answers.as_json() if progress.answers else None
                    answers = EventWriter(request, response, json.dumps(tally))
            elif progress.answers is not None:
                await answers.changed("responses", json.dumps(progress.answers.as_json()))
            if watch.over:
                break
            await (answers or stream).wait(LOOK_EVERY_S)
            progress = watch.latest
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
