"""The sandbox process: `GET /stats` over HTTP, plus every provider stand-in on its own listener."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from channels.sandbox.smtp import SmtpServer, SmtpSink
from channels.sandbox.stats import Stats

log = structlog.get_logger("clarion.sandbox")

Closer = Callable[[], Awaitable[None]]


@dataclass
class Sandbox:
    """Stand-ins for the providers, sharing one `Stats`; plugins add routes and listeners.

    With `arrival_times`, `GET /stats` also gives each kind `first_at` and `last_at` (wall
    clock, epoch seconds; null before anything arrived) next to `received` and `unique`,
    and lists the kinds the stand-ins declared even before anything arrives.
    """

    host: str = "127.0.0.1"
    port: int = 8026
    smtp_port: int = 8027
    stats: Stats = field(default_factory=Stats)
    arrival_times: bool = False
    app: web.Application = field(default_factory=web.Application)
    endpoints: dict[str, str] = field(default_factory=dict)
    _closers: list[Closer] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.smtp = SmtpServer(SmtpSink(self.stats), self.host, self.smtp_port)
        self.stats.declare("email")
        self.app.router.add_get("/stats", self._stats)
        self.app.router.add_get("/", self._index)
        self.app.router.add_post("/stats/reset", self._reset)

    def on_close(self, closer: Closer) -> None:
        """Run `closer` when the sandbox stops (plugins' listeners and tasks)."""
        self._closers.append(closer)

    @property
    def url(self) -> str:
        """Base URL of the HTTP listener."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the HTTP listener and the SMTP server (port 0 picks free ports)."""
        await self.smtp.start()
        self.endpoints["smtp"] = f"{self.host}:{self.smtp.port}"
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        self.endpoints["http"] = self.url
        log.info("sandbox.started", **self.endpoints)

    async def stop(self) -> None:
        """Stop every listener."""
        for closer in reversed(self._closers):
            await closer()
        await self.smtp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stats(self, request: web.Request) -> web.Response:
        if self.arrival_times:
            return web.json_response(self.stats.timed_snapshot())
        return web.json_response(self.stats.snapshot())

    async def _reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return web.json_response({"reset": True})

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"endpoints": self.endpoints, "stats": self.stats.snapshot()})
