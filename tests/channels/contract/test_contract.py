"""The channel contract: every channel, against its real local server, passes the same suite.

Each test runs once per harness (see harness.py); the failure tests once per row of that
harness's table. What a row must become (retry later, or failed at once with its reason)
is the contract's table `FAMILIES`, the same for every channel.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from channels.errors import ChannelError, PermanentChannelError, TransientChannelError
from channels.failover import FAILOVER_CLASSES
from channels.registry import CHANNELS
from dispatcher.domain import Batch, Mode, Outcome, Receipt
from tests.channels.contract.harness import (
    BY_NAME,
    DRILL_TEXT,
    HARNESSES,
    REQUIRED,
    Arrival,
    ChannelHarness,
    Expect,
    Fault,
    Reach,
    Target,
)

# The test relay takes AUTH without TLS (the channel's TLS is tested in test_email_security):
# aiosmtpd warns about that on every connection.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

# Receipts a delivery that went through may have: accepted, or already confirmed (device acks).
THROUGH = frozenset({Outcome.ACCEPTED, Outcome.DELIVERED})
# Loggers of the test's own servers, not of the channel: what they log is not the channel's.
SERVER_LOGGERS = ("mail.log", "aiohttp.server", "aiohttp.web", "aiohttp.access")
SERVER_EVENTS = ("sandbox.", "broker.")
# Library loggers the service keeps at warning (dispatcher.observability.configure_logging).
QUIET_LOGGERS = ("aiohttp.access", "mail.log", "asyncio", "aiosqlite", "apprise", "urllib3")


async def send(harness: ChannelHarness, batch: Batch) -> Sequence[Receipt] | ChannelError:
    """The receipts of a send, or the typed whole-batch error it raised."""
    try:
        return await harness.running.send(batch)
    except ChannelError as exc:
        return exc


def first_fault(harness: ChannelHarness, expect: Expect) -> Fault | None:
    """The harness's first per-delivery fault of a kind, if it has one."""
    return next((f for f in harness.faults if f.reach is Reach.ONE and f.expect is expect), None)


def per_recipient(arrivals: Sequence[Arrival]) -> Counter[str]:
    """How many times each recipient received the alert."""
    return Counter(a.recipient for a in arrivals)


def assert_transient(result: Receipt) -> None:
    """A transient failure: retry later."""
    assert result.outcome is Outcome.RETRY, result


def assert_permanent(result: Receipt, fault: Fault) -> None:
    """A permanent failure: failed at once, saying why."""
    assert result.outcome is Outcome.FAILED, result
    assert fault.reason in result.detail, (fault.reason, result.detail)


class TestTable:
    """Every channel has a harness, and every harness scripts its protocol's whole table."""

    def test_every_registered_channel_has_a_harness(self) -> None:
        """A channel added to the registry without a harness fails here, not in production;
        the other harnesses are of failover channels over registered providers."""
        assert set(CHANNELS) <= set(BY_NAME)
        assert set(BY_NAME) - set(CHANNELS) <= {c.name for c in FAILOVER_CLASSES.values()}

    @pytest.mark.parametrize("cls", HARNESSES, ids=[h.name for h in HARNESSES])
    def test_harness_covers_its_protocol(self, cls: type[ChannelHarness]) -> None:
        """The failure families the protocol has are all scripted; permanent ones name a reason."""
        families = {f.family for f in cls.faults}
        assert REQUIRED[cls.protocol] <= families, REQUIRED[cls.protocol] - families
        assert all(f.reason for f in cls.faults if f.expect is Expect.PERMANENT)
        assert cls.drill_marks, "a drill must be marked somewhere on the wire"


class TestReceipts:
    """One receipt per delivery, in order, whatever happened to each."""

    async def test_one_receipt_per_delivery_in_order(self, harness: ChannelHarness) -> None:
        """Ids out of order, failures scripted in the middle: receipts follow the batch."""
        targets = harness.targets(6)
        outcomes: dict[int, frozenset[Outcome]] = dict.fromkeys(range(6), THROUGH)
        for index, expect in ((1, Expect.TRANSIENT), (4, Expect.PERMANENT)):
            fault = first_fault(harness, expect)
            if fault is not None:
                targets[index] = await harness.arm(fault, targets[index])
                retry = expect is Expect.TRANSIENT
                outcomes[index] = frozenset({Outcome.RETRY if retry else Outcome.FAILED})
        ids = [907, 12, 455, 3, 78, 64]
        receipts = await harness.running.send(harness.batch(targets, ids=ids))
        assert [r.delivery_id for r in receipts] == ids
        for index, receipt in enumerate(receipts):
            assert receipt.outcome in outcomes[index], (index, receipt)
        through = {targets[i].recipient for i, r in enumerate(receipts) if r.outcome in THROUGH}
        assert per_recipient(await harness.arrivals("A-1")) == dict.fromkeys(through, 1)

    async def test_every_delivery_of_a_large_batch_arrives_once(
        self, harness: ChannelHarness
    ) -> None:
        """Sixty deliveries, sixty receipts, each recipient reached exactly once."""
        targets = harness.targets(60)
        receipts = await harness.running.send(harness.batch(targets))
        assert len(receipts) == 60
        assert {r.outcome for r in receipts} <= THROUGH
        arrived = per_recipient(await harness.arrivals("A-1"))
        assert arrived == dict.fromkeys((t.recipient for t in targets), 1)

    async def test_empty_batch_sends_nothing(self, harness: ChannelHarness) -> None:
        """No deliveries: no receipts, nothing on the wire."""
        assert await harness.running.send(harness.batch([])) == ()
        assert await harness.arrivals("A-1") == []


class TestFailures:
    """The transient vs permanent table, for every channel and every failure its server has."""

    async def test_fault_is_classified(self, harness: ChannelHarness, fault: Fault) -> None:
        """Transient: retry later. Permanent: failed at once with the reason. Nothing arrives
        for the failed delivery, so no failure was quietly retried inside the send."""
        good, hit, other = harness.targets(3)
        hit = await harness.arm(fault, hit)
        result = await send(harness, harness.batch([good, hit, other]))
        if fault.reach is Reach.ONE:
            assert not isinstance(result, ChannelError), result
            first, middle, last = result
            assert first.outcome in THROUGH and last.outcome in THROUGH, result
            if fault.expect is Expect.TRANSIENT:
                assert_transient(middle)
            else:
                assert_permanent(middle, fault)
            arrived = per_recipient(await harness.arrivals("A-1"))
            assert arrived == {good.recipient: 1, other.recipient: 1}
            return
        if isinstance(result, ChannelError):
            transient = fault.expect is Expect.TRANSIENT
            wanted = TransientChannelError if transient else PermanentChannelError
            assert isinstance(result, wanted), repr(result)
            if fault.expect is Expect.PERMANENT:
                assert fault.reason in str(result)
        else:
            assert len(result) == 3
            for receipt in result:
                if fault.expect is Expect.TRANSIENT:
                    assert_transient(receipt)
                else:
                    assert_permanent(receipt, fault)
        if not harness.holds_display:
            assert await harness.arrivals("A-1") == []

    async def test_transient_failure_then_retry_arrives_once(
        self, harness: ChannelHarness, transient_fault: Fault
    ) -> None:
        """The engine's next attempt, once the provider is back, reaches everyone exactly once:
        nothing of the failed attempt was delivered behind its receipt's back."""
        targets = harness.targets(3)
        armed = list(targets)
        armed[1] = await harness.arm(transient_fault, targets[1])
        ids = [31, 32, 33]
        first = await send(harness, harness.batch(armed, ids=ids))
        await harness.heal()
        if isinstance(first, ChannelError):
            again = list(zip(ids, targets, strict=True))
        else:
            again = [
                (i, t)
                for i, t, r in zip(ids, targets, first, strict=True)
                if r.outcome is Outcome.RETRY
            ]
        assert again, "the transient fault made nothing retry"
        second = await harness.running.send(
            harness.batch([t for _, t in again], ids=[i for i, _ in again], attempt=2)
        )
        assert {r.outcome for r in second} <= THROUGH, second
        arrived = per_recipient(await harness.arrivals("A-1"))
        assert arrived == dict.fromkeys((t.recipient for t in targets), 1)


class TestDrills:
    """A drill is marked as one on the wire, and nobody is told to act on it as real."""

    @pytest.mark.parametrize("mode", [Mode.DRILL, Mode.TEST])
    async def test_drill_is_marked_on_the_wire(self, harness: ChannelHarness, mode: Mode) -> None:
        """Every arrival of a drill or test carries the channel's drill markings (sirens: the
        test pattern, even for words that would sound the attack pattern)."""
        targets = harness.targets(4)
        receipts = await harness.running.send(
            harness.batch(targets, alert_id="D-1", mode=mode, text=DRILL_TEXT)
        )
        assert {r.outcome for r in receipts} <= THROUGH
        arrivals = await harness.arrivals("D-1")
        assert per_recipient(arrivals) == dict.fromkeys((t.recipient for t in targets), 1)
        for arrival in arrivals:
            assert harness.drill_marks <= arrival.marks, (arrival.recipient, arrival.marks)

    async def test_live_alert_carries_no_drill_marking(self, harness: ChannelHarness) -> None:
        """A real alert is never dressed as a drill."""
        targets = harness.targets(2)
        await harness.running.send(harness.batch(targets, alert_id="L-1"))
        arrivals = await harness.arrivals("L-1")
        assert len(arrivals) == 2
        assert all(a.marks == frozenset() for a in arrivals), [a.marks for a in arrivals]


class TestCancellation:
    """After a cancel, the engine's withdraw takes down what still shows, and sends nothing."""

    async def test_withdraw_takes_the_alert_down(self, harness: ChannelHarness) -> None:
        """Withdrawn with the message-less context the engine passes, nothing of the alert is
        on show and nothing more reaches anyone."""
        targets = harness.targets(4)
        await harness.running.send(harness.batch(targets, alert_id="C-1"))
        before = Counter(await harness.arrivals("C-1"))
        if harness.holds_display:
            assert await harness.showing("C-1") == {t.recipient for t in targets}
        cancel = harness.batch([], alert_id="C-1", rendered=False).alert
        await harness.running.withdraw(cancel)
        assert await harness.showing("C-1") == set()
        assert Counter(await harness.arrivals("C-1")) == before

    async def test_withdraw_of_an_unknown_alert_is_harmless(self, harness: ChannelHarness) -> None:
        """Withdrawing what was never sent here, twice, neither fails nor disturbs another alert."""
        targets = harness.targets(2)
        await harness.running.send(harness.batch(targets, alert_id="K-1"))
        never = harness.batch([], alert_id="C-404", rendered=False).alert
        await harness.running.withdraw(never)
        await harness.running.withdraw(never)
        assert per_recipient(await harness.arrivals("K-1")) == dict.fromkeys(
            (t.recipient for t in targets), 1
        )
        if harness.holds_display:
            assert await harness.showing("K-1") == {t.recipient for t in targets}

    async def test_batch_sent_after_withdraw_shows_nothing(self, harness: ChannelHarness) -> None:
        """A batch in flight when the alert was cancelled brings nothing of it back."""
        first, late = harness.targets(2)
        await harness.running.send(harness.batch([first], alert_id="C-2"))
        await harness.running.withdraw(harness.batch([], alert_id="C-2", rendered=False).alert)
        receipts = await harness.running.send(harness.batch([late], alert_id="C-2", ids=[2]))
        assert late.recipient not in per_recipient(await harness.arrivals("C-2"))
        assert await harness.showing("C-2") == set()
        assert [r.outcome for r in receipts] == [Outcome.FAILED]


class TestPrivacy:
    """No contact data (numbers, addresses, names) or secret in receipts, errors or logs."""

    async def test_nothing_personal_or_secret_leaks(
        self, harness: ChannelHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Every failure the server can script, per delivery and whole-batch, then the text of
        every receipt, error, log event and library log record is searched."""
        caplog.set_level(logging.INFO)
        targets = harness.targets(2)
        per_delivery = [f for f in harness.faults if f.reach is Reach.ONE]
        armed: list[Target] = []
        for offset, fault in enumerate(per_delivery):
            armed.append(await harness.arm(fault, harness.target(10 + offset)))
        shown: list[str] = [repr(harness.running.describe())]
        with capture_logs() as events:
            result = await send(harness, harness.batch(targets + armed))
            shown.append(repr(result))
            for fault in (f for f in harness.faults if f.reach is Reach.ALL):
                hit = await harness.arm(fault, harness.target(50))
                shown.append(repr(await send(harness, harness.batch([*targets, hit]))))
                await harness.heal()
        own = [e for e in events if not str(e.get("event", "")).startswith(SERVER_EVENTS)]
        assert own, "the channel logged nothing to search"
        shown.append(repr(own))
        shown.extend(
            record.getMessage()
            for record in caplog.records
            if not record.name.startswith(SERVER_LOGGERS)
            and (record.levelno >= logging.WARNING or not record.name.startswith(QUIET_LOGGERS))
        )
        text = "\n".join(shown)
        everyone = [*targets, *armed, harness.target(50)]
        private = [value for t in everyone for value in harness.contact_data(t)]
        for value in (*private, *harness.secrets()):
            assert value not in text, value
