"""A circuit breaker per channel, so a provider outage is probed rather than hammered.

Closed: batches go out. After `failures` consecutive batches that failed as a whole with a
transient error, or when the transient share of the last `window` deliveries reaches
`failure_rate`, the breaker opens: nothing is claimed for `cooldown_s` (doubling on each failed
probe up to `max_cooldown_s`). Then it is half-open: one probe batch goes out; its success
closes the breaker, its failure opens it again. A Retry-After on a batch that failed whole
holds the channel that long whatever the state. While open, deliveries wait in the outbox
(until their deadline) or, past `fallback_after_s`, go to the channel's fallback.

The breaker is per process: with several nodes each one learns about an outage on its own,
which costs at most one probe per node per cool-down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog
from pydantic import Field

from dispatcher.access.credentials import SettingsModel
from dispatcher.domain import Outcome, Receipt

log = structlog.get_logger("clarion.breaker")


class BreakerSettings(SettingsModel):
    """When a channel's breaker opens, how long it stays open, and when its fallback takes over."""

    failures: int = Field(
        default=5, ge=1, description="consecutive whole-batch transient failures that open it"
    )
    failure_rate: float = Field(
        default=0.8, gt=0, le=1, description="transient share of recent deliveries that opens it"
    )
    window: int = Field(default=200, ge=1, description="deliveries the failure rate covers")
    min_volume: int = Field(
        default=50, ge=1, description="deliveries in the window before the rate counts"
    )
    cooldown_s: float = Field(default=5.0, gt=0, description="open this long before a probe")
    max_cooldown_s: float = Field(default=30.0, gt=0, description="cap on the doubled cool-down")
    probe_size: int = Field(default=5, ge=1, description="deliveries in the half-open probe")
    fallback_after_s: float = Field(
        default=60.0, ge=0, description="open this long: queued deliveries go to the fallback"
    )


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer to "may this channel claim a batch now?"."""

    limit: int
    """Deliveries the next batch may hold; 0 means wait."""
    probe: bool = False
    wait_s: float = 0.0
    """How long to wait before asking again, when `limit` is 0."""


def whole_batch_transient(receipts: Sequence[Receipt]) -> bool:
    """True when every delivery of the batch is to be retried: the provider, not the people."""
    return bool(receipts) and all(r.outcome is Outcome.RETRY for r in receipts)


class CircuitBreaker:
    """One channel's breaker; `permit` before claiming, `record` after each batch."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._now = monotonic
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=self.settings.window)
        self._cooldown_s = self.settings.cooldown_s
        self._reopen_at = 0.0
        self._opened_at: float | None = None
        self._probing = False
        self._hold_until = 0.0
        self.opened = 0
        """How many times it opened (for tests and metrics)."""

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open once the cool-down is over."""
        if self._state is BreakerState.OPEN and self._now() >= self._reopen_at:
            return BreakerState.HALF_OPEN
        return self._state

    def open_for_s(self) -> float:
        """Seconds since this outage began (0 when closed)."""
        return 0.0 if self._opened_at is None else self._now() - self._opened_at

    def permit(self, batch_size: int) -> Permit:
        """How many deliveries may be claimed now; a half-open breaker lets one probe out."""
        now = self._now()
        if now < self._hold_until:
            return Permit(0, wait_s=self._hold_until - now)
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(batch_size)
        if state is BreakerState.OPEN:
            return Permit(0, wait_s=self._reopen_at - now)
        if self._probing:
            return Permit(0, wait_s=min(1.0, self._cooldown_s))
        if self._state is BreakerState.OPEN:
            self._state = BreakerState.HALF_OPEN
            log.info("breaker.half_open", channel=self.name)
        self._probing = True
        return Permit(min(batch_size, self.settings.probe_size), probe=True)

    def unused(self, permit: Permit) -> None:
        """The permit claimed nothing: a probe may be tried again."""
        if permit.probe:
            self._probing = False

    def record(self, receipts: Sequence[Receipt], *, probe: bool = False) -> None:
        """Learn from one sent batch."""
        failed = whole_batch_transient(receipts)
        if failed:
            retry_after = max((r.retry_after_s or 0.0 for r in receipts), default=0.0)
            if retry_after > 0:
                # The provider said when to come back: no batch goes before that.
                self._hold_until = max(self._hold_until, self._now() + retry_after)
        self._recent.extend(r.outcome is Outcome.RETRY for r in receipts)
        if probe:
            self._probing = False
            if failed:
                self._open(doubled=True)
            else:
                self._close()
            return
        if self._state is not BreakerState.CLOSED:
            # A batch claimed before the breaker opened: it says nothing new about the probe.
            return
        self._consecutive = self._consecutive + 1 if failed else 0
        if self._consecutive >= self.settings.failures or self._rate_exceeded():
            self._open(doubled=False)

    def _rate_exceeded(self) -> bool:
        if len(self._recent) < self.settings.min_volume:
            return False
        return sum(self._recent) / len(self._recent) >= self.settings.failure_rate

    def _open(self, *, doubled: bool) -> None:
        now = self._now()
        if doubled:
            self._cooldown_s = min(self._cooldown_s * 2, self.settings.max_cooldown_s)
        else:
            self._cooldown_s = self.settings.cooldown_s
        if self._opened_at is None:
            self._opened_at = now
        self._state = BreakerState.OPEN
        self._reopen_at = now + self._cooldown_s
        self._consecutive = 0
        self.opened += 1
        log.warning("breaker.opened", channel=self.name, cooldown_s=round(self._cooldown_s, 3),
                    open_for_s=round(now - self._opened_at, 3))

    def _close(self) -> None:
        was_open = self._opened_at is not None
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._recent.clear()
        self._cooldown_s = self.settings.cooldown_s
        self._opened_at = None
        if was_open:
            log.info("breaker.closed", channel=self.name)


def independent_breaker() -> BreakerSettings:
    """A breaker that does not open: the channel's destinations are separate services, and
    one that is down must not hold up the others (its own deliveries back off on their own)."""
    return BreakerSettings(failures=1_000_000, failure_rate=1.0, min_volume=1_000_000,
                           window=1_000_000)
