"""The OpenAPI 3.1 document, built from the same pydantic model that validates requests."""

from __future__ import annotations

from typing import Any

from dispatcher.domain import ChannelKind, DeliveryState
from dispatcher.request import AlertRequest
from dispatcher.settings import Settings


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
    secured = [{"bearer": []}]
    unauthorized = _error("missing or unknown bearer token")
    not_found = _error("no such alert")
    invalid = _error("invalid parameters")
    alert_param = [_alert_id()]
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
            },
        },
        "paths": {
            "/v1/alerts": {"post": {
                "summary": "Send an alert",
                "security": secured,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AlertRequest"}}}},
                "responses": {
                    "202": _json("stored durably; dispatching", {
                        "type": "object", "required": ["id", "status_url"],
                        "properties": {"id": {"type": "string"},
                                       "status_url": {"type": "string"}}}),
                    "401": unauthorized,
                    "403": _error("the token's role may not send this"),
                    "409": _error("Idempotency-Key reused with another body"),
                    "413": _error("body too large"),
                    "422": _error("schema errors or policy violations, every one listed"),
                },
            }},
            "/v1/alerts/{id}": {"get": {
                "summary": "Alert status and delivery counts",
                "security": secured,
                "parameters": alert_param,
                "responses": {"200": _json("status", {"$ref": "#/components/schemas/AlertStatus"}),
                              "401": unauthorized, "404": not_found},
            }},
            "/v1/alerts/{id}/deliveries": {"get": {
                "summary": "Deliveries, paged, recipients masked",
                "security": secured,
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
                "responses": {"200": _json("a page", {"type": "object"}),
                              "401": unauthorized, "404": not_found, "422": invalid},
            }},
            "/v1/alerts/{id}/events": {"get": {
                "summary": "Progress as server-sent events",
                "security": secured,
                "parameters": alert_param,
                "responses": {"200": {"description": "text/event-stream of progress events",
                                      "content": {"text/event-stream": {"schema": {
                                          "type": "string"}}}},
                              "401": unauthorized, "404": not_found},
            }},
            "/v1/alerts/{id}/cancel": {"post": {
                "summary": "Cancel an alert",
                "security": secured,
                "parameters": alert_param,
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"reason": {"type": "string"}},
                    "additionalProperties": False}}}},
                "responses": {"200": _json("cancelled", {"type": "object"}),
                              "401": unauthorized, "403": _error("role may not cancel"),
                              "404": not_found, "422": invalid},
            }},
            "/healthz": {"get": {"summary": "Liveness and store access",
                                 "responses": {"200": _json("healthy", {"type": "object"}),
                                               "503": _json("unhealthy", {"type": "object"})}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition",
                                                       "content": {"text/plain": {
                                                           "schema": {"type": "string"}}}}}}},
        },
    }
