"""Two-person approval routes: list and read held requests, approve or reject them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dispatcher.api.common import caller_of, error, read_json, service_of
from dispatcher.store.approvals import ApprovalStore

routes = web.RouteTableDef()

MAX_REASON = 2000


def _store(request: web.Request) -> ApprovalStore:
    store = service_of(request).intake.approvals
    if store is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "two-person approval is not available on this service"}),
            content_type="application/json",
        )
    return store


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    """Requests waiting for a second person, oldest first."""
    service = service_of(request)
    now = service.clock.now_ms()
    records = await _store(request).pending(now)
    return web.json_response({"items": [r.as_json(now) for r in records]})


@routes.get("/v1/approvals/{id}")
async def get_approval(request: web.Request) -> web.Response:
    """One held request: its state, who asked and decided, and the alert once approved."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    record = await _store(request).get(approval_id)
    if record is None:
        return error(404, f"no approval request {approval_id}")
    return web.json_response(record.as_json(service.clock.now_ms()))


@routes.post("/v1/approvals/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    """Approve as a second person: the alert is created and sent; 202 with its id."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    _store(request)
    accepted = await service.intake.approve(approval_id, caller_of(request))
    return web.json_response(
        {
            "id": accepted.id,
            "status_url": f"/v1/alerts/{accepted.id}",
            "approval_id": approval_id,
            "audience": accepted.audience,
            "warnings": accepted.warnings,
        },
        status=202,
    )


@routes.post("/v1/approvals/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    """Refuse a held request (or withdraw one's own); nothing is sent."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    _store(request)
    reason = ""
    if request.can_read_body:
        body = await read_json(request)
        reason_value: Any = body.get("reason", "") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or set(body) - {"reason"}
            or not isinstance(reason_value, str)
            or len(reason_value) > MAX_REASON
        ):
            return error(422, "invalid request", problems=[
                {"field": "reason", "message": f"a string of at most {MAX_REASON} characters"}])
        reason = reason_value
    record = await service.intake.reject(approval_id, caller_of(request), reason)
    return web.json_response(record.as_json(service.clock.now_ms()))


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
_STATUS = {"description": "the held request",
           "content": {"application/json": {"schema": {
               "$ref": "#/components/schemas/ApprovalStatus"}}}}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_COMMON = {"401": _error("missing or unknown bearer token, or a bad signature"),
           "429": _error("too many requests with this token")}

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/approvals": {"get": {
        "summary": "Alert requests waiting for a second person's approval",
        "security": _SECURED,
        "responses": {
            "200": {"description": "pending requests, oldest first", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {
                        "$ref": "#/components/schemas/ApprovalStatus"}}}}}}},
            **_COMMON,
        },
    }},
    "/v1/approvals/{id}": {"get": {
        "summary": "One held alert request",
        "security": _SECURED,
        "parameters": [_ID],
        "responses": {"200": _STATUS, "404": _error("no such approval request"), **_COMMON},
    }},
    "/v1/approvals/{id}/approve": {"post": {
        "summary": "Approve a held request as a second person; the alert is sent",
        "security": _SECURED,
        "parameters": [_ID],
        "responses": {
            "202": {"description": "the alert is stored durably and dispatching", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["id", "status_url", "approval_id"],
                    "properties": {"id": {"type": "string"}, "status_url": {"type": "string"},
                                   "approval_id": {"type": "string"}}}}}},
            "403": _error("the role may not approve, or the composer tried to approve"),
            "404": _error("no such approval request"),
            "409": _error("rejected, expired, or already being decided"),
            "422": _error("the request no longer passes the checks it passed when held"),
            **_COMMON,
        },
    }},
    "/v1/approvals/{id}/reject": {"post": {
        "summary": "Reject a held request (or withdraw one's own)",
        "security": _SECURED,
        "parameters": [_ID],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False,
            "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}}}}}},
        "responses": {
            "200": _STATUS,
            "403": _error("the role may not reject"),
            "404": _error("no such approval request"),
            "409": _error("no longer pending"),
            "413": _error("body too large"),
            "422": _error("invalid body"),
            **_COMMON,
        },
    }},
}
