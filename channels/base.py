"""The Channel contract: one receipt per delivery, and the bookkeeping no channel may skip."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol, final

import structlog
from pydantic import Field

from channels.breaker import BreakerSettings
from channels.pacing import GiveWay, RightOfWay, UrgentLimiter
from dispatcher.access.credentials import SettingsModel
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    LateReceipt,
    Outcome,
    ProviderAnswer,
    Receipt,
)

log = structlog.get_logger("clarion.channel")

GAVE_WAY = "not sent yet: gave way to a more urgent alert"


class ChannelSettings(SettingsModel):
    """Settings every channel takes; channels extend this with their own."""

    enabled: bool = True
    rate_per_second: float = Field(default=0.0, ge=0, description="0 means no limit")
    batch_size: int = Field(default=50, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=15.0, gt=0)
    fallback: ChannelKind | None = None
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)


class ReceiptSink(Protocol):
    """Where receipts that arrive after the send (callbacks, device acks) are recorded."""

    async def late_receipt(self, receipt: LateReceipt, /) -> bool:
        """Record it against the delivery found by id, provider_ref or (alert_id, recipient);
        False when no delivery matches."""
        ...


class Channel(ABC):
    """A way to reach people or devices; subclasses implement `transmit` only."""

    name: ClassVar[str]
    kind: ClassVar[ChannelKind]
    settings_model: ClassVar[type[ChannelSettings]] = ChannelSettings
    reconciles: ClassVar[bool] = False
    """True when `reconcile` can ask the provider what became of an accepted delivery."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        # Which class of alert has the channel now: set by the engine, read by every pace and
        # slot of the channel, so less urgent batches give way before they are handed over.
        self.right_of_way = RightOfWay()
        rate = settings.rate_per_second
        self._limiter = UrgentLimiter(rate, 1.0, self.right_of_way) if rate > 0 else None
        # Withdrawn alerts (id -> expiry): a batch claimed before the cancel never goes out.
        self._withdrawn: dict[str, int] = {}

    # Optional hooks: a channel overrides the ones it needs.
    async def start(self, receipts: ReceiptSink, /) -> None:  # noqa: B027
        """Open connections or pools and listen for late receipts; called once at start."""

    async def take_down(self, alert: AlertContext, /) -> None:  # noqa: B027
        """The alert was cancelled or cleared: take down whatever still shows it."""

    async def close(self) -> None:  # noqa: B027
        """Release connections; called once at shutdown."""

    async def reconcile(self, provider_refs: Sequence[str], /) -> dict[str, ProviderAnswer]:
        """What the provider says of deliveries it accepted, by reference: those it settled,
        or no longer knows (FAILED, said so); the ones still under way are left out."""
        del provider_refs
        return {}

    def destinations(self, kind: AlertKind, /) -> Sequence[str]:
        """Names of the destinations this channel's config holds for alerts of a kind (a
        broadcast target, a webhook subscriber); none for channels that reach the audience."""
        del kind
        return ()

    @final
    async def withdraw(self, alert: AlertContext, /) -> None:
        """The alert was cancelled: send nothing more of it, and take down what shows it."""
        now = alert.now_ms
        for gone in [a for a, until in self._withdrawn.items() if until < now]:
            del self._withdrawn[gone]
        self._withdrawn[alert.alert_id] = max(alert.expires_ms, now)
        await self.take_down(alert)

    @final
    async def send(self, batch: Batch, /) -> Sequence[Receipt]:
        """Send a batch and return exactly one receipt per delivery, in order."""
        if not batch.deliveries:
            return ()
        try:
            if self._limiter is not None:
                units = min(self.cost(batch), self._limiter.max_rate)
                for _ in batch.deliveries:
                    await self._limiter.acquire(units, batch.alert.rank)
            self.right_of_way.check(batch.alert.rank)
        except GiveWay:
            # Nothing of it was handed over: it goes back to the queue, the try not counted.
            return [Receipt(d.id, Outcome.DEFERRED, GAVE_WAY) for d in batch.deliveries]
        if batch.alert.alert_id in self._withdrawn:
            # Checked after the rate limit's wait, which a cancel may have come during.
            return [Receipt(d.id, Outcome.FAILED, "not sent: the alert was cancelled")
                    for d in batch.deliveries]
        started = time.perf_counter()
        receipts = await self.transmit(batch)
        if len(receipts) != len(batch.deliveries) or any(
            r.delivery_id != d.id for r, d in zip(receipts, batch.deliveries, strict=True)
        ):
            raise RuntimeError(
                f"{self.name} returned {len(receipts)} receipts for {len(batch)} deliveries"
            )
        log.debug(
            "channel.batch_sent",
            channel=self.name,
            alert_id=batch.alert.alert_id,
            drill=batch.alert.drill,
            size=len(batch),
            failed=sum(r.outcome is Outcome.FAILED for r in receipts),
            retry=sum(r.outcome is Outcome.RETRY for r in receipts),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return receipts

    def cost(self, batch: Batch, /) -> float:
        """Rate-limit units one delivery of this batch uses (SMS: its segments)."""
        return 1.0

    @abstractmethod
    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Hand the batch to the provider; raise a ChannelError only when all of it failed."""

    def describe(self) -> dict[str, object]:
        """Settings as they may be shown: secrets masked."""
        shown = self.settings.model_dump(mode="json")
        return {k: ("***" if _is_secret(k) and v else v) for k, v in shown.items()}


def _is_secret(key: str) -> bool:
    return any(word in key for word in ("password", "token", "secret", "key"))
