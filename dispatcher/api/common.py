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


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or an HTTP error that says what is wrong with it."""
    service = service_of(request)
    limit = service.settings.service.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=request.content_length,
            text=f'{{"error": "body over {limit} bytes"}}',
            content_type="application/json",
        )
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=len(raw),
            text=f'{{"error": "body over {limit} bytes"}}',
            content_type="application/json",
        )
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({
                "error": "invalid request",
                "problems": [{"field": "(body)", "message": f"not valid JSON: {exc}"}],
            }),
            content_type="application/json",
        ) from None
