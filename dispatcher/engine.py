"""The dispatch engine: audience into the outbox, outbox through the channels, receipts back.

Each channel has its own worker loop and its own concurrency, so a slow or failing channel
never holds up another; device channels get their deliveries first because the audience
stream yields them first. Each channel also has a circuit breaker: during a provider outage
its deliveries wait in the outbox (or go to the channel's fallback) instead of hammering it.

Several engines may share one PostgreSQL store. They claim batches with a lease that each
renews while it sends, so a dead process's batches are taken over once its leases run out;
a maintenance loop in every process fails what outlived its deadline, finishes alerts whose
last sender died, and resumes resolutions a dead process left half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from channels.base import Channel
from channels.breaker import BreakerSettings, CircuitBreaker, Permit
from channels.errors import PermanentChannelError, TransientChannelError
from dispatcher.batching import GroupCommit
from dispatcher.clock import Clock
from dispatcher.domain import (
    RANK_CLASS_SPAN,
    AlertContext,
    AlertState,
    Batch,
    CapInfo,
    ChannelKind,
    Delivery,
    DeliveryState,
    LateReceipt,
    Message,
    Outcome,
    Precedence,
    Receipt,
)
from dispatcher.observability import Metrics
from dispatcher.rendering import languages, question_text, render_alert
from dispatcher.responses import Responses
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.ledger import (
    NO_BOUND,
    Claimed,
    DeliveryLedger,
    Fallback,
    Front,
    LateResult,
    Settled,
)
from dispatcher.store.pauses import AlertPauses
from segments.audience import AudienceResolver
from segments.preferences import ADDRESS_COLUMN, ChannelPolicy

log = structlog.get_logger("clarion.engine")

# Ids per lease-renewal statement: well under both drivers' limits on parameters.
RENEW_CHUNK = 1000
# Tries to write a sent batch's receipts before giving the batch up to its lease.
SETTLE_ATTEMPTS = 4
# Late receipts (callbacks, acks) written in one transaction at most.
LATE_GROUP = 500
# Accepted deliveries asked about per channel and sweep.
RECONCILE = 100
# Early device acks kept at most (the oldest go first; the device acks again on the retained
# state, so one dropped is only late).
EARLY_ACKS = 50_000
# An alert is checked for completion this long after a batch or receipt asks, once for all.
FINISH_COALESCE_S = 0.1
# Longest sleep of an idle or paused loop, so a stop or a closing breaker is noticed soon.
MAX_PAUSE_S = 1.0
# Twilio's receipt detail for a number that sent STOP to the carrier, and ours for one that
# sent it to us.
CARRIER_STOP = "twilio 21610"
OPTED_OUT = "not sent: the number replied STOP"


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
        breakers: Mapping[ChannelKind, BreakerSettings] | None = None,
        responses: Responses | None = None,
        pauses: AlertPauses | None = None,
    ) -> None:
        self._settings = settings
        self._responses = responses
        self._pauses = pauses
        self._alerts = alerts
        self._ledger = ledger
        self._audience = audience
        self._channels = channels
        self._metrics = metrics
        self._clock = clock
        self._single_node = single_node
        self.owner = f"{secrets.token_hex(4)}"
        self._wake = {kind: asyncio.Event() for kind in channels}
        # The most urgent class with work on each channel, as last read from the store.
        self._front: dict[ChannelKind, Front | None] = dict.fromkeys(channels)
        # This node's batches out on each channel, by urgency.
        self._flying: dict[ChannelKind, Counter[int]] = {kind: Counter() for kind in channels}
        self._urgent_enqueue: set[ChannelKind] = set()
        # Device acks that came before their class published, by delivery (see LateResult).
        self._early: defaultdict[int, list[LateReceipt]] = defaultdict(list)
        self.breakers = {
            kind: CircuitBreaker(
                channel.name, (breakers or {}).get(kind) or _breaker_settings(channel)
            )
            for kind, channel in channels.items()
        }
        self._records: dict[str, AlertRecord] = {}
        self._extra_renderings: dict[tuple[str, ChannelKind], dict[str, Message]] = {}
        self._started_alerts: set[tuple[str, ChannelKind]] = set()
        self._resolving: set[str] = set()
        self._leased: set[int] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        self._finishing: set[str] = set()
        self._late: GroupCommit[LateReceipt, LateResult | None] = GroupCommit(
            self._write_late, max_items=LATE_GROUP
        )

    @property
    def channels(self) -> dict[ChannelKind, Channel]:
        """The channels this engine sends on."""
        return self._channels

    @property
    def lease_ms(self) -> int:
        """How long a claim holds without renewal."""
        return int(self._settings.store.lease_s * 1000)

    async def start(self) -> None:
        """Take back abandoned claims, resume unfinished alerts, start the channel loops."""
        if self._single_node:
            # Only this process uses the store: whatever is claimed was claimed by a dead one.
            released = await self._ledger.release_all()
            if released:
                log.warning("engine.claims_released", deliveries=released)
        self._late.start()
        for channel in self._channels.values():
            await channel.start(self)
        for kind in sorted(self._channels, key=lambda k: k.urgency):
            self._loops.append(asyncio.create_task(self._channel_loop(kind), name=f"loop-{kind}"))
            self._loops.append(asyncio.create_task(self._watch_front(kind), name=f"front-{kind}"))
        for record in await self._alerts.in_state(AlertState.DISPATCHING):
            if record.resolved_at is None:
                log.info("engine.resume_resolution", alert_id=record.id)
                self.dispatch(record.id)
            else:
                await self._finish(record.id)
        self._heartbeat = asyncio.create_task(self._renew_leases(), name="lease-heartbeat")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="outbox-sweeper")

    async def stop(self) -> None:
        """Stop claiming, let in-flight batches finish within the grace time, hand back the rest."""
        self._stopping = True
        for event in self._wake.values():
            event.set()
        # Claiming stops first; a claim cut short is rolled back or handed back below.
        background = [*self._loops, *([self._sweeper] if self._sweeper else [])]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        grace = self._settings.dispatch.shutdown_grace_s
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("engine.drain_cut_short", tasks=len(late), grace_s=grace)
                await asyncio.gather(*late, return_exceptions=True)
        # Leases are renewed until the last batch is settled, so no other node takes them over.
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        released = await self._ledger.release_owner(self.owner)
        if released:
            log.warning("engine.claims_handed_back", deliveries=released)
        for channel in self._channels.values():
            await channel.close()
        await self._late.close()

    def dispatch(self, alert_id: str) -> None:
        """Start resolving a stored alert into the outbox (after its 202)."""
        if alert_id in self._resolving:
            return
        self._resolving.add(alert_id)
        task = self._spawn(self._resolve(alert_id), name=f"resolve-{alert_id}")
        task.add_done_callback(lambda _t: self._resolving.discard(alert_id))

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

    async def _finish(self, alert_id: str) -> bool:
        """Mark the alert done if nothing is left to send; whichever node settles last does it."""
        if await self._alerts.mark_done(alert_id, self._clock.now_ms()):
            self._drop(alert_id)
            if self._pauses is not None:
                await self._pauses.close_alert(alert_id, self._clock.now_ms())
            log.info("alert.done", alert_id=alert_id)
            return True
        return False

    def _finish_soon(self, alert_id: str) -> None:
        """`_finish` shortly, once for all the batches and receipts that ask meanwhile."""
        if alert_id in self._finishing:
            return
        self._finishing.add(alert_id)

        async def later() -> None:
            try:
                await asyncio.sleep(FINISH_COALESCE_S)
            finally:
                self._finishing.discard(alert_id)
            await self._finish(alert_id)

        self._spawn(later(), name=f"finish-{alert_id}")

    def _drop(self, alert_id: str) -> None:
        """Forget everything kept in memory about an alert."""
        self.forget(alert_id)
        for kind in self._channels:
            self._started_alerts.discard((alert_id, kind))
            self._extra_renderings.pop((alert_id, kind), None)

    async def _resolve(self, alert_id: str) -> None:
        record = await self._record(alert_id)
        if record is None or record.state is not AlertState.DISPATCHING:
            return
        structlog.contextvars.bind_contextvars(alert_id=alert_id)
        started = time.perf_counter()
        by_channel: Counter[str] = Counter()
        suppressed: Counter[str] = Counter()
        # A live emergency's audience is written ahead of other work waiting for the store.
        urgent = Precedence.of(record.kind, record.mode) is Precedence.LIVE_EMERGENCY
        try:
            await self._ask(record)
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
                chunk = await self._without_stopped_numbers(chunk)
                await self._ledger.enqueue(alert_id, chunk, self._clock.now_ms(), urgent=urgent)
                for planned in chunk:
                    (suppressed if planned.suppressed else by_channel)[planned.channel.value] += 1
                for kind in {p.channel for p in chunk}:
                    if kind in self._wake:
                        if urgent:
                            self._urgent_enqueue.add(kind)
                        self._wake[kind].set()
        except Exception as exc:
            # The alert stays unresolved; the sweeper tries again. Say why now.
            log.error("engine.resolution_failed", error=type(exc).__name__, detail=str(exc))
            return
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
        await self._finish(alert_id)

    async def _ask(self, record: AlertRecord) -> None:
        """Store the alert's question before anyone can answer it (again on resume: a no-op)."""
        ask = record.request.ask
        if ask is None or self._responses is None:
            return
        texts = {
            lang: question_text(record.request, lang, self._settings.rendering)
            for lang in languages(record.request)
        }
        answers = self._settings.answers
        after = ask.escalate_after_s
        if after is None:
            after = answers.escalate_after_s.get(record.kind, 0)
        await self._responses.ask(
            alert_id=record.id, texts=texts, options=ask.options, escalate_after_s=after,
            max_rounds=answers.max_rounds if after > 0 else 0, asked_at_ms=record.created_at,
            closes_at_ms=record.expires_at,
        )

    async def _without_stopped_numbers(self, chunk: Sequence[Any]) -> list[Any]:
        """Planned SMS to numbers that sent STOP (or that the carrier refused) are suppressed."""
        if self._responses is None:
            return list(chunk)
        phones = [p.address for p in chunk if p.channel is ChannelKind.SMS and p.suppressed is None]
        stopped = await self._responses.opted_out(phones) if phones else set()
        if not stopped:
            return list(chunk)
        return [
            dataclasses.replace(p, suppressed="sms_opt_out")
            if p.channel is ChannelKind.SMS and p.suppressed is None and p.address in stopped
            else p
            for p in chunk
        ]

    # -- sending ------------------------------------------------------------------------------

    async def _channel_loop(self, kind: ChannelKind) -> None:
        channel = self._channels[kind]
        settings = channel.settings
        breaker = self.breakers[kind]
        poll = self._settings.dispatch.poll_s
        slots = asyncio.Semaphore(settings.concurrency)
        wake = self._wake[kind]
        while not self._stopping:
            await slots.acquire()
            if self._stopping:
                slots.release()
                break
            permit = breaker.permit(settings.batch_size)
            if not permit.limit:
                slots.release()
                await self._while_unavailable(kind)
                await asyncio.sleep(min(max(permit.wait_s, 0.01), poll, MAX_PAUSE_S))
                continue
            wake.clear()
            try:
                # No read before the claim: the claim itself takes the most urgent due class,
                # and the bound keeps it off less urgent ones while a more urgent class is out
                # (this node's batches, or the front the watcher last read from the store).
                ahead = self._ahead(kind)
                claimed = await self._ledger.claim(
                    kind, owner=self.owner, limit=permit.limit,
                    now_ms=self._clock.now_ms(), lease_ms=self.lease_ms,
                    before=self._bound(ahead),
                    # Devices reach everyone nearby at once: their claims, like a live
                    # emergency's, go ahead of the writers waiting (receipts among them).
                    urgent=kind.is_device or ahead is Precedence.LIVE_EMERGENCY
                    or self._urgent_due(kind),
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
            self._leased.update(c.id for c in claimed)
            urgency = claimed[0].urgency
            self._flying[kind][urgency] += 1
            self._give_right_of_way(kind)
            task = self._spawn(self._send(kind, channel, claimed, permit), name=f"send-{kind}")
            task.add_done_callback(functools.partial(self._sent_one, kind, slots, urgency))

    def _sent_one(
        self, kind: ChannelKind, slots: asyncio.Semaphore, urgency: int, _task: Any
    ) -> None:
        flying = self._flying[kind]
        flying[urgency] -= 1
        if flying[urgency] <= 0:
            del flying[urgency]
        self._give_right_of_way(kind)
        slots.release()

    async def _send(
        self, kind: ChannelKind, channel: Channel, claimed: list[Claimed], permit: Permit
    ) -> None:
        groups: dict[str, list[Claimed]] = defaultdict(list)
        for c in claimed:
            groups[c.alert_id].append(c)
        sent: list[Receipt] = []
        try:
            for alert_id, rows in groups.items():
                try:
                    sent.extend(await self._send_group(kind, channel, alert_id, rows))
                except Exception as exc:
                    # The rows stay claimed; their lease runs out and they are sent again.
                    log.error(
                        "engine.batch_crashed", channel=channel.name, alert_id=alert_id,
                        error=type(exc).__name__, detail=str(exc),
                    )
        finally:
            self._leased.difference_update(c.id for c in claimed)
            # What gave way was not tried: it says nothing of the provider's health.
            sent = [r for r in sent if r.outcome is not Outcome.DEFERRED]
            if sent:
                self.breakers[kind].record(sent, probe=permit.probe)
            else:
                self.breakers[kind].unused(permit)

    async def _send_group(
        self, kind: ChannelKind, channel: Channel, alert_id: str, rows: list[Claimed]
    ) -> Sequence[Receipt]:
        """Send one alert's share of a batch and settle it; returns what the provider said."""
        record = await self._record(alert_id)
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
            await self._settle(kind, rows, receipts, now_ms=now, deadlines={alert_id: now})
            await self._finish(alert_id)
            return ()
        context = AlertContext(
            alert_id=record.id,
            kind=record.kind,
            mode=record.mode,
            now_ms=now,
            expires_ms=record.expires_at,
            messages=self._messages(record, kind),
            zones=record.zones,
            references=record.references_id,
            cap=self._cap_fields(record),
            rank=record.urgency,
        )
        stopped: set[str] = set()
        if kind is ChannelKind.SMS and self._responses is not None:
            stopped = await self._responses.opted_out([r.address for r in rows])
        if stopped:
            # STOP arrived after these were queued: not one more message to those numbers.
            refused = [r for r in rows if r.address in stopped]
            await self._settle(
                kind, refused, [Receipt(r.id, Outcome.FAILED, OPTED_OUT) for r in refused],
                now_ms=now, deadlines={alert_id: record.expires_at},
            )
            rows = [r for r in rows if r.address not in stopped]
            if not rows:
                self._finish_soon(alert_id)
                return ()
        links = await self._links(record, kind, rows, context)
        batch = Batch(
            context,
            tuple(Delivery(r.id, r.recipient, r.address, r.language, r.attempts,
                           links.get(r.recipient, "")) for r in rows),
        )
        marking: asyncio.Future[Any] | None = None
        if (alert_id, kind) not in self._started_alerts:
            self._started_alerts.add((alert_id, kind))
            self._metrics.first_send_seconds.labels(kind.value).observe(
                max(0.0, (now - record.created_at) / 1000)
            )
            # Written while the first batch is on its way, not before it: the store's one
            # writer may be busy enqueueing the rest of the audience.
            marking = asyncio.ensure_future(self._alerts.mark_sending(alert_id, now))
        started = time.perf_counter()
        try:
            receipts = await self._transmit(channel, batch)
        finally:
            if marking is not None:
                await marking
        self._metrics.batch_seconds.labels(channel.name).observe(time.perf_counter() - started)
        await self._carrier_refused(kind, rows, receipts)
        by_id = {r.id: r for r in rows}
        fallbacks = await self._fallbacks(
            kind, record,
            [(by_id[r.delivery_id], r.detail) for r in receipts if r.outcome is Outcome.FAILED],
        )
        settled = await self._settle(
            kind, rows, receipts, now_ms=self._clock.now_ms(),
            deadlines={alert_id: record.expires_at}, fallbacks=fallbacks,
        )
        early = [a for r in rows for a in self._early.pop(r.id, ())]
        if early:
            # Acks that came before this class published: they count now.
            self._spawn(self._write_late(early), name=f"early-acks-{kind}")
        for outcome in ("accepted", "delivered", "failed", "retried", "deferred"):
            n = getattr(settled, outcome)
            if n:
                self._metrics.deliveries.labels(channel.name, outcome).inc(n)
        if settled.deferred:
            log.info("delivery.gave_way", channel=channel.name, alert_id=alert_id,
                     deliveries=settled.deferred)
        if settled.retried:
            log.info("delivery.retry_scheduled", channel=channel.name, alert_id=alert_id,
                     deliveries=settled.retried)
        if settled.failed:
            log.warning("delivery.failed", channel=channel.name, alert_id=alert_id,
                        deliveries=settled.failed)
        if settled.fallbacks:
            self._fallen_back(kind, alert_id, settled.fallbacks)
        self._finish_soon(alert_id)
        return receipts

    async def _links(
        self, record: AlertRecord, kind: ChannelKind, rows: Sequence[Claimed],
        context: AlertContext,
    ) -> dict[str, str]:
        """Each person's answer-page link, when this channel's rendering carries one."""
        if self._responses is None or record.request.ask is None:
            return {}
        if not any(m.has_link for m in context.messages.values()):
            return {}
        base = self._settings.service.base_url()
        return {
            r.recipient: await self._responses.link_for(base, record.id, r.recipient,
                                                        record.expires_at)
            for r in rows
        }

    async def _carrier_refused(
        self, kind: ChannelKind, rows: Sequence[Claimed], receipts: Sequence[Receipt]
    ) -> None:
        """Twilio error 21610 (the number sent STOP to the carrier): no SMS to it again."""
        if kind is not ChannelKind.SMS or self._responses is None:
            return
        by_id = {r.id: r for r in rows}
        phones = [
            by_id[r.delivery_id].address for r in receipts
            if r.outcome is Outcome.FAILED and CARRIER_STOP in r.detail and r.delivery_id in by_id
        ]
        if phones:
            await self._responses.carrier_refused(phones)

    async def _settle(
        self,
        kind: ChannelKind,
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
                    kind, rows, receipts, now_ms=now_ms, deadlines=deadlines, fallbacks=fallbacks
                )
            except Exception as exc:
                if attempt >= SETTLE_ATTEMPTS:
                    raise
                log.warning("engine.settle_retried", channel=str(kind), attempt=attempt,
                            error=type(exc).__name__)
                await asyncio.sleep(0.05 * attempt)
                attempt += 1

    def rendering(self, record: AlertRecord, kind: ChannelKind) -> dict[str, Message]:
        """The alert's messages on a channel, by language (what a voice call's TwiML says)."""
        return self._messages(record, kind)

    def _messages(self, record: AlertRecord, kind: ChannelKind) -> dict[str, Message]:
        """The alert rendered for a channel; rendered now for a fallback it was not sent on."""
        found = record.rendered.get(kind)
        if found:
            return found
        key = (record.id, kind)
        if key not in self._extra_renderings:
            self._extra_renderings[key] = render_alert(
                record.request, [kind], self._settings.rendering, limits=self._settings.policy
            )[kind]
        return self._extra_renderings[key]

    def _cap_fields(self, record: AlertRecord) -> CapInfo:
        request = record.request
        return CapInfo(
            sender=self._settings.service.sender,
            headline=request.headline or "",
            instruction=request.instruction or "",
            description=request.description or "",
            template=request.template or "",
        )

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

    # -- fallback channels ----------------------------------------------------------------------

    def _fallback_channel(self, kind: ChannelKind) -> ChannelKind | None:
        channel = self._channels.get(kind)
        target = channel.settings.fallback if channel is not None else None
        if target is None or target == kind or target not in self._channels:
            return None
        if kind.is_device or target.is_device:
            # A device has no other address, and a person none on a device channel.
            return None
        return target

    async def _fallbacks(
        self, kind: ChannelKind, record: AlertRecord | None, failed: Sequence[tuple[Claimed, str]]
    ) -> list[Fallback]:
        """Fallback deliveries for people whose delivery on `kind` failed for good."""
        target = self._fallback_channel(kind)
        now = self._clock.now_ms()
        if (
            not failed or target is None or record is None
            or record.state is AlertState.CANCELLED or now >= record.expires_at
        ):
            return []
        people = await self._ledger.contacts(c.recipient for c, _ in failed)
        policy = ChannelPolicy(self._settings.directory, record.kind, [target], now)
        planned = []
        for claimed, why in failed:
            person = people.get(claimed.recipient)
            if person is None:
                continue
            address = person[ADDRESS_COLUMN[target]]
            if not address:
                continue
            choice = policy.choose(
                person["role"], person["channels"], person["opt_out"], person["quiet_hours"],
                frozenset({target}),
            )
            # The person's own preferences still hold: no fallback onto a channel they refused.
            if not choice or choice[0][1] is not None:
                continue
            detail = f"fallback from {kind.value}: {why}" if why else f"fallback from {kind.value}"
            planned.append(Fallback(claimed.id, kind, target, address, detail[:500]))
        return planned

    def _fallen_back(self, kind: ChannelKind, alert_id: str, added: int) -> None:
        target = self._fallback_channel(kind)
        log.info("delivery.fallback_queued", channel=self._channels[kind].name,
                 fallback=str(target), alert_id=alert_id, deliveries=added)
        if target is not None:
            self._wake[target].set()

    async def _while_unavailable(self, kind: ChannelKind) -> None:
        """An open breaker, long enough: hand the channel's waiting deliveries to its fallback."""
        breaker = self.breakers[kind]
        if (
            breaker.open_for_s() < breaker.settings.fallback_after_s
            or self._fallback_channel(kind) is None
        ):
            return
        name = self._channels[kind].name
        detail = f"not sent: {name} unavailable (circuit open)"
        after = 0
        try:
            while not self._stopping:
                now = self._clock.now_ms()
                waiting = await self._ledger.waiting(kind, now_ms=now, after=after, limit=500)
                if not waiting:
                    return
                after = waiting[-1].id
                by_alert: dict[str, list[tuple[Claimed, str]]] = defaultdict(list)
                for w in waiting:
                    by_alert[w.alert_id].append(
                        (Claimed(w.id, w.alert_id, w.recipient, "", "", 0), detail)
                    )
                for alert_id, failed in by_alert.items():
                    planned = await self._fallbacks(kind, await self._record(alert_id), failed)
                    added = await self._ledger.divert(kind, planned, detail=detail, now_ms=now)
                    if added:
                        self._fallen_back(kind, alert_id, added)
                        await self._finish(alert_id)
        except Exception as exc:
            log.error("engine.fallback_failed", channel=name, error=type(exc).__name__,
                      detail=str(exc))

    # -- the order of urgency across alerts -----------------------------------------------------

    async def front(self, kind: ChannelKind) -> Front | None:
        """Read the most urgent work on a channel, tell the channel's pacing who has the right
        of way, and keep the pauses of the alerts that wait behind it."""
        front = await self._ledger.front(kind, self._clock.now_ms())
        yielding = self._settings.dispatch.yield_to_urgent
        before, self._front[kind] = self._front[kind], front
        self._give_right_of_way(kind)
        if self._pauses is not None and yielding and (
            (before is None) != (front is None)
            or (front is not None and before is not None and front.alert_id != before.alert_id)
        ):
            # Beside the claim, not before it: bookkeeping never delays a send.
            self._spawn(self._keep_pauses_logged(kind), name=f"pauses-{kind}")
        return front

    def _ahead(self, kind: ChannelKind) -> Precedence | None:
        """The most urgent class out on a channel: this node's batches in flight, or the
        front the store showed last (other nodes' work too)."""
        classes = [Precedence.of_rank(u) for u in self._flying[kind]]
        front = self._front[kind]
        if front is not None:
            classes.append(front.precedence)
        return min(classes, default=None)

    def _give_right_of_way(self, kind: ChannelKind) -> None:
        """Tell the channel's pacing which class goes now: less urgent waiters give way."""
        ahead = self._ahead(kind) if self._settings.dispatch.yield_to_urgent else None
        self._channels[kind].right_of_way.set(ahead)

    def _urgent_due(self, kind: ChannelKind) -> bool:
        """True once, after a live emergency's deliveries were enqueued on the channel: its
        first claim goes ahead of the writers waiting."""
        if kind in self._urgent_enqueue:
            self._urgent_enqueue.discard(kind)
            return True
        return False

    def _bound(self, ahead: Precedence | None) -> int:
        """The claim's urgency bound: only that class while less urgent ones yield."""
        if ahead is None or not self._settings.dispatch.yield_to_urgent:
            return NO_BOUND
        return (int(ahead) + 1) * RANK_CLASS_SPAN

    async def _keep_pauses_logged(self, kind: ChannelKind) -> None:
        """`_keep_pauses` for the channel's front as it is by then, its failure logged."""
        try:
            await self._keep_pauses(kind, self._front[kind])
        except Exception as exc:
            log.error("engine.pauses_failed", channel=kind.value, error=type(exc).__name__)

    async def _keep_pauses(self, kind: ChannelKind, front: Front | None) -> None:
        """Open a pause for each alert with work on `kind` that now waits behind `front`, and
        close the others' (idempotent, so every node may do it)."""
        assert self._pauses is not None
        now = self._clock.now_ms()
        waiting: list[str] = []
        if front is not None:
            for record in await self._alerts.in_state(AlertState.DISPATCHING):
                if (
                    record.id == front.alert_id or kind not in record.channels
                    or Precedence.of(record.kind, record.mode) <= front.precedence
                ):
                    continue
                left = (await self._ledger.counts(record.id)).get(kind.value, {})
                if left.get("queued", 0) or left.get("sending", 0):
                    waiting.append(record.id)
            await self._pauses.open(kind, waiting, behind=front.alert_id, now_ms=now)
            if waiting:
                log.info("channel.yielding", channel=kind.value, behind=front.alert_id,
                         alerts=len(waiting))
        await self._pauses.close(kind, now_ms=now, keep=waiting)

    async def _watch_front(self, kind: ChannelKind) -> None:
        """Read the front now and then even while every sending slot is taken, so batches
        of a less urgent class waiting for the provider's pace give way in time."""
        every = min(self._settings.dispatch.poll_s, 0.25)
        rounds = 0
        while not self._stopping:
            if not self._flying[kind] and self._front[kind] is None:
                # Nothing of ours waits on this channel: the loop reads the front itself.
                await asyncio.sleep(every)
                continue
            try:
                front = await self.front(kind)
                rounds += 1
                if front is not None and self._pauses is not None and rounds % 20 == 0:
                    # An alert that started while the channel was already taken waits too.
                    await self._keep_pauses(kind, front)
            except Exception as exc:
                log.error("engine.front_failed", channel=kind.value, error=type(exc).__name__)
            await asyncio.sleep(every)

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
            found = await self._write_late(receipts) if receipts else []
            settled += sum(1 for f in found if f is not None and f.changed)
            # Those the provider still calls in progress are asked again later, after others.
            await self._ledger.touch([r.id for r in rows if r.provider_ref not in answers], now)
            if receipts:
                log.info("delivery.reconciled", channel=channel.name, asked=len(rows),
                         settled=len(receipts))
        return settled

    # -- receipts after the send ----------------------------------------------------------------

    async def late_receipt(self, receipt: LateReceipt, /) -> bool:
        """ReceiptSink: record a callback or device ack against its delivery."""
        found = await self._late.submit(receipt)
        channel = receipt.channel.value
        if found is None:
            self._metrics.rejected_input.labels(f"receipt.{channel}").inc()
            return False
        self._metrics.late_receipts.labels(channel, receipt.outcome.value).inc()
        return True

    async def _write_late(self, receipts: Sequence[LateReceipt]) -> list[LateResult | None]:
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
                planned = await self._fallbacks(
                    receipt.channel, await self._record(found.alert_id), [(origin, receipt.detail)]
                )
                added = await self._ledger.add_fallbacks(planned, self._clock.now_ms())
                if added:
                    self._fallen_back(receipt.channel, found.alert_id, added)
            self._finish_soon(found.alert_id)
        return results

    # -- maintenance ----------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        """Keep the leases of batches still being sent, so no other node takes them over."""
        every = max(self._settings.store.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            ids = sorted(self._leased)
            until = self._clock.now_ms() + self.lease_ms
            try:
                for start in range(0, len(ids), RENEW_CHUNK):
                    await self._ledger.renew(self.owner, ids[start : start + RENEW_CHUNK], until)
            except Exception as exc:
                log.error("engine.lease_renewal_failed", error=type(exc).__name__)

    async def _sweep_loop(self) -> None:
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
        dispatching = await self._alerts.in_state(AlertState.DISPATCHING)
        live = {record.id for record in dispatching}
        for alert_id in [a for a in self._records if a not in live]:
            # Finished or cancelled, perhaps by another node: read it again if ever needed.
            self._drop(alert_id)
        for record in dispatching:
            if record.resolved_at is not None:
                await self._finish(record.id)
            elif record.id not in self._resolving and now - record.created_at > self.lease_ms:
                # Its resolver died (or failed): re-planning is idempotent, so take it over.
                log.info("engine.resume_resolution", alert_id=record.id)
                self.dispatch(record.id)

    def _escalated(self, alert_id: str, added: int) -> None:
        """An escalation round queued deliveries: the alert is sending again, wake the loops."""
        del added
        self.forget(alert_id)
        for event in self._wake.values():
            event.set()

    async def cancel(self, record: AlertRecord, *, actor: str, reason: str) -> int:
        """Withdraw an alert: nothing queued is sent, devices take it down."""
        stopped = await self._alerts.cancel(
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


def _breaker_settings(channel: Channel) -> BreakerSettings:
    """The channel's `[channels.NAME.breaker]` settings."""
    return channel.settings.breaker
