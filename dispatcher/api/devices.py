"""Device routes: every siren, sign and speaker with its presence (online/offline, last seen)."""

from __future__ import annotations

from aiohttp import web

from channels.devices import Availability
from dispatcher.domain import DEVICE_KINDS
from dispatcher.edge import error, service_of

routes = web.RouteTableDef()


@routes.get("/v1/devices")
async def list_devices(request: web.Request) -> web.Response:
    """Devices with class, zone, state and last seen; filter by class, zone or state."""
    service = service_of(request)
    wanted = {k: request.query.get(k) for k in ("class", "zone", "state")}
    if wanted["class"] is not None and wanted["class"] not in DEVICE_KINDS:
        return error(422, "invalid request", problems=[
            {"field": "class", "message": "one of siren, signage, pa, desktop"}])
    if wanted["state"] is not None and wanted["state"] not in {a.value for a in Availability}:
        return error(422, "invalid request", problems=[
            {"field": "state", "message": "one of online, offline"}])
    listing = await service.devices.listing(
        device_class=wanted["class"], zone=wanted["zone"], state=wanted["state"]
    )
    return web.json_response(listing.to_json())
