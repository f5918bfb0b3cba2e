"""push.apprise against the sandbox's json:// sink, with real Apprise clients."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from channels.push_apprise import ALERT_HEADER, ApprisePush, target_url
from channels.sandbox import push as push_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.push import PushSink
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    Delivery,
    Message,
    Mode,
    Outcome,
)
from dispatcher.policy.settings import RenderingSettings

# Apprise's e-mail plugin imports `imghdr`, deprecated since Python 3.11, when plugins load.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

TITLE = "Fire in North Hall"
TEXT = "Fire reported in North Hall. Leave the building now and stay clear."


@pytest.fixture
async def sink() -> AsyncIterator[tuple[PushSink, str]]:
    found = PushSink(stats=Stats())
    app = web.Application()
    found.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield found, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def alert(*, mode: Mode = Mode.LIVE, text: str = TEXT, alert_id: str = "A-1") -> AlertContext:
    now = int(time.time() * 1000)
    return AlertContext(
        alert_id=alert_id,
        kind=AlertKind.EMERGENCY,
        mode=mode,
        now_ms=now,
        expires_ms=now + 3_600_000,
        messages={"en": Message(text=text, title=TITLE)},
    )


def targets(host: str, *recipients: str) -> tuple[Delivery, ...]:
    return tuple(
        Delivery(id=200 + i, recipient=r, address=f"json://{host}/push/{r}")
        for i, r in enumerate(recipients)
    )


class TestReceipts:
    """One receipt per target, in order, each with its own outcome."""

    async def test_one_target_failing(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Only the failing target's receipt says so; the others are accepted and received."""
        api, host = sink
        api.script("P2", 500)
        deliveries = targets(host, "P1", "P2", "P3")
        receipts = await make_channel().send(Batch(alert(), deliveries))
        assert [r.delivery_id for r in receipts] == [d.id for d in deliveries]
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED, Outcome.RETRY, Outcome.ACCEPTED]
        assert "500" in receipts[1].detail
        assert {m.recipient for m in api.stats.of("push", "A-1")} == {"P1", "P3"}

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.ACCEPTED),
            (400, Outcome.FAILED),
            (401, Outcome.FAILED),
            (404, Outcome.FAILED),
            (410, Outcome.FAILED),
            (408, Outcome.RETRY),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (502, Outcome.RETRY),
            (503, Outcome.RETRY),
        ],
    )
    async def test_transient_or_permanent(
        self,
        sink: tuple[PushSink, str],
        make_channel: Callable[..., ApprisePush],
        status: int,
        outcome: Outcome,
    ) -> None:
        """HTTP 4xx is permanent, 408/429/5xx transient."""
        sink[0].script("P1", status)
        (receipt,) = await make_channel().send(Batch(alert(), targets(sink[1], "P1")))
        assert receipt.outcome is outcome

    async def test_unreachable_target_is_retried(
        self, make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Nothing listening: retry later."""
        deliveries = targets(f"127.0.0.1:{free_port()}", "P1")
        (receipt,) = await make_channel().send(Batch(alert(), deliveries))
        assert receipt.outcome is Outcome.RETRY

    async def test_unusable_url_fails(self, make_channel: Callable[..., ApprisePush]) -> None:
        """An address Apprise cannot parse fails at once."""
        deliveries = (Delivery(1, "P1", "nosuchservice://x/y"), Delivery(2, "P2", "not a url"))
        receipts = await make_channel().send(Batch(alert(), deliveries))
        assert [r.outcome for r in receipts] == [Outcome.FAILED, Outcome.FAILED]

    async def test_title_body_and_alert_header_arrive(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """The sink sees the title, the text and the alert id (for unique counts)."""
        channel = make_channel()
        await channel.send(Batch(alert(alert_id="A-2"), targets(sink[1], "P1")))
        await channel.send(Batch(alert(alert_id="A-3"), targets(sink[1], "P1")))
        first, second = sink[0].stats.of("push")
        assert (first.alert_id, first.recipient, first.text) == ("A-2", "P1", TEXT)
        assert first.meta["title"] == TITLE
        assert second.alert_id == "A-3"
        assert sink[0].stats.snapshot()["push"] == {"received": 2, "unique": 2}

    async def test_drill_text_arrives_with_its_prefix(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """The rendered drill text reaches the device unchanged."""
        prefix = RenderingSettings().drill_prefix
        text = f"{prefix} Evacuation drill at North Hall."
        context = alert(mode=Mode.DRILL, text=text)
        await make_channel().send(Batch(context, targets(sink[1], "P1")))
        (received,) = sink[0].stats.of("push")
        assert received.text == text

    async def test_mass_push_all_arrive_once(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A few hundred targets in one batch: each received exactly once."""
        recipients = [f"P{i:05d}" for i in range(300)]
        channel = make_channel()
        await channel.start(None)  # type: ignore[arg-type]  # push has no late receipts
        receipts = await channel.send(Batch(alert(), targets(sink[1], *recipients)))
        assert all(r.outcome is Outcome.ACCEPTED for r in receipts)
        assert sink[0].stats.snapshot()["push"] == {"received": 300, "unique": 300}

    async def test_batch_never_outlasts_its_time(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Targets a busy pool cannot start within timeout_s come back as RETRY, unsent."""
        sink[0].delay_s = 0.3
        channel = make_channel(http_connections=1, timeout_s=0.5)
        receipts = await channel.send(Batch(alert(), targets(sink[1], "P1", "P2", "P3", "P4")))
        assert receipts[0].outcome is Outcome.ACCEPTED
        assert receipts[-1].outcome is Outcome.RETRY and "not started" in receipts[-1].detail
        assert sink[0].requests < 4

    async def test_cancelled_batch_stops_starting_targets(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Cancelling the send leaves the targets not yet started unsent."""
        recipients = [f"P{i:05d}" for i in range(200)]
        channel = make_channel(http_connections=1)
        task = asyncio.create_task(channel.send(Batch(alert(), targets(sink[1], *recipients))))
        async with asyncio.timeout(10):
            while sink[0].requests == 0:
                await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await channel.close()
        assert sink[0].requests < 200


class TestSink:
    """The sandbox's gateway takes the body the channel documents, and nothing else."""

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            ([], "body is not a JSON object"),
            ({"title": "T"}, "message missing"),
            ({"title": "T", "message": 5}, "message is not a str"),
            ({"title": "T", "message": "M", "drill": "yes"}, "drill is not a bool"),
        ],
    )
    async def test_refuses_other_bodies(
        self, sink: tuple[PushSink, str], body: Any, problem: str
    ) -> None:
        """A body that is not the documented one is a 400 that says why; nothing is counted."""
        async with aiohttp.ClientSession() as http, http.post(
            f"http://{sink[1]}/push/P1", json=body
        ) as response:
            assert (response.status, await response.json()) == (400, {"error": problem})
        assert sink[0].stats.of("push") == []

    async def test_drill_flag_recorded(
        self, sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """The sink keeps the body's drill flag beside the text."""
        await make_channel().send(Batch(alert(mode=Mode.DRILL), targets(sink[1], "P1")))
        (received,) = sink[0].stats.of("push")
        assert received.meta["drill"] == "true"


class TestTargets:
    """Where the alert id rides."""

    def test_header_added_to_webhook_targets(self) -> None:
        """json://, form:// and xml:// get the alert header; other schemes are left alone."""
        assert target_url("json://h/push/P1", "A 1") == f"json://h/push/P1?+{ALERT_HEADER}=A%201"
        assert target_url("jsons://h/p?x=1", "A") == f"jsons://h/p?x=1&+{ALERT_HEADER}=A"
        assert target_url("ntfy://topic", "A") == "ntfy://topic"
        assert target_url("json://h/p", "A", alert_header=False) == "json://h/p"


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


async def test_no_target_url_in_logs_or_receipts(
    sink: tuple[PushSink, str], make_channel: Callable[..., ApprisePush], logs: list[dict[str, Any]]
) -> None:
    """Target URLs can hold tokens: failures are logged by recipient hash only."""
    secret = "tk_9f8e7d6c5b4a"
    sink[0].script(secret, 404)
    deliveries = (Delivery(1, "P1", f"json://{sink[1]}/push/{secret}"),)
    receipts = await make_channel().send(Batch(alert(), deliveries))
    assert receipts[0].outcome is Outcome.FAILED
    assert logs
    assert secret not in repr(logs) + repr(receipts)


async def test_sandbox_plugin_with_cli_defaults(make_channel: Callable[..., ApprisePush]) -> None:
    """`clarion sandbox`'s push sink counts json:// deliveries in /stats."""
    parser = argparse.ArgumentParser()
    push_plugin.add_arguments(parser)
    sandbox = Sandbox(port=0, smtp_port=0)
    await push_plugin.attach(sandbox, parser.parse_args([]))
    # The sandbox's HTTP app alone: this test is about the plugin, not the SMTP listener.
    runner = web.AppRunner(sandbox.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host = f"127.0.0.1:{runner.addresses[0][1]}"
    try:
        await make_channel().send(Batch(alert(), targets(host, "P1", "P2")))
        async with aiohttp.ClientSession() as http, http.get(f"http://{host}/stats") as r:
            assert (await r.json())["push"] == {"received": 2, "unique": 2}
    finally:
        await runner.cleanup()
