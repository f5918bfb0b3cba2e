"""Several providers of one channel kind, in the configured order: each batch goes to the first
one that is up, and what a provider refused for a reason of its own goes on to the next.

The engine sees one channel per kind (`sms.failover`, `voice.failover`), so its claims,
urgency order, leases and "one receipt per delivery" are those of any channel. Inside, each
provider keeps its own circuit breaker: while a provider's breaker is open, or an operator
drained it (`clarion provider drain NAME`, kept in the store so every node honours it), its
batches skip it. A delivery moves on only when its provider certainly sent nothing
(`Receipt.provider_fault`: an error answer such as 5xx, 429, a suspended account or sender, or
a connection refused), so no person gets the message from two providers; a timeout, which
may hide a message already sent, stays with its provider and is retried there. Each receipt's
detail begins with the provider's name.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Protocol, runtime_checkable

import structlog

from channels.base import Channel, ChannelSettings, ReceiptSink
from channels.breaker import CircuitBreaker
from channels.errors import ChannelError, PermanentChannelError
from channels.pacing import RightOfWay
from dispatcher.domain import (
    AlertContext,
    Batch,
    ChannelKind,
    Delivery,
    Outcome,
    Precedence,
    ProviderAnswer,
    Receipt,
)

log = structlog.get_logger("clarion.channel.failover")

# How long a read of the drained providers is trusted before the store is asked again.
DRAINS_TTL_S = 2.0

DrainReader = Callable[[], Awaitable[frozenset[str]]]


@runtime_checkable
class OwnsRefs(Protocol):
    """A provider that can tell its own message references from another provider's."""

    def owns_ref(self, provider_ref: str, /) -> bool:
        """True when the reference is one this provider gave."""
        ...


class SharedRightOfWay(RightOfWay):
    """The failover channel's right of way, passed on to each provider's own."""

    def __init__(self, providers: Sequence[RightOfWay]) -> None:
        super().__init__()
        self._providers = tuple(providers)

    def set(self, front: Precedence | None) -> None:
        """The engine's word, for this channel and every provider in it."""
        super().set(front)
        for way in self._providers:
            way.set(front)


async def nothing_drained() -> frozenset[str]:
    """The drain reader without a store: nothing is drained."""
    return frozenset()


class ProviderFailover(Channel):
    """One channel kind over providers in order; see the module's docstring."""

    name: ClassVar[str] = "failover"
    kind: ClassVar[ChannelKind]
    reconciles: ClassVar[bool] = True
    """Each provider that reconciles is asked about its own references."""

    def __init__(
        self,
        providers: Sequence[Channel],
        *,
        drained: DrainReader = nothing_drained,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(providers) < 2 or any(p.kind is not self.kind for p in providers):
            raise ValueError(f"{self.name} needs two or more {self.kind} providers")
        first = providers[0].settings
        super().__init__(
            ChannelSettings(
                batch_size=first.batch_size,
                concurrency=max(p.settings.concurrency for p in providers),
                # A batch may be tried on every provider in turn.
                timeout_s=sum(p.settings.timeout_s for p in providers),
                fallback=first.fallback,
                breaker=first.breaker,
            )
        )
        self.providers = tuple(providers)
        # The engine sets the channel's right of way; every provider's paces must hear it.
        self.right_of_way = SharedRightOfWay([p.right_of_way for p in providers])
        self.breakers = {
            p.name: CircuitBreaker(p.name, p.settings.breaker, monotonic=monotonic)
            for p in providers
        }
        self._read_drained = drained
        self._drained: frozenset[str] = frozenset()
        self._drained_at = -DRAINS_TTL_S
        self._monotonic = monotonic

    def provider(self, name: str) -> Channel | None:
        """The provider channel of that name, if it is one of these."""
        return next((p for p in self.providers if p.name == name), None)

    async def drained(self) -> frozenset[str]:
        """The drained providers, read from the store at most every DRAINS_TTL_S."""
        now = self._monotonic()
        if now - self._drained_at >= DRAINS_TTL_S:
            try:
                self._drained = await self._read_drained()
            except Exception as exc:
                # The last answer stands: a store hiccup must not stop sending.
                log.warning("provider.drains_unread", channel=self.name,
                            error=type(exc).__name__)
            self._drained_at = now
        return self._drained

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Start every provider."""
        for provider in self.providers:
            await provider.start(receipts)

    async def take_down(self, alert: AlertContext, /) -> None:
        """Every provider withdraws the alert."""
        for provider in self.providers:
            await provider.withdraw(alert)

    async def close(self) -> None:
        """Close every provider."""
        for provider in self.providers:
            await provider.close()

    async def reconcile(self, provider_refs: Sequence[str], /) -> dict[str, ProviderAnswer]:
        """Each reference asked of the provider that gave it."""
        found: dict[str, ProviderAnswer] = {}
        left = list(provider_refs)
        claimers = [p for p in self.providers if p.reconciles and isinstance(p, OwnsRefs)]
        for provider in claimers:
            assert isinstance(provider, OwnsRefs)
            mine = [r for r in left if provider.owns_ref(r)]
            left = [r for r in left if not provider.owns_ref(r)]
            if mine:
                found.update(await provider.reconcile(mine))
        rest = [p for p in self.providers if p.reconciles and not isinstance(p, OwnsRefs)]
        if left and len(rest) == 1:
            found.update(await rest[0].reconcile(left))
        return found

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Each delivery through the first provider up that takes it; one receipt each."""
        drained = await self.drained()
        order = [p for p in self.providers if p.name not in drained]
        final: dict[int, Receipt] = {}
        pending: list[Delivery] = list(batch.deliveries)
        if not order:
            detail = f"not sent: every {self.kind} provider is drained"
            return [Receipt(d.id, Outcome.RETRY, detail) for d in pending]
        wait_s = 0.0
        for position, provider in enumerate(order):
            if not pending:
                break
            last = position == len(order) - 1
            breaker = self.breakers[provider.name]
            permit = breaker.permit(len(pending))
            if not permit.limit:
                wait_s = max(wait_s, permit.wait_s)
                continue
            sending, later = pending[: permit.limit], pending[permit.limit :]
            receipts = await self._send(provider, Batch(batch.alert, tuple(sending)))
            tried = [r for r in receipts if r.outcome is not Outcome.DEFERRED]
            if tried:
                breaker.record(tried, probe=permit.probe)
            else:
                breaker.unused(permit)
            moved = 0
            for delivery, receipt in zip(sending, receipts, strict=True):
                if receipt.provider_fault and not last:
                    later.append(delivery)
                    moved += 1
                else:
                    final[delivery.id] = _named(receipt, provider.name)
            if moved:
                log.warning("provider.failover", channel=self.name, provider=provider.name,
                            alert_id=batch.alert.alert_id, deliveries=moved)
            pending = later
        for delivery in pending:
            # No provider would take these now: they wait for the first one back.
            final[delivery.id] = Receipt(
                delivery.id, Outcome.RETRY,
                f"not sent: no {self.kind} provider available", retry_after_s=wait_s or None,
            )
        return [final[d.id] for d in batch.deliveries]

    async def _send(self, provider: Channel, batch: Batch) -> Sequence[Receipt]:
        """The provider's receipts; a whole-batch failure is one provider-side receipt each."""
        try:
            return await provider.send(batch)
        except ChannelError as exc:
            outcome = Outcome.FAILED if isinstance(exc, PermanentChannelError) else Outcome.RETRY
            return [
                Receipt(d.id, outcome, exc.detail, retry_after_s=exc.retry_after_s,
                        provider_fault=True)
                for d in batch.deliveries
            ]
        except Exception as exc:
            # A fault in a provider's own code: its share is retried (whether it sent anything
            # is unknown), and what an earlier provider took keeps its receipt.
            log.error("channel.fault", channel=provider.name, error=type(exc).__name__,
                      detail=str(exc))
            return [Receipt(d.id, Outcome.RETRY, f"channel fault: {type(exc).__name__}")
                    for d in batch.deliveries]


def _named(receipt: Receipt, provider: str) -> Receipt:
    """The receipt with its provider named at the head of its detail."""
    if receipt.outcome is Outcome.DEFERRED or receipt.detail.startswith(f"{provider}:"):
        return receipt
    detail = f"{provider}: {receipt.detail}" if receipt.detail else provider
    return Receipt(
        receipt.delivery_id, receipt.outcome, detail, receipt.provider_ref,
        receipt.retry_after_s, opted_out=receipt.opted_out,
        provider_fault=receipt.provider_fault,
    )


class SmsFailover(ProviderFailover):
    """SMS over several providers."""

    name: ClassVar[str] = "sms.failover"
    kind: ClassVar[ChannelKind] = ChannelKind.SMS


class VoiceFailover(ProviderFailover):
    """Voice calls over several providers."""

    name: ClassVar[str] = "voice.failover"
    kind: ClassVar[ChannelKind] = ChannelKind.VOICE


FAILOVER_CLASSES: dict[ChannelKind, type[ProviderFailover]] = {
    ChannelKind.SMS: SmsFailover,
    ChannelKind.VOICE: VoiceFailover,
}
