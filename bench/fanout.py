"""The fan-out benchmark: one all-campus emergency, end to end, next to its ceiling and its peer.

    python -m bench.fanout --recipients 50000 [--devices 500] [--store sqlite|postgres]
                           [--scaling] [--profile] [--peer-recipients N] [--timeout S]

For each run it writes a synthetic campus (everyone with a phone, an email address and a push
target), imports it with `clarion directory import`, starts `clarion sandbox` (Twilio API,
SMTP relay, push sink, the devices on a real mosquitto) and `clarion serve` (two of them on
PostgreSQL with `--store postgres`) in their own processes, and sends one emergency on sms,
email, push, siren, signage and pa through the webhook, with the providers' rate limits off.

Then, on the same sandbox: the ceiling (bare aiohttp / aiosmtplib / aiomqtt, no engine) and
the peer (one Apprise object holding the same targets, `async_notify`).

It prints a table and, as its last line, one JSON object. Timings come from three places:
the bench's own clock around the webhook; the sandbox's `/stats`, polled every 20 ms until
each kind has arrived once (first arrival, an upper bound) and every 200 ms after; and the
store's receipts, read once the service has stopped (every receipt carries the service's
wall-clock time, so "all accepted" and "all receipts" are exact to the millisecond).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from bench import apprise_peer, ceiling
from bench.rig import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    HOST,
    MESSAGING_SERVICE_SID,
    SENDER,
    Campus,
    Child,
    Ports,
    Tuning,
    clarion,
    cpu_seconds,
    memory_kb,
    read_people,
    run_command,
    start_child,
    wait_http,
    wait_json_line,
    write_bench_campus,
    write_config,
)
from channels.sandbox.postgres import ThrowawayPostgres

ALERT_TEXT = "Gas leak at the Chemistry Building. Evacuate now and avoid the area."
ALERT_TITLE = "Emergency"
CHANNELS = ("siren", "signage", "pa", "sms", "push", "email")
PERSON_KINDS = ("sms", "email", "push")
DEVICE_KINDS = ("siren", "signage", "pa")
SCALING = (10_000, 50_000, 200_000)
# The longest an alert may run before the bench reports what it reached (the 200k step).
MAX_DEADLINE_S = 1200.0
# Once nothing is queued, how long the receipts may stand still before the bench stops waiting.
STALL_S = 30.0
# Above this the peer runs on a sample: Apprise's rate does not depend on the size (it sends
# target by target through a shared pool of min(32, cores + 4) threads), and its email goes
# at ~30 a second here, so 50,000 people (150,000 targets) would take over half an hour.
PEER_CAP = 2_000
# What the issue asks of a 50,000-person run.
TARGETS = {
    "accept_202_ms": 50.0,
    "first_sms_ms": 250.0,
    "devices_acked_s": 1.0,
    "all_accepted_s": 60.0,
    "peak_rss_mb": 500.0,
}


@dataclass(frozen=True, slots=True)
class Options:
    """One run's parameters."""

    recipients: int
    devices: int = 500
    store: str = "sqlite"
    profile: bool = False
    peer_recipients: int | None = None
    ceiling: bool = True
    timeout_s: float | None = None
    keep: bool = False
    callback_delay_s: float | None = None
    tuning: Tuning = field(default_factory=Tuning)
    nodes: int | None = None

    @property
    def servers(self) -> int:
        """`clarion serve` processes: `nodes`, by default two sharing PostgreSQL and one on
        SQLite (which has one writer: a second node is refused)."""
        if self.nodes is not None:
            return self.nodes
        return 2 if self.store == "postgres" else 1

    @property
    def deadline_s(self) -> float:
        """How long the alert may take before the bench gives up on it."""
        if self.timeout_s is not None:
            return self.timeout_s
        return min(MAX_DEADLINE_S, 120.0 + self.recipients * 0.02)


# --- small readings ------------------------------------------------------------------------


def _machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class ProcessWatch:
    """CPU seconds and peak RSS of some processes over a window (from /proc)."""

    pids: dict[str, int]
    cpu0: dict[str, float] = field(default_factory=dict)
    busy0: float = 0.0
    wall0: float = 0.0
    own0: float = 0.0

    def start(self) -> None:
        """Mark the start of the window."""
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.busy0 = _machine_busy_s()
        self.own0 = time.process_time()
        self.wall0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        """CPU seconds per process, the bench's own, everyone else's, and peak RSS."""
        cpu = {name: cpu_seconds(pid) - self.cpu0[name] for name, pid in self.pids.items()}
        own = time.process_time() - self.own0
        busy = _machine_busy_s() - self.busy0
        wall = time.monotonic() - self.wall0
        others = max(0.0, busy - sum(cpu.values()) - own)
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "bench_cpu_s": round(own, 2),
            "machine_busy_s": round(busy, 2),
            "others_cpu_s": round(others, 2),
            "peak_rss_mb": {
                name: round(memory_kb(pid)[1] / 1024, 1) for name, pid in self.pids.items()
            },
        }


# --- watching the sandbox and the broker ----------------------------------------------------


@dataclass
class SandboxWatch:
    """Polls `/stats`: the first arrival of each kind and when each kind is complete."""

    urls: Sequence[str]
    expected: dict[str, int]
    t0: float = 0.0
    first: dict[str, float] = field(default_factory=dict)
    complete: dict[str, float] = field(default_factory=dict)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event,
                  deadline: float) -> None:
        """Until every kind is complete, `stop` is set, or the deadline passes."""
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                self.last = await get_stats(http, self.urls)
                self.polls += 1
                now = time.time()
                for kind, counts in self.last.items():
                    # A sandbox that stamps arrivals (`first_at`, `last_at`: epoch seconds) is
                    # exact; otherwise the poll's own time is an upper bound.
                    if counts.get("received") and kind not in self.first:
                        self.first[kind] = float(counts.get("first_at") or now) - self.t0
                    if (kind in self.expected and kind not in self.complete
                            and counts.get("unique", 0) >= self.expected[kind]):
                        self.complete[kind] = float(counts.get("last_at") or now) - self.t0
            if all(k in self.complete for k in self.expected if self.expected[k]):
                return
            fast = any(k not in self.first for k in self.expected if self.expected[k])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02 if fast else 0.2)


async def watch_active(host: str, port: int, prefix: str, seen: list[tuple[float, str]],
                       ready: asyncio.Event) -> None:
    """Record (wall time, alert id) of every active-alert publish the broker passes on."""
    async with aiomqtt.Client(host, port, identifier=f"bench-{secrets.token_hex(4)}",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(f"{prefix}/alert/active/+", qos=1)
        ready.set()
        async for message in client.messages:
            stamp = time.time()
            with contextlib.suppress(ValueError, TypeError, KeyError):
                raw = message.payload
                if isinstance(raw, bytes | bytearray) and raw:
                    seen.append((stamp, str(json.loads(raw)["identifier"])))


def loss(stats: dict[str, dict[str, int]], expected: dict[str, int]) -> tuple[int, int]:
    """(lost, duplicates) summed over kinds: expected minus unique, received minus unique."""
    lost = dup = 0
    for kind, want in expected.items():
        got = stats.get(kind, {})
        lost += max(0, want - got.get("unique", 0))
        dup += max(0, got.get("received", 0) - got.get("unique", 0))
    return lost, dup


async def get_stats(http: aiohttp.ClientSession, urls: Sequence[str]) -> dict[str, Any]:
    """`/stats` of every sandbox process, merged: each kind is received by one of them (the
    provider stand-ins in one, the simulated devices in the other), so counts add up and the
    earliest first and latest last arrival stand."""
    merged: dict[str, dict[str, Any]] = {}
    for url in urls:
        async with http.get(f"{url}/stats") as resp:
            part: dict[str, dict[str, Any]] = await resp.json()
        for kind, counts in part.items():
            into = merged.setdefault(kind, {"received": 0, "unique": 0})
            into["received"] += counts.get("received", 0)
            into["unique"] += counts.get("unique", 0)
            for key, pick in (("first_at", min), ("last_at", max)):
                if key in counts:
                    known = [v for v in (into.get(key), counts[key]) if v is not None]
                    into[key] = pick(known) if known else None
    return merged


async def reset_stats(http: aiohttp.ClientSession, urls: Sequence[str]) -> None:
    """Forget what every sandbox process received."""
    for url in urls:
        async with http.post(f"{url}/stats/reset") as resp:
            resp.raise_for_status()


async def settle_stats(http: aiohttp.ClientSession, urls: Sequence[str],
                       expected: dict[str, int],
                       wait_s: float = 10.0) -> dict[str, dict[str, int]]:
    """`/stats` once every expected message arrived, or after `wait_s` (late ones count)."""
    deadline = time.monotonic() + wait_s
    while True:
        stats: dict[str, dict[str, int]] = await get_stats(http, urls)
        if time.monotonic() > deadline or all(
            stats.get(k, {}).get("unique", 0) >= v for k, v in expected.items()
        ):
            # A second look a little later catches duplicates still on their way.
            await asyncio.sleep(0.5)
            final: dict[str, dict[str, int]] = await get_stats(http, urls)
            return final
        await asyncio.sleep(0.2)


# --- the store, read after the run ----------------------------------------------------------


async def receipt_times(store_url: str, alert_id: str) -> dict[str, Any]:
    """Per channel from the receipts: first and last acceptance, last receipt, final states."""
    from dispatcher.store.database import open_database

    db = await open_database(store_url)
    try:
        alert = await db.fetchone(
            "SELECT created_at, sending_at, resolved_at, done_at FROM alerts WHERE id = ?",
            (alert_id,),
        )
        accepted = await db.fetchall(
            "SELECT channel, MIN(first_ok) AS first_ok, MAX(first_ok) AS last_ok, COUNT(*) AS n"
            " FROM (SELECT channel, delivery_id, MIN(at) AS first_ok FROM receipts"
            " WHERE alert_id = ? AND status IN ('accepted', 'delivered')"
            " GROUP BY channel, delivery_id) AS firsts GROUP BY channel",
            (alert_id,),
        )
        delivered = await db.fetchall(
            "SELECT channel, MAX(first_at) AS last_at, COUNT(*) AS n FROM (SELECT channel,"
            " delivery_id, MIN(at) AS first_at FROM receipts WHERE alert_id = ?"
            " AND status = 'delivered' GROUP BY channel, delivery_id) AS firsts GROUP BY channel",
            (alert_id,),
        )
        last = await db.fetchall(
            "SELECT channel, MAX(at) AS last_at, COUNT(*) AS n FROM receipts WHERE alert_id = ?"
            " GROUP BY channel",
            (alert_id,),
        )
        states = await db.fetchall(
            "SELECT channel, state, COUNT(*) AS n, SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END)"
            " AS retried FROM deliveries WHERE alert_id = ? GROUP BY channel, state",
            (alert_id,),
        )
    finally:
        await db.close()
    by_state: dict[str, dict[str, int]] = {}
    retried: Counter[str] = Counter()
    for r in states:
        by_state.setdefault(r["channel"], {})[r["state"]] = int(r["n"])
        retried[r["channel"]] += int(r["retried"] or 0)
    return {
        "alert": {k: alert[k] for k in ("created_at", "sending_at", "resolved_at", "done_at")}
        if alert else {},
        "accepted": {r["channel"]: (r["first_ok"], r["last_ok"], int(r["n"])) for r in accepted},
        "delivered": {r["channel"]: (r["last_at"], int(r["n"])) for r in delivered},
        "last": {r["channel"]: (r["last_at"], int(r["n"])) for r in last},
        "states": by_state,
        "retried": dict(retried),
    }


# --- the profile ----------------------------------------------------------------------------


def start_profiler(pid: int, out: Path, folder: Path) -> Child | None:
    """py-spy sampling the service's GIL holder at 50 Hz; None when py-spy is missing."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("bench: --profile needs py-spy (pip install 'py-spy>=0.4')", file=sys.stderr)
        return None
    return start_child(
        "py-spy",
        # --gil: only the thread holding the interpreter lock, i.e. what uses the one core
        # a Python process has; 50 Hz keeps py-spy's own CPU use small on two cores.
        [spy, "record", "--pid", str(pid), "--rate", "50", "--gil", "--format", "raw",
         "--threads", "--nonblocking", "--output", str(out)],
        folder,
        dict(os.environ),
    )


def stop_profiler(child: Child, out: Path) -> None:
    """SIGINT makes py-spy write its samples; wait for the file (bounded)."""
    if child.alive():
        child.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=60)
    child.stop(grace_s=5)


def _frame(raw: str) -> tuple[str, str]:
    """(function, module path) of a py-spy frame "function (path/to/module.py:line)"."""
    name, _, where = raw.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/", "lib/python3.12/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return name, path


# Where a sample's time goes: the first of these met walking up from the innermost frame.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("aiosqlite/", "SQLite (aiosqlite worker thread)"),
    ("logging/", "logging (stdlib handlers)"),
    ("structlog/", "structlog"),
    ("gettext.py", "Apprise: locale lookup per target"),
    ("apprise/", "Apprise"),
    ("urllib3/", "requests/urllib3 (Apprise's HTTP)"),
    ("requests/", "requests/urllib3 (Apprise's HTTP)"),
    ("twilio/", "twilio client library"),
    ("aiosmtplib/", "aiosmtplib"),
    ("email/", "email (stdlib)"),
    ("aiomqtt/", "MQTT (aiomqtt/paho)"),
    ("paho/", "MQTT (aiomqtt/paho)"),
    ("aiohttp/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("json/", "json"),
    ("pydantic", "pydantic"),
    ("dispatcher/", "Clarion: dispatcher"),
    ("channels/", "Clarion: channels"),
    ("segments/", "Clarion: segments"),
    ("selectors.py", "event loop: waiting in select"),
    ("asyncio/", "asyncio"),
    ("socket.py", "sockets"),
    ("ssl.py", "sockets"),
)
_OWN = ("dispatcher/", "channels/", "segments/")
# Frames below which every sample sits (the loop's own entry point), not a caller.
_ENTRY = ("dispatcher/commands.py", "dispatcher/cli.py")


def summarize_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Sample shares by thread, by component (innermost known library) and by Clarion caller."""
    threads: Counter[str] = Counter()
    components: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread, parsed = frames[0], [_frame(f) for f in frames[1:]]
        total += n
        threads[_thread_label(thread, parsed)] += n
        component = "other"
        for _name, module in reversed(parsed):
            found = next((label for key, label in COMPONENTS if key in module), None)
            if found is not None:
                component = found
                break
        components[component] += n
        own = [f"{name} ({module})" for name, module in parsed
               if module.startswith(_OWN) and not module.startswith(_ENTRY)]
        callers[own[-1] if own else "(event loop itself, no Clarion frame)"] += n

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)]

    return {"samples": total, "threads": share(threads), "components": share(components),
            "callers": share(callers)}


def _thread_label(thread: str, frames: Sequence[tuple[str, str]]) -> str:
    modules = " ".join(module for _name, module in frames[:8])
    if "aiosqlite/" in modules:
        return "aiosqlite worker threads"
    if "concurrent/futures/thread.py" in modules:
        return "thread pool (push.apprise workers)"
    if "asyncio/" in modules:
        return "event loop (main thread)"
    return "other threads"


# --- one run ------------------------------------------------------------------------------


@dataclass
class Rig:
    """The processes of one run, stopped by PID in reverse order whatever happens."""

    folder: Path
    children: list[Child] = field(default_factory=list)
    postgres: ThrowawayPostgres | None = None

    def stop(self) -> None:
        """Stop every child (and what it started), then PostgreSQL."""
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as exc:
                # Keep stopping the others; say which one could not be stopped.
                print(f"bench: stopping {child.name} failed: {exc}", file=sys.stderr)
        self.children.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


async def run_once(opts: Options, log: Any) -> dict[str, Any]:
    """One full run; returns the result document."""
    folder = Path(tempfile.mkdtemp(prefix="clarion-bench-"))
    rig = Rig(folder)
    try:
        return await _run(opts, rig, log)
    finally:
        rig.stop()
        if opts.keep:
            log(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _run(opts: Options, rig: Rig, log: Any) -> dict[str, Any]:
    folder = rig.folder
    ports = Ports.pick(opts.servers)
    token = f"bench-{secrets.token_hex(12)}"
    env = {**os.environ, "CLARION_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    result: dict[str, Any] = {
        "recipients": opts.recipients, "store": opts.store, "servers": opts.servers,
        "profiled": opts.profile, "load_before": _loadavg(),
        "tuning": {"sms_concurrency": opts.tuning.sms_concurrency,
                   "push_concurrency": opts.tuning.push_concurrency,
                   "callback_delay_s": opts.callback_delay_s},
    }

    started = time.perf_counter()
    campus = write_bench_campus(folder / "campus", opts.recipients, opts.devices, ports.sandbox)
    result["campus_s"] = round(time.perf_counter() - started, 1)
    if opts.store == "postgres":
        # Thrown away after the run: commits need not wait for the disk.
        rig.postgres = ThrowawayPostgres.start(
            "synchronous_commit=off", "max_connections=100", prefix="clarion-bench-pg-"
        )
        store_url = await rig.postgres.create_database("clarion")
    else:
        store_url = f"sqlite:///{folder / 'clarion.db'}"
    config = write_config(folder / "campus", ports, store_url, opts.tuning)

    started = time.perf_counter()
    log(f"importing {campus.people_count:,} people and {campus.device_count} devices")
    for argv in (
        clarion("directory", "import", str(campus.people), "--config", str(config), "--json"),
        clarion("directory", "import", str(campus.devices), "--devices", "--config",
                str(config), "--json"),
    ):
        report = json.loads(run_command(argv, folder, env, timeout_s=1800))
        if report.get("rejected"):
            raise RuntimeError(f"import rejected rows: {report['rejected'][:3]}")
    result["import_s"] = round(time.perf_counter() - started, 1)

    log("starting the sandbox and the service")
    # Two sandbox processes: the provider stand-ins (Twilio, SMTP, push) in one, the broker and
    # the simulated devices in the other, so 1,500 device acks at the start of an alert do not
    # hold up the first SMS on the same event loop.
    sandbox = start_child("sandbox", clarion(
        "sandbox", "--arrival-times", "--port", str(ports.sandbox), "--smtp-port", str(ports.smtp),
        "--no-devices",
        *(["--sms-callback-delay", str(opts.callback_delay_s)]
          if opts.callback_delay_s is not None else []),
    ), folder, env)
    rig.children.append(sandbox)
    devices = start_child("devices", clarion(
        "sandbox", "--arrival-times", "--port", str(ports.devices), "--smtp-port",
        str(ports.devices_smtp), "--mqtt-port", str(ports.mqtt), "--devices", str(campus.devices),
    ), folder, env)
    rig.children.append(devices)
    await wait_json_line(sandbox, "sandbox", timeout_s=180)
    await wait_json_line(devices, "sandbox", timeout_s=180)
    devices.note_descendants()
    servers = []
    for i, port in enumerate(ports.api):
        child = start_child(f"serve{i}", clarion(
            "serve", "--config", str(config), "--port", str(port)), folder, env)
        rig.children.append(child)
        servers.append(child)
    for child, port in zip(servers, ports.api, strict=True):
        await wait_http(f"http://{HOST}:{port}/healthz", 120, child)
    api = f"http://{HOST}:{ports.api[0]}"
    sandbox_url = f"http://{HOST}:{ports.sandbox}"
    stats_urls = (sandbox_url, f"http://{HOST}:{ports.devices}")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        await _wait_devices_online(http, [f"http://{HOST}:{p}" for p in ports.api],
                                   campus.device_count, log)
        engine = await _engine_phase(opts, http, api, stats_urls, ports, campus, servers,
                                     (sandbox, devices), folder, log)
        result.update(engine.pop("json"))
        result["detail"] = engine
        for child in servers:
            child.stop()
        times = await receipt_times(store_url, engine["alert_id"])
        result.update(_from_receipts(times, engine["t0"]))
        result["detail"]["receipts"] = times
        phones, emails, pushes = read_people(campus.people)
        targets = ceiling.Targets(
            sandbox_url=sandbox_url, smtp_host=HOST, smtp_port=ports.smtp, mqtt_host=HOST,
            mqtt_port=ports.mqtt, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
            messaging_service_sid=MESSAGING_SERVICE_SID, sender=SENDER, phones=phones,
            emails=emails, push_ids=pushes, zones=campus.device_zones,
            devices=campus.device_count,
        )
        if opts.ceiling:
            result.update(await _ceiling_phase(http, targets, stats_urls, campus, log))
        peer_n = opts.peer_recipients
        if peer_n is None:
            peer_n = min(opts.recipients, PEER_CAP)
        if peer_n > 0:
            result.update(await _peer_phase(http, targets, stats_urls, peer_n, log))
    result["load_after"] = _loadavg()
    return _finish(result)


async def _wait_devices_online(http: aiohttp.ClientSession, apis: Sequence[str], devices: int,
                               log: Any, timeout_s: float = 60.0) -> None:
    """Until each service's bus is connected and has heard every device's presence."""
    deadline = time.monotonic() + timeout_s
    for api in apis:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{api}/v1/devices?state=online") as resp:
                    body = await resp.json()
                online = sum(c.get("online", 0) for c in body.get("counts", {}).values())
                if body.get("broker_connected") and online >= devices:
                    break
            await asyncio.sleep(0.2)
        else:
            log(f"warning: {api} does not see all {devices} devices online; sending anyway")


async def _engine_phase(opts: Options, http: aiohttp.ClientSession, api: str,
                        stats_urls: Sequence[str], ports: Ports, campus: Campus,
                        servers: Sequence[Child], sandboxes: tuple[Child, Child],
                        folder: Path, log: Any) -> dict[str, Any]:
    await reset_stats(http, stats_urls)
    expected = {k: campus.people_count for k in PERSON_KINDS}
    expected.update({k: campus.device_classes.get(k, 0) for k in DEVICE_KINDS})
    deliveries = sum(expected.values())
    pids = {s.name: s.pid for s in servers}
    sandbox, devices = sandboxes
    pids["sandbox"] = sandbox.pid
    pids["devices"] = devices.pid
    for pid, cmd in devices.descendants.items():
        if "mosquitto" in cmd:
            pids["mosquitto"] = pid
    profile_out = folder / "profile.raw"
    profiler = start_profiler(servers[0].pid, profile_out, folder) if opts.profile else None
    if profiler is not None:
        pids["py-spy"] = profiler.pid
        await asyncio.sleep(1.0)
    watch = ProcessWatch(pids)

    published: list[tuple[float, str]] = []
    mqtt_ready = asyncio.Event()
    mqtt_task = asyncio.create_task(
        watch_active(HOST, ports.mqtt, "clarion/v1", published, mqtt_ready))
    await asyncio.wait_for(mqtt_ready.wait(), 10)
    stats = SandboxWatch(stats_urls, expected)
    stop = asyncio.Event()
    deadline = time.monotonic() + opts.deadline_s
    rss_samples: list[tuple[float, float]] = []
    body = {"kind": "emergency", "text": ALERT_TEXT, "headline": ALERT_TITLE,
            "audience": "all", "channels": list(CHANNELS)}

    log(f"sending one emergency to {campus.people_count:,} people and "
        f"{campus.device_count} devices ({deliveries:,} deliveries)")
    watch.start()
    stats.t0 = t0 = time.time()
    stats_task = asyncio.create_task(stats.run(http, stop, deadline))
    clock = time.perf_counter()
    async with http.post(f"{api}/v1/alerts", json=body) as resp:
        reply = await resp.json(content_type=None)
        accept_ms = (time.perf_counter() - clock) * 1000
        if resp.status != 202:
            stop.set()
            raise RuntimeError(f"the webhook answered {resp.status}: {reply}")
    alert_id = reply["id"]
    handed_at = final_at = None
    status: dict[str, Any] = {}
    final = total = 0
    progress_at, last_final = time.monotonic(), -1
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        handed_bar = bar.add_task("handed over", total=deliveries)
        final_bar = bar.add_task("receipts", total=deliveries)
        while time.monotonic() < deadline:
            async with http.get(f"{api}/v1/alerts/{alert_id}") as resp:
                status = await resp.json()
            now = time.time() - t0
            rss_samples.append((round(now, 2), sum(memory_kb(s.pid)[0] for s in servers) / 1024))
            channels = status.get("channels", {})
            handed = sum(c["total"] - c["queued"] - c["sending"] for c in channels.values())
            final = sum(_final(k, c) for k, c in channels.items())
            total = sum(c["total"] for c in channels.values())
            bar.update(handed_bar, completed=handed)
            bar.update(final_bar, completed=final)
            if final != last_final:
                progress_at, last_final = time.monotonic(), final
            if handed_at is None and status.get("state") != "dispatching":
                handed_at = now
            if status.get("state") != "dispatching" and final >= total:
                final_at = now
                break
            if handed_at is not None and time.monotonic() - progress_at > STALL_S:
                log(f"warning: {total - final:,} receipts still missing after {STALL_S:.0f} s"
                    " without progress; not waiting for them")
                break
            await asyncio.sleep(0.25)
    usage = watch.stop()
    for child in servers:
        # VmHWM is the peak resident size over the process's whole life.
        usage["peak_rss_mb"][child.name] = round(memory_kb(child.pid)[1] / 1024, 1)
    if profiler is not None:
        stop_profiler(profiler, profile_out)
    timed_out = handed_at is None
    if timed_out:
        log(f"warning: the alert was still dispatching after {opts.deadline_s:.0f} s")
    sandbox_stats = await settle_stats(http, stats_urls, expected,
                                       wait_s=5 if timed_out else 15)
    stop.set()
    await stats_task
    mqtt_task.cancel()
    await asyncio.gather(mqtt_task, return_exceptions=True)
    lost, dup = loss(sandbox_stats, expected)
    first_publish = min((s for s, a in published if a == alert_id), default=None)
    server_names = [s.name for s in servers]
    out: dict[str, Any] = {
        "alert_id": alert_id,
        "t0": t0,
        "status": status,
        "usage": usage,
        "rss_mb_timeline": rss_samples[:: max(1, len(rss_samples) // 40)],
        "sandbox_first_s": {k: round(v, 3) for k, v in stats.first.items()},
        "sandbox_complete_s": {k: round(v, 3) for k, v in stats.complete.items()},
        "sandbox_stats": sandbox_stats,
        "stats_polls": stats.polls,
        "json": {
            "deliveries": deliveries,
            "accept_202_ms": round(accept_ms, 1),
            "first_device_ms": None if first_publish is None
            else round((first_publish - t0) * 1000, 1),
            "handed_over_s": None if handed_at is None else round(handed_at, 2),
            "complete_s": None if final_at is None else round(final_at, 2),
            "timed_out": timed_out,
            "deadline_s": opts.deadline_s,
            "receipts_missing": max(0, total - final),
            "peak_rss_mb": max(usage["peak_rss_mb"][n] for n in server_names),
            "server_cpu_s": round(sum(usage["cpu_s"][n] for n in server_names), 2),
            "sandbox_cpu_s": round(usage["cpu_s"].get("sandbox", 0.0)
                                   + usage["cpu_s"].get("devices", 0.0), 2),
            "devices_cpu_s": usage["cpu_s"].get("devices"),
            "others_cpu_s": usage["others_cpu_s"],
            "lost": lost,
            "duplicates": dup,
        },
    }
    if profiler is not None:
        out["profile"] = summarize_profile(profile_out)
        keep = Path(tempfile.gettempdir()) / f"clarion-bench-profile-{opts.recipients}.raw"
        with contextlib.suppress(OSError):
            shutil.copy(profile_out, keep)
            out["profile"]["raw"] = str(keep)
    return out


def _final(kind: str, counts: dict[str, int]) -> int:
    """Deliveries with their last word: acks and SMS callbacks; email and push at acceptance."""
    done = counts["delivered"] + counts["failed"]
    if kind in ("email", "push"):
        done += counts["accepted"]
    return done


def _from_receipts(times: dict[str, Any], t0: float) -> dict[str, Any]:
    """The JSON's timing keys from the store's receipts (service wall-clock ms)."""
    base = t0 * 1000

    def rel(ms: float | None) -> float | None:
        return None if ms is None else (ms - base) / 1000

    accepted = times["accepted"]
    out: dict[str, Any] = {}
    per_channel: dict[str, float] = {}
    last_ok = []
    for kind, (first, last, n) in accepted.items():
        out[f"first_{kind}_ledger_ms"] = round((first - base), 1)
        span = rel(last)
        last_ok.append(last)
        if span and span > 0:
            per_channel[kind] = round(n / span, 1)
    all_accepted = rel(max(last_ok)) if last_ok else None
    out["all_accepted_s"] = None if all_accepted is None else round(all_accepted, 2)
    receipts = [v[0] for v in times["last"].values()]
    out["all_receipts_s"] = round(rel(max(receipts)) or 0.0, 2) if receipts else None
    device_acks = [times["delivered"][k][0] for k in DEVICE_KINDS if k in times["delivered"]]
    out["devices_acked_s"] = round(rel(max(device_acks)) or 0.0, 2) if device_acks else None
    delivered_sms = times["delivered"].get("sms")
    out["sms_delivered_s"] = round(rel(delivered_sms[0]) or 0.0, 2) if delivered_sms else None
    total = sum(n for _f, _l, n in accepted.values())
    out["accepted"] = total
    out["deliveries_per_s"] = round(total / all_accepted, 1) if all_accepted else None
    out["per_channel_per_s"] = per_channel
    failed = sum(s.get("failed", 0) for s in times["states"].values())
    out["failed"] = failed
    out["retried"] = sum(times["retried"].values())
    return out


async def _ceiling_phase(http: aiohttp.ClientSession, targets: ceiling.Targets,
                         stats_urls: Sequence[str], campus: Campus, log: Any) -> dict[str, Any]:
    await reset_stats(http, stats_urls)
    log(f"ceiling: {targets.messages:,} messages with bare clients")
    alert_id = f"ceiling-{secrets.token_hex(4)}"
    blasted = await ceiling.blast(targets, text=ALERT_TEXT, alert_id=alert_id)
    expected = {k: campus.people_count for k in PERSON_KINDS}
    expected.update({k: campus.device_classes.get(k, 0) for k in DEVICE_KINDS})
    stats = await settle_stats(http, stats_urls, expected)
    lost, dup = loss(stats, expected)
    return {
        "ceiling_stats": stats,
        "ceiling_per_s": round(blasted.per_second, 1),
        "ceiling_s": round(blasted.seconds, 2),
        "ceiling_by_kind_s": {k: round(v, 2) for k, v in blasted.seconds_by_kind.items()},
        "ceiling_lost": lost,
        "ceiling_duplicates": dup,
        "ceiling_failed": sum(blasted.failed.values()),
    }


async def _peer_phase(http: aiohttp.ClientSession, targets: ceiling.Targets,
                      stats_urls: Sequence[str], people: int, log: Any) -> dict[str, Any]:
    await reset_stats(http, stats_urls)
    sample = ceiling.Targets(
        **{**{f: getattr(targets, f) for f in targets.__dataclass_fields__},
           "phones": targets.phones[:people], "emails": targets.emails[:people],
           "push_ids": targets.push_ids[:people], "zones": (), "devices": 0},
    )
    log(f"peer: Apprise fan-out to {people:,} people ({sample.messages:,} targets)")
    peer = await apprise_peer.fan_out(sample, text=ALERT_TEXT, title=ALERT_TITLE,
                                      alert_id=f"apprise-{secrets.token_hex(4)}")
    stats = await settle_stats(http, stats_urls, dict.fromkeys(PERSON_KINDS, people))
    lost, dup = loss(stats, dict.fromkeys(PERSON_KINDS, people))
    return {
        "apprise_stats": stats,
        "apprise_per_s": round(peer.per_second, 1),
        "apprise_targets": peer.targets,
        "apprise_s": round(peer.seconds + peer.build_seconds, 2),
        "apprise_failed": peer.failed,
        "apprise_failures": peer.failures,
        "apprise_lost": lost,
        "apprise_duplicates": dup,
    }


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    """Fill first_sms_ms & co. and the comparisons."""
    detail = result["detail"]
    first = detail["sandbox_first_s"]
    for kind in ("sms", "email", "push"):
        candidates = [v for v in (
            first.get(kind) and first[kind] * 1000, result.get(f"first_{kind}_ledger_ms")
        ) if v]
        result[f"first_{kind}_ms"] = round(min(candidates), 1) if candidates else None
    rate = result.get("deliveries_per_s") or 0.0
    if result.get("ceiling_per_s"):
        result["share_of_ceiling"] = round(rate / result["ceiling_per_s"], 2)
    if result.get("apprise_per_s"):
        result["times_apprise"] = round(rate / result["apprise_per_s"], 1)
    checks = {
        "accept_202": _le(result.get("accept_202_ms"), TARGETS["accept_202_ms"]),
        "first_sms": _le(result.get("first_sms_ms"), TARGETS["first_sms_ms"]),
        "devices_acked": _le(result.get("devices_acked_s"), TARGETS["devices_acked_s"]),
        "peak_rss": _le(result.get("peak_rss_mb"), TARGETS["peak_rss_mb"]),
        "half_ceiling": (result.get("share_of_ceiling") or 0) >= 0.5,
        "five_times_apprise": (result.get("times_apprise") or 0) >= 5,
        "no_loss": result.get("lost") == 0 and result.get("duplicates") == 0,
    }
    if result["recipients"] >= 50_000:
        checks["all_accepted_60s"] = _le(result.get("all_accepted_s"), TARGETS["all_accepted_s"])
    result["targets_met"] = checks
    return result


def _le(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


# --- output --------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def print_tables(results: Sequence[dict[str, Any]]) -> None:
    """The human tables: one column per run, then per channel and the profile."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=110)
    table = Table(title="Clarion fan-out: one all-campus emergency", show_lines=False)
    table.add_column("measure")
    table.add_column("target", justify="right")
    for r in results:
        table.add_column(f"{r['recipients']:,} ({r['store']})", justify="right")
    rows: list[tuple[str, str, str, str]] = [
        ("deliveries", "", "deliveries", ""),
        ("webhook to 202", "50 ms", "accept_202_ms", " ms"),
        ("first device publish", "", "first_device_ms", " ms"),
        ("first SMS handed over", "250 ms", "first_sms_ms", " ms"),
        ("first push handed over", "", "first_push_ms", " ms"),
        ("first email handed over", "", "first_email_ms", " ms"),
        ("every device acked (ledger)", "1 s", "devices_acked_s", " s"),
        ("every delivery accepted", "60 s @50k", "all_accepted_s", " s"),
        ("every receipt recorded", "", "all_receipts_s", " s"),
        ("deliveries / s", "", "deliveries_per_s", ""),
        ("ceiling / s (bare clients)", "", "ceiling_per_s", ""),
        ("  share of ceiling", ">= 0.5", "share_of_ceiling", ""),
        ("Apprise peer / s", "", "apprise_per_s", ""),
        ("  times the peer", ">= 5", "times_apprise", ""),
        ("server peak RSS", "500 MB", "peak_rss_mb", " MB"),
        ("server CPU", "", "server_cpu_s", " s"),
        ("sandbox CPU", "", "sandbox_cpu_s", " s"),
        ("other processes' CPU", "", "others_cpu_s", " s"),
        ("lost / duplicates", "0 / 0", "", ""),
        ("failed / retried (ledger)", "", "", ""),
        ("import", "", "import_s", " s"),
    ]
    for label, target, key, unit in rows:
        if label.startswith("lost"):
            cells = [f"{r.get('lost')} / {r.get('duplicates')}" for r in results]
        elif label.startswith("failed"):
            cells = [f"{r.get('failed')} / {r.get('retried')}" for r in results]
        else:
            cells = [_fmt(r.get(key), unit) for r in results]
        table.add_row(label, target, *cells)
    console.print(table)
    channels = Table(title="per channel (deliveries / s over each channel's own span)")
    channels.add_column("run")
    for kind in CHANNELS:
        channels.add_column(kind, justify="right")
    for r in results:
        rates = r.get("per_channel_per_s", {})
        channels.add_row(f"{r['recipients']:,}", *[_fmt(rates.get(k)) for k in CHANNELS])
    console.print(channels)
    for r in results:
        met = r.get("targets_met", {})
        missed = [k for k, ok in met.items() if not ok]
        console.print(f"{r['recipients']:,}: targets met: {sum(met.values())}/{len(met)}"
                      + (f"; missed: {', '.join(missed)}" if missed else ""))
        profile = r.get("detail", {}).get("profile")
        if profile:
            _print_profile(console, profile)


def _print_profile(console: Any, profile: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"profile of the service (GIL holder): {profile['samples']:,} samples at 50 Hz")
    for title, key in (("by thread", "threads"), ("by component (innermost)", "components"),
                       ("by Clarion caller (innermost Clarion frame)", "callers")):
        table = Table(title=title)
        table.add_column("%", justify="right")
        table.add_column("where")
        for name, pct in profile[key][:15]:
            table.add_row(f"{pct}", name)
        console.print(table)


def _json_line(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "detail"}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description="Measure one all-campus emergency end to end, with its ceiling and peer.",
    )
    parser.add_argument("--recipients", type=int, default=50_000, help="people (default 50000)")
    parser.add_argument("--devices", type=int, default=500, help="sirens, signs and PA")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--servers", type=int, default=None,
                        help="`clarion serve` processes (postgres: default 2; sqlite: 1)")
    parser.add_argument("--scaling", action="store_true",
                        help=f"run {', '.join(f'{n:,}' for n in SCALING)} in turn")
    parser.add_argument("--profile", action="store_true", help="sample the service with py-spy")
    parser.add_argument("--peer-recipients", type=int, default=None,
                        help=f"people in the Apprise peer run (default min(N, {PEER_CAP:,}))")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds the alert may take (default 120 + 0.02 s per person)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, store)")
    defaults = Tuning()
    parser.add_argument("--sms-concurrency", type=int, default=defaults.sms_concurrency,
                        help="sms.twilio batches in flight (each as many requests)")
    parser.add_argument("--push-concurrency", type=int, default=defaults.push_concurrency,
                        help="push.apprise batches in flight")
    parser.add_argument("--callback-delay", type=float, default=None,
                        help="seconds the sandbox waits before each SMS status callback")
    parser.add_argument("--json-out", type=Path, help="also write every result here")
    args = parser.parse_args(argv)
    if args.recipients < 1 or args.devices < 0:
        parser.error("--recipients must be positive and --devices not negative")
    if args.servers is not None and (args.servers < 1
                                     or (args.store == "sqlite" and args.servers != 1)):
        parser.error("--servers: at least 1, and exactly 1 on sqlite (one writer)")

    def log(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    sizes = SCALING if args.scaling else (args.recipients,)
    results = []
    for n in sizes:
        opts = Options(
            recipients=n, devices=args.devices, store=args.store, profile=args.profile,
            peer_recipients=args.peer_recipients, ceiling=not args.no_ceiling,
            timeout_s=args.timeout, keep=args.keep, callback_delay_s=args.callback_delay,
            nodes=args.servers,
            tuning=Tuning(sms_concurrency=args.sms_concurrency,
                          push_concurrency=args.push_concurrency),
        )
        log(f"run: {n:,} recipients on {args.store}")
        try:
            results.append(asyncio.run(run_once(opts, log)))
        except KeyboardInterrupt:
            return 130
        if args.scaling:
            print(json.dumps(_json_line(results[-1])), file=sys.stderr, flush=True)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_tables(results)
    last = _json_line(results[-1])
    if len(results) > 1:
        last["series"] = [
            {k: r.get(k) for k in ("recipients", "deliveries", "all_accepted_s", "all_receipts_s",
                                   "deliveries_per_s", "peak_rss_mb", "server_cpu_s",
                                   "ceiling_per_s", "lost", "duplicates")}
            for r in results
        ]
    print(json.dumps(last), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
