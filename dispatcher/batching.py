"""Group commit: many callers' small writes made as one transaction, each caller answered once
its own write is durable.

Provider callbacks and device acks arrive by the thousand in the seconds after a fan-out; one
transaction each would queue them behind one another on the store's single writer (SQLite) or
its connection pool (PostgreSQL). Here a caller's item waits while the write before it runs;
whatever gathered meanwhile is written together. An idle writer writes a lone item at once, so
a quiet system pays no latency for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Collects items and writes them in groups of at most `max_items` with `write`, which
    returns one result per item, in order; `submit` returns the item's result or raises what
    the write raised."""

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_items: int = 500
    ) -> None:
        self._write = write
        self._max_items = max_items
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._closed = False
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def submit(self, item: T) -> R:
        """Queue one item and wait until the group holding it is written."""
        if self._closed or self._task is None:
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._ready.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop; later submits are refused."""
        self._closed = True
        self._ready.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            group = self._waiting[: self._max_items]
            del self._waiting[: self._max_items]
            try:
                await self._write_group(group)
            except BaseException:
                # Cancelled: the callers hear it, and nothing is left waiting forever.
                for _, future in [*group, *self._waiting]:
                    if not future.done():
                        future.cancel()
                raise

    async def _write_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                if not group[0][1].done():
                    group[0][1].set_exception(exc)
                return
            # One bad item must not fail the others: write them one by one.
            for entry in group:
                await self._write_group([entry])
            return
        for (_, future), result in zip(group, results, strict=True):
            # A caller that gave up waiting is not answered; its item was written all the same.
            if not future.done():
                future.set_result(result)
