"""Who gets what: an alert's audience into the outbox, and at each send who may still be
reached and with which answer link."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from channels.base import Channel
from dispatcher.alerting.rendering import languages, question_text
from dispatcher.answers.responses import Responses
from dispatcher.clock import Clock
from dispatcher.domain import (
    AlertContext,
    AlertState,
    ChannelKind,
    Outcome,
    Precedence,
    Receipt,
)
from dispatcher.engine.alerts import Alerts
from dispatcher.engine.tasks import Tasks, Wakes
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord
from dispatcher.store.ledger import Claimed, DeliveryLedger
from segments.audience import AudienceResolver, PlannedDelivery

log = structlog.get_logger("clarion.engine")

# The role of a delivery to a broadcast target or a webhook subscriber.
INSTITUTION_ROLE = "institution"


class Resolver:
    """Resolves alerts into the outbox (the question stored first, numbers that sent STOP
    suppressed), and answers the channel loops' questions about recipients: numbers that
    opted out since, each person's answer link, and the carrier's opt-outs to remember."""

    def __init__(
        self,
        *,
        settings: Settings,
        alerts: Alerts,
        ledger: DeliveryLedger,
        audience: AudienceResolver,
        kinds: Mapping[ChannelKind, Channel],
        responses: Responses | None,
        clock: Clock,
        tasks: Tasks,
        wakes: Wakes,
    ) -> None:
        self._settings = settings
        self._alerts = alerts
        self._ledger = ledger
        self._audience = audience
        self._kinds = kinds
        self._responses = responses
        self._clock = clock
        self._tasks = tasks
        self._wakes = wakes
        self._resolving: set[str] = set()

    def resolving(self, alert_id: str) -> bool:
        """True while this engine resolves the alert."""
        return alert_id in self._resolving

    def dispatch(self, alert_id: str) -> None:
        """Start resolving a stored alert into the outbox (once at a time)."""
        if alert_id in self._resolving:
            return
        self._resolving.add(alert_id)
        task = self._tasks.spawn(self._resolve(alert_id), name=f"resolve-{alert_id}")
        task.add_done_callback(lambda _t: self._resolving.discard(alert_id))

    async def _resolve(self, alert_id: str) -> None:
        record = await self._alerts.get(alert_id)
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
                [c for c in record.channels if c in self._kinds and not c.is_institutional],
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
                    self._wakes.wake(kind, urgent=urgent)
            institutional = self._institutional(record)
            if institutional:
                await self._ledger.enqueue(
                    alert_id, institutional, self._clock.now_ms(), urgent=urgent
                )
                for planned in institutional:
                    by_channel[planned.channel.value] += 1
                for kind in {p.channel for p in institutional}:
                    self._wakes.wake(kind, urgent=urgent)
        except Exception as exc:
            # The alert stays unresolved; the sweeper tries again. Say why now.
            log.error("engine.resolution_failed", error=type(exc).__name__, detail=str(exc))
            return
        counts = dict(record.audience_counts)
        counts["by_channel"] = dict(by_channel)
        counts["suppressed"] = dict(suppressed)
        await self._alerts.store.mark_resolved(alert_id, self._clock.now_ms(), counts)
        self._alerts.forget(alert_id)
        log.info(
            "alert.resolved",
            deliveries=sum(by_channel.values()),
            suppressed=sum(suppressed.values()),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        await self._alerts.finish(alert_id)

    def _institutional(self, record: AlertRecord) -> list[PlannedDelivery]:
        """One delivery per broadcast target or webhook subscriber that takes the alert's
        kind: the channel's config names them, not the audience, and the store keeps only
        their names (their URLs and keys stay in the config)."""
        language = record.request.language
        return [
            PlannedDelivery(kind, name, name, language, INSTITUTION_ROLE)
            for kind in record.channels
            if kind.is_institutional and kind in self._kinds
            for name in self._kinds[kind].destinations(record.kind)
        ]

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

    async def stopped(self, kind: ChannelKind, rows: Sequence[Claimed]) -> set[str]:
        """Addresses of a claimed SMS batch whose numbers sent STOP after they were queued."""
        if kind is not ChannelKind.SMS or self._responses is None:
            return set()
        return await self._responses.opted_out([r.address for r in rows])

    async def links(
        self, record: AlertRecord, rows: Sequence[Claimed], context: AlertContext
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

    async def carrier_refused(
        self, kind: ChannelKind, rows: Sequence[Claimed], receipts: Sequence[Receipt]
    ) -> None:
        """The carrier says these numbers opted out (sent it STOP): no SMS to them again."""
        if kind is not ChannelKind.SMS or self._responses is None:
            return
        by_id = {r.id: r for r in rows}
        phones = [
            by_id[r.delivery_id].address for r in receipts
            if r.outcome is Outcome.FAILED and r.opted_out and r.delivery_id in by_id
        ]
        if phones:
            await self._responses.carrier_refused(phones)
