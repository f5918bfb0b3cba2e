"""What the HTTP edges (the API, the console, the public pages, SCIM) share: the service key,
the caller, the one error body, typed JSON replies, and the one way request bodies are read."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.access.auth import Caller
from dispatcher.alerting.intake import Held
from dispatcher.refusals import Conflict, Forbidden, Invalid, NotFound, PolicyBreach, Refused
from dispatcher.service import Service

SERVICE: web.AppKey[Service] = web.AppKey("service")
CALLER: web.RequestKey[Caller] = web.RequestKey("caller")


def service_of(request: web.Request) -> Service:
    """The running service."""
    return request.app[SERVICE]


def caller_of(request: web.Request) -> Caller:
    """Who made this (authenticated) request."""
    return request[CALLER]


def _is_none(value: object) -> bool:
    return value is None


def unless_none(description: str | None = None) -> Any:
    """A field default of None that a reply leaves out rather than writing `null`."""
    return Field(default=None, exclude_if=_is_none, description=description)


class ProblemBody(BaseModel):
    """One located problem of a request: the field (or header, or `(body)`) and what is wrong."""

    model_config = ConfigDict(extra="forbid")

    field: str
    message: str


class ViolationBody(BaseModel):
    """One finding of the policy, located in the text it was found in (the lint contract's
    entry; a blocking one in a refusal, a warning beside a sent alert)."""

    model_config = ConfigDict(extra="allow")

    rule: str
    message: str
    start: int | None
    end: int | None
    severity: str
    channel: str | None
    language: str | None
    field: str | None
    overridden: bool
    suggestion: str | None = unless_none(
        "a neutral rewrite of the span (empty: delete it), when the rule has one")


class ErrorBody(BaseModel):
    """The body of every error response: what went wrong and, where known, where.

    Only the fields that apply are written (`problems` for invalid input, `violations` for the
    policy, `id` for the alert an Idempotency-Key already names, `index` for the item of a
    list, `retry_after_s` for a rate limit)."""

    model_config = ConfigDict(extra="forbid")

    error: str
    problems: list[ProblemBody] | None = unless_none()
    violations: list[ViolationBody] | None = unless_none()
    id: str | None = unless_none()
    index: int | None = unless_none()
    retry_after_s: float | None = unless_none()

    def text(self) -> str:
        """The body as JSON, without the fields that do not apply."""
        return self.model_dump_json()


def error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """A JSON error response (`ErrorBody`), and no stack trace, ever."""
    body = ErrorBody.model_validate({"error": message, **extra})
    return web.json_response(text=body.text(), status=status, headers=headers)


def reply(body: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    """A JSON response written from its typed model."""
    return web.json_response(text=body.model_dump_json(), status=status, headers=headers)


# The one place a refusal becomes an HTTP status; the first matching class wins.
REFUSAL_STATUS: tuple[tuple[type[Refused], int], ...] = (
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Invalid, 422),
    (PolicyBreach, 422),
)


def refusal_response(exc: Refused) -> web.Response:
    """The JSON error for a refusal: its status, message and located details."""
    status = next((code for cls, code in REFUSAL_STATUS if isinstance(exc, cls)), 400)
    extra: dict[str, Any] = {}
    if isinstance(exc, Invalid):
        extra["problems"] = [p.as_json() for p in exc.problems]
    elif isinstance(exc, PolicyBreach):
        extra["violations"] = exc.violations
    elif isinstance(exc, Conflict) and exc.existing_id is not None:
        extra["id"] = exc.existing_id
    return error(status, exc.message, **extra)


class HeldReply(BaseModel):
    """The 202 for a request held for a second person's approval."""

    id: str
    status_url: str
    approval_required: bool = True
    state: str
    audience: dict[str, Any]
    expires_at: int
    warnings: list[ViolationBody]


def held_response(held: Held) -> web.Response:
    """The 202 for a request held for a second person's approval."""
    record = held.record
    return reply(HeldReply(
        id=record.id,
        status_url=f"/v1/approvals/{record.id}",
        state=record.state.value,
        audience=record.audience_counts,
        expires_at=record.expires_at,
        warnings=[ViolationBody.model_validate(w) for w in held.warnings],
    ), status=202)


# -- bodies: the one way a request body is read and decoded ----------------------------------
# Every route (the API, callbacks, public pages, the console) reads bodies through these, so
# a bad encoding or an oversized number is a 400 or 422 that names it, never a 500.

FORM_TYPES = ("", "application/x-www-form-urlencoded")
MULTIPART = "multipart/form-data"
# More fields than any form of ours has; a body of only separators is refused, not parsed.
MAX_FORM_FIELDS = 1000
_FORM: web.RequestKey[MultiDictProxy[str]] = web.RequestKey("form")


def _limit(request: web.Request) -> int:
    return request.app[SERVICE].settings.service.max_body_bytes


def too_large(limit: int, actual: int) -> web.HTTPRequestEntityTooLarge:
    """The 413 for a body over `limit` bytes, as JSON."""
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=actual,
        text=ErrorBody(error=f"body over {limit} bytes").text(),
        content_type="application/json",
    )


def _read_timeout_s(request: web.Request) -> float:
    return request.app[SERVICE].settings.service.read_timeout_s


def too_slow(seconds: float) -> web.HTTPRequestTimeout:
    """The 408 for a body not received within the read timeout; the connection is closed."""
    return web.HTTPRequestTimeout(
        text=ErrorBody(error=f"the body did not arrive within {seconds:g} s").text(),
        content_type="application/json",
        headers={"Connection": "close"},
    )


def bad_body(message: str, *, status: int = 400) -> web.HTTPException:
    """A 400 (or 422) naming what is wrong with the body, as JSON."""
    body = ErrorBody(error="invalid request",
                     problems=[ProblemBody(field="(body)", message=message)]).text()
    cls = web.HTTPUnprocessableEntity if status == 422 else web.HTTPBadRequest
    return cls(text=body, content_type="application/json")


async def read_body(request: web.Request) -> bytes:
    """The raw body, at most `service.max_body_bytes`, or a 413.

    Read once and kept by the request, so a signature check and the handler both see it:
    handlers read bodies with this, `read_json` or `read_form`, never from `request.content`
    (empty once the body was read) nor with aiohttp's `post()`/`json()`/`text()`.
    """
    limit = _limit(request)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, request.content_length)
    try:
        async with asyncio.timeout(_read_timeout_s(request)):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit, limit + 1) from None
    except TimeoutError:
        raise too_slow(_read_timeout_s(request)) from None
    if len(raw) > limit:
        raise too_large(limit, len(raw))
    return raw


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or a 422 that says what is wrong with it (bad UTF-8, bad syntax, an
    integer beyond Python's digit limit, nesting too deep)."""
    raw = await read_body(request)
    try:
        return json.loads(raw)
    except RecursionError:
        raise bad_body("nested too deeply", status=422) from None
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError and the integer digit limit are all ValueErrors.
        raise bad_body(f"not valid JSON: {_short(exc)}", status=422) from None


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The body as a form (URL-encoded, or the text fields of a multipart one), or a 400 when
    it is not valid in its charset. Read once and kept by the request."""
    if _FORM in request:
        return request[_FORM]
    content_type = request.content_type
    if content_type == MULTIPART:
        form = await _multipart(request)
    elif content_type in FORM_TYPES:
        form = _urlencoded(await read_body(request), request.charset or "utf-8")
    else:
        # Like aiohttp's post(): another content type carries no form fields.
        form = MultiDictProxy(MultiDict())
    request[_FORM] = form
    return form


def _urlencoded(raw: bytes, charset: str) -> MultiDictProxy[str]:
    try:
        text = raw.decode(charset)
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except LookupError:
        raise bad_body(f"unknown charset {charset[:40]!r}") from None
    except ValueError as exc:
        raise bad_body(f"not a valid form in {charset[:40]}: {_short(exc)}") from None
    return MultiDictProxy(MultiDict(pairs))


async def _multipart(request: web.Request) -> MultiDictProxy[str]:
    limit = _limit(request)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, request.content_length)
    try:
        async with asyncio.timeout(_read_timeout_s(request)):
            posted = await request.post()
    except TimeoutError:
        raise too_slow(_read_timeout_s(request)) from None
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit, limit + 1) from None
    except (ValueError, AssertionError) as exc:
        raise bad_body(f"not a valid multipart form: {_short(exc)}") from None
    return MultiDictProxy(MultiDict((k, v) for k, v in posted.items() if isinstance(v, str)))


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# A comment line after this much silence keeps proxies from closing an event stream.
KEEP_ALIVE_S = 15.0


class ClientLeft(ConnectionResetError):
    """The client closed the connection: an ordinary end, logged at debug (`http.client_left`)."""


class EventWriter:
    """Server-sent events on a prepared response: a document written as an event when it
    differs from the last one written, a keep-alive comment after KEEP_ALIVE_S of silence.
    A client that left ends the stream (`ClientLeft`) at the next wait, not the next write."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, last: str | None = None
    ) -> None:
        self._request = request
        self._response = response
        self._last = last
        self._idle = 0.0

    async def changed(self, name: str, data: str) -> bool:
        """Write `data` as event `name` unless it repeats the last one; True when written."""
        if data != self._last:
            await self.event(name, data)
            self._last = data
            return True
        if self._idle >= KEEP_ALIVE_S:
            await self._response.write(b": keep-alive\n\n")
            self._idle = 0.0
        return False

    async def event(self, name: str, data: str) -> None:
        """Write one event (each line of `data` its own `data:` line)."""
        lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
        await self._response.write(f"event: {name}\n{lines}\n".encode())
        self._idle = 0.0

    async def wait(self, seconds: float) -> None:
        """Sleep, counting the silence; raises ClientLeft once the client has gone."""
        await asyncio.sleep(seconds)
        self._idle += seconds
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ClientLeft("the client left the event stream")
