"""What the sandbox received per channel: totals, distinct (alert, recipient) pairs, messages."""

from __future__ import annotations

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


class Stats:
    """Counts for `GET /stats`: `{"<kind>": {"received": n, "unique": n}}`."""

    def __init__(self, keep: int = 500_000) -> None:
        self._received: dict[str, int] = defaultdict(int)
        self._seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._keep = keep
        self.messages: list[Received] = []

    def record(self, kind: str, alert_id: str, recipient: str, text: str = "", **meta: str) -> bool:
        """Count one message; returns False when it repeats an (alert, recipient) pair."""
        self._received[kind] += 1
        key = (alert_id, recipient)
        fresh = key not in self._seen[kind]
        self._seen[kind].add(key)
        if len(self.messages) < self._keep:
            self.messages.append(Received(kind, alert_id, recipient, text, dict(meta)))
        return fresh

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The `/stats` document."""
        kinds = sorted(set(self._received) | set(self._seen))
        return {k: {"received": self._received[k], "unique": len(self._seen[k])} for k in kinds}

    def of(self, kind: str, alert_id: str | None = None) -> list[Received]:
        """The kept messages of one kind (and alert)."""
        return [
            m
            for m in self.messages
            if m.kind == kind and (alert_id is None or m.alert_id == alert_id)
        ]

    def reset(self) -> None:
        """Forget everything (tests)."""
        self._received.clear()
        self._seen.clear()
        self.messages.clear()
