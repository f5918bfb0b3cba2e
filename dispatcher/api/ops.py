"""Operational routes: health, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from dispatcher.api.openapi import DOCUMENT, OpenApiDocument, Reply, Route
from dispatcher.edge import reply, service_of

routes = web.RouteTableDef()


class Health(BaseModel):
    """Whether the service is alive and can read its store."""

    ok: bool
    store: str = Field(description="the store's dialect, or the error that reading it raised")
    channels: list[str] | None = Field(default=None, description="the configured channels")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive and able to read the store."""
    service = service_of(request)
    try:
        await service.db.ping()
    except Exception as exc:
        return reply(Health(ok=False, store=type(exc).__name__), status=503)
    return reply(Health(
        ok=True,
        store=service.db.dialect,
        channels=sorted(c.name for c in service.channels.values()),
    ))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = generate_latest(service_of(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(request.app[DOCUMENT])


ROUTES = (
    Route("get", "/healthz", "Liveness and store access", auth=False,
          replies={200: Reply("healthy", Health), 503: Reply("unhealthy", Health)}),
    Route("get", "/metrics", "Prometheus metrics", auth=False,
          replies={200: Reply("text exposition", text=("text/plain",))}),
    Route("get", "/openapi.json", "This document", auth=False,
          replies={200: Reply("OpenAPI 3.1", OpenApiDocument)}),
)
