"""One channel's worker loop: claim in the order of urgency, send, settle, fall back, and keep
the channel's circuit breaker."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from channels.base import Channel
from channels.breaker import CircuitBreaker, Permit
from channels.errors import PermanentChannelError, TransientChannelError
from dispatcher.clock import Clock
from dispatcher.domain import AlertState, Batch, ChannelKind, Delivery, Outcome, Precedence, Receipt
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.fallbacks import Fallbacks
from dispatcher.engine.receipts import LateReceipts
from dispatcher.engine.resolver import Resolver
from dispatcher.engine.sweeper import Leases
from dispatcher.engine.tasks import Tasks, Wakes
from dispatcher.engine.urgency import ChannelUrgency
from dispatcher.observability import Metrics
from dispatcher.settings import Settings
from dispatcher.store.ledger import Claimed, DeliveryLedger, Fallback, Settled

log = structlog.get_logger("clarion.engine")

# Tries to write a sent batch's receipts before giving the batch up to its lease.
SETTLE_ATTEMPTS = 4
# Longest sleep of an idle or paused loop, so a stop or a closing breaker is noticed soon.
MAX_PAUSE_S = 1.0
# Our receipt detail for a number that sent STOP to us.
OPTED_OUT = "not sent: the number replied STOP"


class ChannelLoop:
    """Claims batches for one channel, as many at once as its `concurrency`, and sends each
    beside the loop; a slow or failing channel never holds up another."""

    def __init__(
        self,
        kind: ChannelKind,
        channel: Channel,
        *,
        settings: Settings,
        ledger: DeliveryLedger,
        alerts: Alerts,
        resolver: Resolver,
        fallbacks: Fallbacks,
        receipts: LateReceipts,
        urgency: ChannelUrgency,
        breakers: Mapping[ChannelKind, CircuitBreaker],
        leases: Leases,
        metrics: Metrics,
        clock: Clock,
        tasks: Tasks,
        wakes: Wakes,
    ) -> None:
        self._kind = kind
        self._channel = channel
        self._settings = settings
        self._ledger = ledger
        self._alerts = alerts
        self._resolver = resolver
        self._fallbacks = fallbacks
        self._receipts = receipts
        self._urgency = urgency
        # Read at each use: the map's entry may be replaced before the loop starts.
        self._breakers = breakers
        self._leases = leases
        self._metrics = metrics
        self._clock = clock
        self._tasks = tasks
        self._wakes = wakes

    @property
    def _breaker(self) -> CircuitBreaker:
        return self._breakers[self._kind]

    async def run(self) -> None:
        """Claim and send until the engine stops."""
        kind, channel = self._kind, self._channel
        settings = channel.settings
        breaker = self._breaker
        poll = self._settings.dispatch.poll_s
        slots = asyncio.Semaphore(settings.concurrency)
        wake = self._wakes.event(kind)
        while not self._tasks.stopping:
            await slots.acquire()
            if self._tasks.stopping:
                slots.release()
                break
            permit = breaker.permit(settings.batch_size)
            if not permit.limit:
                slots.release()
                await self._fallbacks.while_unavailable(kind)
                await asyncio.sleep(min(max(permit.wait_s, 0.01), poll, MAX_PAUSE_S))
                continue
            wake.clear()
            try:
                # No read before the claim: the claim itself takes the most urgent due class,
                # and the bound keeps it off less urgent ones while a more urgent class is out
                # (this node's batches, or the front the watcher last read from the store).
                ahead = self._urgency.ahead()
                claimed = await self._ledger.claim(
                    kind, owner=self._leases.owner, limit=permit.limit,
                    now_ms=self._clock.now_ms(), lease_ms=self._leases.lease_ms,
                    before=self._urgency.bound(ahead),
                    # Devices reach everyone nearby at once: their claims, like a live
                    # emergency's, go ahead of the writers waiting (receipts among them).
                    urgent=kind.is_device or ahead is Precedence.LIVE_EMERGENCY
                    or self._wakes.urgent_due(kind),
                )
            except Exception as exc:
                breaker.unused(permit)
                slots.release()
                log.error("engine.claim_failed", channel=channel.name, error=type(exc).__name__)
                await asyncio.sleep(poll)
                continue
            if not claimed:
                breaker.unused(permit)
                slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(poll, MAX_PAUSE_S))
                continue
            self._leases.held.update(c.id for c in claimed)
            urgency = claimed[0].urgency
            self._urgency.sending(urgency)
            task = self._tasks.spawn(self._send(claimed, permit), name=f"send-{kind}")
            task.add_done_callback(functools.partial(self._sent_one, slots, urgency))

    def _sent_one(self, slots: asyncio.Semaphore, urgency: int, _task: Any) -> None:
        self._urgency.sent(urgency)
        slots.release()

    async def _send(self, claimed: list[Claimed], permit: Permit) -> None:
        groups: dict[str, list[Claimed]] = defaultdict(list)
        for c in claimed:
            groups[c.alert_id].append(c)
        sent: list[Receipt] = []
        try:
            for alert_id, rows in groups.items():
                try:
                    sent.extend(await self._send_group(alert_id, rows))
                except Exception as exc:
                    # The rows stay claimed; their lease runs out and they are sent again.
                    log.error(
                        "engine.batch_crashed", channel=self._channel.name, alert_id=alert_id,
                        error=type(exc).__name__, detail=str(exc),
                    )
        finally:
            self._leases.held.difference_update(c.id for c in claimed)
            # What gave way was not tried: it says nothing of the provider's health.
            sent = [r for r in sent if r.outcome is not Outcome.DEFERRED]
            if sent:
                self._breaker.record(sent, probe=permit.probe)
            else:
                self._breaker.unused(permit)

    async def _send_group(self, alert_id: str, rows: list[Claimed]) -> Sequence[Receipt]:
        """Send one alert's share of a batch and settle it; returns what the provider said."""
        kind, channel = self._kind, self._channel
        record = await self._alerts.get(alert_id)
        now = self._clock.now_ms()
        unsent = None
        if record is None or record.state is AlertState.CANCELLED:
            unsent = "alert cancelled before sending"
        elif now >= record.expires_at:
            unsent = "deadline passed before sending"
        if record is None or unsent is not None:
            receipts: Sequence[Receipt] = [
                Receipt(r.id, Outcome.FAILED, unsent or "") for r in rows
            ]
            await self._settle(rows, receipts, now_ms=now, deadlines={alert_id: now})
            await self._alerts.finish(alert_id)
            return ()
        context = self._alerts.context(record, kind, now)
        stopped = await self._resolver.stopped(kind, rows)
        if stopped:
            # STOP arrived after these were queued: not one more message to those numbers.
            refused = [r for r in rows if r.address in stopped]
            await self._settle(
                refused, [Receipt(r.id, Outcome.FAILED, OPTED_OUT) for r in refused],
                now_ms=now, deadlines={alert_id: record.expires_at},
            )
            rows = [r for r in rows if r.address not in stopped]
            if not rows:
                self._alerts.finish_soon(alert_id)
                return ()
        links = await self._resolver.links(record, rows, context)
        batch = Batch(
            context,
            tuple(Delivery(r.id, r.recipient, r.address, r.language, r.attempts,
                           links.get(r.recipient, "")) for r in rows),
        )
        marking: asyncio.Future[Any] | None = None
        if self._alerts.first_send(alert_id, kind):
            self._metrics.first_send_seconds.labels(kind.value).observe(
                max(0.0, (now - record.created_at) / 1000)
            )
            # Written while the first batch is on its way, not before it: the store's one
            # writer may be busy enqueueing the rest of the audience.
            marking = asyncio.ensure_future(self._alerts.store.mark_sending(alert_id, now))
        started = time.perf_counter()
        try:
            receipts = await self._transmit(batch)
        finally:
            if marking is not None:
                await marking
        self._metrics.batch_seconds.labels(channel.name).observe(time.perf_counter() - started)
        await self._resolver.carrier_refused(kind, rows, receipts)
        by_id = {r.id: r for r in rows}
        fallbacks = await self._fallbacks.plan(
            kind, record,
            [(by_id[r.delivery_id], r.detail) for r in receipts if r.outcome is Outcome.FAILED],
        )
        settled = await self._settle(
            rows, receipts, now_ms=self._clock.now_ms(),
            deadlines={alert_id: record.expires_at}, fallbacks=fallbacks,
        )
        self._receipts.settled(kind, rows)
        self._count(alert_id, settled)
        if settled.fallbacks:
            self._fallbacks.queued(kind, alert_id, settled.fallbacks)
        self._alerts.finish_soon(alert_id)
        return receipts

    def _count(self, alert_id: str, settled: Settled) -> None:
        """Metrics and logs of a settled batch."""
        name = self._channel.name
        for outcome in ("accepted", "delivered", "failed", "retried", "deferred"):
            n = getattr(settled, outcome)
            if n:
                self._metrics.deliveries.labels(name, outcome).inc(n)
        if settled.deferred:
            log.info("delivery.gave_way", channel=name, alert_id=alert_id,
                     deliveries=settled.deferred)
        if settled.retried:
            log.info("delivery.retry_scheduled", channel=name, alert_id=alert_id,
                     deliveries=settled.retried)
        if settled.failed:
            log.warning("delivery.failed", channel=name, alert_id=alert_id,
                        deliveries=settled.failed)

    async def _settle(
        self,
        rows: Sequence[Claimed],
        receipts: Sequence[Receipt],
        *,
        now_ms: int,
        deadlines: dict[str, int],
        fallbacks: Sequence[Fallback] = (),
    ) -> Settled:
        """Write a batch's receipts, trying again if the store refuses once (a deadlock, a
        dropped connection): receipts lost here would mean the batch is sent again."""
        attempt = 1
        while True:
            try:
                return await self._ledger.settle(
                    self._kind, rows, receipts, now_ms=now_ms, deadlines=deadlines,
                    fallbacks=fallbacks,
                )
            except Exception as exc:
                if attempt >= SETTLE_ATTEMPTS:
                    raise
                log.warning("engine.settle_retried", channel=str(self._kind), attempt=attempt,
                            error=type(exc).__name__)
                await asyncio.sleep(0.05 * attempt)
                attempt += 1

    async def _transmit(self, batch: Batch) -> Sequence[Receipt]:
        """The channel's receipts; a batch that raised or ran out of time gets one each."""
        channel = self._channel
        deliveries = batch.deliveries
        try:
            async with asyncio.timeout(channel.settings.timeout_s * 3):
                return await channel.send(batch)
        except TransientChannelError as exc:
            return [Receipt(d.id, Outcome.RETRY, exc.detail, retry_after_s=exc.retry_after_s)
                    for d in deliveries]
        except PermanentChannelError as exc:
            return [Receipt(d.id, Outcome.FAILED, exc.detail) for d in deliveries]
        except TimeoutError:
            return [Receipt(d.id, Outcome.RETRY, "provider timed out") for d in deliveries]
        except Exception as exc:
            # A fault in our own channel code: keep the deliveries alive and say so loudly.
            log.error("channel.fault", channel=channel.name, error=type(exc).__name__,
                      detail=str(exc))
            return [Receipt(d.id, Outcome.RETRY, f"channel fault: {type(exc).__name__}")
                    for d in deliveries]
