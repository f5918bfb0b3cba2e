"""The engine's background work: the tasks it starts beside its callers, and the events that
wake its channel loops."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

import structlog

from dispatcher.domain import ChannelKind

log = structlog.get_logger("clarion.engine")


class Tasks:
    """Tasks started beside the caller (resolutions, sends, bookkeeping), drained at stop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False
        """Set once at stop: loops end and nothing new is claimed."""

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background, kept until it ends."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, grace_s: float) -> None:
        """Let the tasks still running end within `grace_s`, then cancel the rest."""
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            log.warning("engine.drain_cut_short", tasks=len(late), grace_s=grace_s)
            await asyncio.gather(*late, return_exceptions=True)


class Wakes:
    """One event per channel that wakes its loop when work is queued there."""

    def __init__(self, kinds: Iterable[ChannelKind]) -> None:
        self._events = {kind: asyncio.Event() for kind in kinds}
        # Channels where a live emergency's deliveries were just enqueued.
        self._urgent: set[ChannelKind] = set()

    def event(self, kind: ChannelKind) -> asyncio.Event:
        """The channel loop's event."""
        return self._events[kind]

    def wake(self, kind: ChannelKind, *, urgent: bool = False) -> None:
        """Work was queued on `kind` (a live emergency's when `urgent`)."""
        if kind not in self._events:
            return
        if urgent:
            self._urgent.add(kind)
        self._events[kind].set()

    def wake_all(self) -> None:
        """Work may be queued on any channel (or the engine stops)."""
        for event in self._events.values():
            event.set()

    def urgent_due(self, kind: ChannelKind) -> bool:
        """True once, after a live emergency's deliveries were enqueued on the channel: its
        first claim goes ahead of the writers waiting."""
        if kind in self._urgent:
            self._urgent.discard(kind)
            return True
        return False
