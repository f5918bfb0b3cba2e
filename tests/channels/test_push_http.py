"""push.apprise on the wire: gateway posts of Clarion's own body over kept connections, and
the other addresses through Apprise."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from channels.push_apprise import ALERT_HEADER, ApprisePush, gateway
from channels.sandbox.broker import free_port
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    Delivery,
    Message,
    Mode,
    Outcome,
    Precedence,
    urgency_rank,
)

# Apprise's e-mail plugin imports `imghdr`, deprecated since Python 3.11, when plugins load.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

# Padded, with JSON and URL specials and text outside Latin-1: sent exactly as rendered.
TITLE = '  Fire & "smoke" <North Hall>  '
TEXT = "Leave North Hall now & stay clear.\nÉvacuez — 避難してください <now>\n\n"


@dataclass(frozen=True)
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: tuple[Any, ...]


@dataclass
class Recorder:
    """An HTTP server that keeps every request and answers scripted statuses (then 200)."""

    seen: list[Seen] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    answer_headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request, then answer."""
        assert request.transport is not None
        self.seen.append(
            Seen(
                request.method,
                request.raw_path,
                tuple(sorted((k.lower(), v) for k, v in request.headers.items())),
                await request.read(),
                tuple(request.transport.get_extra_info("peername")),
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.popleft() if self.statuses else 200
        return web.json_response({"ok": status < 300}, status=status, headers=self.answer_headers)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield recorder, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def alert(text: str = TEXT, alert_id: str = "A-1", mode: Mode = Mode.LIVE) -> AlertContext:
    now = int(time.time() * 1000)
    return AlertContext(
        alert_id=alert_id,
        kind=AlertKind.EMERGENCY,
        mode=mode,
        now_ms=now,
        expires_ms=now + 3_600_000,
        messages={"en": Message(text=text, title=TITLE)},
    )


async def send(channel: ApprisePush, *addresses: str, text: str = TEXT) -> list[Outcome]:
    deliveries = tuple(Delivery(i + 1, f"P{i}", a) for i, a in enumerate(addresses))
    return [r.outcome for r in await channel.send(Batch(alert(text), deliveries))]


class TestGatewayRoute:
    """Which addresses are push gateways, and where a gateway is posted."""

    @pytest.mark.parametrize(
        ("address", "url"),
        [
            ("json://h/push/P1", "http://h/push/P1"),
            ("jsons://h:8443/p", "https://h:8443/p"),
            ("JSON://h", "http://h"),
            ("json://h/p?+X-Token=t1", "http://h/p"),
            ("json://h/a%20b?-q=x%20y&-r=a+b", "http://h/a%20b?q=x+y&r=a%2Bb"),
        ],
    )
    def test_gateway(self, address: str, url: str) -> None:
        """json:// and jsons://, with only `+` headers and `-` params: posted by us."""
        found = gateway(address)
        assert found is not None and str(found.url) == url

    @pytest.mark.parametrize(
        "address",
        [
            "ntfy://h/topic",
            "form://h/p",
            "xml://h/p",
            "json://h/p?:title=",
            "json://h/p?emojis=yes",
            "json://h/p?method=PUT",
            "json://h/p#frag",
            "json:///nohost",
            "json://h/p?+X-Bad=a%0Ab",
        ],
    )
    def test_apprise_sends_the_rest(self, address: str) -> None:
        """Other schemes, Apprise's own options, and what no request could carry: Apprise."""
        assert gateway(address) is None


class TestGatewayRequest:
    """What a push gateway receives: Clarion's documented JSON body and its headers."""

    async def test_request(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """POST to the gateway URL, Basic auth from the address, its `+` headers and `-` query."""
        recorder, host = server
        url = f"json://alice:s3cr%40t@{host}/hooks/a%20b/?+X-Token=t1&-q=x%20y&-r=2"
        assert await send(make_channel(), url) == [Outcome.ACCEPTED]
        (seen,) = recorder.seen
        assert (seen.method, seen.path) == ("POST", "/hooks/a%20b/?q=x+y&r=2")
        headers = dict(seen.headers)
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == "Clarion"
        assert headers["x-token"] == "t1"
        assert headers[ALERT_HEADER.lower()] == "A-1"
        scheme, _, encoded = headers["authorization"].partition(" ")
        assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", "alice:s3cr@t")

    async def test_address_headers_win(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A `+` header replaces the channel's own of that name, whatever its case."""
        recorder, host = server
        url = f"json://{host}/p?+content-type=application/vnd.alert%2Bjson&+USER-AGENT=Campus"
        assert await send(make_channel(), url) == [Outcome.ACCEPTED]
        (seen,) = recorder.seen
        sent = [(k, v) for k, v in seen.headers if k in ("content-type", "user-agent")]
        assert sent == [("content-type", "application/vnd.alert+json"), ("user-agent", "Campus")]

    async def test_json_body(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """The body: Apprise's JSON webhook fields, then the alert id and the drill flag."""
        recorder, host = server
        await send(make_channel(), f"json://{host}/push/P1")
        (seen,) = recorder.seen
        assert json.loads(seen.body) == {
            "version": "1.0",
            "title": TITLE,
            "message": TEXT,
            "type": "info",
            "attachments": [],
            "alert_id": "A-1",
            "drill": False,
        }
        assert "authorization" not in dict(seen.headers)

    async def test_drill_is_marked(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A drill says so in the body, beside the drill text."""
        recorder, host = server
        deliveries = (Delivery(1, "P1", f"json://{host}/push/P1"),)
        await make_channel().send(Batch(alert(mode=Mode.DRILL), deliveries))
        (seen,) = recorder.seen
        assert json.loads(seen.body)["drill"] is True

    async def test_alert_header_can_be_left_off(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """alert_header = false: the id rides in the body only."""
        recorder, host = server
        await send(make_channel(alert_header=False), f"json://{host}/push/P1")
        (seen,) = recorder.seen
        assert ALERT_HEADER.lower() not in dict(seen.headers)
        assert json.loads(seen.body)["alert_id"] == "A-1"


class TestThroughApprise:
    """Addresses that are not gateways are sent by Apprise itself, alert header and all."""

    async def test_apprise_option(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A json:// URL asking for emoji codes: Apprise renders and posts it."""
        recorder, host = server
        outcomes = await send(make_channel(), f"json://{host}/p?emojis=yes", text="Fire :fire:")
        assert outcomes == [Outcome.ACCEPTED]
        (seen,) = recorder.seen
        assert json.loads(seen.body)["message"] == "Fire 🔥"
        assert dict(seen.headers)[ALERT_HEADER.lower()] == "A-1"

    async def test_form_and_xml(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """form:// and xml:// reach their server through Apprise's own plugins."""
        recorder, host = server
        outcomes = await send(make_channel(), f"form://{host}/f", f"xml://{host}/x")
        assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
        assert sorted(s.path for s in recorder.seen) == ["/f", "/x"]
        for seen in recorder.seen:
            assert dict(seen.headers)[ALERT_HEADER.lower()] == "A-1"
            assert b"Leave" in seen.body and b"North" in seen.body

    async def test_apprise_failure_is_retried(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Apprise says failed, not why: retried, bounded by the engine's attempts."""
        recorder, host = server
        recorder.statuses.append(404)
        (receipt,) = await make_channel().send(
            Batch(alert(), (Delivery(1, "P1", f"form://{host}/f"),))
        )
        assert (receipt.outcome, receipt.detail) == (Outcome.RETRY, "Form: not sent")


class TestOutcomes:
    """What each answer, or the lack of one, means for the receipt."""

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.ACCEPTED),
            (204, Outcome.ACCEPTED),
            (400, Outcome.FAILED),
            (404, Outcome.FAILED),
            (408, Outcome.RETRY),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (503, Outcome.RETRY),
        ],
    )
    async def test_status(
        self,
        server: tuple[Recorder, str],
        make_channel: Callable[..., ApprisePush],
        status: int,
        outcome: Outcome,
    ) -> None:
        """2xx accepted, 408/429/5xx retried, other 4xx failed."""
        recorder, host = server
        recorder.statuses.append(status)
        assert await send(make_channel(), f"json://{host}/push/P1") == [outcome]

    async def test_retry_after_kept(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A 429's Retry-After rides on the receipt."""
        recorder, host = server
        recorder.statuses.append(429)
        recorder.answer_headers["Retry-After"] = "7"
        deliveries = (Delivery(1, "P1", f"json://{host}/push/P1"),)
        (receipt,) = await make_channel().send(Batch(alert(), deliveries))
        assert (receipt.outcome, receipt.retry_after_s) == (Outcome.RETRY, 7.0)
        assert receipt.detail == "push gateway: HTTP 429"

    async def test_connection_refused(self, make_channel: Callable[..., ApprisePush]) -> None:
        """Nothing listening: retry later, and the receipt names no part of the URL."""
        secret = "tk_9f8e7d6c5b4a"
        port = free_port()
        deliveries = (Delivery(1, "P1", f"json://u:{secret}@127.0.0.1:{port}/{secret}"),)
        (receipt,) = await make_channel().send(Batch(alert(), deliveries))
        assert receipt.outcome is Outcome.RETRY
        assert secret not in receipt.detail and str(port) not in receipt.detail

    async def test_timeout(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A server slower than timeout_s: retry later, within the time."""
        recorder, host = server
        recorder.delay_s = 1.0
        started = time.monotonic()
        deliveries = (Delivery(1, "P1", f"json://{host}/push/P1"),)
        (receipt,) = await make_channel(timeout_s=0.3).send(Batch(alert(), deliveries))
        assert (receipt.outcome, receipt.detail) == (Outcome.RETRY, "push gateway: timed out")
        assert time.monotonic() - started < 0.9


class TestUrgency:
    """Posts and Apprise's threads both serve the most urgent alert; a drill gives way."""

    async def test_waiting_drill_gives_way_untried(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Once a live emergency has the right of way, a drill's gateway posts and Apprise
        targets still waiting for a connection or a thread come back DEFERRED, unsent."""
        recorder, host = server
        recorder.delay_s = 0.5
        channel = make_channel(http_connections=1, threads=1)
        await channel.start(None)  # type: ignore[arg-type]  # push has no late receipts
        live = alert()
        drill = AlertContext(
            alert_id="DRILL", kind=AlertKind.EMERGENCY, mode=Mode.DRILL, now_ms=live.now_ms,
            expires_ms=live.expires_ms, messages=live.messages,
            rank=urgency_rank(AlertKind.EMERGENCY, Mode.DRILL, 1),
        )
        addresses = [f"json://{host}/push/G{i}" for i in range(4)]
        addresses += [f"form://{host}/push/F{i}" for i in range(4)]
        deliveries = tuple(Delivery(i + 1, f"P{i}", a) for i, a in enumerate(addresses))
        task = asyncio.create_task(channel.send(Batch(drill, deliveries)))
        async with asyncio.timeout(10):
            while not recorder.seen:
                await asyncio.sleep(0.005)
        channel.right_of_way.set(Precedence.LIVE_EMERGENCY)
        receipts = await task
        accepted = [r for r in receipts if r.outcome is Outcome.ACCEPTED]
        deferred = [r for r in receipts if r.outcome is Outcome.DEFERRED]
        assert len(accepted) + len(deferred) == 8
        assert len(deferred) >= 4  # at most one post and one Apprise target were under way
        assert len(accepted) == len(recorder.seen)


class TestConnections:
    """One session, kept-alive connections, bounded by http_connections."""

    async def test_connections_reused(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """Hundreds of targets over two batches use no more connections than the pool has."""
        recorder, host = server
        channel = make_channel(http_connections=4)
        await channel.start(None)  # type: ignore[arg-type]  # push has no late receipts
        first = [f"json://{host}/push/P{i}" for i in range(150)]
        second = [f"json://{host}/push/P{i}?-batch=2" for i in range(150)]
        assert set(await send(channel, *first)) == {Outcome.ACCEPTED}
        assert set(await send(channel, *second)) == {Outcome.ACCEPTED}
        assert len(recorder.seen) == 300
        assert len({s.peer for s in recorder.seen}) <= 4


@dataclass
class FakeNtfy:
    """What ntfy's publish endpoint gets from Apprise's ntfy plugin."""

    published: list[dict[str, Any]] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)

    async def publish(self, request: web.Request) -> web.Response:
        """Keep the JSON message; answer as ntfy does (or a scripted status)."""
        self.published.append(await request.json())
        status = self.statuses.popleft() if self.statuses else 200
        return web.json_response({"id": "m1", "event": "message"}, status=status)


@pytest.fixture
async def ntfy() -> AsyncIterator[tuple[FakeNtfy, str]]:
    fake = FakeNtfy()
    app = web.Application()
    app.router.add_post("/", fake.publish)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield fake, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


class TestOtherSchemes:
    """Schemes without a webhook of ours still go through Apprise's plugins."""

    async def test_ntfy_through_apprise(
        self, ntfy: tuple[FakeNtfy, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """ntfy:// reaches the ntfy server through Apprise; a 500 there is retried."""
        fake, host = ntfy
        channel = make_channel()
        address = f"ntfy://{host}/campus-alerts"
        assert await send(channel, address) == [Outcome.ACCEPTED]
        fake.statuses.append(500)
        assert await send(channel, address) == [Outcome.RETRY]
        first, second = fake.published
        assert first["topic"] == "campus-alerts"
        assert first["title"] == TITLE.strip()
        assert first["message"] == TEXT.rstrip()
        assert second == first
