"""Slack, Microsoft Teams (Workflows) and Discord incoming webhooks, posed by one local server.

Apprise's plugins post to the services' own https hosts (hooks.slack.com, discord.com, a
Logic Apps host). The tests point Apprise at `ServiceHooks.proxy_url` as HTTPS_PROXY: the proxy
answers each CONNECT, ends the TLS of the tunnel with a throwaway certificate (the targets'
URLs say `verify=no`) and hands the plain requests to a small aiohttp app that answers as each
service does: Slack "200 ok", Discord "204", Workflows "202". Every request is kept with the
host it was meant for, its path and its JSON body, so a test reads the real wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLACK = "slack"
DISCORD = "discord"
TEAMS = "teams"

# Apprise URLs of the three services (tokens in the services' documented shapes).
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/?verify=no"
DISCORD_URL = (
    "discord://417429632418316298/"
    "JHZ7lQml277CDHmQKMHI8qBe7bk2ZwO5UKjCiOAF7711o33MyqU344Qpgv7YTpadV_js/?verify=no"
)
TEAMS_URL = (
    "workflows://prod-00.westus.logic.azure.com:443/"
    "0d2c6a3b1e8f4a7c9b5d4e3f2a1b0c9d/Kb3nX9qTz0yW8vA7uE6rI5oP4lK3jH2gF1dS0aQ9wE8/?verify=no"
)


@dataclass(frozen=True, slots=True)
class Posted:
    """One request a service received."""

    service: str
    host: str
    path: str
    body: dict[str, Any]


def _certificate(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate made for this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service-hooks.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "hooks.pem", folder / "hooks.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class ServiceHooks:
    """The three services' webhook endpoints behind a TLS-ending CONNECT proxy."""

    def __init__(self, folder: Path) -> None:
        self.posted: list[Posted] = []
        self.tunnels: list[str] = []
        """The host:port of every CONNECT, in order."""
        self._tls = _certificate(folder)
        self._script: dict[str, deque[int]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._proxy: asyncio.Server | None = None
        self._app_port = 0
        self.proxy_url = ""
        self._pipes: set[asyncio.Task[None]] = set()
        self.broken: list[str] = []
        """Tunnels that ended with an error, by its type."""

    def fail(self, service: str, *statuses: int) -> None:
        """Answer the service's next requests with these statuses, then as the service does."""
        self._script[service].extend(statuses)

    def of(self, service: str) -> list[Posted]:
        """What one service received."""
        return [p for p in self.posted if p.service == service]

    async def start(self) -> None:
        """Serve the services and the proxy on free loopback ports."""
        app = web.Application()
        app.router.add_post("/services/{a}/{b}/{c}", self._slack)
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord)
        app.router.add_post("/workflows/{workflow}/triggers/manual/paths/invoke", self._teams)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._app_port = int(self._runner.addresses[0][1])
        self._proxy = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.proxy_url = f"http://127.0.0.1:{self._proxy.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Stop the proxy, its tunnels and the services."""
        if self._proxy is not None:
            self._proxy.close()
            await self._proxy.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the services ---------------------------------------------------------------------

    async def _keep(self, service: str, request: web.Request) -> int | None:
        body = json.loads(await request.read())
        self.posted.append(Posted(service, request.host, request.path, body))
        script = self._script[service]
        return script.popleft() if script else None

    async def _slack(self, request: web.Request) -> web.Response:
        status = await self._keep(SLACK, request)
        if status is not None:
            return web.Response(status=status, text="service_unavailable")
        return web.Response(text="ok")

    async def _discord(self, request: web.Request) -> web.Response:
        status = await self._keep(DISCORD, request)
        return web.Response(status=status or 204)

    async def _teams(self, request: web.Request) -> web.Response:
        status = await self._keep(TEAMS, request)
        return web.Response(status=status or 202)

    # -- the proxy --------------------------------------------------------------------------

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self._tls)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._app_port)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            # The client went away mid-tunnel: nothing to answer, but a test may look.
            self.broken.append(type(exc).__name__)
        finally:
            writer.close()
            self._pipes.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until it ends, then end the other side's writing."""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
