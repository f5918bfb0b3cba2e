"""The provider failover benchmark: an all-campus SMS alert while the first SMS provider fails.

    python -m bench.failover [--recipients 50000] [--scenarios down,halfway]

One process runs the provider sandbox (the Twilio and Telnyx stand-ins) and the service on a
synthetic campus of `--recipients` people, SMS only, on SQLite, with the provider order
`sms = ["sms.twilio", "sms.telnyx"]`. Two runs, each on a fresh store:

1. `down`: Twilio answers 500 to every request from the start of the alert.
2. `halfway`: Twilio sends until it has taken half the audience, then answers 500 to every
   request.

For each it reports, from the sandbox's arrival stamps and the bench's clock: the first SMS
through Telnyx after the alert's 202 (`down`) or after Twilio began failing (`halfway`: the
time to switch), the SMS each provider sent, the loss (people of the audience no provider
sent to once the alert finished) and the duplicates (messages beyond one per person, across
both providers), and the time to the last SMS. The last line is one JSON object. Numbers, not
asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bench.rig import write_bench_campus
from channels.sandbox import telnyx as telnyx_plugin
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.telnyx import TelnyxSandbox
from channels.sandbox.twilio import TwilioSandbox
from dispatcher.api.app import build_app
from dispatcher.observability import configure_logging
from dispatcher.service import Service
from dispatcher.settings import Settings, config_dir, load_settings

TOKEN = "bench-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALERT = {"kind": "emergency", "text": "Gas leak at the Science Center. Evacuate now and"
         " avoid the area.", "audience": "all", "channels": ["sms"]}
PROFILE = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"


def _settings(folder: Path, box: Sandbox, telnyx: TelnyxSandbox, port: int) -> Settings:
    raw = load_settings().model_dump(mode="json", exclude={"base_dir"})
    raw["store"]["url"] = f"sqlite:///{folder / 'clarion.db'}"
    raw["auth"] = {"token": TOKEN, "tokens": [], "rate_per_second": 0}
    raw["feeds"]["enabled"] = False
    raw["logging"]["level"] = "warning"
    raw["directory"].update({
        "people": str(folder / "campus/people.csv"),
        "devices": str(folder / "campus/devices.csv"),
        "buildings": str(folder / "campus/buildings.csv"),
        "zones": str(folder / "campus/zones.geojson"),
    })
    twilio = raw["channels"]["sms.twilio"]
    twilio.update({"api_base_url": box.url, "batch_size": 50, "concurrency": 8,
                   "senders": [{"number": "22395", "type": "short_code",
                                "rate_per_second": 100_000}]})
    raw["channels"] = {
        "sms.twilio": twilio,
        "sms.telnyx": {"api_key": telnyx.api_key, "public_key": telnyx.public_key,
                       "messaging_profile_id": PROFILE, "api_base_url": box.url,
                       "batch_size": 50, "concurrency": 8},
        "email.smtp": {**raw["channels"]["email.smtp"], "port": box.smtp.port,
                       "security": "none"},
    }
    raw["dispatch"]["providers"] = {"sms": ["sms.twilio", "sms.telnyx"]}
    # The stand-ins post every delivery receipt to the service, as the providers would.
    raw["service"].update({"port": port, "public_url": f"http://127.0.0.1:{port}"})
    raw["base_dir"] = config_dir()
    return Settings.model_validate(raw)


def _sandbox_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    twilio_plugin.add_arguments(parser)
    telnyx_plugin.add_arguments(parser)
    return parser.parse_args(["--sms-callback-delay", "0.5", "--telnyx-callback-delay", "0.5",
                              "--sms-seed", "1"])


async def run(scenario: str, recipients: int) -> dict[str, Any]:
    """One scenario on a fresh store and sandbox; its numbers."""
    with tempfile.TemporaryDirectory(prefix="clarion-failover-") as tmp:
        folder = Path(tmp)
        args = _sandbox_args()
        box = Sandbox(port=0, smtp_port=0)
        twilio = await twilio_plugin.attach(box, args)
        telnyx = await telnyx_plugin.attach(box, args)
        await box.start()
        write_bench_campus(folder / "campus", recipients, 0, box.port)
        port = free_port()
        service = await Service.open(_settings(folder, box, telnyx, port))
        client = TestClient(TestServer(build_app(service), host="127.0.0.1", port=port))
        await client.start_server()
        try:
            return await _measure(scenario, recipients, client, service, box, twilio)
        finally:
            await client.close()
            await box.stop()


async def _measure(scenario: str, recipients: int, client: TestClient[Any, Any],
                   service: Service, box: Sandbox, twilio: TwilioSandbox) -> dict[str, Any]:
    failing_since: list[float] = []
    if scenario == "down":
        twilio.error_rate = 1.0

    async def fail_half_way() -> None:
        # The stand-in has no event to wait on: its list of accepted messages is looked at.
        while len(twilio.sent) < recipients // 2:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        twilio.error_rate = 1.0
        failing_since.append(time.time())

    watcher = asyncio.ensure_future(fail_half_way()) if scenario == "halfway" else None
    resp = await client.post("/v1/alerts", json=ALERT, headers=AUTH)
    if resp.status != 202:
        raise RuntimeError(f"alert refused: {resp.status} {await resp.text()}")
    accepted_at = time.time()
    if scenario == "down":
        failing_since.append(accepted_at)
    alert_id = str((await resp.json())["id"])
    async with asyncio.timeout(3600):
        while True:
            doc = await (await client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
            if doc["state"] != "dispatching":
                break
            await asyncio.sleep(0.2)
    if watcher is not None and not watcher.done():
        watcher.cancel()
    sms = [m for m in box.stats.messages if m.kind == "sms" and m.alert_id == alert_id]
    by_telnyx = sorted(m.at for m in sms if m.meta.get("provider") == "telnyx")
    unique = {m.recipient for m in sms}
    total = (await service.ledger.counts(alert_id))["sms"]["total"]
    switched = None
    if failing_since and by_telnyx:
        after = [t for t in by_telnyx if t >= failing_since[0]]
        switched = round((after[0] - failing_since[0]) * 1000, 1) if after else None
    return {
        "scenario": scenario,
        "audience_sms": total,
        "twilio_sms": len(sms) - len(by_telnyx),
        "telnyx_sms": len(by_telnyx),
        "first_telnyx_sms_after_failure_ms": switched,
        "lost": total - len(unique),
        "duplicates": len(sms) - len(unique),
        "last_sms_after_202_s": round(max(m.at for m in sms) - accepted_at, 2) if sms else None,
        "state": doc["state"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print their numbers."""
    parser = argparse.ArgumentParser(prog="python -m bench.failover",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--scenarios", default="down,halfway",
                        help="comma-separated: down, halfway")
    opts = parser.parse_args(argv)
    # The service's and the sandbox's logs would cost the run more than they tell.
    configure_logging("error")
    results = []
    for scenario in opts.scenarios.split(","):
        print(f"running {scenario}...", file=sys.stderr)
        results.append(asyncio.run(run(scenario, opts.recipients)))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"recipients": opts.recipients, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
