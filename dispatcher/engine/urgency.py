"""The order of urgency across alerts on one channel: the front, the right of way, the
claim's bound and the pauses of the alerts that wait."""

from __future__ import annotations

import asyncio
from collections import Counter

import structlog

from channels.base import Channel
from dispatcher.clock import Clock
from dispatcher.domain import RANK_CLASS_SPAN, AlertState, ChannelKind, Precedence
from dispatcher.engine.tasks import Tasks
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertStore
from dispatcher.store.ledger import NO_BOUND, DeliveryLedger, Front
from dispatcher.store.pauses import AlertPauses

log = structlog.get_logger("clarion.engine")

# Rounds of the front watcher between two checks of the pauses of alerts that started late.
PAUSE_ROUNDS = 20


class ChannelUrgency:
    """Which class goes now on one channel: this node's batches in flight and the front the
    store showed last. Less urgent claims are bounded out, less urgent batches waiting for the
    provider's pace give way, and the alerts waiting behind have their pauses kept."""

    def __init__(
        self,
        kind: ChannelKind,
        channel: Channel,
        *,
        settings: Settings,
        ledger: DeliveryLedger,
        alerts: AlertStore,
        pauses: AlertPauses | None,
        clock: Clock,
        tasks: Tasks,
    ) -> None:
        self._kind = kind
        self._channel = channel
        self._settings = settings
        self._ledger = ledger
        self._alerts = alerts
        self._pauses = pauses
        self._clock = clock
        self._tasks = tasks
        # The most urgent class with work on the channel, as last read from the store.
        self._front: Front | None = None
        # This node's batches out on the channel, by urgency.
        self._flying: Counter[int] = Counter()

    @property
    def _yielding(self) -> bool:
        return self._settings.dispatch.yield_to_urgent

    async def read_front(self) -> Front | None:
        """Read the most urgent work on the channel, tell the channel's pacing who has the
        right of way, and keep the pauses of the alerts that wait behind it."""
        front = await self._ledger.front(self._kind, self._clock.now_ms())
        before, self._front = self._front, front
        self.give_right_of_way()
        if self._pauses is not None and self._yielding and (
            (before is None) != (front is None)
            or (front is not None and before is not None and front.alert_id != before.alert_id)
        ):
            # Beside the claim, not before it: bookkeeping never delays a send.
            self._tasks.spawn(self._keep_pauses_logged(), name=f"pauses-{self._kind}")
        return front

    def ahead(self) -> Precedence | None:
        """The most urgent class out on the channel: this node's batches in flight, or the
        front the store showed last (other nodes' work too)."""
        classes = [Precedence.of_rank(u) for u in self._flying]
        if self._front is not None:
            classes.append(self._front.precedence)
        return min(classes, default=None)

    def bound(self, ahead: Precedence | None) -> int:
        """The claim's urgency bound: only that class while less urgent ones yield."""
        if ahead is None or not self._yielding:
            return NO_BOUND
        return (int(ahead) + 1) * RANK_CLASS_SPAN

    def give_right_of_way(self) -> None:
        """Tell the channel's pacing which class goes now: less urgent waiters give way."""
        self._channel.right_of_way.set(self.ahead() if self._yielding else None)

    def sending(self, urgency: int) -> None:
        """A batch of this urgency was claimed and goes out."""
        self._flying[urgency] += 1
        self.give_right_of_way()

    def sent(self, urgency: int) -> None:
        """A batch of this urgency is done."""
        self._flying[urgency] -= 1
        if self._flying[urgency] <= 0:
            del self._flying[urgency]
        self.give_right_of_way()

    async def _keep_pauses_logged(self) -> None:
        """`_keep_pauses` for the channel's front as it is by then, its failure logged."""
        try:
            await self._keep_pauses(self._front)
        except Exception as exc:
            log.error("engine.pauses_failed", channel=self._kind.value, error=type(exc).__name__)

    async def _keep_pauses(self, front: Front | None) -> None:
        """Open a pause for each alert with work on the channel that now waits behind `front`,
        and close the others' (idempotent, so every node may do it)."""
        assert self._pauses is not None
        kind = self._kind
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

    async def watch(self) -> None:
        """Read the front now and then even while every sending slot is taken, so batches
        of a less urgent class waiting for the provider's pace give way in time."""
        every = min(self._settings.dispatch.poll_s, 0.25)
        rounds = 0
        while not self._tasks.stopping:
            if not self._flying and self._front is None:
                # Nothing of ours waits on this channel: the loop reads the front itself.
                await asyncio.sleep(every)
                continue
            try:
                front = await self.read_front()
                rounds += 1
                if front is not None and self._pauses is not None and rounds % PAUSE_ROUNDS == 0:
                    # An alert that started while the channel was already taken waits too.
                    await self._keep_pauses(front)
            except Exception as exc:
                log.error("engine.front_failed", channel=self._kind.value,
                          error=type(exc).__name__)
            await asyncio.sleep(every)
