"""Pacing shared by urgency: a provider's pace and slots go to the most urgent waiter first,
and waiters of a less urgent class give way when the engine says a more urgent one has work.
Orders of grants are asserted, never timings."""

from __future__ import annotations

import asyncio

import pytest

from channels.pacing import GiveWay, RightOfWay, UrgentLimiter, UrgentSlots
from dispatcher.domain import AlertKind, Mode, Precedence, urgency_rank

DRILL = urgency_rank(AlertKind.EMERGENCY, Mode.DRILL, 1_000)
WARNING = urgency_rank(AlertKind.TIMELY_WARNING, Mode.LIVE, 2_000)
EMERGENCY = urgency_rank(AlertKind.EMERGENCY, Mode.LIVE, 3_000)
LATER_EMERGENCY = urgency_rank(AlertKind.EMERGENCY, Mode.LIVE, 4_000)


class TestRank:
    """The order of urgency as one number."""

    def test_classes_then_time(self) -> None:
        """Emergencies and all clears, warnings, advisories, then drills and tests."""
        assert EMERGENCY < LATER_EMERGENCY < WARNING < DRILL
        assert urgency_rank(AlertKind.ALL_CLEAR, Mode.LIVE, 9) < WARNING
        assert urgency_rank(AlertKind.ADVISORY, Mode.LIVE, 9) > WARNING
        assert Precedence.of_rank(DRILL) is Precedence.DRILL
        assert Precedence.of(AlertKind.TIMELY_WARNING, Mode.TEST) is Precedence.DRILL


class TestUrgentLimiter:
    """A leaky bucket whose queue is ordered by urgency."""

    async def test_the_most_urgent_waiter_goes_first(self) -> None:
        """Drill waiters queued first; an emergency arriving later is served before them."""
        limiter = UrgentLimiter(20, 1.0)
        granted: list[str] = []

        async def take(name: str, rank: int) -> None:
            await limiter.acquire(1, rank)
            granted.append(name)

        for _ in range(20):  # the bucket's burst, taken at once
            await limiter.acquire(1, DRILL)
        drills = [asyncio.create_task(take(f"drill{i}", DRILL)) for i in range(5)]
        await asyncio.sleep(0)
        urgent = [asyncio.create_task(take(f"gas{i}", EMERGENCY)) for i in range(3)]
        later = asyncio.create_task(take("later", LATER_EMERGENCY))
        await asyncio.gather(*drills, *urgent, later)
        assert granted == ["gas0", "gas1", "gas2", "later", *(f"drill{i}" for i in range(5))]

    async def test_less_urgent_waiters_give_way(self) -> None:
        """When the emergency class takes the right of way, waiting drills raise GiveWay and
        leave the queue; the emergency's waiters still get their turn."""
        way = RightOfWay()
        limiter = UrgentLimiter(10, 1.0, way)
        for _ in range(10):
            await limiter.acquire(1, DRILL)
        drill = asyncio.create_task(limiter.acquire(1, DRILL))
        emergency = asyncio.create_task(limiter.acquire(1, EMERGENCY))
        await asyncio.sleep(0)
        way.set(Precedence.LIVE_EMERGENCY)
        with pytest.raises(GiveWay):
            await drill
        await emergency
        # Right of way held: a new drill gives way at once, an emergency does not.
        with pytest.raises(GiveWay):
            await limiter.acquire(1, DRILL)
        way.set(None)
        await asyncio.wait_for(limiter.acquire(1, DRILL), 5)

    async def test_a_cancelled_waiter_leaves_no_hole(self) -> None:
        """Cancelling the head waiter hands its turn to the next."""
        limiter = UrgentLimiter(5, 0.5)
        for _ in range(5):
            await limiter.acquire(1, 0)
        first = asyncio.create_task(limiter.acquire(1, EMERGENCY))
        second = asyncio.create_task(limiter.acquire(1, WARNING))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.wait_for(second, 5)
        assert first.cancelled()


class TestUrgentSlots:
    """A semaphore whose queue is ordered by urgency."""

    async def test_slots_go_most_urgent_first_and_give_way(self) -> None:
        """With one slot held, the emergency waiter gets it before an earlier warning; a
        drill waiting gives way when the warning class takes the right of way."""
        way = RightOfWay()
        slots = UrgentSlots(1, way)
        order: list[str] = []
        await slots.acquire(DRILL)

        async def hold(name: str, rank: int) -> None:
            async with slots.slot(rank):
                order.append(name)

        warning = asyncio.create_task(hold("warning", WARNING))
        drill = asyncio.create_task(hold("drill", DRILL))
        await asyncio.sleep(0)
        emergency = asyncio.create_task(hold("gas", EMERGENCY))
        await asyncio.sleep(0)
        way.set(Precedence.LIVE_WARNING)
        with pytest.raises(GiveWay):
            await drill
        slots.release()
        await asyncio.gather(warning, emergency)
        assert order == ["gas", "warning"]
