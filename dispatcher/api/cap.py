"""CAP routes: one alert as CAP 1.2, and an Atom feed of the active alerts for pollers."""

from __future__ import annotations

from aiohttp import web

from dispatcher.cap.format import CAP_MEDIA_TYPE
from dispatcher.edge import service_of
from dispatcher.public.atom import ATOM_MEDIA_TYPE, atom_document
from dispatcher.public.feed import PUBLIC_FEED
from dispatcher.public.routes import conditional

routes = web.RouteTableDef()

@routes.get("/v1/alerts/{id}/cap")
async def get_alert_cap(request: web.Request) -> web.Response:
    """The alert as a CAP 1.2 document."""
    service = service_of(request)
    alert_id = request.match_info["id"]
    record = await service.alerts.get(alert_id)
    if record is None:
        return web.json_response({"error": f"no alert {alert_id}"}, status=404)
    body = await service.cap.document(record)
    return web.Response(body=body, content_type=CAP_MEDIA_TYPE, charset="utf-8")


@routes.get("/v1/feeds/cap")
async def cap_feed(request: web.Request) -> web.Response:
    """Atom feed of the alerts active now, newest first, each linking to its CAP."""
    feed = request.app.get(PUBLIC_FEED)
    if feed is not None:
        # From memory, like /public/alerts.json: pollers cost no query and get 304s.
        feed.rebuild_if_expired()
        atom = feed.snapshot.atom
        if atom is not None:
            return conditional(request, atom, {"Cache-Control": "private, no-cache"})
    service = service_of(request)
    settings = service.settings
    now_ms = service.clock.now_ms()
    records = await service.alerts.active(now_ms)
    body = atom_document(records, base_url=settings.service.base_url(),
                         institution=settings.service.institution, updated_ms=now_ms)
    return web.Response(body=body, content_type=ATOM_MEDIA_TYPE, charset="utf-8")
