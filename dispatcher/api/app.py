"""The aiohttp application: error, auth and rate-limit middlewares, and every route module."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import structlog
from aiohttp import web

from dispatcher.access.auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    check_signature,
    first_use,
    retry_after,
)
from dispatcher.api import (
    alerts,
    answers,
    approvals,
    callbacks,
    cap,
    devices,
    directory_imports,
    drills,
    feeds,
    incidents,
    lint,
    ops,
    telnyx,
    voice,
)
from dispatcher.api.openapi import DOCUMENT, hand_written_paths, openapi_document, routes_of
from dispatcher.console.incidents import routes as incident_pages
from dispatcher.console.web import install as install_console
from dispatcher.edge import CALLER, SERVICE, error, read_body, refusal_response
from dispatcher.observability import redact_text
from dispatcher.public import answer as public_answer
from dispatcher.public import routes as public_routes
from dispatcher.refusals import Forbidden, Refused
from dispatcher.scim.routes import install as install_scim
from dispatcher.service import Service

log = structlog.get_logger("clarion.api")

# The route modules, mounted in this order. Each has `routes`, and describes its operations
# for /openapi.json in a route table (`ROUTES`) or, by hand, in `OPENAPI_PATHS`; it may have
# a `setup(app)` run inside the service's lifetime.
ROUTE_MODULES: tuple[ModuleType, ...] = (
    ops,
    alerts,
    lint,
    callbacks,
    voice,
    answers,
    cap,
    devices,
    approvals,
    drills,
    incidents,
    feeds,
    telnyx,
    directory_imports,
    public_routes,
    public_answer,
)

# Paths open without a token: probes, metrics, the API description, provider callbacks
# (those carry their own signatures).
PUBLIC_PREFIXES = ("/healthz", "/metrics", "/openapi.json", "/v1/callbacks/")
CALLBACK_PREFIX = "/v1/callbacks/"
# Headers an error response keeps from the aiohttp exception it replaces.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The route template a request matched (never the raw path, which callers control)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _error_message(response: web.StreamResponse) -> str:
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes) or not body.startswith(b"{"):
        return ""
    try:
        message = json.loads(body).get("error", "")
    except ValueError:
        return ""
    return redact_text(str(message))[:200]


def _refused(request: web.Request, response: web.StreamResponse) -> None:
    """Log a refused request, and count it when it is forged or malformed provider input."""
    route = route_of(request)
    caller = request.get(CALLER)
    status = response.status
    if request.path.startswith(CALLBACK_PREFIX):
        provider = route.removeprefix(CALLBACK_PREFIX) if route != "(no route)" else "unknown"
        request.app[SERVICE].metrics.rejected_input.labels(f"callback.{provider}").inc()
    event = "http.refused" if status in (401, 403, 429) else "http.rejected"
    emit = log.warning if status in (401, 403, 413) else log.info
    emit(event, method=request.method, route=route, status=status,
         caller=caller.name if caller is not None else None, reason=_error_message(response))


def _as_json(exc: web.HTTPException) -> web.Response:
    response = error(exc.status, exc.reason)
    for name in _KEPT_HEADERS:
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors for everything, every refusal logged, and never a stack trace in a response."""
    try:
        response = await handler(request)
    except ConnectionResetError:
        # The client went away (an event stream closed, a page left): ordinary, not an error.
        log.debug("http.client_left", method=request.method, route=route_of(request))
        return web.Response(status=499)
    except Refused as exc:
        response = refusal_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json":
            _refused(request, exc)
            raise
        response = _as_json(exc)
    except Exception as exc:
        # The trace goes to the log (redacted like every event), never to the caller.
        log.error("http.unhandled", method=request.method, route=route_of(request),
                  error=type(exc).__name__, exc_info=True)
        return error(500, "internal error: the request was not completed")
    if 400 <= response.status < 500:
        _refused(request, response)
    return response


def _unauthorized(message: str) -> web.Response:
    return error(401, message, headers={"WWW-Authenticate": 'Bearer realm="clarion"'})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer tokens on every route but the public ones; signatures from tokens that must
    sign; a rate limit per token; viewers may only read."""
    if request.path.startswith(PUBLIC_PREFIXES) or not request.path.startswith("/v1/"):
        return await handler(request)
    service = request.app[SERVICE]
    auth = service.auth
    caller = await auth.identify(request.headers.get("Authorization"))
    if caller is None:
        return _unauthorized("missing or unknown bearer token")
    secret = auth.secret_for(caller)
    if secret:
        now_ms = service.clock.now_ms()
        window_s = auth.settings.signature_window_s
        try:
            digest = check_signature(
                secret,
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                await read_body(request),
                now_s=now_ms / 1000,
                window_s=window_s,
            )
        except SignatureError as exc:
            service.metrics.rejected_input.labels("signature").inc()
            return _unauthorized(str(exc))
        if not await first_use(service.db, digest, now_ms=now_ms, keep_ms=2000 * window_s):
            service.metrics.rejected_input.labels("signature").inc()
            return _unauthorized("this signature was used before: a request is signed once")
    wait = auth.throttle(caller)
    if wait > 0:
        return error(429, "too many requests with this token", retry_after_s=round(wait, 3),
                     headers={"Retry-After": retry_after(wait)})
    request[CALLER] = caller
    try:
        service.permissions.check_api(caller)
    except Forbidden as exc:
        return refusal_response(exc)
    if request.method not in ("GET", "HEAD"):
        try:
            service.permissions.check_write(caller)
        except Forbidden as exc:
            return refusal_response(exc)
    return await handler(request)


def server_options(service: Service) -> dict[str, Any]:
    """What the HTTP server is started with: a connection that has not sent a whole request
    head within the read timeout (or sits idle that long between requests) is closed. Request
    bodies have the same timeout in `read_body`. A handler is not cancelled when its client
    leaves: it finishes its store writes, and an event stream ends at its next wait."""
    return {"keepalive_timeout": service.settings.service.read_timeout_s,
            "handler_cancellation": False}


def build_app(service: Service) -> web.Application:
    """The application for a service; start and stop the service with it."""
    app = web.Application(
        middlewares=[errors, authenticate],
        client_max_size=service.settings.service.max_body_bytes,
    )
    app[SERVICE] = service
    app[DOCUMENT] = openapi_document(
        service.settings, routes_of(ROUTE_MODULES), hand_written_paths(ROUTE_MODULES)
    )
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    # The operator console: its own sign-in, sessions and CSRF, outside the bearer-token API.
    install_console(app, service)
    app.add_routes(incident_pages)
    # SCIM provisioning: tokens of the scim role only, and SCIM's own error bodies.
    install_scim(app, service)

    async def lifecycle(app: web.Application) -> object:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    for module in ROUTE_MODULES:
        # A module's own start and stop (`setup(app)`), run inside the service's lifetime.
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    return app
