"""The urgency benchmark: a live emergency sent while a drill (or a timely warning) is going out
to everyone, next to the same emergency sent alone.

    python -m bench.urgency [--recipients 50000] [--rate 0] [--delay 5]
    python -m bench.urgency --example [--scenarios both]

One process runs the provider sandbox (the Twilio stand-in) and the service on a synthetic
campus of `--recipients` people, SMS only, on SQLite. Three runs, each on a fresh store:

1. `alone`: the emergency by itself.
2. `drill`: a drill to everyone; `--delay` seconds after its 202, the emergency to everyone.
3. `warning`: the same with a live timely warning in place of the drill.
4. `both` (with `--example`): a drill, a timely warning a second later, then the emergency.

`--example` runs on the embedded default instead: the example campus and the embedded SMS
senders at their real pace (a short code at 100/s, a toll-free number at 3/s, a long code at
1/s), as `make run` sends.

For each it reports, from the sandbox's arrival stamps and the bench's clock around the
webhook: the emergency's first SMS after its 202, its SMS per second (first to last arrival)
and the ratio to the alone run, the time to 90 % of its SMS, the other alert's SMS handed over
while the emergency sent, and the other alert's loss and duplicates once it finished, with how
long it paused (its Clery record). Sender pace: `--rate` messages a second on one short code
(0: no limit, the engine's own speed). The last line is one JSON object. Numbers, not asserts.
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
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from dispatcher.api.app import build_app
from dispatcher.observability import configure_logging
from dispatcher.service import Service
from dispatcher.settings import Settings, config_dir, load_settings

TOKEN = "bench-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EMERGENCY = {"kind": "emergency", "text": "Gas leak at the Science Center. Evacuate now and"
             " avoid the area.", "audience": "all", "channels": ["sms"]}
OTHERS = {
    "drill": {"kind": "emergency", "mode": "drill", "audience": "all", "channels": ["sms"],
              "text": "DRILL: shelter in place drill. Go to an interior room now."},
    "warning": {"kind": "timely_warning", "audience": "all", "channels": ["sms"],
                "text": "Timely warning: robbery near Lot 4 at 9 pm. Walk in groups; call"
                        " Campus Police at 555-0100 with information."},
}


def _settings(folder: Path, box: Sandbox, rate: float, example: bool, port: int) -> Settings:
    raw = load_settings().model_dump(mode="json", exclude={"base_dir"})
    raw["store"]["url"] = f"sqlite:///{folder / 'clarion.db'}"
    raw["auth"] = {"token": TOKEN, "tokens": [], "rate_per_second": 0}
    raw["feeds"]["enabled"] = False
    raw["logging"]["level"] = "warning"
    sms = raw["channels"]["sms.twilio"]
    sms["api_base_url"] = box.url
    if not example:
        raw["directory"].update({
            "people": str(folder / "campus/people.csv"),
            "devices": str(folder / "campus/devices.csv"),
            "buildings": str(folder / "campus/buildings.csv"),
            "zones": str(folder / "campus/zones.geojson"),
        })
        sms.update({"batch_size": 50, "concurrency": 8,
                    "senders": [{"number": "22395", "type": "short_code",
                                 "rate_per_second": rate or 100_000}]})
    raw["channels"] = {"sms.twilio": sms, "email.smtp": {
        **raw["channels"]["email.smtp"], "port": box.smtp.port, "security": "none"}}
    # The stand-in posts every status callback to the service, as Twilio would.
    raw["service"].update({"port": port, "public_url": f"http://127.0.0.1:{port}"})
    raw["base_dir"] = config_dir()
    return Settings.model_validate(raw)


async def _post(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[str, float]:
    resp = await client.post("/v1/alerts", json=body, headers=AUTH)
    if resp.status != 202:
        raise RuntimeError(f"alert refused: {resp.status} {await resp.text()}")
    return str((await resp.json())["id"]), time.time()


async def _wait_done(
    client: TestClient[Any, Any], alert_id: str, timeout_s: float
) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            resp = await client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
            doc: dict[str, Any] = await resp.json()
            if doc["state"] != "dispatching":
                return doc
            await asyncio.sleep(0.2)


async def run(
    scenario: str, recipients: int, rate: float, delay_s: float, example: bool
) -> dict[str, Any]:
    """One scenario on a fresh store and sandbox; its numbers."""
    with tempfile.TemporaryDirectory(prefix="clarion-urgency-") as tmp:
        folder = Path(tmp)
        args = argparse.Namespace(
            twilio_account_sid="AC" + "0" * 32, twilio_auth_token="sandbox-token",
            sms_error_rate=0.0, sms_429_rate=0.0, sms_retry_after=1, sms_undelivered_rate=0.0,
            sms_failed_rate=0.0, sms_callback_delay=0.5, sms_opted_out=[],
            voice_answer_rate=1.0, voice_busy_rate=0.0, voice_press_rate=1.0,
            voice_help_rate=0.0, sms_seed=1, answer_rate=0.0, answer_delay=2.0,
            need_help_rate=0.0, inbound_url="",
        )
        box = Sandbox(port=0, smtp_port=0)
        await twilio_plugin.attach(box, args)
        await box.start()
        if not example:
            write_bench_campus(folder / "campus", recipients, 0, box.port)
        port = free_port()
        settings = _settings(folder, box, rate, example, port)
        service = await Service.open(settings)
        client = TestClient(TestServer(build_app(service), host="127.0.0.1", port=port))
        await client.start_server()
        try:
            return await _measure(scenario, client, service, box, delay_s)
        finally:
            await client.close()
            await box.stop()


async def _measure(scenario: str, client: TestClient[Any, Any], service: Service, box: Sandbox,
                   delay_s: float) -> dict[str, Any]:
    others: dict[str, str] = {}
    for name in {"alone": [], "both": ["drill", "warning"]}.get(scenario, [scenario]):
        if others:
            await asyncio.sleep(1.0)
        others[name], _ = await _post(client, OTHERS[name])
    if others:
        await asyncio.sleep(delay_s)
    gas, gas_at = await _post(client, EMERGENCY)
    await _wait_done(client, gas, 3600)
    for other in others.values():
        await _wait_done(client, other, 3600)
    sms = [m for m in box.stats.messages if m.kind == "sms"]
    mine = sorted(m.at for m in sms if m.alert_id == gas)
    result: dict[str, Any] = {
        "scenario": scenario,
        "emergency_sms": len(mine),
        "first_sms_after_202_ms": round((mine[0] - gas_at) * 1000, 1),
        "sms_per_s": round(len(mine) / max(mine[-1] - mine[0], 1e-3), 1),
        "to_90pct_s": round(mine[int(len(mine) * 0.9) - 1] - gas_at, 2),
    }
    for name, other in others.items():
        theirs = sorted((m for m in sms if m.alert_id == other), key=lambda m: m.at)
        unique = {m.recipient for m in theirs}
        total = (await service.ledger.counts(other))["sms"]["total"]
        record = await service.records.record(other)
        result[name] = {
            "sms": len(theirs),
            "handed_over_during_emergency": sum(1 for m in theirs if mine[0] <= m.at <= mine[-1]),
            "lost": total - len(unique),
            "duplicates": len(theirs) - len(unique),
            # (getattr: the same bench also measures a build from before pauses were kept)
            "paused_s": round(getattr(record, "paused_s", 0.0), 2) if record is not None else None,
            "to_90pct_after_emergency_202_s": round(
                theirs[int(len(theirs) * 0.9) - 1].at - gas_at, 2),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the three scenarios and print their numbers."""
    parser = argparse.ArgumentParser(prog="python -m bench.urgency", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="SMS a second on the one sender (0: no limit)")
    parser.add_argument("--delay", type=float, default=5.0,
                        help="seconds between the other alert's 202 and the emergency")
    parser.add_argument("--scenarios", default=None,
                        help="comma-separated: alone, drill, warning, both")
    parser.add_argument("--example", action="store_true",
                        help="the example campus and the embedded senders at their real pace")
    opts = parser.parse_args(argv)
    # The service's and the sandbox's logs would cost the run more than they tell.
    configure_logging("error")
    scenarios = opts.scenarios or ("both" if opts.example else "alone,drill,warning")
    results = []
    for scenario in scenarios.split(","):
        print(f"running {scenario}...", file=sys.stderr)
        results.append(asyncio.run(
            run(scenario, opts.recipients, opts.rate, opts.delay, opts.example)))
        print(json.dumps(results[-1]), file=sys.stderr)
    alone = next((r for r in results if r["scenario"] == "alone"), None)
    for r in results:
        if alone is not None and r is not alone:
            r["rate_vs_alone"] = round(r["sms_per_s"] / alone["sms_per_s"], 2)
    print(json.dumps({"recipients": "example campus" if opts.example else opts.recipients,
                      "rate": "embedded senders" if opts.example else opts.rate,
                      "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
