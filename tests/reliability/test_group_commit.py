"""Group commit: callers' writes gathered while the writer is busy, each caller answered with
its own result once the group holding it is written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from dispatcher.batching import GroupCommit


class Recorder:
    """A write that records its groups and can be held until released."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.gate.wait()
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [i * 10 for i in items]


async def test_items_gather_while_the_writer_is_busy() -> None:
    """The first item is written alone; the rest, submitted meanwhile, in groups of at most
    `max_items`; everyone gets their own result."""
    rec = Recorder()
    group = GroupCommit(rec.write, max_items=40)
    group.start()
    rec.gate.clear()
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(i)) for i in range(1, 101)]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(first, *rest)
    await group.close()
    assert results == [i * 10 for i in range(101)]
    assert [len(g) for g in rec.groups] == [1, 40, 40, 20]
    assert [i for g in rec.groups for i in g] == list(range(101))


async def test_a_bad_item_fails_only_itself() -> None:
    """When a group's write fails, its items are written one by one: only the bad one fails."""
    rec = Recorder()
    group = GroupCommit(rec.write)
    group.start()
    rec.gate.clear()
    blocker = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(group.submit(i)) for i in (2, -3, 4)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await blocker == 10
    done = await asyncio.gather(*tasks, return_exceptions=True)
    await group.close()
    assert done[0] == 20 and done[2] == 40
    assert isinstance(done[1], ValueError)
    assert rec.groups[1:] == [[2, -3, 4], [2], [-3], [4]]


async def test_close_writes_what_is_queued_then_refuses() -> None:
    """Nothing queued is dropped at close; a later submit is an error, not a hang."""
    rec = Recorder()
    group = GroupCommit(rec.write)
    group.start()
    rec.gate.clear()
    tasks = [asyncio.create_task(group.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(group.close())
    await asyncio.sleep(0)
    rec.gate.set()
    await closing
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    with pytest.raises(RuntimeError):
        await group.submit(9)
