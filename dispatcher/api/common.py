"""What every route module shares: the service key, the caller, and error bodies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from dispatcher.auth import Caller
    from dispatcher.service import Service

SERVICE: web.AppKey[Service] = web.AppKey("service")
CALLER: web.RequestKey[Caller] = web.RequestKey("caller")


def service_of(request: web.Request) -> Service:
    """The running service."""
    return request.app[SERVICE]


def caller_of(request: web.Request) -> Caller:
    """Who made this (authenticated) request."""
    return request[CALLER]


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error body: `{"error": message, ...}` and no stack trace, ever."""
    return web.json_response({"error": message, **extra}, status=status)


def too_large(limit: int, actual: int) -> web.HTTPRequestEntityTooLarge:
    """The 413 for a body over `limit` bytes, as JSON."""
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=actual,
        text=json.dumps({"error": f"body over {limit} bytes"}),
        content_type="application/json",
    )


async def read_body(request: web.Request) -> bytes:
    """The raw body, at most `service.max_body_bytes`, or a 413.

    Read once and kept by the request, so a signature check and the handler both see it:
    handlers must read bodies with this (or `read_json`, or `request.post()`), never from
    `request.content`, which is empty once the body was read.
    """
    limit = service_of(request).settings.service.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, request.content_length)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit, limit + 1) from None
    if len(raw) > limit:
        raise too_large(limit, len(raw))
    return raw


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or an HTTP error that says what is wrong with it."""
    raw = await read_body(request)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        message = (
            "nested too deeply" if isinstance(exc, RecursionError) else f"not valid JSON: {exc}"
        )
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({
                "error": "invalid request",
                "problems": [{"field": "(body)", "message": message}],
            }),
            content_type="application/json",
        ) from None
