"""An in-process rig for fault tests: the sandbox (SMTP, Twilio, push) that can go away and come
back on the same ports, and a service whose breakers a test may tune."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from channels.breaker import BreakerSettings, CircuitBreaker
from channels.sandbox import push as push_plugin
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.push import PushSink
from channels.sandbox.server import Sandbox
from channels.sandbox.smtp import SmtpServer, SmtpSink
from channels.sandbox.stats import Stats
from channels.sandbox.twilio import TwilioSandbox
from dispatcher.api.app import build_app
from dispatcher.domain import ChannelKind
from dispatcher.service import Service
from dispatcher.settings import Settings, config_dir
from tests.support import Running, own_config, point_push_at, seed_store

MESSAGING_SERVICE = "MG" + "0" * 32


class ClosingSmtpServer(SmtpServer):
    """The sandbox's SMTP server, whose stop also drops the sessions already open (an outage)."""

    def __init__(self, sink: SmtpSink, host: str, port: int) -> None:
        super().__init__(sink, host, port)
        self._transports: list[asyncio.BaseTransport] = []

    async def start(self) -> None:
        """Listen, remembering every session's transport."""
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        transports = self._transports

        class Session(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transports.append(transport)
                super().connection_made(transport)

        def factory() -> SMTP:
            return Session(self.sink, hostname="sandbox.clarion.test", ident="Clarion sandbox")

        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every open session."""
        for transport in self._transports:
            transport.abort()  # type: ignore[attr-defined]
        self._transports.clear()
        await super().stop()


@dataclass
class Providers:
    """One life of the sandbox: its objects, sharing `stats` with its earlier lives."""

    sandbox: Sandbox
    twilio: TwilioSandbox
    push: PushSink


async def start_providers(
    stats: Stats, *, port: int = 0, smtp_port: int = 0, flags: tuple[str, ...] = ()
) -> Providers:
    """The sandbox with its Twilio and push plugins (no devices), counting into `stats`."""
    parser = argparse.ArgumentParser()
    for plugin in (twilio_plugin, push_plugin):
        plugin.add_arguments(parser)
    args = parser.parse_args(["--sms-callback-delay", "0.01", *flags])
    sandbox = Sandbox(port=port, smtp_port=smtp_port, stats=stats)
    sandbox.smtp = ClosingSmtpServer(SmtpSink(stats), sandbox.host, smtp_port)
    twilio = await twilio_plugin.attach(sandbox, args)
    push = await push_plugin.attach(sandbox, args)
    await sandbox.start()
    return Providers(sandbox, twilio, push)


def rig_settings(
    folder: Path,
    providers: Providers,
    *,
    service_port: int,
    channels: Mapping[str, Mapping[str, Any]],
    dispatch: Mapping[str, Any] | None = None,
    store_url: str = "",
) -> Settings:
    """The embedded default config pointed at these providers, with only `channels` enabled."""
    raw = own_config(folder, port=service_port)
    if store_url:
        raw["store"]["url"] = store_url
    raw["dispatch"].update(dispatch or {})
    box = providers.sandbox
    defaults: dict[str, dict[str, Any]] = {
        "email.smtp": {"port": box.smtp.port, "security": "none", "batch_size": 50,
                       "concurrency": 4, "recipients_per_message": 50},
        "sms.twilio": {
            "api_base_url": box.url, "senders": [], "messaging_service_sid": MESSAGING_SERVICE,
            "status_callback_url": f"http://127.0.0.1:{service_port}/v1/callbacks/twilio",
            "batch_size": 50, "concurrency": 4,
        },
        "push.apprise": {"batch_size": 50, "concurrency": 8},
    }
    sections: dict[str, dict[str, Any]] = {}
    for name, patch in channels.items():
        section = dict(raw["channels"].get(name, {}))
        section.update(defaults.get(name, {}))
        section.update(patch)
        sections[name] = section
    raw["channels"] = sections
    raw["base_dir"] = config_dir()
    return Settings.model_validate(raw)


async def start_rig_service(
    settings: Settings,
    providers: Providers,
    *,
    port: int,
    breakers: Mapping[ChannelKind, BreakerSettings] | None = None,
) -> Running:
    """The service on `port`, breakers tuned, push targets pointed at the providers."""
    await seed_store(settings)
    service = await Service.open(settings)
    for kind, tuned in (breakers or {}).items():
        service.engine.breakers[kind] = CircuitBreaker(service.channels[kind].name, tuned)
    server = TestServer(build_app(service), host="127.0.0.1", port=port)
    client = TestClient(server)
    await client.start_server()
    await point_push_at(service.db, providers.sandbox.url)
    return Running(service, client)


async def people_with(running: Running, where: str, limit: int) -> list[dict[str, Any]]:
    """Some people of the example campus matching a SQL condition, in id order."""
    rows = await running.service.db.fetchall(
        f"SELECT id, email, phone, push, role FROM people WHERE {where} ORDER BY id LIMIT ?",
        (limit,),
    )
    return [{k: r[k] for k in ("id", "email", "phone", "push", "role")} for r in rows]


def audience_of(people: list[dict[str, Any]]) -> str:
    """A segment expression naming exactly these people."""
    return " or ".join(f"id:{p['id']}" for p in people)


def service_port() -> int:
    """A free port for the service (Twilio's status callbacks must know it in advance)."""
    return free_port()
