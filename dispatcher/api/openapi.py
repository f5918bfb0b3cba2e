"""The OpenAPI 3.1 document, assembled from the route tables of the route modules.

A route module lists its operations in `ROUTES`: method, path, summary, the body it reads,
its parameters, the reply of each status and whether it needs a token. Bodies and replies are
pydantic models, the same ones the handlers read and write, and their schemas are generated
into `components/schemas`; the document cannot describe a shape the code does not have. A
module that still describes its paths by hand keeps an `OPENAPI_PATHS` dict, merged as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind, DeliveryState
from dispatcher.edge import ErrorBody, HeldReply, ViolationBody
from dispatcher.settings import Settings
from dispatcher.views.alerts import AlertStatus, DeliveryPage
from dispatcher.views.devices import DeviceList

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REF_TEMPLATE = "#/components/schemas/{model}"
# The document, built once with the application (`app.py`) and served by `ops.py`.
DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document")

# Each model's `$ref` in the document, by model and mode (what `models_json_schema` returns).
Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]

# A path segment naming a stored thing (an alert, an approval, a proposal).
PathId = Annotated[str, Field(min_length=1, max_length=100)]


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented response: what it means, and its body, a model (JSON) or text in the
    given media types (XML, HTML, CSV). Neither: a response without a body."""

    description: str
    model: type[BaseModel] | None = None
    text: tuple[str, ...] = ()


def refused(description: str) -> Reply:
    """An error response: its body is the one error body, `ErrorBody`."""
    return Reply(description, ErrorBody)


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: its model, the media types it is read from as that model, and other
    media types read as text (a CAP document)."""

    model: type[BaseModel]
    media: tuple[str, ...] = (JSON,)
    text: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True, slots=True)
class Param:
    """A query, header or path parameter, with its type (any type pydantic can describe)."""

    name: str
    where: Literal["query", "header", "path"]
    type: Any
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API as the document describes it. A path's `{name}` segments are
    path parameters of type `PathId` unless `params` says otherwise. A route with `auth` needs
    a bearer token, and may also answer 401 and 429 (and 403 for writes: viewers only read)."""

    method: Literal["get", "post", "put", "patch", "delete", "options"]
    path: str
    summary: str
    replies: Mapping[int, Reply]
    body: Body | None = None
    params: tuple[Param, ...] = ()
    auth: bool = True


# -- replies shared by several route modules ------------------------------------------------


class Accepted(BaseModel):
    """The 202 for an alert stored durably and dispatching."""

    id: str
    status_url: str
    audience: dict[str, Any]
    warnings: list[ViolationBody] = Field(
        description="policy findings that did not block the send")


class AcceptedOrHeld(RootModel[Accepted | HeldReply]):
    """The 202 of a send: dispatching, or held for a second person's approval (`HeldReply`,
    `approval_required` true: `id` and `status_url` then name the approval request)."""


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


# -- the Clery records' documents ----------------------------------------------------------
# The alert status, deliveries and devices are the read models of `views/`; the Clery
# records, notes and the yearly report are documents whose shape `records/` owns, described
# here as open objects.





class AlertRecordDocument(BaseModel):
    """The Clery record read model (`GET /v1/alerts/{id}/record`)."""

    model_config = ConfigDict(extra="allow")


class NoteDocument(BaseModel):
    """The follow-up note read model (`POST /v1/alerts/{id}/notes`)."""

    model_config = ConfigDict(extra="allow")


class NotesDocument(BaseModel):
    """The list of follow-up notes (`GET /v1/alerts/{id}/notes`)."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]]


class CleryReportDocument(BaseModel):
    """The yearly Clery report read model (`GET /v1/reports/clery`)."""

    model_config = ConfigDict(extra="allow")


# -- the routes of modules that do not carry their own table ------------------------------
# `api/alerts.py`, `api/cap.py`, `api/devices.py` and `api/callbacks.py` are described here;
# `routes_of` adds these routes to the modules' own tables.

CAP_MEDIA_TYPES = ("application/cap+xml", "application/xml", "text/xml")
NOT_FOUND = refused("no such alert")
INVALID = refused("invalid parameters or body, every problem listed")


class CancelBody(BaseModel):
    """Why an alert is withdrawn (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""


class Cancelled(BaseModel):
    """An alert withdrawn: its queued deliveries will not be sent."""

    id: str
    state: Literal["cancelled"]
    deliveries_stopped: int


class TwilioStatusForm(BaseModel):
    """The form of Twilio's message status callback (the fields read; others are kept)."""

    model_config = ConfigDict(extra="allow")

    MessageSid: str | None = None
    MessageStatus: str | None = None
    ErrorCode: str | None = None


TWILIO_SIGNATURE = Param("X-Twilio-Signature", "header", str)
# The query of the callback URLs we give Twilio, covered by its signature.
CALLBACK_QUERY = (
    Param("d", "query", str, description="the delivery the callback is about"),
    Param("a", "query", str, description="the alert that delivery belongs to"),
)

ALERT_ROUTES = (
    Route("post", "/v1/alerts", "Send an alert (JSON alert request, or a CAP 1.2 document)",
          body=Body(AlertRequest, text=CAP_MEDIA_TYPES),
          params=(Param("Idempotency-Key", "header",
                        Annotated[str, Field(min_length=1, max_length=200)]),),
          replies={
              202: Reply("stored durably and dispatching, or held for approval", AcceptedOrHeld),
              403: refused("the token's role or scope may not send this"),
              409: refused("Idempotency-Key reused with another body"),
              422: refused("schema errors or policy violations, every one listed"),
          }),
    Route("get", "/v1/alerts/{id}", "Alert status and delivery counts",
          replies={200: Reply("status", AlertStatus), 404: NOT_FOUND}),
    Route("get", "/v1/alerts/{id}/deliveries", "Deliveries, paged, recipients masked",
          params=(
              Param("after", "query", Annotated[int, Field(ge=0, le=2**62)]),
              Param("limit", "query", Annotated[int, Field(ge=1, le=1000)]),
              Param("channel", "query", ChannelKind),
              Param("state", "query", DeliveryState),
          ),
          replies={200: Reply("a page", DeliveryPage), 404: NOT_FOUND,
                   422: INVALID}),
    Route("get", "/v1/alerts/{id}/events", "Progress as server-sent events",
          replies={200: Reply("text/event-stream of progress events",
                              text=("text/event-stream",)),
                   404: NOT_FOUND}),
    Route("post", "/v1/alerts/{id}/cancel", "Cancel an alert",
          body=Body(CancelBody, required=False),
          replies={200: Reply("cancelled", Cancelled),
                   403: refused("the role may not cancel this alert"),
                   404: NOT_FOUND, 422: INVALID}),
)

CAP_ROUTES = (
    Route("get", "/v1/alerts/{id}/cap",
          "The alert as a CAP 1.2 document (its Cancel once withdrawn)",
          replies={200: Reply("CAP 1.2 XML", text=("application/cap+xml",)), 404: NOT_FOUND}),
    Route("get", "/v1/feeds/cap", "Atom feed of the active alerts, each linking to its CAP",
          replies={200: Reply("Atom", text=("application/atom+xml",)),
                   304: Reply("not modified: the client's ETag is current")}),
)

DEVICE_ROUTES = (
    Route("get", "/v1/devices", "Sirens, signs and speakers with their presence",
          params=(
              Param("class", "query", Literal["siren", "signage", "pa", "desktop"]),
              Param("zone", "query", str),
              Param("state", "query", Literal["online", "offline"]),
          ),
          replies={200: Reply("devices and counts", DeviceList), 422: INVALID}),
)

CALLBACK_ROUTES = (
    Route("post", "/v1/callbacks/twilio",
          "Twilio message status callback (signed with X-Twilio-Signature)",
          auth=False, params=(TWILIO_SIGNATURE, *CALLBACK_QUERY),
          body=Body(TwilioStatusForm, media=(FORM,), required=False),
          replies={204: Reply("recorded (or not a receipt)"),
                   403: refused("missing or invalid X-Twilio-Signature: nothing recorded"),
                   404: refused("sms.twilio is not configured")}),
)

DESCRIBED_HERE: tuple[Route, ...] = (*ALERT_ROUTES, *CAP_ROUTES, *DEVICE_ROUTES,
                                     *CALLBACK_ROUTES)


# -- assembly ---------------------------------------------------------------------------

UNAUTHORIZED = refused("missing or unknown bearer token, or a bad request signature")
THROTTLED = refused("too many requests with this token (see Retry-After)")
READ_ONLY = refused("the token may only read")
TOO_LARGE = refused("body too large")
BAD_FORM = refused("the form is not valid in its charset")
BAD_JSON = refused("the body is not valid JSON")


def error_reply(description: str) -> dict[str, Any]:
    """An error response as a hand-written `OPENAPI_PATHS` entry writes it."""
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorBody")}}}}


def _with_body_errors(operation: dict[str, Any]) -> dict[str, Any]:
    """A hand-written operation with a body may also be refused the way `edge.py`
    refuses a body it cannot decode: a form with a 400, JSON with a 422."""
    content = operation.get("requestBody", {}).get("content", {})
    responses = operation.setdefault("responses", {})
    if any(media != JSON for media in content):
        responses.setdefault("400", error_reply(BAD_FORM.description))
    if JSON in content:
        responses.setdefault("422", error_reply(BAD_JSON.description))
    return operation


def routes_of(modules: Iterable[ModuleType]) -> tuple[Route, ...]:
    """The route tables of the modules, and the routes described here."""
    found: list[Route] = list(DESCRIBED_HERE)
    for module in modules:
        found.extend(getattr(module, "ROUTES", ()))
    return tuple(found)


def hand_written_paths(modules: Iterable[ModuleType]) -> dict[str, Any]:
    """The `OPENAPI_PATHS` of the modules that describe their paths by hand."""
    paths: dict[str, Any] = {}
    for module in modules:
        for path, operations in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(operations)
    return paths


def _all_replies(route: Route) -> dict[int, Reply]:
    """The route's own replies, and those the middlewares and body readers add."""
    replies = dict(route.replies)
    if route.auth:
        replies.setdefault(401, UNAUTHORIZED)
        replies.setdefault(429, THROTTLED)
        if route.method != "get":
            replies.setdefault(403, READ_ONLY)
    if route.body is not None:
        replies.setdefault(413, TOO_LARGE)
        if JSON in route.body.media:
            replies.setdefault(422, BAD_JSON)
        if any(media != JSON for media in (*route.body.media, *route.body.text)):
            replies.setdefault(400, BAD_FORM)
    return dict(sorted(replies.items()))


def _parameters(route: Route) -> list[dict[str, Any]]:
    given = {p.name for p in route.params if p.where == "path"}
    implied = [Param(name, "path", PathId, required=True)
               for name in re.findall(r"{([^}/]+)}", route.path) if name not in given]
    out = []
    for param in (*implied, *route.params):
        entry: dict[str, Any] = {
            "name": param.name, "in": param.where, "required": param.required,
            "schema": TypeAdapter(param.type).json_schema(ref_template=REF_TEMPLATE),
        }
        if param.description:
            entry["description"] = param.description
        out.append(entry)
    return out


def _content(model: type[BaseModel] | None, media: tuple[str, ...], text: tuple[str, ...],
             refs: Refs, mode: JsonSchemaMode) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if model is not None:
        content.update({m: {"schema": refs[(model, mode)]} for m in media})
    content.update({m: {"schema": {"type": "string"}} for m in text})
    return content


def _operation(route: Route, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary}
    if route.auth:
        operation["security"] = [{"bearer": []}]
    parameters = _parameters(route)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        body = route.body
        operation["requestBody"] = {
            "required": body.required,
            "content": _content(body.model, body.media, body.text, refs, "validation"),
        }
    responses: dict[str, Any] = {}
    for status, reply in _all_replies(route).items():
        response: dict[str, Any] = {"description": reply.description}
        content = _content(reply.model, (JSON,), reply.text, refs, "serialization")
        if content:
            response["content"] = content
        responses[str(status)] = response
    operation["responses"] = responses
    return operation


def _models(routes: Iterable[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for route in routes:
        if route.body is not None:
            wanted[(route.body.model, "validation")] = None
        for reply in _all_replies(route).values():
            if reply.model is not None:
                wanted[(reply.model, "serialization")] = None
    return list(wanted)


def openapi_document(
    settings: Settings, routes: Iterable[Route], hand_written: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The document served at /openapi.json: the routes' operations, their models' schemas
    in `components/schemas`, then any hand-written paths."""
    routes = tuple(routes)
    refs, schemas = models_json_schema(_models(routes), ref_template=REF_TEMPLATE)
    paths: dict[str, Any] = {}
    for route in routes:
        operations = paths.setdefault(route.path, {})
        if route.method in operations:
            raise ValueError(f"{route.method.upper()} {route.path} is described twice")
        operations[route.method] = _operation(route, refs)
    for path, operations in (hand_written or {}).items():
        for method, operation in operations.items():
            if method in paths.get(path, {}):
                raise ValueError(f"{method.upper()} {path} is described twice")
            paths.setdefault(path, {})[method] = _with_body_errors(operation)
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
            "schemas": schemas.get("$defs", {}),
        },
        "paths": paths,
    }
