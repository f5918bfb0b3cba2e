"""The aiohttp application: auth and error middlewares, and every route module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module

import structlog
from aiohttp import web

from dispatcher.api.common import CALLER, SERVICE, error
from dispatcher.service import Service

log = structlog.get_logger("clarion.api")

ROUTE_MODULES = (
    "dispatcher.api.ops",
    "dispatcher.api.alerts",
    "dispatcher.api.lint",
    "dispatcher.api.callbacks",
    "dispatcher.api.cap",
    "dispatcher.api.devices",
)

# Paths open without a token: probes, metrics, the API description, provider callbacks
# (those carry their own signatures).
PUBLIC_PREFIXES = ("/healthz", "/metrics", "/openapi.json", "/v1/callbacks/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors for everything, and never a stack trace in a response."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return error(exc.status, exc.reason)
    except Exception as exc:
        log.error("http.unhandled", path=request.path, error=type(exc).__name__, detail=str(exc))
        return error(500, "internal error: the request was not completed")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer tokens on every route but the public ones; viewers may only read."""
    if request.path.startswith(PUBLIC_PREFIXES) or not request.path.startswith("/v1/"):
        return await handler(request)
    service = request.app[SERVICE]
    caller = service.auth.authenticate(request.headers.get("Authorization"))
    if caller is None:
        return web.json_response(
            {"error": "missing or unknown bearer token"}, status=401,
            headers={"WWW-Authenticate": 'Bearer realm="clarion"'},
        )
    if request.method not in ("GET", "HEAD") and caller.role.value == "viewer":
        return error(403, "role viewer may only read")
    request[CALLER] = caller
    return await handler(request)


def build_app(service: Service) -> web.Application:
    """The application for a service; start and stop the service with it."""
    app = web.Application(
        middlewares=[errors, authenticate],
        client_max_size=service.settings.service.max_body_bytes,
    )
    app[SERVICE] = service
    for name in ROUTE_MODULES:
        app.add_routes(import_module(name).routes)

    async def lifecycle(app: web.Application) -> object:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    return app
