"""The device channels: sirens, signage, PA speakers and desktop pop-ups, each a class of
devices on a bus."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar

from channels.base import Channel, ChannelSettings, ReceiptSink
from channels.devices.bus import DeviceBus
from channels.devices.presence import DevicePresence
from channels.devices.settings import DeviceSettings
from dispatcher.domain import AlertContext, Batch, ChannelKind, Receipt


class DeviceChannel(Channel):
    """A class of MQTT devices on a `DeviceBus`, shared with the other classes when given."""

    settings_model: ClassVar[type[ChannelSettings]] = DeviceSettings
    settings: DeviceSettings

    def __init__(self, settings: ChannelSettings, *, bus: DeviceBus | None = None) -> None:
        if not isinstance(settings, DeviceSettings):
            settings = DeviceSettings.model_validate(settings.model_dump())
        super().__init__(settings)
        # Without a shared bus the channel has a connection of its own.
        self._bus = bus if bus is not None else DeviceBus(settings)

    @property
    def bus(self) -> DeviceBus:
        """The connection this channel publishes on."""
        return self._bus

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Join the bus (connecting it if first) and report acks to `receipts`."""
        self._bus.attach(self.kind, self.settings, receipts)

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Publish the alert to the batch's zones: Delivery.recipient is the device id,
        Delivery.address its zone."""
        return await self._bus.transmit(self.kind, batch)

    async def take_down(self, alert: AlertContext, /) -> None:
        """Clear the alert from the zones that show it and announce the cancel."""
        await self._bus.withdraw(alert)

    async def close(self) -> None:
        """Leave the bus; the last channel on it disconnects."""
        await self._bus.release(self.kind)

    def devices(self) -> list[DevicePresence]:
        """This class's devices with state and last seen."""
        return self._bus.devices(self.kind)

    def offline_in(self, zones: Collection[str] = ()) -> list[DevicePresence]:
        """This class's devices that are not online in these zones (all when empty)."""
        return self._bus.offline(zones, self.kind)


class SirenChannel(DeviceChannel):
    """Outdoor sirens: the pattern to sound (alert, attack, test, cancel)."""

    name = "siren.mqtt"
    kind = ChannelKind.SIREN


class SignageChannel(DeviceChannel):
    """Digital signs: headline, instruction and text, with the drill banner for drills."""

    name = "signage.mqtt"
    kind = ChannelKind.SIGNAGE


class PaChannel(DeviceChannel):
    """PA and IP speakers: the text to speak, with the drill preamble for drills."""

    name = "pa.mqtt"
    kind = ChannelKind.PA


class DesktopChannel(DeviceChannel):
    """Desktop pop-up clients (`clarion desktop`): a full-screen window for a live alert, a
    marked smaller one for a drill, acknowledged by a person."""

    name = "desktop.mqtt"
    kind = ChannelKind.DESKTOP
