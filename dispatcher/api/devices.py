"""Device routes: every siren, sign and speaker with its presence (online/offline, last seen)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from channels.devices import Availability, DeviceChannel, DevicePresence
from dispatcher.api.common import error, service_of
from dispatcher.domain import DEVICE_KINDS
from dispatcher.service import Service
from dispatcher.store.directory import DirectoryStore

routes = web.RouteTableDef()


def presence_of(service: Service) -> dict[str, DevicePresence]:
    """What the device channels heard, by device id."""
    found: dict[str, DevicePresence] = {}
    for channel in service.channels.values():
        if isinstance(channel, DeviceChannel):
            # The bus hears every class, also those with no channel configured.
            try:
                heard = channel.bus.devices()
            except RuntimeError:
                continue
            found.update((p.device_id, p) for p in heard)
    return found


async def device_list(service: Service) -> list[dict[str, Any]]:
    """The directory's devices joined with their presence, then any device heard but unlisted."""
    heard = presence_of(service)
    out = []
    for device in await DirectoryStore(service.db).devices():
        presence = heard.pop(device.id, None)
        # Never heard from: offline, with no last-seen time.
        item: dict[str, Any] = (
            presence.as_json() if presence is not None
            else {"state": Availability.OFFLINE.value, "last_seen": None, "last_seen_ms": None}
        )
        item.update(
            {"id": device.id, "class": device.device_class, "zone": device.zone,
             "building": device.building, "name": device.name, "in_directory": True}
        )
        out.append(item)
    for presence in sorted(heard.values(), key=lambda p: p.device_id):
        out.append({**presence.as_json(), "building": None, "name": None,
                    "in_directory": False})
    return out


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
    devices = [
        d for d in await device_list(service)
        if all(v is None or d[k] == v for k, v in wanted.items())
    ]
    counts: dict[str, dict[str, int]] = {}
    for d in devices:
        by_state = counts.setdefault(d["class"], {"online": 0, "offline": 0})
        by_state[d["state"]] += 1
    connected = any(
        isinstance(c, DeviceChannel) and _connected(c) for c in service.channels.values()
    )
    return web.json_response({"devices": devices, "counts": counts, "broker_connected": connected})


def _connected(channel: DeviceChannel) -> bool:
    try:
        return channel.bus.connected
    except RuntimeError:
        return False
