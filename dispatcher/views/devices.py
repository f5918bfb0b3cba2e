"""Every siren, sign and speaker with its presence, as `GET /v1/devices` and the console show it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from channels.base import Channel
from channels.devices import Availability, DeviceChannel, DevicePresence
from dispatcher.domain import ChannelKind
from dispatcher.store.directory import DirectoryStore
from dispatcher.views.model import ReadModel


class DeviceItem(ReadModel):
    """A device: where the directory puts it, and what its channel last heard."""

    id: str
    device_class: str = Field(alias="class")
    zone: str | None
    state: str
    last_seen: str | None
    last_seen_ms: int | None
    building: str | None
    name: str | None
    in_directory: bool


class DeviceList(ReadModel):
    """What `GET /v1/devices` returns: the devices, counts by class and state, the broker."""

    devices: list[DeviceItem]
    counts: dict[str, dict[str, int]]
    broker_connected: bool


class DeviceViews:
    """Joins the directory's devices with what the device channels heard."""

    def __init__(self, directory: DirectoryStore, channels: Mapping[ChannelKind, Channel]) -> None:
        self._directory = directory
        self._channels = channels

    @property
    def configured(self) -> bool:
        """True when this service has a device channel at all."""
        return any(isinstance(c, DeviceChannel) for c in self._channels.values())

    def presence(self) -> dict[str, DevicePresence]:
        """What the device channels heard, by device id."""
        found: dict[str, DevicePresence] = {}
        for channel in self._channels.values():
            if isinstance(channel, DeviceChannel):
                # The bus hears every class, also those with no channel configured.
                try:
                    heard = channel.bus.devices()
                except RuntimeError:
                    continue
                found.update((p.device_id, p) for p in heard)
        return found

    def broker_connected(self) -> bool:
        """True when a device channel's bus is connected to its broker now."""
        for channel in self._channels.values():
            if isinstance(channel, DeviceChannel):
                try:
                    if channel.bus.connected:
                        return True
                except RuntimeError:
                    continue
        return False

    async def devices(self) -> list[DeviceItem]:
        """The directory's devices with their presence, then any device heard but unlisted."""
        heard = self.presence()
        out: list[DeviceItem] = []
        for device in await self._directory.devices():
            presence = heard.pop(device.id, None)
            # Never heard from: offline, with no last-seen time.
            seen = (
                presence.as_json() if presence is not None
                else {"state": Availability.OFFLINE.value, "last_seen": None,
                      "last_seen_ms": None}
            )
            out.append(DeviceItem.model_validate({
                **seen, "id": device.id, "class": device.device_class, "zone": device.zone,
                "building": device.building, "name": device.name, "in_directory": True,
            }))
        for presence in sorted(heard.values(), key=lambda p: p.device_id):
            out.append(DeviceItem.model_validate({
                **presence.as_json(), "building": None, "name": None, "in_directory": False,
            }))
        return out

    async def listing(
        self, *, device_class: str | None = None, zone: str | None = None,
        state: str | None = None,
    ) -> DeviceList:
        """The devices that match every filter given, with counts by class and state."""
        devices = [
            d for d in await self.devices()
            if (device_class is None or d.device_class == device_class)
            and (zone is None or d.zone == zone)
            and (state is None or d.state == state)
        ]
        counts: dict[str, dict[str, int]] = {}
        for d in devices:
            by_state = counts.setdefault(d.device_class, {"online": 0, "offline": 0})
            by_state[d.state] += 1
        return DeviceList(devices=devices, counts=counts, broker_connected=self.broker_connected())
