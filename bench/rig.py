"""The fan-out bench's moving parts: a campus on disk, its config, and the processes it runs.

Every process is started by this module in its own session, remembered by PID, and stopped
by PID (SIGTERM, then SIGKILL after a grace time), together with the children it started
(the sandbox's mosquitto). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from channels.sandbox.broker import free_port
from segments.synthetic import (
    DEVICE_HEADER,
    PEOPLE_HEADER,
    fictional_area_codes,
    fictional_phone,
    generate_devices,
    generate_people,
    write_csv,
    zones_geojson,
)

HOST = "127.0.0.1"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "sandbox-token"
# A Messaging Service paces itself at the provider: no per-number limiter in the channel.
MESSAGING_SERVICE_SID = "MG" + "0" * 32
SENDER = "alerts@example.edu"
# 440 area codes x 100 lines reserved for fiction (NXX-555-0100..0199).
FICTION_LINES = 100
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- the campus ----------------------------------------------------------------------------


def bench_phone(k: int) -> str:
    """The k-th distinct phone number: fictional NXX-555-01XX first, then other NXX-555 lines.

    Past 44,000 people the fiction block is used up; the bench then takes lines 0200 and up of
    the same exchanges, which never leave this machine (the sandbox stands in for Twilio).
    """
    codes = fictional_area_codes()
    if k < len(codes) * FICTION_LINES:
        return fictional_phone(k)
    j = k - len(codes) * FICTION_LINES
    line = 200 + j // len(codes)
    if line >= 1000:
        raise ValueError("the bench campus has distinct phone numbers for 400,000 people at most")
    return f"+1{codes[j % len(codes)]}555{line:04d}"


def bench_people(count: int, push_base: str) -> Iterator[dict[str, str]]:
    """Synthetic people, each reachable on SMS, email and push, with no preference limiting it.

    The bench measures fan-out, so every person gets all three addresses (distinct, so the
    sandbox's unique counts are exact) and no opt-out, channel order or quiet hours.
    """
    for k, row in enumerate(generate_people(count)):
        row["phone"] = bench_phone(k)
        if not row["email"]:
            row["email"] = f"{row['id'].lower()}@example.edu"
        row["push"] = push_base + row["id"]
        row["channels"] = row["opt_out"] = row["quiet_hours"] = ""
        yield row


@dataclass(frozen=True, slots=True)
class Campus:
    """The files of one bench campus and what they hold."""

    folder: Path
    people: Path
    devices: Path
    people_count: int
    device_classes: dict[str, int]
    device_zones: tuple[str, ...]

    @property
    def device_count(self) -> int:
        """Devices of every class."""
        return sum(self.device_classes.values())


def write_bench_campus(folder: Path, people: int, devices: int, sandbox_port: int) -> Campus:
    """people.csv, devices.csv, buildings.csv and zones.geojson for one run."""
    from segments.synthetic import BUILDINGS

    folder.mkdir(parents=True, exist_ok=True)
    people_path = folder / "people.csv"
    devices_path = folder / "devices.csv"
    written = write_csv(
        people_path, PEOPLE_HEADER, bench_people(people, f"json://{HOST}:{sandbox_port}/push/")
    )
    device_rows = generate_devices(devices)
    write_csv(devices_path, DEVICE_HEADER, device_rows)
    write_csv(folder / "buildings.csv", ("id", "name", "campus", "lat", "lon"), [
        {"id": b.id, "name": b.name, "campus": b.campus, "lat": f"{b.lat:.6f}",
         "lon": f"{b.lon:.6f}"}
        for b in BUILDINGS
    ])
    (folder / "zones.geojson").write_text(json.dumps(zones_geojson()) + "\n", encoding="utf-8")
    classes = Counter(r["class"] for r in device_rows)
    zones = tuple(sorted({r["zone"] for r in device_rows if r["zone"]}))
    return Campus(folder, people_path, devices_path, written, dict(classes), zones)


def read_people(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(phones, emails, push ids) of a bench people file, in file order."""
    phones, emails, pushes = [], [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            phones.append(row["phone"])
            emails.append(row["email"].lower())
            pushes.append(row["id"])
    return phones, emails, pushes


# --- the config ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ports:
    """The loopback ports of one run."""

    api: tuple[int, ...]
    sandbox: int
    smtp: int
    mqtt: int
    devices: int
    """HTTP (`/stats`) of the sandbox process that runs the simulated devices."""
    devices_smtp: int

    @classmethod
    def pick(cls, servers: int = 1) -> Ports:
        """Free ports, all distinct."""
        chosen: set[int] = set()
        while len(chosen) < servers + 5:
            chosen.add(free_port(HOST))
        ports = sorted(chosen)
        return cls(tuple(ports[:servers]), *ports[servers:servers + 5])


@dataclass(frozen=True, slots=True)
class Tuning:
    """The channel settings the bench runs with (provider rate limits off)."""

    sms_batch: int = 50
    sms_concurrency: int = 8
    email_batch: int = 500
    email_concurrency: int = 4
    email_pool: int = 8
    email_per_message: int = 100
    push_batch: int = 200
    push_concurrency: int = 32
    enqueue_batch: int = 5000
    log_level: str = "info"


def write_config(folder: Path, ports: Ports, store_url: str, tuning: Tuning) -> Path:
    """A clarion.toml pointing at this run's ports, store and campus files."""
    t = tuning
    text = f"""\
# Written by bench.fanout for one run; paths are relative to this file.
[service]
host = "{HOST}"
port = {ports.api[0]}
public_url = "http://{HOST}:{ports.api[0]}"
institution = "Example University"
sender = "{SENDER}"

[store]
url = "{store_url}"
lease_s = 30

[auth]
# The token comes from $CLARION_API_TOKEN; the bench polls often, so no request limit.
rate_per_second = 0

[dispatch]
enqueue_batch = {t.enqueue_batch}
retry_base_s = 1.0
retry_max_s = 30.0

[logging]
level = "{t.log_level}"

[directory]
people = "people.csv"
devices = "devices.csv"
buildings = "buildings.csv"
zones = "zones.geojson"
import_on_start = false

[channels."email.smtp"]
host = "{HOST}"
port = {ports.smtp}
sender = "Example University Alerts <{SENDER}>"
security = "none"
pool_size = {t.email_pool}
recipients_per_message = {t.email_per_message}
batch_size = {t.email_batch}
concurrency = {t.email_concurrency}

[channels."sms.twilio"]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base_url = "http://{HOST}:{ports.sandbox}"
messaging_service_sid = "{MESSAGING_SERVICE_SID}"
validity_period_s = 600
timeout_s = 10
batch_size = {t.sms_batch}
concurrency = {t.sms_concurrency}
fallback = "push"

[channels."push.apprise"]
concurrency = {t.push_concurrency}
batch_size = {t.push_batch}
timeout_s = 10
fallback = "email"

[channels."siren.mqtt"]
host = "{HOST}"
port = {ports.mqtt}
ack_timeout_s = 30

[channels."signage.mqtt"]
host = "{HOST}"
port = {ports.mqtt}
ack_timeout_s = 30

[channels."pa.mqtt"]
host = "{HOST}"
port = {ports.mqtt}
ack_timeout_s = 30
"""
    path = folder / "clarion.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- processes -----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (read from /proc)."""
    found = []
    for entry in glob.glob("/proc/[0-9]*/stat"):
        child = int(entry.split("/")[2])
        fields = _stat_fields(child)
        if fields is not None and int(fields[1]) == pid:
            found.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in kB from /proc/PID/status; zeros once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # the process has exited: it holds no memory
        return 0, 0
    rss = hwm = 0
    for line in lines:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Child:
    """One process the bench started, with its output in files."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    # Grandchildren seen while it ran (mosquitto), with their command lines to recognize them.
    descendants: dict[int, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def alive(self) -> bool:
        """True while it runs."""
        return self.process.poll() is None

    def note_descendants(self) -> None:
        """Remember the processes it started, so they are stopped even if it is killed."""
        for pid in children_of(self.pid):
            self.descendants.setdefault(pid, _cmdline(pid))

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM by PID, SIGKILL after the grace time; then any descendant left behind."""
        if self.alive():
            self.note_descendants()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid, cmdline in self.descendants.items():
            # Only the very process seen earlier: a reused PID has another command line.
            if cmdline and _cmdline(pid) == cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def tail(self, lines: int = 15) -> str:
        """The end of its stderr, for error messages."""
        try:
            text = self.stderr.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def start_child(name: str, argv: Sequence[str], folder: Path, env: dict[str, str]) -> Child:
    """Start a process in its own session with stdout and stderr in files of `folder`."""
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            list(argv), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, env=env,
            cwd=folder, start_new_session=True,
        )
    return Child(name, process, out, err)


def clarion(*args: str) -> list[str]:
    """The `clarion` command line, run by this interpreter."""
    return [sys.executable, "-m", "dispatcher.cli", *args]


async def wait_json_line(child: Child, key: str, timeout_s: float) -> dict[str, object]:
    """The first JSON object on the child's stdout that has `key`; fails if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")
        for line in child.stdout.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found = json.loads(line)
                    if isinstance(found, dict) and key in found:
                        return found
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not start within {timeout_s:.0f} s:\n{child.tail()}")


async def wait_http(url: str, timeout_s: float, child: Child | None = None) -> None:
    """Until `url` answers 200 (bounded); fails early if the child exits."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if child is not None and not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def run_command(argv: Sequence[str], folder: Path, env: dict[str, str], timeout_s: float) -> str:
    """Run a command to completion (bounded); its stdout, or an error with its stderr."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        list(argv), cwd=folder, env=env, capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )
    if done.returncode not in (0, 1):
        command = " ".join(argv[2:])
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


