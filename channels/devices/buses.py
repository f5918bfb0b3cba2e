"""The composition root's device buses: one per distinct connection, shared by its channels."""

from __future__ import annotations

from channels.base import Channel, ChannelSettings
from channels.devices.bus import DeviceBus
from channels.devices.channel import DeviceChannel
from channels.devices.settings import DeviceSettings, connection_key
from dispatcher.clock import Clock


class DeviceBuses:
    """The device buses of one service: channels with equal connection settings share one."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._buses: dict[tuple[object, ...], DeviceBus] = {}

    def bus_for(self, settings: DeviceSettings) -> DeviceBus:
        """The bus for these connection settings, made on first asking."""
        key = connection_key(settings)
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = DeviceBus(settings, clock=self._clock)
        return bus

    def channel(self, cls: type[Channel], settings: ChannelSettings) -> DeviceChannel:
        """A device channel of class cls on the bus its settings name."""
        if not issubclass(cls, DeviceChannel):
            raise TypeError(f"{cls.__name__} is not a device channel")
        if not isinstance(settings, DeviceSettings):
            settings = DeviceSettings.model_validate(settings.model_dump())
        return cls(settings, bus=self.bus_for(settings))

    def buses(self) -> list[DeviceBus]:
        """Every bus made so far."""
        return list(self._buses.values())
