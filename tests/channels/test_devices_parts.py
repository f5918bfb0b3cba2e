"""The device bus's parts on their own: ack timeouts and presence follow the injected clock."""

from __future__ import annotations

import asyncio
from collections import Counter

from channels.devices import (
    AckState,
    AckTracker,
    Availability,
    DeviceBuses,
    DeviceRegistry,
    DeviceSettings,
    PaChannel,
    SirenChannel,
)
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, LateReceipt, Outcome


class SetClock(Clock):
    """A clock that stands still until the test moves it."""

    def __init__(self, now_ms: int) -> None:
        self.at = now_ms

    def now_ms(self) -> int:
        """The time the test set."""
        return self.at


class TestAckTimeouts:
    """A pending ack fails when the clock passes its window, not before."""

    async def test_silence_fails_only_after_the_window_on_the_clock(self) -> None:
        """Nothing is reported until the clock moves past ack_timeout_s; then one failure."""
        clock = SetClock(1_000_000)
        reported: list[LateReceipt] = []

        async def report(receipt: LateReceipt) -> None:
            reported.append(receipt)

        acks = AckTracker(clock, Counter(), report)
        acks.expect(ChannelKind.PA, "A1", "pa-1", 30.0)
        clock.at += 29_999
        assert await acks.expire_pending() == 0
        clock.at += 1
        assert await acks.expire_pending() == 1
        assert reported == [LateReceipt(ChannelKind.PA, Outcome.FAILED, alert_id="A1",
                                        recipient="pa-1", detail="no ack within 30 s")]

    async def test_an_ack_settles_the_pending_device(self) -> None:
        """An ack reported before the window closes leaves nothing to fail."""
        clock = SetClock(0)
        reported: list[LateReceipt] = []

        async def report(receipt: LateReceipt) -> None:
            reported.append(receipt)

        acks = AckTracker(clock, Counter(), report)
        acks.expect(ChannelKind.SIREN, "A1", "siren-1", 1.0)
        assert acks.on_ack(ChannelKind.SIREN, "siren-1", b'{"alert_id": "A1", "state": "sounded"}')
        assert not acks.on_ack(ChannelKind.SIREN, "siren-1", b"not json")
        task = asyncio.create_task(acks.run())
        try:
            async with asyncio.timeout(5):
                while not reported:
                    await asyncio.sleep(0)
        finally:
            task.cancel()
        clock.at += 5_000
        assert await acks.expire_pending() == 0
        assert acks.latest("A1", "siren-1") is AckState.SOUNDED
        assert [(r.outcome, r.detail) for r in reported] == [(Outcome.DELIVERED, "sounded")]


class TestPresenceClock:
    """Last seen is the injected clock's time."""

    def test_last_seen_is_the_clock_time(self) -> None:
        """An online message stamps the device with the clock's now."""
        clock = SetClock(1_700_000_000_000)
        devices = DeviceRegistry(clock, Counter())
        devices.on_availability(ChannelKind.SIGNAGE, "sign-1", b'{"state": "online", "zone": "a"}')
        (seen,) = devices.devices()
        assert (seen.state, seen.last_seen_ms, seen.zone) == (
            Availability.ONLINE, 1_700_000_000_000, "a"
        )


class TestBuses:
    """One bus per distinct connection settings."""

    def test_equal_settings_share_a_bus_and_others_do_not(self) -> None:
        """Channels on one broker share a bus; another port gets its own."""
        buses = DeviceBuses(SetClock(0))
        siren = buses.channel(SirenChannel, DeviceSettings(port=21883, ack_timeout_s=5))
        pa = buses.channel(PaChannel, DeviceSettings(port=21883, ack_timeout_s=9))
        other = buses.channel(SirenChannel, DeviceSettings(port=21884))
        assert siren.bus is pa.bus
        assert other.bus is not siren.bus
        assert len(buses.buses()) == 2
        assert siren.bus.client_id != other.bus.client_id
