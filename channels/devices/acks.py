"""Device acks: taken in, deduplicated and reported; silence past the ack timeout is a failure."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, LateReceipt, Outcome

log = structlog.get_logger("clarion.channel.devices")

# Acks reported together at most, so a burst reaches the store as a few group writes.
ACK_BURST = 500
# What is known of an alert's acks is kept this long past its expiry, for late re-acks.
FORGET_AFTER_MS = 3_600_000


class AckState(StrEnum):
    """What a device says it did with an alert."""

    RECEIVED = "received"
    DISPLAYED = "displayed"
    SOUNDED = "sounded"
    # A person pressed the button on a desktop pop-up: the furthest a device can say.
    ACKNOWLEDGED = "acknowledged"


@dataclass(slots=True)
class _Pending:
    kind: ChannelKind
    deadline_ms: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class _Ack:
    device_class: ChannelKind
    device_id: str
    alert_id: str
    state: AckState


class AckTracker:
    """The acks each (alert, device) sent, and the devices still owing one."""

    def __init__(
        self,
        clock: Clock,
        counters: Counter[str],
        report: Callable[[LateReceipt], Awaitable[None]],
    ) -> None:
        self._clock = clock
        self._counters = counters
        self._report = report
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._acked: dict[tuple[str, str], set[AckState]] = {}
        self._alert_expiry: dict[str, int] = {}
        self._incoming: asyncio.Queue[_Ack] = asyncio.Queue()

    # --- intake -----------------------------------------------------------------------------

    def on_ack(self, kind: ChannelKind, device_id: str, payload: bytes) -> bool:
        """Queue a device's ack for reporting; False (counted, logged) when it is malformed."""
        try:
            data = json.loads(payload)
            alert_id = data["alert_id"]
            state = AckState(data["state"])
            if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 200:
                raise ValueError("alert_id")
        except (ValueError, KeyError, TypeError, RecursionError):
            self._counters["malformed_acks"] += 1
            log.warning("device.ack_malformed", device_id=device_id, device_class=kind.value,
                        size=len(payload))
            return False
        # Acks for alerts this process never sent (a restart) are still reported, then forgotten.
        self._alert_expiry.setdefault(alert_id, self._clock.now_ms() + FORGET_AFTER_MS)
        self._incoming.put_nowait(_Ack(kind, device_id, alert_id, state))
        return True

    async def run(self) -> None:
        """Report acks as they come, each new (alert, device, state) once."""
        # Acks come in bursts (every device of a zone within a second): each burst is reported
        # at once, so the store can write it as one group rather than ack by ack.
        while True:
            burst = [await self._incoming.get()]
            while not self._incoming.empty() and len(burst) < ACK_BURST:
                burst.append(self._incoming.get_nowait())
            reports = []
            for ack in burst:
                key = (ack.alert_id, ack.device_id)
                seen = self._acked.setdefault(key, set())
                if ack.state in seen:
                    continue
                seen.add(ack.state)
                self._pending.pop(key, None)
                self._counters["acks"] += 1
                reports.append(self._report(LateReceipt(
                    ack.device_class, Outcome.DELIVERED, alert_id=ack.alert_id,
                    recipient=ack.device_id, detail=ack.state.value,
                )))
            await asyncio.gather(*reports)

    # --- what was sent ----------------------------------------------------------------------

    def track(self, alert_id: str, expires_ms: int) -> None:
        """The alert is being sent: keep its acks until an hour past expires_ms."""
        self._alert_expiry[alert_id] = expires_ms

    def latest(self, alert_id: str, device_id: str) -> AckState | None:
        """The furthest state the device acked for the alert, if any."""
        acked = self._acked.get((alert_id, device_id))
        if not acked:
            return None
        return max(acked, key=list(AckState).index)

    def expect(self, kind: ChannelKind, alert_id: str, device_id: str, timeout_s: float) -> None:
        """The device was sent the alert: it owes an ack within timeout_s."""
        deadline_ms = self._clock.now_ms() + round(timeout_s * 1000)
        self._pending[(alert_id, device_id)] = _Pending(kind, deadline_ms, timeout_s)

    def cancel(self, alert_id: str) -> None:
        """The alert was withdrawn: no device owes an ack for it any more."""
        for key in [k for k in self._pending if k[0] == alert_id]:
            del self._pending[key]

    def renew_windows(self) -> None:
        """After a reconnect devices re-ack what they see again: give each a fresh window."""
        now = self._clock.now_ms()
        for pending in self._pending.values():
            pending.deadline_ms = max(pending.deadline_ms, now + round(pending.timeout_s * 1000))

    # --- timeouts ---------------------------------------------------------------------------

    async def expire_pending(self) -> int:
        """Report every device whose ack window closed as not reached; returns how many."""
        now = self._clock.now_ms()
        late = [(k, p) for k, p in self._pending.items() if p.deadline_ms <= now]
        reports = []
        for key, pending in late:
            del self._pending[key]
            self._counters["ack_timeouts"] += 1
            alert_id, device_id = key
            log.warning("device.ack_missing", alert_id=alert_id, device_id=device_id,
                        device_class=pending.kind.value)
            reports.append(self._report(LateReceipt(
                pending.kind, Outcome.FAILED, alert_id=alert_id, recipient=device_id,
                detail=f"no ack within {pending.timeout_s:g} s",
            )))
        await asyncio.gather(*reports)
        return len(late)

    def forget_expired(self) -> set[str]:
        """Drop what is known of alerts an hour past expiry; returns their ids."""
        cutoff = self._clock.now_ms() - FORGET_AFTER_MS
        gone = {a for a, e in self._alert_expiry.items() if e < cutoff}
        for alert_id in gone:
            del self._alert_expiry[alert_id]
        if gone:
            for key in [k for k in self._acked if k[0] in gone]:
                del self._acked[key]
        return gone
