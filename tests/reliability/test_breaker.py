"""The circuit breaker alone, on a clock the test moves."""

from __future__ import annotations

import pytest

from channels.breaker import BreakerSettings, BreakerState, CircuitBreaker
from channels.registry import build_channels, validate_channel_settings
from dispatcher.domain import ChannelKind, Outcome, Receipt


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receipts(*outcomes: Outcome, retry_after_s: float | None = None) -> list[Receipt]:
    """One receipt per outcome."""
    return [Receipt(i, o, retry_after_s=retry_after_s) for i, o in enumerate(outcomes)]


def state(b: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (it moves with the clock)."""
    return b.state


DOWN = receipts(Outcome.RETRY, Outcome.RETRY, Outcome.RETRY)
UP = receipts(Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.RETRY)
REFUSED = receipts(Outcome.FAILED, Outcome.FAILED, Outcome.FAILED)


def breaker(**settings: float) -> tuple[CircuitBreaker, FakeClock]:
    """A breaker (3 failures, 10 s cool-down unless told) and its clock."""
    clock = FakeClock()
    values = {"failures": 3, "cooldown_s": 10, "max_cooldown_s": 40, "probe_size": 2,
              "min_volume": 1000, **settings}
    return CircuitBreaker("sms.twilio", BreakerSettings.model_validate(values),
                          monotonic=clock), clock


class TestOpening:
    """What opens the breaker, and what does not."""

    def test_consecutive_whole_batch_failures_open_it(self) -> None:
        """Three whole batches failed in a row: no more batches are claimed."""
        b, _ = breaker()
        for _ in range(2):
            b.record(DOWN)
        assert b.permit(50).limit == 50
        b.record(DOWN)
        assert state(b) is BreakerState.OPEN
        permit = b.permit(50)
        assert permit.limit == 0 and permit.wait_s == 10

    def test_one_good_batch_resets_the_count(self) -> None:
        """Failures must be consecutive."""
        b, _ = breaker()
        for batch in (DOWN, DOWN, UP, DOWN, DOWN):
            b.record(batch)
        assert state(b) is BreakerState.CLOSED

    def test_per_recipient_failures_are_not_an_outage(self) -> None:
        """Permanent refusals (bad numbers, opted out) say the provider is up."""
        b, _ = breaker()
        for _ in range(10):
            b.record(REFUSED)
        assert state(b) is BreakerState.CLOSED

    def test_failure_rate_over_the_window_opens_it(self) -> None:
        """Mostly transient answers, never a whole batch: the rate opens it."""
        b, _ = breaker(min_volume=20, window=20, failure_rate=0.75)
        mostly = receipts(Outcome.RETRY, Outcome.RETRY, Outcome.RETRY, Outcome.ACCEPTED)
        for _ in range(4):
            b.record(mostly)
        assert state(b) is BreakerState.CLOSED
        b.record(mostly)
        assert state(b) is BreakerState.OPEN


class TestRecovery:
    """Half-open lets one small probe out; its fate decides."""

    def test_one_probe_then_closed(self) -> None:
        """After the cool-down one probe batch (probe_size) goes; its success closes."""
        b, clock = breaker()
        for _ in range(3):
            b.record(DOWN)
        clock.now += 10
        assert state(b) is BreakerState.HALF_OPEN
        probe = b.permit(50)
        assert probe.probe and probe.limit == 2
        assert b.permit(50).limit == 0, "a second probe while the first is out"
        b.record(UP, probe=True)
        assert state(b) is BreakerState.CLOSED and b.permit(50).limit == 50
        assert b.open_for_s() == 0

    def test_failed_probe_doubles_the_cooldown_up_to_the_cap(self) -> None:
        """Each failed probe keeps it open longer: 20 s, 40 s, then 40 s again."""
        b, clock = breaker()
        for _ in range(3):
            b.record(DOWN)
        waits = []
        for _ in range(3):
            clock.now += b.permit(50).wait_s
            probe = b.permit(50)
            assert probe.probe
            b.record(DOWN, probe=True)
            waits.append(b.permit(50).wait_s)
        assert waits == [20, 40, 40]
        assert b.open_for_s() == 70

    def test_unused_probe_is_offered_again(self) -> None:
        """A probe that found nothing to claim does not block the next one."""
        b, clock = breaker()
        for _ in range(3):
            b.record(DOWN)
        clock.now += 10
        probe = b.permit(50)
        b.unused(probe)
        assert b.permit(50).probe

    def test_batches_sent_before_opening_do_not_decide(self) -> None:
        """A late result of a batch claimed while closed neither closes nor reopens it."""
        b, _ = breaker()
        for _ in range(3):
            b.record(DOWN)
        b.record(UP)
        assert state(b) is BreakerState.OPEN


class TestRetryAfter:
    """A provider that says when to come back is believed."""

    def test_whole_batch_retry_after_holds_even_a_closed_breaker(self) -> None:
        """No batch goes before the Retry-After is over."""
        b, clock = breaker()
        b.record(receipts(Outcome.RETRY, Outcome.RETRY, retry_after_s=30))
        assert state(b) is BreakerState.CLOSED
        assert b.permit(50).wait_s == 30
        clock.now += 30
        assert b.permit(50).limit == 50

    def test_one_recipients_retry_after_does_not_hold_the_channel(self) -> None:
        """A single 429 in a batch that otherwise went out is that delivery's business."""
        b, _ = breaker()
        b.record([Receipt(1, Outcome.RETRY, retry_after_s=30), Receipt(2, Outcome.ACCEPTED)])
        assert b.permit(50).limit == 50


class TestConfig:
    """Each channel's breaker is tuned in its own `[channels.NAME.breaker]` table."""

    def test_channel_table_sets_its_breaker(self) -> None:
        """The table reaches the channel; a bad value is a config error naming it."""
        channels = build_channels({"push.apprise": {"breaker": {"failures": 2, "cooldown_s": 1}}})
        push = channels[ChannelKind.PUSH].settings.breaker
        assert (push.failures, push.cooldown_s, push.probe_size) == (2, 1.0, 5)
        with pytest.raises(ValueError, match="failures"):
            validate_channel_settings("push.apprise", {"breaker": {"failures": 0}})
