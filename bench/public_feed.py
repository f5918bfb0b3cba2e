"""Hammer /public/alerts.json the way a campus's banners and apps do, from another process.

    python -m bench.public_feed [--requests 20000] [--max-seconds 20] [--clients 32]

`clarion serve` runs in its own process (SQLite in a temporary folder, e-mail to a sandbox SMTP
server in this process, on free loopback ports). Three alerts are sent to a small segment and
delivered first, so the load meets a settled service. Then `--clients` keep-alive connections
poll the feed as banners do: each keeps the last ETag and sends it with `If-None-Match`, and
one request in ten comes from a newcomer without one. Halfway, a new alert is sent; the bench
reports how long until pollers saw it. The run stops at `--requests` or `--max-seconds`,
whichever comes first, and prints one JSON line: requests, seconds, requests per second, share
of 304s, latency percentiles, server CPU seconds, and the new alert's time to show.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.rig import Child, clarion, cpu_seconds, start_child, wait_http, wait_json_line
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from dispatcher.settings import config_dir

HOST = "127.0.0.1"
TOKEN = "bench-public-feed-token"
TEXT = "Gas leak at the Chemistry Building. Evacuate now and avoid the area."
# A newcomer (a page just opened) has no ETag yet: one request in this many.
NEWCOMER_EVERY = 10


@dataclass
class Tally:
    """What the pollers saw."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent_at: float | None = None
    new_alert: str | None = None
    seen_after_s: float | None = None


def write_config(folder: Path, port: int, smtp_port: int) -> Path:
    """The embedded config with the store in `folder`, e-mail to the sandbox, no other channel."""
    here = folder / "config"
    shutil.copytree(config_dir(), here)
    text = (here / "clarion.toml").read_text(encoding="utf-8")
    # E-mail is the last channel kept: everything from the SMS section on goes.
    text = text.split('[channels."sms.twilio"]', 1)[0]
    text = re.sub(r'(?m)^url = "sqlite:///var/clarion.db"$',
                  f'url = "sqlite:///{folder / "clarion.db"}"', text)
    text = re.sub(r"(?m)^port = 8025$", f"port = {port}", text)
    text = re.sub(r"(?m)^port = 8027$", f"port = {smtp_port}", text)
    text = re.sub(r'(?m)^level = "info"$', 'level = "warning"', text)
    text = re.sub(r"(?m)^rate_per_second = 50 .*$", "rate_per_second = 0", text)
    path = here / "clarion.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def send(http: aiohttp.ClientSession, base: str, **extra: Any) -> str:
    body = {"kind": "emergency", "mode": "drill", "text": TEXT, "audience": "responders", **extra}
    async with http.post(f"{base}/v1/alerts", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        doc = await resp.json()
        if resp.status != 202:
            raise RuntimeError(f"alert refused: {resp.status} {doc}")
        return str(doc["id"])


async def settle(http: aiohttp.ClientSession, base: str, alert_id: str) -> None:
    async with asyncio.timeout(60):
        while True:
            async with http.get(f"{base}/v1/alerts/{alert_id}",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                if (await resp.json())["state"] != "dispatching":
                    return
            await asyncio.sleep(0.1)


async def poller(http: aiohttp.ClientSession, url: str, budget: list[int], deadline: float,
                 tally: Tally) -> None:
    etag: str | None = None
    count = 0
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        count += 1
        headers = {"If-None-Match": etag} if etag and count % NEWCOMER_EVERY else {}
        started = time.perf_counter()
        try:
            async with http.get(url, headers=headers) as resp:
                body = await resp.read()
                tally.statuses[resp.status] = tally.statuses.get(resp.status, 0) + 1
                etag = resp.headers.get("ETag", etag)
                if (resp.status == 200 and tally.new_alert and tally.seen_after_s is None
                        and tally.sent_at is not None and tally.new_alert.encode() in body):
                    tally.seen_after_s = time.monotonic() - tally.sent_at
        except (aiohttp.ClientError, TimeoutError):
            tally.errors += 1
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2) if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="clarion-public-bench-"))
    sandbox = Sandbox(port=0, smtp_port=0)
    await sandbox.start()
    port = free_port()
    config = write_config(folder, port, sandbox.smtp.port)
    env = {**os.environ, "CLARION_API_TOKEN": TOKEN}
    server: Child = start_child("serve", clarion("serve", "--config", str(config)), folder, env)
    base = f"http://{HOST}:{port}"
    try:
        await wait_json_line(server, "clarion", 60)
        await wait_http(f"{base}/healthz", 30, server)
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(3):
                await settle(http, base, await send(http, base))
            tally = Tally()
            budget = [args.requests]
            cpu_before = cpu_seconds(server.pid)
            started = time.monotonic()
            deadline = started + args.max_seconds
            url = f"{base}/public/alerts.json"
            pollers = [asyncio.create_task(poller(http, url, budget, deadline, tally))
                       for _ in range(args.clients)]

            async def new_alert_halfway() -> None:
                # The budget is a plain counter the pollers share, not an event to wait on.
                while budget[0] > args.requests // 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                tally.sent_at = time.monotonic()
                tally.new_alert = await send(http, base, kind="timely_warning")

            extra = asyncio.create_task(new_alert_halfway())
            await asyncio.gather(*pollers)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(server.pid) - cpu_before
            await extra
            # The load may end before the new alert shows: then one poller keeps looking (at
            # most 10 s, outside the figures above).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while tally.seen_after_s is None:
                        async with http.get(url) as resp:
                            if tally.new_alert and tally.new_alert.encode() in await resp.read():
                                assert tally.sent_at is not None
                                tally.seen_after_s = time.monotonic() - tally.sent_at
                        await asyncio.sleep(0.05)
        total = sum(tally.statuses.values())
        return {
            "requests": total,
            "errors": tally.errors,
            "seconds": round(elapsed, 2),
            "requests_per_s": round(total / elapsed, 1),
            "share_304": round(tally.statuses.get(304, 0) / total, 3) if total else 0.0,
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "latency_ms": {"p50": percentile(tally.latencies_ms, 0.5),
                           "p99": percentile(tally.latencies_ms, 0.99),
                           "max": percentile(tally.latencies_ms, 1.0)},
            "server_cpu_s": round(cpu, 2),
            "new_alert_seen_after_s": (round(tally.seen_after_s, 3)
                                       if tally.seen_after_s is not None else None),
            "clients": args.clients,
        }
    finally:
        server.stop()
        await sandbox.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Parse the arguments, run once, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
