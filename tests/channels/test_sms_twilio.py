"""sms.twilio against the sandbox's Twilio Messages API, with signed status callbacks."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from channels.errors import PermanentChannelError, TransientChannelError
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sandbox.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox
from channels.sms_twilio import (
    SenderSettings,
    TwilioSettings,
    TwilioSms,
    parse_status_callback,
    public_callback_url,
    sms_segments,
    status_callback_url,
)
from dispatcher.api import callbacks
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    Delivery,
    LateReceipt,
    Message,
    Mode,
    Outcome,
    Precedence,
    urgency_rank,
)
from dispatcher.edge import SERVICE
from dispatcher.policy.settings import RenderingSettings
from dispatcher.settings import ServiceSettings

GOOD = "+15555550101"
OTHER = "+15555550102"
THIRD = "+15555550103"
TEXT = "UNIV ALERT: Fire reported in North Hall. Leave the building now and stay clear."
WRONG_TOKEN = "not-the-sandbox-token-4711"


# --- servers -------------------------------------------------------------------------------


@dataclass
class LateReceipts:
    """Stands in for the engine's ReceiptSink: records what the callback route hands it."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def late_receipt(self, receipt: LateReceipt, /) -> bool:
        self.calls.append(
            {
                "channel": receipt.channel,
                "outcome": receipt.outcome,
                "delivery_id": receipt.delivery_id,
                "provider_ref": receipt.provider_ref,
                "alert_id": receipt.alert_id,
                "detail": receipt.detail,
            }
        )
        async with self.arrived:
            self.arrived.notify_all()
        return True

    async def until(self, count: int) -> list[dict[str, Any]]:
        """Wait (bounded) until `count` receipts arrived."""
        async with asyncio.timeout(10), self.arrived:
            await self.arrived.wait_for(lambda: len(self.calls) >= count)
        return self.calls


@dataclass
class ServiceStandIn:
    """What the callback route reads from `app[SERVICE]`."""

    engine: LateReceipts
    channels: dict[ChannelKind, Any]
    # The body limits every route reads bodies under (`service.max_body_bytes`, read timeout).
    settings: Any = field(default_factory=lambda: SimpleNamespace(service=ServiceSettings()))


@dataclass
class Callbacks:
    """Our callback route served on a free port."""

    url: str
    service: ServiceStandIn

    @property
    def sink(self) -> LateReceipts:
        return self.service.engine


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def twilio_api() -> AsyncIterator[tuple[TwilioSandbox, str]]:
    api = TwilioSandbox(stats=Stats(), callback_delay_s=0.01, seed=7)
    app = web.Application()
    api.attach(app)
    runner, url = await serve(app)
    yield api, url
    await api.close()
    await runner.cleanup()


@pytest.fixture
async def callback_server() -> AsyncIterator[Callbacks]:
    service = ServiceStandIn(LateReceipts(), {})
    app = web.Application()
    app[SERVICE] = service  # type: ignore[assignment]
    app.add_routes(callbacks.routes)
    runner, url = await serve(app)
    yield Callbacks(url + "/v1/callbacks/twilio", service)
    await runner.cleanup()


@pytest.fixture
async def make_channel(
    twilio_api: tuple[TwilioSandbox, str], callback_server: Callbacks
) -> AsyncIterator[Callable[..., TwilioSms]]:
    made: list[TwilioSms] = []

    def make(**overrides: Any) -> TwilioSms:
        raw: dict[str, Any] = {
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": DEFAULT_AUTH_TOKEN,
            "senders": [{"number": "+15550000001", "type": "short_code", "rate_per_second": 100}],
            "api_base_url": twilio_api[1],
            "status_callback_url": callback_server.url,
            "timeout_s": 5,
        }
        raw.update(overrides)
        channel = TwilioSms(TwilioSettings.model_validate(raw))
        callback_server.service.channels[ChannelKind.SMS] = channel
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


def alert(
    *, mode: Mode = Mode.LIVE, text: str = TEXT, expires_in_s: float = 3600, alert_id: str = "A-1"
) -> AlertContext:
    now = int(time.time() * 1000)
    return AlertContext(
        alert_id=alert_id,
        kind=AlertKind.EMERGENCY,
        mode=mode,
        now_ms=now,
        expires_ms=now + int(expires_in_s * 1000),
        messages={"en": Message(text=text)},
    )


def batch(*numbers: str, context: AlertContext | None = None) -> Batch:
    deliveries = tuple(
        Delivery(id=100 + i, recipient=f"P{i:05d}", address=n) for i, n in enumerate(numbers)
    )
    return Batch(context or alert(), deliveries)


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


# --- the channel contract --------------------------------------------------------------------


class TestContract:
    """Every delivery gets exactly one receipt, in order, whatever happened to it."""

    async def test_one_receipt_per_delivery_in_order(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """Accepted, bad number, opted out, throttled and erroring numbers in one batch."""
        api, _ = twilio_api
        api.opted_out.add(THIRD)
        api.script(OTHER, "429")
        api.script("+15555550104", "500")
        sent = batch(GOOD, "555-0101", OTHER, THIRD, "+15555550104", "+15555550105")
        receipts = await make_channel().send(sent)
        assert [r.delivery_id for r in receipts] == [d.id for d in sent.deliveries]
        assert [r.outcome for r in receipts] == [
            Outcome.ACCEPTED,
            Outcome.FAILED,
            Outcome.RETRY,
            Outcome.FAILED,
            Outcome.RETRY,
            Outcome.ACCEPTED,
        ]
        assert receipts[0].provider_ref.startswith("SM") and len(receipts[0].provider_ref) == 34
        assert "21211" in receipts[1].detail and "21610" in receipts[3].detail
        # Only the opted-out number is said to be so, as a field the engine reads.
        assert [r.opted_out for r in receipts] == [False, False, False, True, False, False]

    @pytest.mark.parametrize(
        ("reply", "outcome", "code"),
        [
            ("201", Outcome.ACCEPTED, ""),
            ("21211", Outcome.FAILED, "21211"),
            ("21610", Outcome.FAILED, "21610"),
            ("21614", Outcome.FAILED, "21614"),
            ("400", Outcome.FAILED, "21600"),
            ("429", Outcome.RETRY, "20429"),
            ("500", Outcome.RETRY, "HTTP 500"),
            ("503", Outcome.RETRY, "HTTP 503"),
            ("hang", Outcome.RETRY, "timed out"),
        ],
    )
    async def test_transient_or_permanent(
        self,
        twilio_api: tuple[TwilioSandbox, str],
        make_channel: Callable[..., TwilioSms],
        reply: str,
        outcome: Outcome,
        code: str,
    ) -> None:
        """Each provider answer maps to accepted, retry or failed."""
        twilio_api[0].script(GOOD, reply)
        (receipt,) = await make_channel(timeout_s=0.5).send(batch(GOOD))
        assert receipt.outcome is outcome
        assert code in receipt.detail

    async def test_429_carries_retry_after(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """Twilio's Retry-After becomes the receipt's retry_after_s."""
        twilio_api[0].retry_after_s = 7
        twilio_api[0].script(GOOD, "429")
        (receipt,) = await make_channel().send(batch(GOOD))
        assert (receipt.outcome, receipt.retry_after_s) == (Outcome.RETRY, 7.0)

    async def test_bad_credentials_fail_the_whole_batch_once(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """A 401 is permanent for the batch, and the rest of it is not tried."""
        channel = make_channel(
            auth_token=WRONG_TOKEN, senders=[{"number": "+15550000001", "type": "long_code"}]
        )
        with pytest.raises(PermanentChannelError) as caught:
            await channel.send(batch(GOOD, OTHER, THIRD))
        assert twilio_api[0].requests == 1
        assert WRONG_TOKEN not in str(caught.value)
        assert GOOD not in str(caught.value)

    async def test_unreachable_provider_is_transient(
        self, make_channel: Callable[..., TwilioSms]
    ) -> None:
        """Nothing listening: the whole batch is retried later."""
        channel = make_channel(api_base_url=f"http://127.0.0.1:{free_port()}")
        with pytest.raises(TransientChannelError):
            await channel.send(batch(GOOD, OTHER))

    async def test_expired_alert_is_not_sent(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """An alert past its expiry fails its deliveries without reaching the provider."""
        receipts = await make_channel().send(batch(GOOD, context=alert(expires_in_s=-5)))
        assert [r.outcome for r in receipts] == [Outcome.FAILED]
        assert twilio_api[0].requests == 0

    async def test_validity_period_never_outlives_the_alert(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """ValidityPeriod is the configured one, or the alert's remaining life if shorter."""
        channel = make_channel(validity_period_s=600)
        await channel.send(batch(GOOD, context=alert(alert_id="long")))
        await channel.send(batch(GOOD, context=alert(alert_id="short", expires_in_s=120)))
        long, short = twilio_api[0].stats.of("sms")
        assert long.meta["validity_period"] == "600"
        assert 60 < int(short.meta["validity_period"]) <= 120

    async def test_drill_text_arrives_with_its_prefix(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """The rendered drill text is what the phone receives, prefix included."""
        prefix = RenderingSettings().drill_prefix
        text = f"UNIV ALERT: {prefix} Evacuation drill at North Hall."
        await make_channel().send(batch(GOOD, context=alert(mode=Mode.DRILL, text=text)))
        (received,) = twilio_api[0].stats.of("sms", "A-1")
        assert received.text == text and prefix in received.text
        assert received.recipient == GOOD

    @pytest.mark.parametrize(
        ("share", "outcome", "retry_after"),
        [("error_rate", Outcome.RETRY, None), ("rate_429", Outcome.RETRY, 1.0)],
    )
    async def test_scripted_error_shares(
        self,
        twilio_api: tuple[TwilioSandbox, str],
        make_channel: Callable[..., TwilioSms],
        share: str,
        outcome: Outcome,
        retry_after: float | None,
    ) -> None:
        """The sandbox's random 500 and 429 shares, at 100 %, make every send retry."""
        setattr(twilio_api[0], share, 1.0)
        receipts = await make_channel().send(batch(GOOD, OTHER))
        assert [(r.outcome, r.retry_after_s) for r in receipts] == [(outcome, retry_after)] * 2

    async def test_batch_never_outwaits_the_senders_pace(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """What one long code cannot send within the batch's time comes back as RETRY, unsent."""
        channel = make_channel(
            timeout_s=0.4, senders=[{"number": "+15550000001", "type": "long_code"}]
        )
        receipts = await channel.send(batch(GOOD, OTHER, THIRD))
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED, Outcome.RETRY, Outcome.RETRY]
        assert "rate limit" in receipts[1].detail
        assert twilio_api[0].requests == 1

    async def test_messaging_service(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """With a Messaging Service SID, Twilio picks the sender and answers `accepted`."""
        channel = make_channel(messaging_service_sid="MG" + "1" * 32, senders=[])
        (receipt,) = await channel.send(batch(GOOD))
        assert (receipt.outcome, receipt.detail) == (Outcome.ACCEPTED, "accepted")
        assert twilio_api[0].stats.of("sms")[0].meta["sender"] == ""

    async def test_senders_work_in_parallel(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """Every number in the pool takes a share of the batch."""
        channel = make_channel(
            senders=[
                {"number": "+15550000001", "type": "long_code", "rate_per_second": 50},
                {"number": "+18005550002", "type": "toll_free", "rate_per_second": 50},
            ]
        )
        numbers = [f"+155555502{i:02d}" for i in range(20)]
        receipts = await channel.send(batch(*numbers))
        assert all(r.outcome is Outcome.ACCEPTED for r in receipts)
        used = {m.meta["sender"] for m in twilio_api[0].stats.of("sms")}
        assert used == {"+15550000001", "+18005550002"}
        assert twilio_api[0].stats.snapshot()["sms"] == {"received": 20, "unique": 20}


class TestSettings:
    """What the config section accepts."""

    @pytest.mark.parametrize(
        ("kind", "rate"), [("long_code", 1.0), ("toll_free", 3.0), ("short_code", 100.0)]
    )
    def test_default_rates_by_sender_type(self, kind: str, rate: float) -> None:
        """Long code 1/s, toll-free 3/s, short code 100/s unless overridden."""
        assert SenderSettings(number="+15550000001", type=kind).rate == rate  # type: ignore[arg-type]
        assert SenderSettings(number="+15550000001", type=kind, rate_per_second=7).rate == 7  # type: ignore[arg-type]

    def test_needs_exactly_one_way_to_send(self) -> None:
        """Either a Messaging Service or senders."""
        base = {"account_sid": DEFAULT_ACCOUNT_SID, "auth_token": "x"}
        with pytest.raises(ValueError, match="either"):
            TwilioSettings.model_validate(base)
        with pytest.raises(ValueError, match="either"):
            TwilioSettings.model_validate(
                {**base, "messaging_service_sid": "MG" + "0" * 32, "senders": [{"number": GOOD}]}
            )

    def test_auth_token_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`auth_token_env` names the variable holding the token, and it stays masked."""
        monkeypatch.setenv("CLARION_TEST_TWILIO", "from-env")
        settings = TwilioSettings.model_validate(
            {
                "account_sid": DEFAULT_ACCOUNT_SID,
                "auth_token_env": "CLARION_TEST_TWILIO",
                "senders": [{"number": GOOD}],
            }
        )
        assert settings.auth_token.get_secret_value() == "from-env"
        assert TwilioSms(settings).describe()["auth_token"] == "***"


class TestSegments:
    """Cost per delivery is what carriers bill: GSM-7 or UCS-2 segments."""

    @pytest.mark.parametrize(
        ("text", "segments"),
        [
            ("", 1),
            ("a" * 160, 1),
            ("a" * 161, 2),
            ("a" * 306, 2),
            ("a" * 307, 3),
            ("[" * 80, 1),
            ("[" * 81, 2),
            ("é" * 160, 1),
            ("ł" * 70, 1),
            ("ł" * 71, 2),
            ("ł" * 134, 2),
            ("🚨" * 35, 1),
            ("🚨" * 36, 2),
        ],
    )
    def test_segments(self, text: str, segments: int) -> None:
        """Single messages up to 160/70 units, then 153/67 per part."""
        assert sms_segments(text) == segments

    def test_cost_is_the_longest_rendering(self) -> None:
        """A batch costs the segments of its longest language."""
        settings = TwilioSettings(
            account_sid=DEFAULT_ACCOUNT_SID,
            auth_token="x",  # type: ignore[arg-type]
            senders=[SenderSettings(number=GOOD)],
        )
        context = AlertContext(
            "A",
            AlertKind.EMERGENCY,
            Mode.LIVE,
            0,
            0,
            messages={"en": Message("a" * 200), "es": Message("b" * 10)},
        )
        deliveries = (Delivery(1, "P1", GOOD, "es"), Delivery(2, "P2", OTHER, "en"))
        assert TwilioSms(settings).cost(Batch(context, deliveries)) == 2


# --- status callbacks --------------------------------------------------------------------------


class TestCallbacks:
    """Signed status callbacks become late receipts; unsigned ones are refused."""

    async def test_sent_then_delivered(
        self, callback_server: Callbacks, make_channel: Callable[..., TwilioSms]
    ) -> None:
        """The sandbox reports sent then delivered, matched by delivery id and SID."""
        (receipt,) = await make_channel().send(batch(GOOD, context=alert(alert_id="A-7")))
        first, second = await callback_server.sink.until(2)
        assert [first["outcome"], second["outcome"]] == [Outcome.ACCEPTED, Outcome.DELIVERED]
        for call in (first, second):
            assert call["provider_ref"] == receipt.provider_ref
            assert call["delivery_id"] == 100
            assert call["alert_id"] == "A-7"
            assert call["channel"] is ChannelKind.SMS

    @pytest.mark.parametrize(("status", "code"), [("undelivered", 30003), ("failed", 30008)])
    async def test_failures_carry_the_error_code(
        self,
        twilio_api: tuple[TwilioSandbox, str],
        callback_server: Callbacks,
        make_channel: Callable[..., TwilioSms],
        status: str,
        code: int,
    ) -> None:
        """Undelivered and failed end as FAILED with Twilio's error code in the detail."""
        twilio_api[0].fate(GOOD, status, code)
        await make_channel().send(batch(GOOD))
        expected = 2 if status == "undelivered" else 1
        calls = await callback_server.sink.until(expected)
        assert calls[-1]["outcome"] is Outcome.FAILED
        assert str(code) in calls[-1]["detail"] and status in calls[-1]["detail"]

    async def test_undelivered_share(
        self,
        twilio_api: tuple[TwilioSandbox, str],
        callback_server: Callbacks,
        make_channel: Callable[..., TwilioSms],
    ) -> None:
        """The sandbox's undelivered share ends messages as undelivered (30003)."""
        twilio_api[0].undelivered_rate = 1.0
        await make_channel().send(batch(GOOD))
        sent, final = await callback_server.sink.until(2)
        assert (sent["outcome"], final["outcome"]) == (Outcome.ACCEPTED, Outcome.FAILED)
        assert "30003" in final["detail"]

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            ("queued", Outcome.ACCEPTED),
            ("sending", Outcome.ACCEPTED),
            ("sent", Outcome.ACCEPTED),
            ("delivered", Outcome.DELIVERED),
            ("undelivered", Outcome.FAILED),
            ("failed", Outcome.FAILED),
        ],
    )
    async def test_each_status(
        self,
        callback_server: Callbacks,
        make_channel: Callable[..., TwilioSms],
        status: str,
        outcome: Outcome,
    ) -> None:
        """Every MessageStatus maps to its receipt outcome."""
        make_channel()
        url = status_callback_url(callback_server.url, 42, "A-9")
        params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": status, "To": GOOD}
        if outcome is Outcome.FAILED:
            params["ErrorCode"] = "30005"
        async with aiohttp.ClientSession() as http:
            headers = {"X-Twilio-Signature": sign(DEFAULT_AUTH_TOKEN, url, params)}
            async with http.post(url, data=params, headers=headers) as response:
                assert response.status == 204
        (call,) = callback_server.sink.calls
        assert (call["outcome"], call["delivery_id"], call["alert_id"]) == (outcome, 42, "A-9")
        if outcome is Outcome.FAILED:
            assert "30005" in call["detail"]

    @pytest.mark.parametrize("forgery", ["missing", "garbage", "other_token", "tampered_query"])
    async def test_unsigned_or_forged_is_refused(
        self, callback_server: Callbacks, make_channel: Callable[..., TwilioSms], forgery: str
    ) -> None:
        """403 and nothing recorded unless the signature is Twilio's over this exact URL."""
        make_channel()
        url = status_callback_url(callback_server.url, 42, "A-9")
        params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered"}
        headers = {
            "missing": {},
            "garbage": {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
            "other_token": {"X-Twilio-Signature": sign("someone-else", url, params)},
            "tampered_query": {"X-Twilio-Signature": sign(DEFAULT_AUTH_TOKEN, url, params)},
        }[forgery]
        if forgery == "tampered_query":
            url = status_callback_url(callback_server.url, 43, "A-9")
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=params, headers=headers) as response,
        ):
            assert response.status == 403
        assert callback_server.sink.calls == []

    async def test_statuses_that_are_not_receipts_are_ignored(
        self, callback_server: Callbacks, make_channel: Callable[..., TwilioSms]
    ) -> None:
        """A signed callback with an unknown status is acknowledged and not recorded."""
        make_channel()
        url = status_callback_url(callback_server.url, 42, "A-9")
        params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "receiving"}
        async with aiohttp.ClientSession() as http:
            headers = {"X-Twilio-Signature": sign(DEFAULT_AUTH_TOKEN, url, params)}
            async with http.post(url, data=params, headers=headers) as response:
                assert response.status == 204
        assert callback_server.sink.calls == []

    def test_public_url_behind_a_proxy(self) -> None:
        """The signed URL is the configured public one with the request's own query."""
        configured = "https://alerts.example.edu/v1/callbacks/twilio"
        assert (
            public_callback_url(configured, "d=1&a=A")
            == "https://alerts.example.edu/v1/callbacks/twilio?d=1&a=A"
        )

    @pytest.mark.parametrize(
        ("status", "code", "opted_out"),
        [
            ("undelivered", "21610", True),
            ("failed", "21610", True),
            ("undelivered", "30003", False),
            ("failed", "", False),
            ("delivered", "", False),
        ],
    )
    def test_parse_says_a_carrier_opt_out(self, status: str, code: str, opted_out: bool) -> None:
        """A failed callback with the opt-out error code says the number opted out."""
        params = {"MessageSid": "SM1", "MessageStatus": status, "ErrorCode": code}
        event = parse_status_callback(params, {"d": "7"})
        assert event is not None and event.opted_out is opted_out

    def test_parse_without_delivery_id(self) -> None:
        """Callbacks without our query still match by SID."""
        event = parse_status_callback({"MessageSid": "SM1", "MessageStatus": "sent"}, {})
        assert event is not None and event.delivery_id is None and event.alert_id is None


# --- privacy ------------------------------------------------------------------------------------


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


class TestPrivacy:
    """No phone number or auth token in errors, receipts or logs."""

    async def test_failures_reveal_no_number_or_token(
        self,
        twilio_api: tuple[TwilioSandbox, str],
        make_channel: Callable[..., TwilioSms],
        logs: list[dict[str, Any]],
    ) -> None:
        """Rejections quote the number at Twilio; none of it reaches our receipts or logs."""
        api = twilio_api[0]
        api.opted_out.add(OTHER)
        api.script(THIRD, "21614")
        receipts = await make_channel().send(batch(GOOD, OTHER, THIRD, "+1555"))
        with pytest.raises(PermanentChannelError) as caught:
            await make_channel(auth_token=WRONG_TOKEN).send(batch(GOOD))
        assert logs, "the failures were logged"
        text = repr(logs) + repr(receipts) + str(caught.value)
        for secret in (GOOD, OTHER, THIRD, "+1555", "5555550", WRONG_TOKEN, DEFAULT_AUTH_TOKEN):
            assert secret not in text


# --- the sandbox as `clarion sandbox` runs it ---------------------------------------------------


async def test_sandbox_plugin_with_cli_defaults() -> None:
    """With the CLI's defaults, the default credentials reach the sandbox and /stats counts."""
    parser = argparse.ArgumentParser()
    twilio_plugin.add_arguments(parser)
    sandbox = Sandbox(port=0, smtp_port=0)
    api = await twilio_plugin.attach(sandbox, parser.parse_args([]))
    # The sandbox's HTTP app alone: this test is about the plugin, not the SMTP listener.
    runner, url = await serve(sandbox.app)
    channel = TwilioSms(
        TwilioSettings(
            account_sid=DEFAULT_ACCOUNT_SID,
            auth_token=DEFAULT_AUTH_TOKEN,  # type: ignore[arg-type]
            senders=[SenderSettings(number="+15550000001", type="short_code")],  # type: ignore[arg-type]
            api_base_url=url,
        )
    )
    try:
        receipts = await channel.send(batch(GOOD, OTHER))
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
        async with aiohttp.ClientSession() as http, http.get(url + "/stats") as r:
            assert (await r.json())["sms"] == {"received": 2, "unique": 2}
        assert len(api.sent) == 2
    finally:
        await channel.close()
        await api.close()
        await runner.cleanup()


# --- urgency and reconciliation ---------------------------------------------------------------


def ranked(alert_id: str, kind: AlertKind, mode: Mode, created_ms: int) -> AlertContext:
    """An alert context with its place in the order of urgency."""
    context = alert(mode=mode, alert_id=alert_id)
    return AlertContext(
        alert_id=context.alert_id, kind=kind, mode=mode, now_ms=context.now_ms,
        expires_ms=context.expires_ms, messages=context.messages,
        rank=urgency_rank(kind, mode, created_ms),
    )


class TestUrgency:
    """A number's pace goes to the most urgent alert first; a drill gives way untried."""

    async def test_an_emergency_overtakes_a_drill_at_the_senders_pace(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """A drill batch is under way at 20 messages a second when an emergency batch comes:
        the emergency's messages are handed over together, before the rest of the drill."""
        api, _ = twilio_api
        channel = make_channel(
            senders=[{"number": "+15550000001", "type": "long_code", "rate_per_second": 20}],
        )
        drill = ranked("DRILL", AlertKind.EMERGENCY, Mode.DRILL, 1)
        gas = ranked("GAS", AlertKind.EMERGENCY, Mode.LIVE, 2)
        drill_batch = batch(*(f"+1555555{i:04d}" for i in range(60)), context=drill)
        gas_batch = batch(*(f"+1555666{i:04d}" for i in range(10)), context=gas)
        drill_task = asyncio.create_task(channel.send(drill_batch))
        while len(api.sent) < 25:
            await asyncio.sleep(0.01)
        gas_receipts = await channel.send(gas_batch)
        drill_receipts = await drill_task
        assert all(r.outcome is Outcome.ACCEPTED for r in gas_receipts)
        assert all(r.outcome is Outcome.ACCEPTED for r in drill_receipts)
        order = ["GAS" if m.to.startswith("+1555666") else "DRILL" for m in api.sent]
        first, last = order.index("GAS"), len(order) - order[::-1].index("GAS") - 1
        # Only what had its turn before the emergency asked (one message in flight per
        # worker) may slip between its messages.
        assert order[first:last + 1].count("DRILL") <= 2
        assert order.count("DRILL") == 60 and order[-1] == "DRILL"

    async def test_a_waiting_drill_gives_way_untried(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """When the engine gives the emergency class the right of way, the drill's messages
        still waiting for the sender's pace come back DEFERRED; those handed over stand."""
        api, _ = twilio_api
        channel = make_channel(
            senders=[{"number": "+15550000001", "type": "long_code", "rate_per_second": 10}],
        )
        drill = ranked("DRILL", AlertKind.EMERGENCY, Mode.DRILL, 1)
        drill_task = asyncio.create_task(
            channel.send(batch(*(f"+1555555{i:04d}" for i in range(40)), context=drill))
        )
        while len(api.sent) < 12:
            await asyncio.sleep(0.01)
        channel.right_of_way.set(Precedence.LIVE_EMERGENCY)
        receipts = await drill_task
        accepted = [r for r in receipts if r.outcome is Outcome.ACCEPTED]
        deferred = [r for r in receipts if r.outcome is Outcome.DEFERRED]
        assert len(accepted) + len(deferred) == 40 and deferred
        assert len(accepted) == len(api.sent)
        # While the emergency holds the right of way, a new drill batch is not handed over.
        again = await channel.send(batch(THIRD, context=drill))
        assert [r.outcome for r in again] == [Outcome.DEFERRED]

    async def test_reconcile_asks_twilio_by_sid(
        self, twilio_api: tuple[TwilioSandbox, str], make_channel: Callable[..., TwilioSms]
    ) -> None:
        """Callbacks lost (the service was down): the Message resources say delivered,
        undelivered with its error code, or 404 for one Twilio no longer keeps."""
        api, _ = twilio_api
        port = free_port()  # nothing listens: every status callback is lost
        channel = make_channel(status_callback_url=f"http://127.0.0.1:{port}/v1/callbacks/twilio")
        api.fate(THIRD, "undelivered", 30003)
        receipts = await channel.send(batch("+15555550101", "+15555550102", THIRD))
        sids = [r.provider_ref for r in receipts]
        async with asyncio.timeout(10):
            while any(api.status_of[s].status in ("queued", "sent") for s in sids):
                await asyncio.sleep(0.02)
        api.forget(sids[1])
        answers = await channel.reconcile(sids)
        assert answers[sids[0]].outcome is Outcome.DELIVERED
        assert answers[sids[1]].outcome is Outcome.FAILED
        assert "unknown to the provider" in answers[sids[1]].detail
        assert answers[sids[2]].outcome is Outcome.FAILED
        assert "30003" in answers[sids[2]].detail
        assert api.fetches == 3
