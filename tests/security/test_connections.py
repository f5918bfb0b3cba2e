"""Connections that end early or never finish: a client leaving an event stream is ordinary
(logged at debug), and slow request heads and bodies are cut off at the read timeout."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.security.conftest import FIRE, SecureSettings, bearer, events
from tests.support import Running, start_service

# Generous for a loopback socket: the assertions are about what happens, not when.
WAIT_S = 30.0


@pytest_asyncio.fixture
async def quick(secure_settings: SecureSettings) -> AsyncIterator[Running]:
    """The service with a read timeout of half a second."""
    settings = secure_settings()
    settings = settings.model_copy(update={"service": settings.service.model_copy(
        update={"read_timeout_s": 0.5})})
    run = await start_service(settings)
    yield run
    await run.client.close()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), WAIT_S)


class TestEventStreams:
    """Leaving an event stream is not an error."""

    async def test_client_leaving_is_debug(self, secure: Running, logs: io.StringIO) -> None:
        """Ten streams opened and dropped: each ends as `http.client_left` at debug, and
        nothing is logged as an error."""
        body = {**FIRE, "mode": "drill", "ask": {"question": "Are you safe?"}}
        sent = await secure.client.post("/v1/alerts", json=body, headers=bearer("alice"))
        assert sent.status == 202, await sent.text()
        alert_id = (await sent.json())["id"]
        port = secure.client.port
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            token = bearer("alice")["Authorization"]
            writer.write(f"GET /v1/alerts/{alert_id}/events HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: {token}\r\n\r\n".encode())
            await writer.drain()
            assert b"200" in await asyncio.wait_for(reader.readline(), WAIT_S)
            writer.close()
            await writer.wait_closed()
        for _ in range(int(WAIT_S * 10)):
            if len(events(logs, "http.client_left")) >= 10:
                break
            await asyncio.sleep(0.1)
        left = events(logs, "http.client_left")
        assert len(left) == 10 and {e["level"] for e in left} == {"debug"}
        assert '"level": "error"' not in logs.getvalue()


class TestReadTimeout:
    """Slow heads and bodies are cut off."""

    async def test_slow_body_gets_408(self, quick: Running) -> None:
        """Half a body, then silence: 408 and the connection closed."""
        reader, writer = await asyncio.open_connection("127.0.0.1", quick.client.port)
        token = bearer("alice")["Authorization"]
        writer.write(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 1000\r\nAuthorization: " + token.encode()
                     + b"\r\n\r\n{\"kind\": ")
        await writer.drain()
        answer = await read_all(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]

    async def test_slow_form_gets_408(self, quick: Running) -> None:
        """The same for a form without signing in (the console's sign-in)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", quick.client.port)
        writer.write(b"POST /console/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nname=a")
        await writer.drain()
        answer = await read_all(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]

    async def test_slow_head_is_closed(self, quick: Running) -> None:
        """Half a request head, then silence: the connection is closed without an answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", quick.client.port)
        writer.write(b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        answer = await read_all(reader)
        writer.close()
        assert answer == b""
