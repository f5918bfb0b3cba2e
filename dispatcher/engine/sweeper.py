"""Maintenance every node runs: lease renewal for the batches it sends, and the sweep
(deadlines, escalation, reconciliation with the providers, finished and abandoned alerts)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from channels.base import Channel
from dispatcher.answers.responses import Responses
from dispatcher.clock import Clock
from dispatcher.domain import AlertState, ChannelKind, LateReceipt
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.receipts import LateReceipts
from dispatcher.engine.resolver import Resolver
from dispatcher.engine.tasks import Wakes
from dispatcher.settings import Settings
from dispatcher.store.ledger import DeliveryLedger

log = structlog.get_logger("clarion.engine")

# Ids per lease-renewal statement: well under both drivers' limits on parameters.
RENEW_CHUNK = 1000
# Accepted deliveries asked about per channel and sweep.
RECONCILE = 100


class Leases:
    """The deliveries this engine holds claimed; their leases are renewed while they are
    sent, so no other node takes them over."""

    def __init__(self, *, owner: str, lease_s: float, ledger: DeliveryLedger, clock: Clock) -> None:
        self.owner = owner
        self.lease_ms = int(lease_s * 1000)
        self.held: set[int] = set()
        self._every = max(lease_s / 3, 0.05)
        self._ledger = ledger
        self._clock = clock

    async def renew(self) -> None:
        """Renew the held leases every third of a lease, until cancelled."""
        while True:
            await asyncio.sleep(self._every)
            ids = sorted(self.held)
            until = self._clock.now_ms() + self.lease_ms
            try:
                for start in range(0, len(ids), RENEW_CHUNK):
                    await self._ledger.renew(self.owner, ids[start : start + RENEW_CHUNK], until)
            except Exception as exc:
                log.error("engine.lease_renewal_failed", error=type(exc).__name__)


class Sweeper:
    """Fails what outlived its deadline, escalates unanswered questions, asks providers about
    what they accepted long ago, finishes alerts whose last sender died and resumes
    resolutions a dead process left half done."""

    def __init__(
        self,
        *,
        settings: Settings,
        channels: Mapping[ChannelKind, Channel],
        ledger: DeliveryLedger,
        alerts: Alerts,
        receipts: LateReceipts,
        responses: Responses | None,
        clock: Clock,
        wakes: Wakes,
        leases: Leases,
        resolver: Resolver,
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._ledger = ledger
        self._alerts = alerts
        self._receipts = receipts
        self._responses = responses
        self._clock = clock
        self._wakes = wakes
        self._leases = leases
        self._resolver = resolver

    async def run(self) -> None:
        """Sweep now and then, until cancelled."""
        every = min(max(self._settings.store.lease_s / 2, self._settings.dispatch.poll_s), 5.0)
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception as exc:
                log.error("engine.sweep_failed", error=type(exc).__name__, detail=str(exc))

    async def sweep(self) -> None:
        """Fail what outlived its deadline, finish alerts, resume abandoned resolutions."""
        now = self._clock.now_ms()
        expired = await self._ledger.expire_overdue(now)
        if expired:
            log.warning("delivery.deadline_passed", deliveries=expired)
        cancelled = await self._ledger.suppress_cancelled(now)
        if cancelled:
            log.info("delivery.cancelled_after_retry", deliveries=cancelled)
        if self._responses is not None:
            await self._responses.escalate_due(self._escalated)
        await self._ledger.fold_counts()
        await self.reconcile()
        dispatching = await self._alerts.store.in_state(AlertState.DISPATCHING)
        live = {record.id for record in dispatching}
        for alert_id in [a for a in self._alerts.cached() if a not in live]:
            # Finished or cancelled, perhaps by another node: read it again if ever needed.
            self._alerts.drop(alert_id)
        for record in dispatching:
            if record.resolved_at is not None:
                await self._alerts.finish(record.id)
            elif (
                not self._resolver.resolving(record.id)
                and now - record.created_at > self._leases.lease_ms
            ):
                # Its resolver died (or failed): re-planning is idempotent, so take it over.
                log.info("engine.resume_resolution", alert_id=record.id)
                self._resolver.dispatch(record.id)

    def _escalated(self, alert_id: str, added: int) -> None:
        """An escalation round queued deliveries: the alert is sending again, wake the loops."""
        del added
        self._alerts.forget(alert_id)
        self._wakes.wake_all()

    async def reconcile(self) -> int:
        """Ask each provider about deliveries it accepted long ago and said no more of (their
        callbacks lost, say, while this service was down); returns how many were settled."""
        dispatch = self._settings.dispatch
        now = self._clock.now_ms()
        older_than = now - int(dispatch.reconcile_after_s * 1000)
        settled = 0
        for kind, channel in self._channels.items():
            if not channel.reconciles:
                continue
            rows = await self._ledger.unsettled(kind, older_than_ms=older_than, limit=RECONCILE)
            rows = [r for r in rows if now - r.accepted_at <= dispatch.reconcile_within_s * 1000]
            if not rows:
                continue
            try:
                answers = await channel.reconcile([r.provider_ref for r in rows if r.provider_ref])
            except Exception as exc:
                log.warning("delivery.reconcile_failed", channel=channel.name,
                            error=type(exc).__name__)
                continue
            receipts = [
                LateReceipt(kind, a.outcome, delivery_id=r.id, detail=a.detail)
                for r in rows if (a := answers.get(r.provider_ref)) is not None
            ]
            found = await self._receipts.write(receipts) if receipts else []
            settled += sum(1 for f in found if f is not None and f.changed)
            # Those the provider still calls in progress are asked again later, after others.
            await self._ledger.touch([r.id for r in rows if r.provider_ref not in answers], now)
            if receipts:
                log.info("delivery.reconciled", channel=channel.name, asked=len(rows),
                         settled=len(receipts))
        return settled
