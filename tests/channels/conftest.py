"""Fixtures the channel tests share: a real mosquitto on a free port, and a receipt recorder."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from channels.push_apprise import ApprisePush, AppriseSettings
from channels.sandbox.broker import BrokerUnavailable, Mosquitto
from dispatcher.domain import ChannelKind, Outcome


@pytest_asyncio.fixture
async def mosquitto() -> AsyncIterator[Mosquitto]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    broker = Mosquitto()
    try:
        await broker.start()
    except BrokerUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"needs mosquitto ({exc})")
    yield broker
    await broker.stop()


@dataclass(frozen=True, slots=True)
class LateReceipt:
    """One receipt a channel reported after its send."""

    channel: ChannelKind
    outcome: Outcome
    alert_id: str | None
    recipient: str | None
    detail: str
    provider_ref: str | None
    delivery_id: int | None = None


class RecordingSink:
    """A ReceiptSink that keeps every late receipt and lets a test wait for some."""

    def __init__(self) -> None:
        self.receipts: list[LateReceipt] = []
        self._changed = asyncio.Event()

    async def late_receipt(
        self,
        channel: ChannelKind,
        outcome: Outcome,
        *,
        delivery_id: int | None = None,
        provider_ref: str | None = None,
        alert_id: str | None = None,
        recipient: str | None = None,
        detail: str = "",
    ) -> bool:
        """Record it."""
        self.receipts.append(
            LateReceipt(channel, outcome, alert_id, recipient, detail, provider_ref, delivery_id)
        )
        self._changed.set()
        return True

    def where(self, **match: object) -> list[LateReceipt]:
        """The receipts whose fields equal the given values."""
        return [r for r in self.receipts if all(getattr(r, k) == v for k, v in match.items())]

    async def wait_for(
        self, predicate: Callable[[RecordingSink], bool], timeout_s: float = 15.0
    ) -> None:
        """Wait until predicate(self) holds; fail the test after timeout_s."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def receipts() -> RecordingSink:
    """A fresh receipt recorder."""
    return RecordingSink()


@pytest.fixture
async def make_channel() -> AsyncIterator[Callable[..., ApprisePush]]:
    """Push channels made with settings overrides, closed after the test."""
    made: list[ApprisePush] = []

    def make(**overrides: Any) -> ApprisePush:
        channel = ApprisePush(AppriseSettings.model_validate({"timeout_s": 5, **overrides}))
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()
