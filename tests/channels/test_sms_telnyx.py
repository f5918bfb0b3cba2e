"""sms.telnyx's parts (the Ed25519 webhook check, receipts from webhooks) and the failover
channel over two real stand-ins (Twilio's and Telnyx's Messaging APIs)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.base import Channel, ChannelSettings
from channels.failover import SmsFailover
from channels.registry import build_channels, provider_channel
from channels.sandbox.stats import Stats
from channels.sandbox.telnyx import TelnyxSandbox, public_key_of, sign
from channels.sandbox.twilio import DEFAULT_ACCOUNT_SID, TwilioSandbox
from channels.sms_telnyx import TelnyxSettings, TelnyxSms, parse_inbound, parse_status_event
from channels.sms_twilio import TwilioSettings, TwilioSms
from channels.telnyx_rest import signature_valid
from dispatcher.domain import Batch, ChannelKind, Outcome, Precedence, Receipt
from tests.channels.contract.harness import Target, make_batch, serve

BODY = b'{"data":{"event_type":"message.finalized","payload":{}}}'
KEY = Ed25519PrivateKey.generate()
PUBLIC = public_key_of(KEY)


def signed(body: bytes = BODY, *, at: float | None = None, key: Ed25519PrivateKey = KEY
           ) -> tuple[str, str]:
    """(signature, timestamp) for a body sent at `at` (now by default)."""
    timestamp = str(int(time.time() if at is None else at))
    return sign(key, timestamp, body), timestamp


class TestSignature:
    """The webhook check: Telnyx's key, over "{timestamp}|{raw body}", within the window."""

    def test_signed_now_by_the_account_key_passes(self) -> None:
        """The one case that passes."""
        signature, timestamp = signed()
        assert signature_valid(PUBLIC, BODY, signature, timestamp, now_s=time.time())

    def test_another_key_fails(self) -> None:
        """A signature by any other key is refused."""
        signature, timestamp = signed(key=Ed25519PrivateKey.generate())
        assert not signature_valid(PUBLIC, BODY, signature, timestamp, now_s=time.time())

    def test_a_changed_body_fails(self) -> None:
        """One byte changed after signing is refused."""
        signature, timestamp = signed()
        changed = BODY.replace(b"finalized", b"finalizee")
        assert not signature_valid(PUBLIC, changed, signature, timestamp, now_s=time.time())

    def test_a_changed_timestamp_fails(self) -> None:
        """The timestamp is signed too: moving it forward (a replay made fresh) is refused."""
        signature, timestamp = signed(at=time.time() - 30)
        later = str(int(timestamp) + 30)
        assert not signature_valid(PUBLIC, BODY, signature, later, now_s=time.time())

    @pytest.mark.parametrize("offset_s", [-301, 301, -86400])
    def test_outside_the_window_fails(self, offset_s: int) -> None:
        """Signed more than five minutes before or after now: refused, though genuine."""
        now = time.time()
        signature, timestamp = signed(at=now + offset_s)
        assert not signature_valid(PUBLIC, BODY, signature, timestamp, now_s=now)
        assert signature_valid(PUBLIC, BODY, signature, timestamp, now_s=now + offset_s)

    @pytest.mark.parametrize(
        ("signature", "timestamp", "key"),
        [
            (None, "1", PUBLIC),
            ("", "1", PUBLIC),
            ("c2ln", None, PUBLIC),
            ("not base64!", "NOW", PUBLIC),
            ("c2ln", "12e3", PUBLIC),
            ("c2ln", "NOW", ""),
            ("c2ln", "NOW", base64.b64encode(b"short").decode()),
        ],
        # The key is made per process: the ids name the cases so every worker collects alike.
        ids=["no-signature", "empty-signature", "no-timestamp", "not-base64", "float-timestamp",
             "no-key", "short-key"],
    )
    def test_missing_or_malformed_fails(
        self, signature: str | None, timestamp: str | None, key: str
    ) -> None:
        """No header, an unreadable one, or no usable key: refused, never an exception."""
        now = time.time()
        stamp = str(int(now)) if timestamp == "NOW" else timestamp
        assert not signature_valid(key, BODY, signature, stamp, now_s=now)


class TestWebhookPayloads:
    """Telnyx's event payloads as receipts and inbound messages."""

    def test_finalized_with_stop_error_is_a_failed_opt_out(self) -> None:
        """delivery_failed with 40300: failed, opted out, the code named, not the detail."""
        payload = {"id": "b0b9a0e2-6f2c-4a8e-9a57-1c7d1a3a2f10",
                   "to": [{"phone_number": "+15555550101", "status": "delivery_failed"}],
                   "errors": [{"code": "40300", "detail": "to +15555550101 blocked"}]}
        event = parse_status_event(payload, {"d": "42", "a": "A-1"})
        assert event is not None
        assert (event.outcome, event.delivery_id, event.alert_id, event.opted_out) == (
            Outcome.FAILED, 42, "A-1", True,
        )
        assert event.detail == "sms.telnyx: delivery_failed: telnyx 40300 (blocked due to STOP" \
            " message)"

    def test_unknown_status_is_no_receipt(self) -> None:
        """A status Telnyx may add later is not guessed at."""
        payload = {"id": "x", "to": [{"phone_number": "+15555550101", "status": "teleported"}]}
        assert parse_status_event(payload, {}) is None

    def test_inbound_reads_sender_number_and_text(self) -> None:
        """message.received: from, the number written to, the words."""
        payload = {"from": {"phone_number": "+15555550101"},
                   "to": [{"phone_number": "+16175550100"}], "text": "1"}
        assert parse_inbound(payload) is not None
        assert parse_inbound({"text": "1"}) is None


class TestConfig:
    """The provider order in config builds one failover channel, or says what is wrong."""

    def sections(self) -> dict[str, dict[str, Any]]:
        return {
            "sms.twilio": {"account_sid": DEFAULT_ACCOUNT_SID, "auth_token": "t",
                           "senders": [{"number": "22395", "type": "short_code"}]},
            "sms.telnyx": {"api_key": "k", "senders": [{"number": "+16175550100"}]},
        }

    def test_two_providers_without_an_order_are_refused(self) -> None:
        """Two SMS channels and no order: an error naming the setting to add."""
        with pytest.raises(ValueError, match=r"dispatch\.providers\.sms"):
            build_channels(self.sections())

    def test_the_order_builds_one_failover_channel(self) -> None:
        """One SMS channel, its providers in the order given, each reachable by name."""
        built = build_channels(
            self.sections(), providers={ChannelKind.SMS: ["sms.telnyx", "sms.twilio"]}
        )
        channel = built[ChannelKind.SMS]
        assert isinstance(channel, SmsFailover)
        assert [p.name for p in channel.providers] == ["sms.telnyx", "sms.twilio"]
        assert isinstance(provider_channel(built, "sms.twilio"), TwilioSms)

    @pytest.mark.parametrize("order", [["sms.twilio"], ["sms.twilio", "sms.nope"],
                                       ["sms.twilio", "sms.twilio"]])
    def test_an_order_that_does_not_match_is_refused(self, order: list[str]) -> None:
        """An order leaving a provider out, naming one not configured, or one twice."""
        with pytest.raises(ValueError, match=r"dispatch\.providers\.sms"):
            build_channels(self.sections(), providers={ChannelKind.SMS: order})


@dataclass
class Pair:
    """Twilio's and Telnyx's stand-ins on one server, and the failover channel over them."""

    twilio: TwilioSandbox
    telnyx: TelnyxSandbox
    channel: SmsFailover
    drained: set[str]


@pytest_asyncio.fixture
async def pair() -> AsyncIterator[Pair]:
    """Both stand-ins served, the channel started (Twilio first), stopped at the end."""
    stats = Stats()
    twilio = TwilioSandbox(auth_token="tok", stats=stats, callback_delay_s=0.01)
    telnyx = TelnyxSandbox(api_key="KEYpair", stats=stats, callback_delay_s=0.01)
    app = web.Application()
    twilio.attach(app)
    telnyx.attach(app)
    runner, port = await serve(app)
    url = f"http://127.0.0.1:{port}"
    drained: set[str] = set()

    async def read() -> frozenset[str]:
        return frozenset(drained)

    first = TwilioSms(TwilioSettings.model_validate({
        "account_sid": DEFAULT_ACCOUNT_SID, "auth_token": "tok", "api_base_url": url,
        "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 1000}],
        "timeout_s": 1.0, "breaker": {"failures": 2, "cooldown_s": 60},
    }))
    second = TelnyxSms(TelnyxSettings.model_validate({
        "api_key": "KEYpair", "api_base_url": url, "timeout_s": 1.0,
        "senders": [{"number": "+16175550100", "type": "toll_free", "rate_per_second": 1000}],
    }))
    channel = SmsFailover([first, second], drained=read)

    class Sink:
        async def late_receipt(self, receipt: Any, /) -> bool:
            return True

    await channel.start(Sink())
    try:
        yield Pair(twilio, telnyx, channel, drained)
    finally:
        await channel.close()
        await twilio.close()
        await telnyx.close()
        await runner.cleanup()


def targets(count: int, start: int = 0) -> list[Target]:
    """People with US mobile numbers."""
    return [Target(f"P{i:04d}", f"+1617555{i:04d}") for i in range(start, start + count)]


class TestFailoverChannel:
    """What moves to the next provider, and what stays."""

    async def test_provider_errors_move_recipient_errors_stay(self, pair: Pair) -> None:
        """A 500 and a 429 go on to Telnyx; an invalid number fails on Twilio, once."""
        people = targets(4)
        pair.twilio.script(people[0].address, "500")
        pair.twilio.script(people[1].address, "429")
        pair.twilio.script(people[2].address, "21211")
        receipts = await pair.channel.send(make_batch(ChannelKind.SMS, people))
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED, Outcome.ACCEPTED,
                                                 Outcome.FAILED, Outcome.ACCEPTED]
        assert [r.detail.split(":")[0] for r in receipts] == [
            "sms.telnyx", "sms.telnyx", "sms.twilio", "sms.twilio"]
        assert {m.to for m in pair.telnyx.sent} == {people[0].address, people[1].address}
        assert {m.to for m in pair.twilio.sent} == {people[3].address}

    async def test_a_timeout_stays_with_its_provider(self, pair: Pair) -> None:
        """Twilio may have sent what it never answered: retried there, not sent by Telnyx."""
        people = targets(1)
        pair.twilio.script(people[0].address, "hang")
        (receipt,) = await pair.channel.send(make_batch(ChannelKind.SMS, people))
        assert receipt.outcome is Outcome.RETRY
        assert receipt.detail.startswith("sms.twilio:")
        assert not pair.telnyx.sent

    async def test_an_open_breaker_skips_the_provider(self, pair: Pair) -> None:
        """After two whole batches refused, Twilio is not asked until its cool-down ends."""
        pair.twilio.error_rate = 1.0
        for start in (0, 10):
            await pair.channel.send(make_batch(ChannelKind.SMS, targets(2, start)))
        asked = pair.twilio.requests
        receipts = await pair.channel.send(make_batch(ChannelKind.SMS, targets(5, 20)))
        assert pair.twilio.requests == asked
        assert all(r.outcome is Outcome.ACCEPTED for r in receipts)
        assert len(pair.telnyx.sent) == 9

    async def test_every_provider_drained_sends_nothing(self, pair: Pair) -> None:
        """Both drained: each delivery waits (retry), no request is made."""
        pair.drained.update({"sms.twilio", "sms.telnyx"})
        receipts = await pair.channel.send(make_batch(ChannelKind.SMS, targets(3)))
        assert {r.outcome for r in receipts} == {Outcome.RETRY}
        assert pair.twilio.requests == pair.telnyx.requests == 0

    async def test_the_right_of_way_reaches_every_provider(self, pair: Pair) -> None:
        """The engine's word on urgency, given to the channel, holds each provider's paces."""
        pair.channel.right_of_way.set(Precedence.LIVE_EMERGENCY)
        assert {p.right_of_way.front for p in pair.channel.providers} == {
            Precedence.LIVE_EMERGENCY}
        pair.channel.right_of_way.set(None)
        assert {p.right_of_way.front for p in pair.channel.providers} == {None}

    async def test_each_reference_is_asked_of_its_provider(self, pair: Pair) -> None:
        """Reconciling: Twilio's SIDs to Twilio, Telnyx's ids to Telnyx."""
        people = targets(2)
        pair.twilio.script(people[1].address, "500")
        receipts = await pair.channel.send(make_batch(ChannelKind.SMS, people))
        refs = [r.provider_ref for r in receipts]
        assert refs[0].startswith("SM") and len(refs[1]) == 36
        fetched = pair.twilio.fetches
        answers = await pair.channel.reconcile([*refs, "SM" + "0" * 32])
        assert pair.twilio.fetches == fetched + 2
        assert answers["SM" + "0" * 32].outcome is Outcome.FAILED

    async def test_a_fault_in_the_next_provider_keeps_what_the_first_took(
        self, pair: Pair
    ) -> None:
        """The second provider's code raises: its share is retried, the first's stands."""
        people = targets(2)
        pair.twilio.script(people[1].address, "500")
        channel = SmsFailover([pair.channel.providers[0], Faulty(ChannelSettings())])
        first, second = await channel.send(make_batch(ChannelKind.SMS, people))
        assert (first.outcome, first.detail.split(":")[0]) == (Outcome.ACCEPTED, "sms.twilio")
        assert second.outcome is Outcome.RETRY
        assert "channel fault: RuntimeError" in second.detail


class Faulty(Channel):
    """A provider whose own code fails on every batch."""

    name = "sms.faulty"
    kind = ChannelKind.SMS

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Fail as a bug would."""
        raise RuntimeError("a bug in the provider's module")
