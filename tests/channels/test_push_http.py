"""push.apprise's webhook path on the wire: the same requests as Apprise, over kept connections."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from apprise import Apprise, AppriseAsset

from channels.push_apprise import ALERT_HEADER, ApprisePush, target_url
from channels.sandbox.broker import free_port
from dispatcher.domain import AlertContext, AlertKind, Batch, Delivery, Message, Mode, Outcome

# Apprise's e-mail plugin imports `imghdr`, deprecated since Python 3.11, when plugins load.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

# Padded, with XML and URL specials and text outside Latin-1, to catch any difference in
# trimming, escaping or encoding.
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


def alert(text: str = TEXT, alert_id: str = "A-1") -> AlertContext:
    now = int(time.time() * 1000)
    return AlertContext(
        alert_id=alert_id,
        kind=AlertKind.EMERGENCY,
        mode=Mode.LIVE,
        now_ms=now,
        expires_ms=now + 3_600_000,
        messages={"en": Message(text=text, title=TITLE)},
    )


async def send(channel: ApprisePush, *addresses: str, text: str = TEXT) -> list[Outcome]:
    deliveries = tuple(Delivery(i + 1, f"P{i}", a) for i, a in enumerate(addresses))
    return [r.outcome for r in await channel.send(Batch(alert(text), deliveries))]


class TestSameRequestAsApprise:
    """Apprise's own plugin and the channel send the same request for the same URL."""

    @pytest.mark.parametrize(
        "address",
        [
            "json://{host}/push/P1",
            "json://alice:s3cr%40t@{host}/hooks/a%20b/?+X-Token=t1&:title=&:message=text"
            "&:extra=1&-q=x%20y&-r=2",
            "json://{host}/push/P1?method=PUT&+Content-Type=application/vnd.alert%2Bjson",
            "form://{host}/push/P1",
            "form://bob:pw@{host}/f?:message=body&:type=&:note=hi%26bye&+X-Extra=1",
            "form://{host}/f?method=PATCH&+content-type=text/plain",
            "xml://{host}/push/P1",
            "xml://carol:pw@{host}/x?:Subject=Heading&:Extra=%3C1%3E&-q=1",
        ],
    )
    async def test_same_request(
        self,
        server: tuple[Recorder, str],
        make_channel: Callable[..., ApprisePush],
        address: str,
    ) -> None:
        """Method, path and query, every header, and the body, byte for byte."""
        recorder, host = server
        url = address.format(host=host)
        reference = Apprise(asset=AppriseAsset(storage_mode="memory"))
        assert reference.add(target_url(url, "A-1"))
        assert await reference.async_notify(body=TEXT, title=TITLE)
        assert await send(make_channel(), url) == [Outcome.ACCEPTED]
        theirs, ours = recorder.seen
        assert (ours.method, ours.path) == (theirs.method, theirs.path)
        assert ours.headers == theirs.headers
        assert ours.body == theirs.body
        assert dict(ours.headers)[ALERT_HEADER.lower()] == "A-1"

    async def test_json_body_shape(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """The JSON body is Apprise's: version, title, message, attachments and type."""
        recorder, host = server
        await send(make_channel(), f"json://{host}/push/P1")
        (seen,) = recorder.seen
        assert json.loads(seen.body) == {
            "version": "1.0",
            "title": TITLE.strip(),
            "message": TEXT.rstrip(),
            "attachments": [],
            "type": "info",
        }
        assert dict(seen.headers)["content-type"] == "application/json"
        assert dict(seen.headers)["user-agent"] == "Apprise"

    async def test_unmirrored_options_go_through_apprise(
        self, server: tuple[Recorder, str], make_channel: Callable[..., ApprisePush]
    ) -> None:
        """A webhook URL asking for emoji codes is sent by Apprise itself, alert header and all."""
        recorder, host = server
        outcomes = await send(make_channel(), f"json://{host}/p?emojis=yes", text="Fire :fire:")
        assert outcomes == [Outcome.ACCEPTED]
        (seen,) = recorder.seen
        assert json.loads(seen.body)["message"] == "Fire 🔥"
        assert dict(seen.headers)[ALERT_HEADER.lower()] == "A-1"


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
        assert await send(make_channel(), f"xml://{host}/push/P1") == [outcome]

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
        assert receipt.detail == "JSON: HTTP 429"

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
        deliveries = (Delivery(1, "P1", f"form://{host}/push/P1"),)
        (receipt,) = await make_channel(timeout_s=0.3).send(Batch(alert(), deliveries))
        assert (receipt.outcome, receipt.detail) == (Outcome.RETRY, "Form: timed out")
        assert time.monotonic() - started < 0.9


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
        second = [f"form://{host}/push/P{i}" for i in range(150)]
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
