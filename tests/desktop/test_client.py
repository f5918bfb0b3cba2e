"""`clarion desktop` under Xvfb against the real service and mosquitto: shows, acks, clears,
catches up after a restart and reconnects after the broker restarts.

The client runs as its own process on a display of its own; the test reads its windows with
`xwininfo`, presses its button with `xdotool`, and takes screenshots with `xwd | convert`
(saved in the test's tmp_path, and in $CLARION_SCREENSHOTS when set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from channels.sandbox.broker import Mosquitto
from dispatcher.settings import Settings
from tests.support import AUTH, Running, start_service

ROOT = Path(__file__).resolve().parents[2]
SCREEN = (1280, 800)
DEVICE = "desk-north-hall"  # the example campus's desktop in zone a
_WINDOW = re.compile(r'^\s*(0x[0-9a-f]+) "(.*)": \(.*\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)')


def tool(name: str) -> str:
    """The full path of an X tool (the skip conditions make sure it is there)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _missing() -> str | None:
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return "Tkinter is not installed (Debian: python3-tk)"
    for tool, package in (("Xvfb", "xvfb"), ("xwininfo", "x11-utils")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: {package})"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@dataclass(frozen=True, slots=True)
class Shown:
    """A top-level window on the display."""

    id: str
    title: str
    width: int
    height: int


@dataclass
class Display:
    """An Xvfb display of its own."""

    name: str

    def windows(self) -> list[Shown]:
        """The named top-level windows mapped now."""
        out = subprocess.run(  # noqa: S603
            [tool("xwininfo"), "-root", "-children", "-display", self.name],
            capture_output=True, text=True, check=True,
        ).stdout
        found = []
        for line in out.splitlines():
            m = _WINDOW.match(line)
            if m:
                found.append(Shown(m[1], m[2], int(m[3]), int(m[4])))
        return found

    def titled(self, part: str) -> list[Shown]:
        """Windows whose title has part."""
        return [w for w in self.windows() if part in w.title]

    def screenshot(self, path: Path) -> Path | None:
        """The whole screen as a PNG; None when xwd or ImageMagick is missing."""
        if shutil.which("xwd") is None or shutil.which("convert") is None:
            return None
        xwd = subprocess.run(  # noqa: S603
            [tool("xwd"), "-root", "-silent", "-display", self.name],
            capture_output=True, check=True,
        ).stdout
        subprocess.run([tool("convert"), "xwd:-", f"png:{path}"],  # noqa: S603
                       input=xwd, check=True)
        keep = os.environ.get("CLARION_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    def press_return(self, window: Shown) -> None:
        """Focus the window and press Return, as its person would."""
        subprocess.run(  # noqa: S603
            [tool("xdotool"), "windowfocus", "--sync", window.id, "key", "Return"],
            env={**os.environ, "DISPLAY": self.name}, check=True,
        )


@pytest.fixture
def display() -> Iterator[Display]:
    """Xvfb on a free display number it picks itself (-displayfd), stopped after the test."""
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(  # noqa: S603
        [tool("Xvfb"), "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
         "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as fh:
            number = fh.readline().strip()
        if not number:
            pytest.skip("Xvfb did not start")
        yield Display(f":{number}")
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(5)
        except subprocess.TimeoutExpired:
            xvfb.kill()


class Client:
    """One `clarion desktop` process on the test display."""

    def __init__(self, display: Display, port: int, log: Path) -> None:
        self.display = display
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it for the example campus's desktop in zone a."""
        env = {**os.environ, "DISPLAY": self.display.name}
        with self.log.open("ab") as fh:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "dispatcher.cli", "desktop", "--port", str(self.port),
                 "--zone", "a", "--device-id", DEVICE],
                env=env, cwd=ROOT, stdout=fh, stderr=fh,
            )

    def stop(self) -> int | None:
        """SIGTERM it (it says offline and closes) and wait."""
        if self.process is None:
            return None
        self.process.terminate()
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
        finally:
            self.process = None


async def until(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """Wait until check() gives something truthy; returns it."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = check()
            if found:
                return found
            await asyncio.sleep(0.1)


Setup = tuple[Running, Mosquitto, Display, Client]


@pytest_asyncio.fixture
async def desktop_setup(
    make_settings: Callable[..., Settings], mosquitto: Mosquitto, display: Display,
    tmp_path: Path,
) -> AsyncIterator[Setup]:
    """The service with `desktop.mqtt`, and a desktop client connected for zone a."""
    patch = {"port": mosquitto.port, "ack_timeout_s": 20.0, "reconnect_max_s": 0.5,
             "client_id": "clarion-desktop-gui"}
    run = await start_service(make_settings(channels={"desktop.mqtt": patch}))
    client = Client(display, mosquitto.port, tmp_path / "client.log")
    client.start()
    try:
        await until(lambda: display.titled("Clarion desktop alerts - connected"), 20)
        yield run, mosquitto, display, client
    finally:
        code = client.stop()
        await run.client.close()
        with contextlib.suppress(FileNotFoundError):
            sys.stderr.write(client.log.read_text(errors="replace")[-3000:])
        assert code in (0, None), f"the client exited with {code}"


async def post(run: Running, **body: Any) -> str:
    """POST an alert to the desktops of zone a; its id."""
    resp = await run.post_alert({"channels": ["desktop"], "zones": ["a"], **body})
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def state_of(run: Running, device_id: str) -> str | None:
    """The device's presence as `GET /v1/devices` reports it."""
    resp = await run.client.get("/v1/devices", params={"class": "desktop"}, headers=AUTH)
    doc = await resp.json()
    found = [d["state"] for d in doc["devices"] if d["id"] == device_id]
    return found[0] if found else None


async def until_async(read: Callable[[], Awaitable[Any]], wanted: Any) -> None:
    """Wait until await read() equals wanted."""
    async with asyncio.timeout(15):
        while await read() != wanted:
            await asyncio.sleep(0.1)


async def acks_of(run: Running, alert_id: str) -> set[str]:
    """The ack states the store holds for the alert's desktop deliveries."""
    rows = await run.service.db.fetchall(
        "SELECT detail FROM receipts WHERE alert_id = ? AND channel = 'desktop'", (alert_id,)
    )
    return {r["detail"] for r in rows}


async def wait_acks(run: Running, alert_id: str, *states: str) -> None:
    """Until the store holds these acks of the alert."""
    async with asyncio.timeout(15):
        while not set(states) <= await acks_of(run, alert_id):
            await asyncio.sleep(0.1)


class TestDesktopClient:
    """The pop-up seen by a person at a desk."""

    async def test_live_alert_full_screen_acked_then_all_clear(
        self, desktop_setup: Setup, tmp_path: Path
    ) -> None:
        """Full screen with the text; received, displayed and (after Return) acknowledged
        reach the store; an all clear replaces the next alert with its notice."""
        run, _, display, _ = desktop_setup
        alert_id = await post(
            run, kind="emergency", headline="Gas leak at North Hall",
            text="Gas leak at North Hall. Evacuate the building now and avoid the area.",
        )
        [window] = await until(lambda: display.titled("EMERGENCY ALERT: Gas leak at North Hall"))
        assert (window.width, window.height) == SCREEN
        assert window.title.endswith("- Clarion (connected)")
        shot = display.screenshot(tmp_path / "desktop-live.png")
        assert shot is None or shot.stat().st_size > 0
        await wait_acks(run, alert_id, "received", "displayed")
        if shutil.which("xdotool") is None:
            pytest.skip("xdotool is not installed (Debian: xdotool): cannot press the button")
        display.press_return(window)
        await wait_acks(run, alert_id, "acknowledged")
        await until(lambda: not display.titled("EMERGENCY ALERT"))
        doc = await (await run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
        assert doc["channels"]["desktop"]["delivered"] == doc["channels"]["desktop"]["total"] == 1

        second = await post(run, kind="emergency", headline="Police activity near North Hall",
                            text="Police activity near North Hall. Stay inside and lock doors.")
        await until(lambda: display.titled("EMERGENCY ALERT: Police activity"))
        await post(run, kind="all_clear", references=second,
                   text="All clear at North Hall. The police activity is over; resume normal "
                        "activities.")
        [notice] = await until(lambda: display.titled("ALL CLEAR"))
        assert notice.width < SCREEN[0]
        assert not display.titled("EMERGENCY ALERT")
        display.screenshot(tmp_path / "desktop-all-clear.png")

    async def test_drill_marked_survives_broker_restart_then_cancel(
        self, desktop_setup: Setup, tmp_path: Path
    ) -> None:
        """A drill opens the smaller marked window; the title says when the broker is gone and
        back; the drill stays shown once; a cancel clears it."""
        run, mosquitto, display, client = desktop_setup
        alert_id = await post(
            run, kind="emergency", mode="drill", headline="Fire drill at North Hall",
            text="Fire drill at North Hall. Leave the building by the nearest exit now.",
        )
        [window] = await until(lambda: display.titled("DRILL - THIS IS A TEST"))
        assert window.width < SCREEN[0] and window.height < SCREEN[1]
        display.screenshot(tmp_path / "desktop-drill.png")
        await wait_acks(run, alert_id, "received", "displayed")

        await mosquitto.stop()
        await until(lambda: display.titled("Clarion desktop alerts - not connected"))
        assert display.titled("DRILL - THIS IS A TEST: Fire drill at North Hall "
                              "- Clarion (not connected)")
        await mosquitto.start()
        await until(lambda: client.log.read_text().count('"desktop.connected"') == 2, 20)
        await until(lambda: display.titled("Clarion desktop alerts - connected"))
        # Back on the broker, the service re-publishes the drill: still shown, once, marked.
        await until(lambda: display.titled("DRILL - THIS IS A TEST: Fire drill at North Hall "
                                           "- Clarion (connected)"))
        assert len(display.titled("DRILL - THIS IS A TEST")) == 1
        resp = await run.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH, json={})
        assert resp.status in (200, 202), await resp.text()
        await until(lambda: not display.titled("DRILL - THIS IS A TEST"))

    async def test_catches_up_after_a_restart(self, desktop_setup: Setup) -> None:
        """An alert sent while the client was closed is shown when it starts again."""
        run, _, display, client = desktop_setup
        assert await state_of(run, DEVICE) == "online"
        assert client.stop() == 0
        # Closed cleanly it said offline itself (retained), as its Last Will would on a crash.
        await until_async(lambda: state_of(run, DEVICE), "offline")
        alert_id = await post(
            run, kind="emergency", headline="Shelter in place at North Hall",
            text="Chemical spill near North Hall. Shelter in place and close the windows.",
        )
        await asyncio.sleep(0.5)
        client.start()
        await until(lambda: display.titled("EMERGENCY ALERT: Shelter in place at North Hall"))
        await wait_acks(run, alert_id, "received", "displayed")
        await until_async(lambda: state_of(run, DEVICE), "online")
