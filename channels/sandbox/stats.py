"""What the sandbox received per channel: totals, distinct (alert, recipient) pairs, messages,
and when the first and the last message of each kind arrived."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Received:
    """One message as a provider stand-in received it."""

    kind: str
    alert_id: str
    recipient: str
    text: str
    meta: dict[str, str] = field(default_factory=dict)
    at: float = 0.0
    """When it arrived (epoch seconds)."""


Timed = dict[str, dict[str, int | float | None]]


class Stats:
    """Counts for `GET /stats`: `{"<kind>": {"received": n, "unique": n}}`.

    Each arrival is also stamped with the wall clock (`time.time()`); only the first and the
    last stamp of each kind are kept, so memory does not grow with the messages.
    """

    def __init__(self, keep: int = 500_000) -> None:
        self._received: dict[str, int] = defaultdict(int)
        self._seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._first_at: dict[str, float] = {}
        self._last_at: dict[str, float] = {}
        self._declared: set[str] = set()
        self._keep = keep
        self.messages: list[Received] = []

    def declare(self, *kinds: str) -> None:
        """Kinds a stand-in can receive: `timed_snapshot` lists them before anything arrives."""
        self._declared.update(kinds)

    def record(self, kind: str, alert_id: str, recipient: str, text: str = "", **meta: str) -> bool:
        """Count one message; returns False when it repeats an (alert, recipient) pair."""
        now = time.time()
        self._first_at.setdefault(kind, now)
        self._last_at[kind] = now
        self._received[kind] += 1
        key = (alert_id, recipient)
        fresh = key not in self._seen[kind]
        self._seen[kind].add(key)
        if len(self.messages) < self._keep:
            self.messages.append(Received(kind, alert_id, recipient, text, dict(meta), now))
        return fresh

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The `/stats` document."""
        kinds = sorted(set(self._received) | set(self._seen))
        return {k: {"received": self._received[k], "unique": len(self._seen[k])} for k in kinds}

    def timed_snapshot(self) -> Timed:
        """`snapshot()` plus `first_at` / `last_at` per kind (epoch seconds, None before any),
        and the declared kinds nothing arrived for yet (zero counts, None times)."""
        kinds = sorted(set(self._received) | set(self._seen) | self._declared)
        return {
            k: {
                "received": self._received.get(k, 0),
                "unique": len(self._seen.get(k, ())),
                "first_at": self._first_at.get(k),
                "last_at": self._last_at.get(k),
            }
            for k in kinds
        }

    def of(self, kind: str, alert_id: str | None = None) -> list[Received]:
        """The kept messages of one kind (and alert)."""
        return [
            m
            for m in self.messages
            if m.kind == kind and (alert_id is None or m.alert_id == alert_id)
        ]

    def reset(self) -> None:
        """Forget everything received (tests); the declared kinds stay."""
        self._received.clear()
        self._seen.clear()
        self._first_at.clear()
        self._last_at.clear()
        self.messages.clear()
