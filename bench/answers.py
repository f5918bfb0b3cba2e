"""Answers arriving: N people tapping their answer link at once, through HTTP into the store.

    python -m bench.answers [--people 5000] [--concurrency 64] [--need-help 0.05]
    python -m bench.answers --people 50000          # the issue's size

A fresh SQLite store in a temporary folder, the service behind a real HTTP server on a free
loopback port, one alert that asks a question, then every person's own signed link POSTed
once (the answer page's one tap) from another process, as phones are not on the server.
Reports answers per second and checks that none was lost (answers counted in the store ==
people). Numbers only; it asserts nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from dispatcher.api.app import build_app
from dispatcher.observability import configure_logging
from dispatcher.service import Service
from dispatcher.settings import Settings, config_dir, load_settings

TOKEN = "bench-token-0123456789"


def _settings(folder: Path) -> Settings:
    raw = load_settings().model_dump(mode="json", exclude={"base_dir"})
    raw["store"]["url"] = f"sqlite:///{folder / 'clarion.db'}"
    raw["auth"] = {"token": TOKEN, "tokens": [], "rate_per_second": 0}
    raw["channels"] = {}
    raw["feeds"]["enabled"] = False  # the embedded feeds poll the `make run` sandbox
    raw["logging"] = {**raw.get("logging", {}), "level": "warning"}
    raw["base_dir"] = config_dir()
    return Settings.model_validate(raw)


async def run(people: int, concurrency: int, need_help: float) -> dict[str, Any]:
    """One run; returns the measured numbers."""
    with tempfile.TemporaryDirectory(prefix="clarion-bench-answers-") as tmp:
        settings = _settings(Path(tmp))
        # As `clarion serve` configures it: warnings only.
        configure_logging(settings.logging.level, json_lines=settings.logging.json_lines)
        service = await Service.open(settings)
        server = TestServer(build_app(service), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        try:
            async with aiohttp.ClientSession() as http:
                body = {"kind": "emergency", "mode": "drill", "audience": "id:NOBODY",
                        "text": "Drill: shelter in place now. Stay away from windows.",
                        "ask": {"question": "Are you safe?", "escalate_after_s": 0}}
                async with http.post(f"{base}/v1/alerts", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    alert_id = (await resp.json())["id"]
                for _ in range(3000):  # the engine stores the question as it resolves
                    if await service.responses.question(alert_id) is not None:
                        break
                    await asyncio.sleep(0.01)
                expires = int(await service.db.fetchval(
                    "SELECT expires_at FROM alerts WHERE id = ?", (alert_id,)))
                links = [await service.responses.link_for(base, alert_id, f"B{i:06d}", expires)
                         for i in range(people)]
                rng = random.Random(7)
                options = ["need_help" if rng.random() < need_help else "safe" for _ in links]
                # The people's phones are another process: the service keeps its own core.
                loop = asyncio.get_running_loop()
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as phones:
                    await loop.run_in_executor(phones, tap_all, [], 1)  # started, imports done
                    started = time.perf_counter()
                    statuses = await loop.run_in_executor(
                        phones, tap_all, list(zip(links, options, strict=True)), concurrency)
                    elapsed = time.perf_counter() - started
            counted = await service.responses.store.answer_count(alert_id)
            tally = await service.responses.store.live_counts(alert_id)
        finally:
            await server.close()  # the app's cleanup stops the service
    return {
        "people": people, "concurrency": concurrency, "seconds": round(elapsed, 2),
        "answers_per_s": round(people / elapsed, 1), "http_statuses": statuses,
        "answers_counted": counted, "lost": people - counted,
        "safe": tally["safe"], "need_help": tally["need_help"],
    }


def tap_all(taps: list[tuple[str, str]], concurrency: int) -> dict[int, int]:
    """Every link POSTed once with its option, `concurrency` at a time; statuses counted."""
    return asyncio.run(_tap_all(taps, concurrency))


async def _tap_all(taps: list[tuple[str, str]], concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    pending = iter(taps)
    async with aiohttp.ClientSession() as http:

        async def phone() -> None:
            for link, option in pending:
                async with http.post(link, data={"option": option}) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(phone() for _ in range(concurrency)))
    return statuses


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run once, print the numbers as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.answers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--need-help", type=float, default=0.05)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.people, args.concurrency, args.need_help))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
