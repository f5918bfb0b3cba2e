"""Operational routes: health, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.api.common import service_of
from dispatcher.api.openapi import openapi_document

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive and able to read the store."""
    service = service_of(request)
    try:
        await service.db.ping()
    except Exception as exc:
        return web.json_response({"ok": False, "store": type(exc).__name__}, status=503)
    return web.json_response(
        {
            "ok": True,
            "store": service.db.dialect,
            "channels": sorted(c.name for c in service.channels.values()),
        }
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = generate_latest(service_of(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(openapi_document(service_of(request).settings))
