"""The dispatch engine: audience into the outbox, outbox through the channels, receipts back.

Each channel has its own worker loop and its own concurrency, so a slow or failing channel
never holds up another; device channels get their deliveries first because the audience
stream yields them first.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import structlog

from channels.base import Channel
from channels.errors import PermanentChannelError, TransientChannelError
from dispatcher.clock import Clock
from dispatcher.domain import (
    AlertContext,
    AlertState,
    Batch,
    ChannelKind,
    Delivery,
    Outcome,
    Receipt,
)
from dispatcher.observability import Metrics
from dispatcher.rendering import languages
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.ledger import Claimed, DeliveryLedger
from segments.audience import AudienceResolver

log = structlog.get_logger("clarion.engine")


class Engine:
    """Runs resolution tasks and one worker loop per configured channel."""

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
    ) -> None:
        self._settings = settings
        self._alerts = alerts
        self._ledger = ledger
        self._audience = audience
        self._channels = channels
        self._metrics = metrics
        self._clock = clock
        self._single_node = single_node
        self.owner = f"{secrets.token_hex(4)}"
        self._wake = {kind: asyncio.Event() for kind in channels}
        self._records: dict[str, AlertRecord] = {}
        self._started_alerts: set[tuple[str, ChannelKind]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._draining = asyncio.Event()

    @property
    def channels(self) -> dict[ChannelKind, Channel]:
        """The channels this engine sends on."""
        return self._channels

    async def start(self) -> None:
        """Take back abandoned claims, resume unfinished alerts, start the channel loops."""
        if self._single_node:
            released = await self._ledger.release_all()
            if released:
                log.warning("engine.claims_released", deliveries=released)
        for channel in self._channels.values():
            await channel.start(self)
        for kind in sorted(self._channels, key=lambda k: k.urgency):
            self._loops.append(asyncio.create_task(self._channel_loop(kind), name=f"loop-{kind}"))
        for record in await self._alerts.in_state(AlertState.DISPATCHING):
            if record.resolved_at is None:
                log.info("engine.resume_resolution", alert_id=record.id)
                self.dispatch(record.id)
            else:
                await self._alerts.mark_done(record.id, self._clock.now_ms())

    async def stop(self) -> None:
        """Stop claiming, let in-flight batches finish within the grace time, hand back the rest."""
        self._stopping = True
        for event in self._wake.values():
            event.set()
        grace = self._settings.dispatch.shutdown_grace_s
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        released = await self._ledger.release_owner(self.owner)
        if released:
            log.warning("engine.claims_handed_back", deliveries=released)
        for channel in self._channels.values():
            await channel.close()

    def dispatch(self, alert_id: str) -> None:
        """Start resolving a stored alert into the outbox (after its 202)."""
        self._spawn(self._resolve(alert_id), name=f"resolve-{alert_id}")

    def _spawn(self, coro: Any, *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _record(self, alert_id: str) -> AlertRecord | None:
        record = self._records.get(alert_id)
        if record is None:
            record = await self._alerts.get(alert_id)
            if record is not None:
                self._records[alert_id] = record
        return record

    def forget(self, alert_id: str) -> None:
        """Drop the cached copy of an alert (it changed: cancelled or updated)."""
        self._records.pop(alert_id, None)

    async def _resolve(self, alert_id: str) -> None:
        record = await self._record(alert_id)
        if record is None or record.state is not AlertState.DISPATCHING:
            return
        structlog.contextvars.bind_contextvars(alert_id=alert_id)
        started = time.perf_counter()
        by_channel: Counter[str] = Counter()
        suppressed: Counter[str] = Counter()
        try:
            async for chunk in self._audience.plan(
                record.audience,
                record.zones,
                record.kind,
                [c for c in record.channels if c in self._channels],
                exclude_zones=record.exclude_zones,
                chunk=self._settings.dispatch.enqueue_batch,
                now_ms=self._clock.now_ms(),
                languages=languages(record.request),
            ):
                await self._ledger.enqueue(alert_id, chunk, self._clock.now_ms())
                for planned in chunk:
                    (suppressed if planned.suppressed else by_channel)[planned.channel.value] += 1
                for kind in {p.channel for p in chunk}:
                    if kind in self._wake:
                        self._wake[kind].set()
        except Exception as exc:
            # The alert stays unresolved and is resumed at the next start; say why now.
            log.error("engine.resolution_failed", error=type(exc).__name__, detail=str(exc))
            raise
        counts = dict(record.audience_counts)
        counts["by_channel"] = dict(by_channel)
        counts["suppressed"] = dict(suppressed)
        now = self._clock.now_ms()
        await self._alerts.mark_resolved(alert_id, now, counts)
        self.forget(alert_id)
        log.info(
            "alert.resolved",
            deliveries=sum(by_channel.values()),
            suppressed=sum(suppressed.values()),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if await self._alerts.mark_done(alert_id, now):
            log.info("alert.done")

    async def _channel_loop(self, kind: ChannelKind) -> None:
        channel = self._channels[kind]
        settings = channel.settings
        lease_ms = int(self._settings.store.lease_s * 1000)
        poll = self._settings.dispatch.poll_s
        slots = asyncio.Semaphore(settings.concurrency)
        wake = self._wake[kind]
        while not self._stopping:
            await slots.acquire()
            if self._stopping:
                slots.release()
                break
            wake.clear()
            try:
                claimed = await self._ledger.claim(
                    kind, owner=self.owner, limit=settings.batch_size,
                    now_ms=self._clock.now_ms(), lease_ms=lease_ms,
                )
            except Exception as exc:
                slots.release()
                log.error("engine.claim_failed", channel=channel.name, error=type(exc).__name__)
                await asyncio.sleep(poll)
                continue
            if not claimed:
                slots.release()
                try:
                    await asyncio.wait_for(wake.wait(), poll)
                except TimeoutError:
                    pass
                continue
            task = self._spawn(self._send(kind, channel, claimed), name=f"send-{kind}")
            task.add_done_callback(lambda _t: slots.release())

    async def _send(self, kind: ChannelKind, channel: Channel, claimed: list[Claimed]) -> None:
        groups: dict[str, list[Claimed]] = defaultdict(list)
        for c in claimed:
            groups[c.alert_id].append(c)
        for alert_id, rows in groups.items():
            try:
                await self._send_group(kind, channel, alert_id, rows)
            except Exception as exc:
                # The rows stay claimed; their lease runs out and they are sent again.
                log.error(
                    "engine.batch_crashed", channel=channel.name, alert_id=alert_id,
                    error=type(exc).__name__, detail=str(exc),
                )

    async def _send_group(
        self, kind: ChannelKind, channel: Channel, alert_id: str, rows: list[Claimed]
    ) -> None:
        record = await self._record(alert_id)
        now = self._clock.now_ms()
        if record is None or record.state is AlertState.CANCELLED:
            receipts: Sequence[Receipt] = [
                Receipt(r.id, Outcome.FAILED, "alert cancelled before sending") for r in rows
            ]
            await self._ledger.settle(kind, rows, receipts, now_ms=now, deadlines={alert_id: now})
            return
        context = AlertContext(
            alert_id=record.id,
            kind=record.kind,
            mode=record.mode,
            now_ms=now,
            deadline_ms=record.expires_at,
            expires_ms=record.expires_at,
            messages=record.rendered.get(kind, {}),
            zones=record.zones,
            references=record.references_id,
            cap=self._cap_fields(record),
        )
        batch = Batch(
            context,
            tuple(Delivery(r.id, r.recipient, r.address, r.language, r.attempts) for r in rows),
        )
        if (alert_id, kind) not in self._started_alerts:
            self._started_alerts.add((alert_id, kind))
            self._metrics.first_send_seconds.labels(kind.value).observe(
                max(0.0, (now - record.created_at) / 1000)
            )
            await self._alerts.mark_sending(alert_id, now)
        started = time.perf_counter()
        receipts = await self._transmit(channel, batch)
        self._metrics.batch_seconds.labels(channel.name).observe(time.perf_counter() - started)
        settled = await self._ledger.settle(
            kind, rows, receipts, now_ms=self._clock.now_ms(),
            deadlines={alert_id: record.expires_at},
        )
        for outcome in ("accepted", "delivered", "failed", "retried"):
            n = getattr(settled, outcome)
            if n:
                self._metrics.deliveries.labels(channel.name, outcome).inc(n)
        if settled.retried:
            log.info("delivery.retry_scheduled", channel=channel.name, alert_id=alert_id,
                     deliveries=settled.retried)
        if settled.failed:
            log.warning("delivery.failed", channel=channel.name, alert_id=alert_id,
                        deliveries=settled.failed)
        if await self._alerts.mark_done(alert_id, self._clock.now_ms()):
            self.forget(alert_id)
            log.info("alert.done", alert_id=alert_id)

    def _cap_fields(self, record: AlertRecord) -> dict[str, str]:
        request = record.request
        fields = {
            "sender": self._settings.service.sender,
            "headline": request.headline or "",
            "instruction": request.instruction or "",
            "description": request.description or "",
            "template": request.template or "",
        }
        return {k: v for k, v in fields.items() if v}

    async def _transmit(self, channel: Channel, batch: Batch) -> Sequence[Receipt]:
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
        """ReceiptSink: record a callback or device ack against its delivery."""
        found = await self._ledger.late_receipt(
            channel, outcome, delivery_id=delivery_id, provider_ref=provider_ref,
            alert_id=alert_id, recipient=recipient, detail=detail, now_ms=self._clock.now_ms(),
        )
        if found is None:
            self._metrics.rejected_input.labels(f"receipt.{channel.value}").inc()
            return False
        self._metrics.late_receipts.labels(channel.value, outcome.value).inc()
        if await self._alerts.mark_done(found, self._clock.now_ms()):
            self.forget(found)
        return True

    async def cancel(self, record: AlertRecord, *, actor: str, reason: str) -> int:
        """Withdraw an alert: nothing queued is sent, devices take it down."""
        stopped = await self._alerts.cancel(
            record.id, actor=actor, reason=reason, now_ms=self._clock.now_ms()
        )
        self.forget(record.id)
        context = AlertContext(
            alert_id=record.id, kind=record.kind, mode=record.mode,
            now_ms=self._clock.now_ms(), deadline_ms=record.expires_at,
            expires_ms=record.expires_at, zones=record.zones, references=record.references_id,
        )
        for kind, channel in self._channels.items():
            if kind in record.channels:
                try:
                    await channel.withdraw(context)
                except Exception as exc:
                    log.error("channel.withdraw_failed", channel=channel.name,
                              error=type(exc).__name__)
        log.info("alert.cancelled", alert_id=record.id, deliveries_stopped=stopped)
        return stopped
