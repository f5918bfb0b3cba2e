"""The OpenAPI 3.1 document, built from the same pydantic model that validates requests.

Each route module describes its own paths in an `OPENAPI_PATHS` dict, merged here; the paths
of modules that do not (yet) are described below, by module.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dispatcher.api import ROUTE_MODULES
from dispatcher.domain import ChannelKind, DeliveryState
from dispatcher.request import AlertRequest
from dispatcher.settings import Settings

CAP_MEDIA_TYPES = ("application/cap+xml", "application/xml", "text/xml")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _alert_id() -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 100}}


SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
UNAUTHORIZED = _error("missing or unknown bearer token, or a bad request signature")
THROTTLED = _error("too many requests with this token (see Retry-After)")
TOO_LARGE = _error("body too large")
NOT_FOUND = _error("no such alert")
INVALID = _error("invalid parameters or body, every problem listed")


def _secured(responses: dict[str, Any]) -> dict[str, Any]:
    return {**responses, "401": UNAUTHORIZED, "429": THROTTLED}


def _alert_paths() -> dict[str, Any]:
    alert_param = [_alert_id()]
    accepted = {
        "type": "object",
        "required": ["id", "status_url"],
        "properties": {
            "id": {"type": "string"},
            "status_url": {"type": "string"},
            "approval_required": {"type": "boolean",
                                  "description": "true: held for a second person's approval; "
                                  "`id` and `status_url` name the approval request"},
            "audience": {"type": "object"},
            "warnings": {"type": "array", "items": {"type": "object"}},
        },
    }
    cap_body = {"type": "string", "description": "a CAP 1.2 alert message"}
    return {
        "/v1/alerts": {"post": {
            "summary": "Send an alert (JSON alert request, or a CAP 1.2 document)",
            "security": SECURED,
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AlertRequest"}},
                **{t: {"schema": cap_body} for t in CAP_MEDIA_TYPES},
            }},
            "responses": _secured({
                "202": _json("stored durably and dispatching, or held for approval", accepted),
                "403": _error("the token's role or scope may not send this"),
                "409": _error("Idempotency-Key reused with another body"),
                "413": TOO_LARGE,
                "422": _error("schema errors or policy violations, every one listed"),
            }),
        }},
        "/v1/alerts/{id}": {"get": {
            "summary": "Alert status and delivery counts",
            "security": SECURED,
            "parameters": alert_param,
            "responses": _secured({
                "200": _json("status", {"$ref": "#/components/schemas/AlertStatus"}),
                "404": NOT_FOUND,
            }),
        }},
        "/v1/alerts/{id}/deliveries": {"get": {
            "summary": "Deliveries, paged, recipients masked",
            "security": SECURED,
            "parameters": [
                *alert_param,
                {"name": "after", "in": "query",
                 "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {"name": "channel", "in": "query",
                 "schema": {"type": "string", "enum": [c.value for c in ChannelKind]}},
                {"name": "state", "in": "query",
                 "schema": {"type": "string", "enum": [s.value for s in DeliveryState]}},
            ],
            "responses": _secured({
                "200": _json("a page", {
                    "type": "object", "required": ["items", "next"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                   "next": {"type": ["integer", "null"]}}}),
                "404": NOT_FOUND,
                "422": INVALID,
            }),
        }},
        "/v1/alerts/{id}/events": {"get": {
            "summary": "Progress as server-sent events",
            "security": SECURED,
            "parameters": alert_param,
            "responses": _secured({
                "200": {"description": "text/event-stream of progress events",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                "404": NOT_FOUND,
            }),
        }},
        "/v1/alerts/{id}/cancel": {"post": {
            "summary": "Cancel an alert",
            "security": SECURED,
            "parameters": alert_param,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"reason": {"type": "string"}},
                "additionalProperties": False}}}},
            "responses": _secured({
                "200": _json("cancelled", {
                    "type": "object", "required": ["id", "state"],
                    "properties": {"id": {"type": "string"},
                                   "state": {"const": "cancelled"},
                                   "deliveries_stopped": {"type": "integer"}}}),
                "403": _error("the role may not cancel this alert"),
                "404": NOT_FOUND,
                "413": TOO_LARGE,
                "422": INVALID,
            }),
        }},
    }


def _cap_paths() -> dict[str, Any]:
    return {
        "/v1/alerts/{id}/cap": {"get": {
            "summary": "The alert as a CAP 1.2 document (its Cancel once withdrawn)",
            "security": SECURED,
            "parameters": [_alert_id()],
            "responses": _secured({
                "200": {"description": "CAP 1.2 XML", "content": {
                    "application/cap+xml": {"schema": {"type": "string"}}}},
                "404": NOT_FOUND,
            }),
        }},
        "/v1/feeds/cap": {"get": {
            "summary": "Atom feed of the active alerts, each linking to its CAP",
            "security": SECURED,
            "responses": _secured({
                "200": {"description": "Atom", "content": {
                    "application/atom+xml": {"schema": {"type": "string"}}}},
            }),
        }},
    }


def _lint_paths() -> dict[str, Any]:
    request = {"$ref": "#/components/schemas/AlertRequest"}
    verdict = {"type": "object", "required": ["ok", "violations", "segments"],
               "properties": {
                   "ok": {"type": "boolean",
                          "description": "true when nothing blocks the send (warnings may remain)"},
                   "violations": {"type": "array", "items": {"type": "object"}},
                   "segments": {"type": "object"},
                   "derived": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "the short channels whose text was derived "
                               "from a longer one, with that text"}}}
    return {
        "/v1/lint": {"post": {
            "summary": "The policy's verdict on an alert request (or a list), sending nothing",
            "security": SECURED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [request,
                          {"type": "array", "items": request, "minItems": 1, "maxItems": 500}],
            }}}},
            "responses": _secured({
                "200": _json("the verdict, or one per request in order", {
                    "oneOf": [verdict, {"type": "array", "items": verdict}]}),
                "403": _error("role viewer may only read"),
                "413": TOO_LARGE,
                "422": INVALID,
            }),
        }},
    }


def _callback_paths() -> dict[str, Any]:
    return {
        "/v1/callbacks/twilio": {"post": {
            "summary": "Twilio message status callback (signed with X-Twilio-Signature)",
            "parameters": [
                {"name": "X-Twilio-Signature", "in": "header", "required": False,
                 "schema": {"type": "string"}},
                {"name": "d", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "a", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "requestBody": {"required": False, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object",
                    "properties": {"MessageSid": {"type": "string"},
                                   "MessageStatus": {"type": "string"},
                                   "ErrorCode": {"type": "string"}},
                    "additionalProperties": {"type": "string"}}}}},
            "responses": {
                "204": {"description": "recorded (or not a receipt)"},
                "403": _error("missing or invalid X-Twilio-Signature: nothing recorded"),
                "404": _error("sms.twilio is not configured"),
                "413": TOO_LARGE,
            },
        }},
    }


def _device_paths() -> dict[str, Any]:
    return {
        "/v1/devices": {"get": {
            "summary": "Sirens, signs and speakers with their presence",
            "security": SECURED,
            "parameters": [
                {"name": "class", "in": "query",
                 "schema": {"type": "string", "enum": ["siren", "signage", "pa", "desktop"]}},
                {"name": "zone", "in": "query", "schema": {"type": "string"}},
                {"name": "state", "in": "query",
                 "schema": {"type": "string", "enum": ["online", "offline"]}},
            ],
            "responses": _secured({
                "200": _json("devices and counts", {
                    "type": "object", "required": ["devices", "counts", "broker_connected"],
                    "properties": {"devices": {"type": "array", "items": {"type": "object"}},
                                   "counts": {"type": "object"},
                                   "broker_connected": {"type": "boolean"}}}),
                "422": INVALID,
            }),
        }},
    }


def _ops_paths() -> dict[str, Any]:
    return {
        "/healthz": {"get": {"summary": "Liveness and store access",
                             "responses": {"200": _json("healthy", {"type": "object"}),
                                           "503": _json("unhealthy", {"type": "object"})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}},
    }


# Paths of the route modules that do not describe their own.
BUILT_IN_PATHS = {
    "dispatcher.api.ops": _ops_paths,
    "dispatcher.api.alerts": _alert_paths,
    "dispatcher.api.lint": _lint_paths,
    "dispatcher.api.callbacks": _callback_paths,
    "dispatcher.api.cap": _cap_paths,
    "dispatcher.api.devices": _device_paths,
}


def api_paths() -> dict[str, Any]:
    """Every route module's paths: its own `OPENAPI_PATHS`, else the built-in description."""
    paths: dict[str, Any] = {}
    for name in ROUTE_MODULES:
        own = getattr(import_module(name), "OPENAPI_PATHS", None)
        described = own if own is not None else BUILT_IN_PATHS.get(name, dict)()
        for path, operations in described.items():
            paths.setdefault(path, {}).update(operations)
    return paths


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The document served at /openapi.json."""
    request_schema = AlertRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = request_schema.pop("$defs", {})
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    status = {
        "type": "object",
        "required": ["id", "kind", "mode", "state", "audience", "channels"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "mode": {"type": "string"},
            "state": {"type": "string", "enum": ["dispatching", "done", "cancelled"]},
            "audience": {"type": "object"},
            "channels": {"type": "object", "additionalProperties": counts},
        },
    }
    approval = {
        "type": "object",
        "required": ["id", "state", "kind", "mode", "audience", "requested_by", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string",
                      "enum": ["pending", "approved", "rejected", "expired"]},
            "kind": {"type": "string"},
            "mode": {"type": "string"},
            "audience": {"type": "object"},
            "requested_by": {"type": "string"},
            "requested_at": {"type": "integer"},
            "expires_at": {"type": "integer"},
            "decided_by": {"type": ["string", "null"]},
            "decided_at": {"type": ["integer", "null"]},
            "reason": {"type": ["string", "null"]},
            "alert_id": {"type": ["string", "null"]},
            "alert_url": {"type": ["string", "null"]},
            "request": {"type": "object"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clarion",
            "version": "1",
            "description": f"Emergency notification dispatch for {settings.service.institution}.",
        },
        "servers": [{"url": settings.service.base_url()}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **defs,
                "AlertRequest": request_schema,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "problems": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"field": {"type": "string"},
                                           "message": {"type": "string"}}}},
                        "violations": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "AlertStatus": status,
                "ApprovalStatus": approval,
            },
        },
        "paths": _with_body_errors(api_paths()),
    }


def _with_body_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation with a body may refuse one it cannot decode (`api/common.py`): a form
    with a 400, JSON with a 422."""
    for operations in paths.values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            responses = operation.setdefault("responses", {})
            if any(media != "application/json" for media in content):
                responses.setdefault("400", _error("the form is not valid in its charset"))
            if "application/json" in content:
                responses.setdefault("422", _error("the body is not valid JSON"))
    return paths
