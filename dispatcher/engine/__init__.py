"""The dispatch engine: audience into the outbox, outbox through the channels, receipts back.

Each channel has its own worker loop (`loop.py`) and its own concurrency, so a slow or failing
channel never holds up another; device channels get their deliveries first because the
audience stream yields them first. Each channel also has a circuit breaker: during a provider
outage its deliveries wait in the outbox (or go to the channel's fallback, `fallbacks.py`)
instead of hammering it. The resolver (`resolver.py`) writes an alert's audience into the
outbox, and the order of urgency (`urgency.py`) decides which class each channel serves now.

Several engines may share one PostgreSQL store. They claim batches with a lease that each
renews while it sends, so a dead process's batches are taken over once its leases run out;
the sweeper (`sweeper.py`) in every process fails what outlived its deadline, finishes alerts
whose last sender died, and resumes resolutions a dead process left half done.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping

import structlog

from channels.base import Channel
from channels.breaker import BreakerSettings, CircuitBreaker
from dispatcher.answers.responses import Responses
from dispatcher.clock import Clock
from dispatcher.domain import AlertContext, AlertState, ChannelKind, LateReceipt, Message
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.fallbacks import Fallbacks
from dispatcher.engine.loop import ChannelLoop
from dispatcher.engine.receipts import LateReceipts
from dispatcher.engine.resolver import Resolver
from dispatcher.engine.sweeper import Leases, Sweeper
from dispatcher.engine.tasks import Tasks, Wakes
from dispatcher.engine.urgency import ChannelUrgency
from dispatcher.observability import Metrics
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.ledger import DeliveryLedger, Front
from dispatcher.store.pauses import AlertPauses
from segments.audience import AudienceResolver

log = structlog.get_logger("clarion.engine")

__all__ = ["Engine"]


class Engine:
    """Runs resolution tasks, one worker loop per configured channel and the maintenance;
    the one object the rest of the service holds."""

    def __init__(
        self,
        *,
        settings: Settings,
        alerts: AlertStore,
        ledger: DeliveryLedger,
        audience: AudienceResolver,
        channels: dict[ChannelKind, Channel],
        metrics: Metrics,
        clock: Clock,
        single_node: bool,
        breakers: Mapping[ChannelKind, BreakerSettings] | None = None,
        responses: Responses | None = None,
        pauses: AlertPauses | None = None,
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._ledger = ledger
        self._pauses = pauses
        self._clock = clock
        self._single_node = single_node
        self.breakers = {
            kind: CircuitBreaker(
                channel.name, (breakers or {}).get(kind) or channel.settings.breaker
            )
            for kind, channel in channels.items()
        }
        self._tasks = Tasks()
        self._wakes = Wakes(channels)
        self._leases = Leases(
            owner=secrets.token_hex(4), lease_s=settings.store.lease_s, ledger=ledger,
            clock=clock,
        )
        self._alerts = Alerts(
            settings=settings, store=alerts, pauses=pauses, clock=clock, tasks=self._tasks,
            kinds=channels,
        )
        self._resolver = Resolver(
            settings=settings, alerts=self._alerts, ledger=ledger, audience=audience,
            kinds=channels, responses=responses, clock=clock, tasks=self._tasks,
            wakes=self._wakes,
        )
        fallbacks = Fallbacks(
            settings=settings, channels=channels, breakers=self.breakers, ledger=ledger,
            alerts=self._alerts, clock=clock, tasks=self._tasks, wakes=self._wakes,
        )
        self._receipts = LateReceipts(
            ledger=ledger, alerts=self._alerts, fallbacks=fallbacks, metrics=metrics,
            clock=clock, tasks=self._tasks,
        )
        self._urgency = {
            kind: ChannelUrgency(
                kind, channel, settings=settings, ledger=ledger, alerts=alerts, pauses=pauses,
                clock=clock, tasks=self._tasks,
            )
            for kind, channel in channels.items()
        }
        self._loops = {
            kind: ChannelLoop(
                kind, channel, settings=settings, ledger=ledger, alerts=self._alerts,
                resolver=self._resolver, fallbacks=fallbacks, receipts=self._receipts,
                urgency=self._urgency[kind], breakers=self.breakers, leases=self._leases,
                metrics=metrics, clock=clock, tasks=self._tasks, wakes=self._wakes,
            )
            for kind, channel in channels.items()
        }
        self._sweeper = Sweeper(
            settings=settings, channels=channels, ledger=ledger, alerts=self._alerts,
            receipts=self._receipts, responses=responses, clock=clock, wakes=self._wakes,
            leases=self._leases, resolver=self._resolver,
        )
        self._running: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def channels(self) -> dict[ChannelKind, Channel]:
        """The channels this engine sends on."""
        return self._channels

    @property
    def owner(self) -> str:
        """This engine's name on the claims it holds."""
        return self._leases.owner

    @property
    def lease_ms(self) -> int:
        """How long a claim holds without renewal."""
        return self._leases.lease_ms

    async def start(self) -> None:
        """Take back abandoned claims, resume unfinished alerts, start the channel loops."""
        if self._single_node:
            # Only this process uses the store: whatever is claimed was claimed by a dead one.
            released = await self._ledger.release_all()
            if released:
                log.warning("engine.claims_released", deliveries=released)
        self._receipts.start()
        for channel in self._channels.values():
            await channel.start(self)
        for kind in sorted(self._channels, key=lambda k: k.urgency):
            self._running.append(asyncio.create_task(self._loops[kind].run(), name=f"loop-{kind}"))
            self._running.append(
                asyncio.create_task(self._urgency[kind].watch(), name=f"front-{kind}")
            )
        for record in await self._alerts.store.in_state(AlertState.DISPATCHING):
            if record.resolved_at is None:
                log.info("engine.resume_resolution", alert_id=record.id)
                self.dispatch(record.id)
            else:
                await self._alerts.finish(record.id)
        self._heartbeat = asyncio.create_task(self._leases.renew(), name="lease-heartbeat")
        self._running.append(asyncio.create_task(self._sweeper.run(), name="outbox-sweeper"))

    async def stop(self) -> None:
        """Stop claiming, let in-flight batches finish within the grace time, hand back the rest."""
        self._tasks.stopping = True
        self._wakes.wake_all()
        # Claiming stops first; a claim cut short is rolled back or handed back below.
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._tasks.drain(self._settings.dispatch.shutdown_grace_s)
        # Leases are renewed until the last batch is settled, so no other node takes them over.
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        released = await self._ledger.release_owner(self.owner)
        if released:
            log.warning("engine.claims_handed_back", deliveries=released)
        for channel in self._channels.values():
            await channel.close()
        await self._receipts.close()

    def dispatch(self, alert_id: str) -> None:
        """Start resolving a stored alert into the outbox (after its 202)."""
        self._resolver.dispatch(alert_id)

    def forget(self, alert_id: str) -> None:
        """Drop the cached copy of an alert (it changed: cancelled or updated)."""
        self._alerts.forget(alert_id)

    def rendering(self, record: AlertRecord, kind: ChannelKind) -> dict[str, Message]:
        """The alert's messages on a channel, by language (what a voice call's TwiML says)."""
        return self._alerts.messages(record, kind)

    async def front(self, kind: ChannelKind) -> Front | None:
        """Read the most urgent work on a channel, tell the channel's pacing who has the right
        of way, and keep the pauses of the alerts that wait behind it."""
        return await self._urgency[kind].read_front()

    async def late_receipt(self, receipt: LateReceipt, /) -> bool:
        """ReceiptSink: record a callback or device ack against its delivery."""
        return await self._receipts.submit(receipt)

    async def sweep(self) -> None:
        """Fail what outlived its deadline, finish alerts, resume abandoned resolutions."""
        await self._sweeper.sweep()

    async def reconcile(self) -> int:
        """Ask the providers about deliveries they accepted long ago and said no more of;
        returns how many were settled."""
        return await self._sweeper.reconcile()

    async def cancel(self, record: AlertRecord, *, actor: str, reason: str) -> int:
        """Withdraw an alert: nothing queued is sent, devices take it down."""
        stopped = await self._alerts.store.cancel(
            record.id, actor=actor, reason=reason, now_ms=self._clock.now_ms()
        )
        self.forget(record.id)
        context = AlertContext(
            alert_id=record.id, kind=record.kind, mode=record.mode,
            now_ms=self._clock.now_ms(), expires_ms=record.expires_at, zones=record.zones,
            references=record.references_id,
        )
        for kind, channel in self._channels.items():
            if kind in record.channels:
                try:
                    await channel.withdraw(context)
                except Exception as exc:
                    log.error("channel.withdraw_failed", channel=channel.name,
                              error=type(exc).__name__)
        if self._pauses is not None:
            await self._pauses.close_alert(record.id, self._clock.now_ms())
        log.info("alert.cancelled", alert_id=record.id, deliveries_stopped=stopped)
        return stopped
