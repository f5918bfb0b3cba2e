"""Upstream feed routes: every relay decision, and the proposals waiting for a dispatcher."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.api.common import caller_of, error, held_response, service_of
from dispatcher.intake import Held
from dispatcher.store.feeds import ProposalState

routes = web.RouteTableDef()


@routes.get("/v1/feeds/events")
async def feed_events(request: web.Request) -> web.Response:
    """Every relay decision (sent, proposed, updated, cleared, ignored, suppressed, refused)."""
    service = service_of(request)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
        before = int(request.query["before"]) if "before" in request.query else None
    except ValueError:
        return error(422, "invalid parameters",
                     problems=[{"field": "limit/before", "message": "integers"}])
    events = await service.feed_relay.store.events(limit=limit, before_id=before)
    return web.json_response({
        "items": [e.as_json() for e in events],
        "next": f"/v1/feeds/events?before={events[-1].id}&limit={limit}"
        if len(events) == limit else None,
    })


@routes.get("/v1/feeds/proposals")
async def list_proposals(request: web.Request) -> web.Response:
    """Draft alerts from the feeds; pending ones unless `state` says otherwise (or `all`)."""
    service = service_of(request)
    raw = request.query.get("state", "pending")
    if raw != "all" and raw not in {s.value for s in ProposalState}:
        return error(422, "invalid parameters",
                     problems=[{"field": "state", "message": "pending, sent, dismissed or all"}])
    state = None if raw == "all" else ProposalState(raw)
    found = await service.feed_relay.store.proposals(state)
    return web.json_response({"items": [p.as_json(source=False) for p in found]})


@routes.get("/v1/feeds/proposals/{id}")
async def get_proposal(request: web.Request) -> web.Response:
    """One proposal with the upstream document it came from."""
    service = service_of(request)
    proposal = await service.feed_relay.store.proposal(request.match_info["id"])
    if proposal is None:
        return error(404, f"no proposal {request.match_info['id']}")
    return web.json_response(proposal.as_json())


@routes.post("/v1/feeds/proposals/{id}/send")
async def send_proposal(request: web.Request) -> web.Response:
    """Send a proposal as the caller's alert: 202 with the alert (or approval) id."""
    service = service_of(request)
    proposal, accepted = await service.feed_relay.send_proposal(
        request.match_info["id"], caller_of(request)
    )
    if isinstance(accepted, Held):
        return held_response(accepted)
    alert_id = accepted.id
    return web.json_response(
        {"id": alert_id, "status_url": f"/v1/alerts/{alert_id}", "proposal": proposal.as_json(
            source=False)},
        status=202,
    )


@routes.post("/v1/feeds/proposals/{id}/dismiss")
async def dismiss_proposal(request: web.Request) -> web.Response:
    """Decide not to send a proposal."""
    service = service_of(request)
    proposal = await service.feed_relay.dismiss_proposal(
        request.match_info["id"], caller_of(request)
    )
    return web.json_response(proposal.as_json(source=False))


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
_OBJECT = {"application/json": {"schema": {"type": "object"}}}
_COMMON = {"401": _error("missing or unknown bearer token, or a bad signature"),
           "429": _error("too many requests with this token")}

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/feeds/events": {"get": {
        "summary": "Every decision on an upstream feed message, newest first",
        "security": _SECURED,
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                       "maximum": 1000}},
            {"name": "before", "in": "query", "schema": {"type": "integer"}},
        ],
        "responses": {"200": {"description": "decisions", "content": _OBJECT},
                      "422": _error("limit or before is not an integer"), **_COMMON},
    }},
    "/v1/feeds/proposals": {"get": {
        "summary": "Draft alerts from the feeds waiting for a dispatcher",
        "security": _SECURED,
        "parameters": [{"name": "state", "in": "query", "schema": {
            "type": "string", "enum": ["pending", "sent", "dismissed", "all"]}}],
        "responses": {"200": {"description": "proposals", "content": _OBJECT},
                      "422": _error("state is not pending, sent, dismissed or all"), **_COMMON},
    }},
    "/v1/feeds/proposals/{id}": {"get": {
        "summary": "One proposal with its upstream document",
        "security": _SECURED,
        "parameters": [_ID],
        "responses": {"200": {"description": "the proposal", "content": _OBJECT},
                      "404": _error("no such proposal"), **_COMMON},
    }},
    "/v1/feeds/proposals/{id}/send": {"post": {
        "summary": "Send a proposal as the caller's alert",
        "security": _SECURED,
        "parameters": [_ID],
        "responses": {"202": {"description": "the alert is durable", "content": _OBJECT},
                      "403": _error("the role may not send it"),
                      "404": _error("no such proposal"),
                      "409": _error("the proposal is no longer pending"),
                      "422": _error("policy violations"), **_COMMON},
    }},
    "/v1/feeds/proposals/{id}/dismiss": {"post": {
        "summary": "Decide not to send a proposal",
        "security": _SECURED,
        "parameters": [_ID],
        "responses": {"200": {"description": "the dismissed proposal", "content": _OBJECT},
                      "403": _error("the role may not dismiss it"),
                      "404": _error("no such proposal"),
                      "409": _error("the proposal is no longer pending"), **_COMMON},
    }},
}
