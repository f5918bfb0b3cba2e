"""Receipts after the send: provider callbacks, device acks and the providers' answers when
asked, written in group commits; fallbacks for the deliveries they failed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from dispatcher.batching import GroupCommit
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, DeliveryState, LateReceipt
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.fallbacks import Fallbacks
from dispatcher.engine.tasks import Tasks
from dispatcher.observability import Metrics
from dispatcher.store.ledger import Claimed, DeliveryLedger, LateResult

# Late receipts (callbacks, acks) written in one transaction at most.
LATE_GROUP = 500
# Early device acks kept at most (the oldest go first; the device acks again on the retained
# state, so one dropped is only late).
EARLY_ACKS = 50_000


class LateReceipts:
    """The engine's ReceiptSink, and the device acks that came before their batch settled."""

    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        alerts: Alerts,
        fallbacks: Fallbacks,
        metrics: Metrics,
        clock: Clock,
        tasks: Tasks,
    ) -> None:
        self._ledger = ledger
        self._alerts = alerts
        self._fallbacks = fallbacks
        self._metrics = metrics
        self._clock = clock
        self._tasks = tasks
        # Device acks that came before their class published, by delivery (see LateResult).
        self._early: defaultdict[int, list[LateReceipt]] = defaultdict(list)
        self._group: GroupCommit[LateReceipt, LateResult | None] = GroupCommit(
            self.write, max_items=LATE_GROUP
        )

    def start(self) -> None:
        """Start taking receipts."""
        self._group.start()

    async def close(self) -> None:
        """Write what is waiting and stop."""
        await self._group.close()

    async def submit(self, receipt: LateReceipt, /) -> bool:
        """Record a callback or device ack against its delivery; False when none matches."""
        found = await self._group.submit(receipt)
        channel = receipt.channel.value
        if found is None:
            self._metrics.rejected_input.labels(f"receipt.{channel}").inc()
            return False
        self._metrics.late_receipts.labels(channel, receipt.outcome.value).inc()
        return True

    async def write(self, receipts: Sequence[LateReceipt]) -> list[LateResult | None]:
        """One group of late receipts: recorded together, then fallbacks for the deliveries
        they failed, before any caller hears that its receipt is recorded."""
        results = await self._ledger.record_late_many(receipts, self._clock.now_ms())
        for receipt, found in zip(receipts, results, strict=True):
            if found is not None and found.early:
                self._early[found.delivery_id].append(receipt)
                while len(self._early) > EARLY_ACKS:
                    del self._early[next(iter(self._early))]
            if found is None or not found.changed:
                continue
            if found.state is DeliveryState.FAILED:
                origin = Claimed(found.delivery_id, found.alert_id, found.recipient, "", "", 0)
                planned = await self._fallbacks.plan(
                    receipt.channel, await self._alerts.get(found.alert_id),
                    [(origin, receipt.detail)],
                )
                added = await self._ledger.add_fallbacks(planned, self._clock.now_ms())
                if added:
                    self._fallbacks.queued(receipt.channel, found.alert_id, added)
            self._alerts.finish_soon(found.alert_id)
        return results

    def settled(self, kind: ChannelKind, rows: Sequence[Claimed]) -> None:
        """A batch was settled: the acks that came before its class published count now."""
        early = [a for r in rows for a in self._early.pop(r.id, ())]
        if early:
            self._tasks.spawn(self.write(early), name=f"early-acks-{kind}")
