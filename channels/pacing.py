"""Pacing shared by urgency: rate limits and concurrency bounds whose waiters go most urgent
first, and give way to a more urgent class of alert.

A provider's pace (a Twilio number's messages per second, calls per area code, connections to
a push or e-mail server) is shared by every alert on the channel. Waiters here are served in
the order of urgency (`AlertContext.rank`: the alert's class, then the earlier alert), not of
arrival. And while the engine says that a more urgent class has work on the channel
(`RightOfWay`), waiters of a less urgent class stop waiting and raise `GiveWay`: their
deliveries were not handed over, so they go back to the queue without counting as attempts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from dispatcher.domain import Precedence

_order = itertools.count()


class GiveWay(Exception):
    """A less urgent waiter steps aside: a more urgent alert has the right of way."""


class RightOfWay:
    """Which class of alert has the right of way on a channel now (None: nobody waits)."""

    def __init__(self) -> None:
        self._front: Precedence | None = None
        self._watching: set[asyncio.Future[None]] = set()

    @property
    def front(self) -> Precedence | None:
        """The most urgent class with work on the channel, as the engine last said."""
        return self._front

    def set(self, front: Precedence | None) -> None:
        """The engine's word: `front` is the most urgent class with work on the channel."""
        if front == self._front:
            return
        self._front = front
        for waiting in list(self._watching):
            if not waiting.done():
                waiting.set_result(None)

    def yields(self, rank: int) -> bool:
        """True when work of this urgency must give way."""
        return self._front is not None and Precedence.of_rank(rank) > self._front

    def check(self, rank: int) -> None:
        """Raise GiveWay when work of this urgency must give way."""
        if self.yields(rank):
            raise GiveWay

    def watch(self, waiting: asyncio.Future[None]) -> None:
        """Wake `waiting` when the right of way changes."""
        self._watching.add(waiting)

    def unwatch(self, waiting: asyncio.Future[None]) -> None:
        """Stop waking `waiting`."""
        self._watching.discard(waiting)


@dataclass(order=True)
class _Waiter:
    rank: int
    order: int
    amount: float = field(compare=False)
    wake: asyncio.Future[None] | None = field(default=None, compare=False)
    queued: bool = field(default=False, compare=False)
    """In the heap and still waiting (one that left is dropped when it reaches the top)."""

    def poke(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class _Queue:
    """Waiters in the order of urgency, each woken when it may look again."""

    def __init__(self, way: RightOfWay) -> None:
        self.way = way
        self.heap: list[_Waiter] = []

    def push(self, waiter: _Waiter) -> None:
        waiter.queued = True
        heapq.heappush(self.heap, waiter)

    def head(self) -> _Waiter | None:
        # Waiters that left (gave way, cancelled) go when they reach the top: leaving costs
        # O(1), not a search of thousands of waiters.
        while self.heap and not self.heap[0].queued:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None

    def take(self, waiter: _Waiter) -> None:
        """The head leaves the queue with its turn."""
        heapq.heappop(self.heap)
        waiter.queued = False

    def remove(self, waiter: _Waiter) -> None:
        waiter.queued = False

    async def sleep(self, waiter: _Waiter) -> None:
        """Wait to be poked (or for the right of way to change), then check it."""
        waiter.wake = asyncio.get_running_loop().create_future()
        self.way.watch(waiter.wake)
        try:
            await waiter.wake
        finally:
            self.way.unwatch(waiter.wake)
            waiter.wake = None
        self.way.check(waiter.rank)


class UrgentLimiter:
    """A leaky bucket of `max_rate` units per `time_period` seconds (as aiolimiter's), whose
    waiters are served most urgent first."""

    def __init__(
        self, max_rate: float, time_period: float = 1.0, way: RightOfWay | None = None
    ) -> None:
        if max_rate <= 0 or time_period <= 0:
            raise ValueError("a limiter needs a positive rate and period")
        self.max_rate = float(max_rate)
        self.time_period = float(time_period)
        self._drain = self.max_rate / self.time_period
        self._level = 0.0
        self._at = 0.0
        self._queue = _Queue(way or RightOfWay())
        self._timer: asyncio.Handle | None = None

    def _leak(self) -> float:
        now = asyncio.get_running_loop().time()
        if self._at:
            self._level = max(0.0, self._level - (now - self._at) * self._drain)
        self._at = now
        return self._level

    def _fits(self, amount: float) -> bool:
        return self._leak() + amount <= self.max_rate

    async def acquire(self, amount: float = 1.0, rank: int = 0) -> None:
        """Take `amount` units, waiting behind every more urgent waiter; raises GiveWay when
        a more urgent class has the right of way."""
        amount = min(float(amount), self.max_rate)
        self._queue.way.check(rank)
        if self._queue.head() is None and self._fits(amount):
            self._level += amount
            return
        waiter = _Waiter(rank, next(_order), amount)
        self._queue.push(waiter)
        try:
            while True:
                if self._queue.head() is waiter and self._fits(amount):
                    self._queue.take(waiter)
                    self._level += amount
                    return
                self._schedule()
                await self._queue.sleep(waiter)
        finally:
            self._queue.remove(waiter)
            self._schedule()

    def _schedule(self) -> None:
        """Poke the head when the bucket has drained enough for it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        head = self._queue.head()
        if head is None:
            return
        wait = (self._leak() + head.amount - self.max_rate) / self._drain
        loop = asyncio.get_running_loop()
        # Soon, not now: the head may be the caller, not yet asleep (time moves between its
        # check and this one, so the bucket can have drained in between).
        self._timer = loop.call_soon(head.poke) if wait <= 0 else loop.call_later(wait, head.poke)


class UrgentSlots:
    """At most `size` holders at once (a semaphore), waiters served most urgent first."""

    def __init__(self, size: int, way: RightOfWay | None = None) -> None:
        if size < 1:
            raise ValueError("slots need a size of at least 1")
        self._free = size
        self._queue = _Queue(way or RightOfWay())

    async def acquire(self, rank: int = 0) -> None:
        """Take a slot, waiting behind every more urgent waiter; raises GiveWay when a more
        urgent class has the right of way."""
        self._queue.way.check(rank)
        if self._queue.head() is None and self._free > 0:
            self._free -= 1
            return
        waiter = _Waiter(rank, next(_order), 1.0)
        self._queue.push(waiter)
        try:
            while True:
                if self._queue.head() is waiter and self._free > 0:
                    self._queue.take(waiter)
                    self._free -= 1
                    return
                await self._queue.sleep(waiter)
        finally:
            self._queue.remove(waiter)
            self._poke_head()

    def release(self) -> None:
        """Give a slot back."""
        self._free += 1
        self._poke_head()

    def _poke_head(self) -> None:
        head = self._queue.head()
        if head is not None and self._free > 0:
            head.poke()

    @asynccontextmanager
    async def slot(self, rank: int = 0) -> AsyncIterator[None]:
        """Hold a slot for the block."""
        await self.acquire(rank)
        try:
            yield
        finally:
            self.release()
