"""The sandbox's devices plugin: its own mosquitto (or a given one), devices from the CSV."""

from __future__ import annotations

import argparse
import asyncio
import csv
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from channels.devices import (
    Availability,
    DeviceBus,
    DeviceSettings,
    SignageChannel,
    SirenChannel,
)
from channels.sandbox import devices as plugin
from channels.sandbox.broker import Mosquitto, free_port
from channels.sandbox.devices import Behaviour, assign_behaviours, load_devices
from channels.sandbox.server import Sandbox
from dispatcher.domain import Batch, Delivery, Outcome
from tests.channels.conftest import RecordingSink
from tests.channels.test_devices import alert
from tests.hermetic import MQTT_PORT


def devices_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A devices file with extra columns in another order, as the directory exports it."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["building", "zone", "id", "lat", "lon", "class"])
        for device_id, device_class, zone in rows:
            writer.writerow(["hall", zone, device_id, "40.0", "-75.0", device_class])
    return path


def sandbox_args(**overrides: object) -> argparse.Namespace:
    """`clarion sandbox` arguments as the plugin's parser defines them."""
    parser = argparse.ArgumentParser()
    plugin.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


async def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until check() holds."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


class TestDevicesFile:
    """The devices CSV is read by column name."""

    def test_columns_by_name_and_unknown_classes_skipped(self, tmp_path: Path) -> None:
        """Column order does not matter; rows of other classes are left out."""
        path = devices_csv(tmp_path / "d.csv", [("s1", "siren", "a"), ("k1", "kiosk", "a"),
                                                ("p1", "PA", "b")])
        assert [(d.id, d.device_class, d.zone) for d in load_devices(path)] == [
            ("s1", "siren", "a"), ("p1", "pa", "b")
        ]

    def test_missing_column_is_named(self, tmp_path: Path) -> None:
        """A file without a zone column is refused with the column's name."""
        path = tmp_path / "d.csv"
        path.write_text("id,class\ns1,siren\n", encoding="utf-8")
        with pytest.raises(ValueError, match="zone"):
            load_devices(path)

    def test_the_example_campus_file_loads(self) -> None:
        """The embedded example campus has devices of every class."""
        from dispatcher.settings import config_dir

        specs = load_devices(config_dir() / "campus" / "devices.csv")
        assert {s.device_class for s in specs} == {"siren", "signage", "pa", "desktop"}

    def test_shares_are_exact_and_stable(self) -> None:
        """Silent and offline shares pick the same devices every time."""
        specs = [plugin.DeviceSpec(f"d{i}", "siren", "a") for i in range(20)]
        first = assign_behaviours(specs, silent_share=0.1, offline_share=0.25)
        assert first == assign_behaviours(specs, silent_share=0.1, offline_share=0.25)
        counts = {b: list(first.values()).count(b) for b in Behaviour}
        assert counts == {Behaviour.OFFLINE: 5, Behaviour.SILENT: 2, Behaviour.ACKS: 13}


class TestPlugin:
    """`clarion sandbox` with the devices plugin attached."""

    async def test_own_broker_devices_ack_and_stats(
        self, tmp_path: Path, receipts: RecordingSink
    ) -> None:
        """The plugin starts mosquitto on --mqtt-port; devices show in /stats and /devices."""
        path = devices_csv(tmp_path / "d.csv", [
            ("siren-1", "siren", "a"), ("siren-2", "siren", "b"), ("sign-1", "signage", "a"),
            ("sign-2", "signage", "b"),
        ])
        port = free_port()
        box = Sandbox(port=0, smtp_port=0)
        fleet = await plugin.attach(box, sandbox_args(devices=path, mqtt_port=port,
                                                      offline_share=0.25))
        assert fleet is not None
        await box.start()
        try:
            assert box.endpoints["mqtt"] == f"127.0.0.1:{port}"
            settings = DeviceSettings(port=port, client_id="sandbox-test", ack_timeout_s=0.5)
            bus = DeviceBus(settings)
            sirens, signs = SirenChannel(settings, bus=bus), SignageChannel(settings, bus=bus)
            await sirens.start(receipts)
            await signs.start(receipts)
            context = alert(zones=())
            pairs = [("siren-1", "a"), ("siren-2", "b")]
            await sirens.send(Batch(context, tuple(Delivery(i, d, z)
                                                   for i, (d, z) in enumerate(pairs))))
            pairs = [("sign-1", "a"), ("sign-2", "b")]
            await signs.send(Batch(context, tuple(Delivery(10 + i, d, z)
                                                  for i, (d, z) in enumerate(pairs))))
            # Three devices ack; the offline one is reported not reached.
            await receipts.wait_for(lambda s: len(s.where(outcome=Outcome.FAILED)) == 1)
            await receipts.wait_for(
                lambda s: len({r.recipient for r in s.where(outcome=Outcome.DELIVERED)}) == 3
            )
            offline = [d.id for d in fleet.devices.values() if d.behaviour is Behaviour.OFFLINE]
            assert [r.recipient for r in receipts.where(outcome=Outcome.FAILED)] == offline
            await eventually(lambda: sirens.bus.offline() != [])
            assert {p.device_id for p in sirens.bus.offline()} == set(offline)
            assert all(p.state is Availability.OFFLINE for p in sirens.bus.offline())

            async with aiohttp.ClientSession() as http:
                async with http.get(f"{box.url}/stats") as resp:
                    stats = await resp.json()
                async with http.get(f"{box.url}/devices") as resp:
                    listed = (await resp.json())["devices"]
            assert sum(stats[k]["unique"] for k in ("siren", "signage")) == 3
            assert {d["id"] for d in listed} == {"siren-1", "siren-2", "sign-1", "sign-2"}
            await sirens.close()
            await signs.close()
        finally:
            await box.stop()

    async def test_existing_broker_by_url(self, tmp_path: Path, mosquitto: Mosquitto) -> None:
        """--mqtt-url joins a running broker instead of starting one."""
        path = devices_csv(tmp_path / "d.csv", [("pa-1", "pa", "a")])
        box = Sandbox(port=0, smtp_port=0)
        await plugin.attach(box, sandbox_args(devices=path, mqtt_url=mosquitto.url))
        try:
            assert box.endpoints["mqtt"] == f"127.0.0.1:{mosquitto.port}"
        finally:
            await box.stop()
        assert mosquitto.running

    def test_broker_urls(self) -> None:
        """mqtt://host:port, host:port and a bare host (MQTT's own port) are understood."""
        assert plugin.parse_broker_url("mqtt://10.0.0.5:1999") == ("10.0.0.5", 1999)
        assert plugin.parse_broker_url("broker.local:8883") == ("broker.local", 8883)
        assert plugin.parse_broker_url("broker.local") == ("broker.local", MQTT_PORT)



class TestFailedStart:
    """`clarion sandbox` that cannot start leaves nothing running behind it."""

    def test_port_in_use_stops_the_broker_it_started(self) -> None:
        """The HTTP port is taken after the devices' mosquitto started: the sandbox exits
        with the error, and its broker is gone with it."""
        mqtt_port = free_port()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            http_port = taken.getsockname()[1]
            done = subprocess.run(  # noqa: S603 - this interpreter running the sandbox
                [sys.executable, "-m", "dispatcher.cli", "sandbox", "--port", str(http_port),
                 "--smtp-port", str(free_port()), "--mqtt-port", str(mqtt_port)],
                capture_output=True, text=True, timeout=60, check=False,
            )
        assert done.returncode != 0
        assert "address already in use" in done.stderr
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", mqtt_port)) != 0, "mosquitto outlived it"
