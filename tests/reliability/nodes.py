"""Real processes for the crash tests: `clarion sandbox` and `clarion serve` nodes on free ports.

Each process is started with `python -m dispatcher.cli`, logs to a file in the test's folder
(shown when a test fails), and is stopped by its own pid: SIGKILL for a crash, SIGTERM for a
graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from channels.sandbox.broker import free_port
from dispatcher.settings import TOKEN_ENV, config_dir
from tests.support import AUTH, TOKEN, push_at

ROOT = Path(__file__).resolve().parents[2]
# Batches in flight per channel (batch_size x concurrency) bound the duplicates of a crash.
BATCH_SIZE = 50
CONCURRENCY = 4
IN_FLIGHT = BATCH_SIZE * CONCURRENCY
MESSAGING_SERVICE = "MG" + "0" * 32


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dispatcher.cli", *args]


@dataclass
class Process:
    """One child process of ours, its log, and how to stop it."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again), appending to its log."""
        out = self.log.open("ab")
        out.write(f"--- start {' '.join(self.args[3:])}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            self.args, stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent,
            env={**os.environ, **self.env},
        )
        out.close()

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash under test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: a graceful stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        """Wait for the process to end; its exit code."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} still running after {timeout} s")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def stop(self) -> None:
        """At the end of a test: SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The end of its log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def wait_http(url: str, timeout: float, process: Process | None = None) -> None:
    """Until `url` answers (the process has started), or fail with its log."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):  # not listening yet
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500:
                        return
            if process is not None and process.proc is not None and process.proc.poll() is not None:
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            if time.monotonic() > deadline:
                log = process.tail() if process is not None else ""
                raise TimeoutError(f"{url} did not answer in {timeout} s\n{log}")
            await asyncio.sleep(0.1)


class SandboxProcess(Process):
    """`clarion sandbox` without devices, on free ports."""

    def __init__(self, folder: Path, *flags: str) -> None:
        self.port = free_port()
        self.smtp_port = free_port()
        super().__init__(
            "sandbox",
            _command("sandbox", "--port", str(self.port), "--smtp-port", str(self.smtp_port),
                     "--no-devices", "--sms-callback-delay", "0.01", *flags),
            folder / "sandbox.log",
        )

    @property
    def url(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        """Wait until it serves /stats."""
        await wait_http(f"{self.url}/stats", 30, self)

    async def stats(self) -> dict[str, dict[str, int]]:
        """GET /stats."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/stats") as r:
            doc: dict[str, dict[str, int]] = await r.json()
            return doc


class Node(Process):
    """One `clarion serve` process."""

    def __init__(self, name: str, config: Path) -> None:
        self.port = free_port()
        super().__init__(
            name,
            _command("serve", "--config", str(config), "--port", str(self.port)),
            config.parent / f"{name}.log",
            env={TOKEN_ENV: TOKEN},
        )

    @property
    def url(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        """Wait until it answers /healthz."""
        await wait_http(f"{self.url}/healthz", 60, self)

    async def post_alert(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/alerts; the 202 body (id, audience counts)."""
        async with aiohttp.ClientSession(headers=AUTH) as http, http.post(
            f"{self.url}/v1/alerts", json=body
        ) as r:
            doc: dict[str, Any] = await r.json()
            assert r.status == 202, doc
            return doc

    async def status(self, alert_id: str) -> dict[str, Any]:
        """GET /v1/alerts/{id}."""
        async with aiohttp.ClientSession(headers=AUTH) as http, http.get(
            f"{self.url}/v1/alerts/{alert_id}"
        ) as r:
            doc: dict[str, Any] = await r.json()
            return doc

    async def cancel(self, alert_id: str) -> dict[str, Any]:
        """POST /v1/alerts/{id}/cancel."""
        async with aiohttp.ClientSession(headers=AUTH) as http, http.post(
            f"{self.url}/v1/alerts/{alert_id}/cancel", json={"reason": "sent in error"}
        ) as r:
            doc: dict[str, Any] = await r.json()
            return doc

    async def wait_done(self, alert_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the alert leaves `dispatching`; its status document."""
        deadline = time.monotonic() + timeout
        while True:
            doc = await self.status(alert_id)
            if doc["state"] != "dispatching":
                return doc
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"alert still dispatching after {timeout} s: {doc}\n"
                                   f"{self.tail()}")
            await asyncio.sleep(0.1)


def campus_copy(folder: Path, sandbox_url: str) -> Path:
    """The example people file with push targets at this sandbox; its path."""
    source = config_dir() / "campus" / "people.csv"
    target = folder / "people.csv"
    with source.open(newline="", encoding="utf-8") as src, target.open(
        "w", newline="", encoding="utf-8"
    ) as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
        writer.writeheader()
        for row in reader:
            row["push"] = push_at(row["push"], sandbox_url)
            writer.writerow(row)
    return target


def write_config(
    folder: Path,
    sandbox: SandboxProcess,
    *,
    store_url: str,
    lease_s: float = 30,
    grace_s: float = 10,
    channels: tuple[str, ...] = ("email",),
    email_rate: float = 0,
    callback_url: str = "",
    reconcile_after_s: float = 300,
) -> Path:
    """A config for `clarion serve` nodes sending to this sandbox; its path."""
    base = config_dir()
    people = campus_copy(folder, sandbox.url)
    sections = [
        f'[store]\nurl = "{store_url}"\nlease_s = {lease_s}\n',
        "[dispatch]\nretry_base_s = 0.05\nretry_max_s = 0.5\npoll_s = 0.05\n"
        f"shutdown_grace_s = {grace_s}\nreconcile_after_s = {reconcile_after_s}\n",
        '[logging]\nlevel = "info"\n',
        f'[directory]\npeople = "{people}"\ndevices = "{base / "campus" / "devices.csv"}"\n'
        f'buildings = "{base / "campus" / "buildings.csv"}"\nzones = "{base / "zones.geojson"}"\n',
    ]
    common = f"batch_size = {BATCH_SIZE}\nconcurrency = {CONCURRENCY}\n"
    if "email" in channels:
        sections.append(
            f'[channels."email.smtp"]\nhost = "127.0.0.1"\nport = {sandbox.smtp_port}\n'
            f'security = "none"\npool_size = {CONCURRENCY}\n{common}'
            f"rate_per_second = {email_rate}\n"
        )
    if "sms" in channels:
        callback = f'status_callback_url = "{callback_url}"\n' if callback_url else ""
        sections.append(
            '[channels."sms.twilio"]\naccount_sid = "AC' + "0" * 32 + '"\n'
            'auth_token = "sandbox-token"\n'
            f'api_base_url = "{sandbox.url}"\nmessaging_service_sid = "{MESSAGING_SERVICE}"\n'
            f"{callback}{common}"
        )
    if "push" in channels:
        sections.append(f'[channels."push.apprise"]\n{common}')
    path = folder / "clarion.toml"
    path.write_text("\n".join(sections), encoding="utf-8")
    return path
