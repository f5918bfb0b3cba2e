"""Crash safety with real processes: `clarion serve` killed mid-fan-out, then restarted.

The sandbox runs as its own process and counts what it received per channel: `unique` must
reach the number of deliveries to make (nothing lost), and `received - unique` (duplicates)
must stay within the batches that were in flight when the node died.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.pg import PostgresCluster
from tests.reliability.conftest import Report
from tests.reliability.nodes import (
    IN_FLIGHT,
    Node,
    Process,
    SandboxProcess,
    write_config,
)

ALERT = {
    "kind": "emergency",
    "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
}
# A fifth of the example campus: the default suite's fan-outs stay short.
EMPLOYEES = "role:staff or role:faculty"



@pytest_asyncio.fixture
async def processes() -> AsyncIterator[list[Process]]:
    """Every process a test starts; all stopped at the end, whatever happened."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


async def start(processes: list[Process], *items: Process) -> None:
    """Start processes and wait until each answers."""
    for item in items:
        if item not in processes:
            processes.append(item)
        item.start()
    for item in items:
        await item.ready()  # type: ignore[attr-defined]


async def kill_when_sent(
    node: Node, sandbox: SandboxProcess, expected: dict[str, int], share: float
) -> dict[str, int]:
    """SIGKILL the node once the sandbox has `share` of the expected messages; what it had."""
    total = sum(expected.values())
    deadline = time.monotonic() + 60
    while True:
        stats = await sandbox.stats() if share > 0 else {}
        received = sum(stats.get(kind, {}).get("received", 0) for kind in expected)
        if received >= share * total:
            node.kill()
            return {kind: stats.get(kind, {}).get("received", 0) for kind in expected}
        if received >= total or time.monotonic() > deadline:
            pytest.fail(f"the fan-out ended before the kill point ({received}/{total})")
        await asyncio.sleep(0.005)


async def check_nothing_lost(
    sandbox: SandboxProcess, doc: dict[str, Any], channels: tuple[str, ...]
) -> dict[str, int]:
    """Every delivery accepted, each received at least once; the duplicates per channel."""
    assert doc["state"] == "done", doc
    stats = await sandbox.stats()
    duplicates = {}
    for kind in channels:
        counts = doc["channels"][kind]
        assert counts["total"] > 0, kind
        assert counts["failed"] == counts["queued"] == counts["sending"] == 0, (kind, counts)
        assert counts["accepted"] + counts["delivered"] == counts["total"], (kind, counts)
        assert stats[kind]["unique"] == counts["total"], (kind, stats[kind], counts)
        duplicates[kind] = stats[kind]["received"] - stats[kind]["unique"]
    return duplicates


async def crash_and_recover(
    folder: Path,
    processes: list[Process],
    *,
    share: float,
    channels: tuple[str, ...],
    report: Report,
    audience: str = "all",
) -> dict[str, int]:
    """One alert, a SIGKILL at `share` of the fan-out, a restart; the duplicates measured."""
    sandbox = SandboxProcess(folder)
    node = Node("node", folder / "clarion.toml")
    write_config(
        folder, sandbox, store_url=f"sqlite:///{folder / 'clarion.db'}", channels=channels,
        callback_url=f"{node.url}/v1/callbacks/twilio",
    )
    await start(processes, sandbox, node)
    accepted = await node.post_alert({**ALERT, "channels": list(channels), "audience": audience})
    expected = {k: accepted["audience"]["by_channel"][k] for k in channels}
    at_kill = await kill_when_sent(node, sandbox, expected, share)
    await start(processes, node)
    doc = await node.wait_done(accepted["id"])
    duplicates = await check_nothing_lost(sandbox, doc, channels)
    report("kill_point", share)
    report("received_at_kill", at_kill)
    report("duplicates", duplicates)
    return duplicates


class TestKillNine:
    """SIGKILL of the only node (SQLite), then a restart: nothing lost, duplicates bounded."""

    async def test_killed_midway_resends_only_what_was_in_flight(
        self, tmp_path: Path, processes: list[Process], report: Report
    ) -> None:
        """Killed when half the e-mail and SMS were out, the restarted node finishes the rest."""
        duplicates = await crash_and_recover(
            tmp_path, processes, share=0.5, channels=("email", "sms"), report=report,
            audience=EMPLOYEES,
        )
        assert all(n <= IN_FLIGHT for n in duplicates.values()), duplicates

    @pytest.mark.heavy
    @pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 0.9], ids=["after_202", "early", "midway",
                                                                  "near_end"])
    async def test_every_kill_point_every_person_channel(
        self, tmp_path: Path, processes: list[Process], report: Report, share: float
    ) -> None:
        """Right after the 202, early, midway and near the end, on e-mail, SMS and push."""
        duplicates = await crash_and_recover(
            tmp_path, processes, share=share, channels=("email", "sms", "push"), report=report
        )
        assert all(n <= IN_FLIGHT for n in duplicates.values()), duplicates


    @pytest.mark.heavy
    async def test_killed_twice(
        self, tmp_path: Path, processes: list[Process], report: Report
    ) -> None:
        """Killed at a third and again at two thirds: each restart resends only its in-flight."""
        channels = ("email", "sms")
        sandbox = SandboxProcess(tmp_path)
        node = Node("node", tmp_path / "clarion.toml")
        write_config(tmp_path, sandbox, store_url=f"sqlite:///{tmp_path / 'clarion.db'}",
                     channels=channels, callback_url=f"{node.url}/v1/callbacks/twilio")
        await start(processes, sandbox, node)
        accepted = await node.post_alert({**ALERT, "channels": list(channels)})
        expected = {k: accepted["audience"]["by_channel"][k] for k in channels}
        for share in (1 / 3, 2 / 3):
            await kill_when_sent(node, sandbox, expected, share)
            await start(processes, node)
        doc = await node.wait_done(accepted["id"])
        duplicates = await check_nothing_lost(sandbox, doc, channels)
        report("duplicates", duplicates)
        assert all(n <= 2 * IN_FLIGHT for n in duplicates.values()), duplicates


class TestNothingStaysAccepted:
    """Status callbacks that came while the node was dead are made good by asking Twilio."""

    async def test_kill_restart_and_reconcile_leave_nothing_accepted(
        self, tmp_path: Path, processes: list[Process], report: Report
    ) -> None:
        """SIGKILL mid-fan-out: callbacks posted meanwhile are lost, so some SMS are still
        accepted when the restarted node finishes; its sweep asks each Message resource, and
        then every SMS is delivered or failed, none accepted."""
        sandbox = SandboxProcess(tmp_path)
        node = Node("node", tmp_path / "clarion.toml")
        write_config(
            tmp_path, sandbox, store_url=f"sqlite:///{tmp_path / 'clarion.db'}",
            channels=("sms",), callback_url=f"{node.url}/v1/callbacks/twilio", lease_s=4,
            reconcile_after_s=1,
        )
        await start(processes, sandbox, node)
        accepted = await node.post_alert({**ALERT, "channels": ["sms"], "audience": EMPLOYEES})
        expected = {"sms": accepted["audience"]["by_channel"]["sms"]}
        await kill_when_sent(node, sandbox, expected, 0.5)
        await asyncio.sleep(0.5)  # callbacks due meanwhile fail: nobody listens
        await start(processes, node)
        doc = await node.wait_done(accepted["id"])
        report("accepted_when_done", doc["channels"]["sms"]["accepted"])
        async with asyncio.timeout(60):
            while doc["channels"]["sms"]["accepted"]:
                await asyncio.sleep(0.2)
                doc = await node.status(accepted["id"])
        sms = doc["channels"]["sms"]
        assert sms["delivered"] + sms["failed"] == sms["total"] == expected["sms"]
        assert "delivery.reconciled" in node.tail(400)


class TestGracefulStop:
    """SIGTERM drains what is in flight, hands back the rest and exits within the grace time."""

    @pytest.mark.heavy
    async def test_sigterm_mid_alert_loses_and_repeats_nothing(
        self, tmp_path: Path, processes: list[Process], report: Report
    ) -> None:
        """Stopped mid-fan-out, the node exits in time; its successor sends the rest, once."""
        grace = 5.0
        sandbox = SandboxProcess(tmp_path)
        node = Node("node", tmp_path / "clarion.toml")
        write_config(
            tmp_path, sandbox, store_url=f"sqlite:///{tmp_path / 'clarion.db'}", grace_s=grace,
            channels=("email",), email_rate=1000,
        )
        await start(processes, sandbox, node)
        accepted = await node.post_alert({**ALERT, "channels": ["email"]})
        expected = accepted["audience"]["by_channel"]["email"]
        while (await sandbox.stats()).get("email", {}).get("received", 0) < expected / 3:
            await asyncio.sleep(0.01)
        node.terminate()
        stopped = time.monotonic()
        assert await node.wait(grace + 10) == 0, node.tail()
        report("sigterm_exit_s", round(time.monotonic() - stopped, 2))
        assert time.monotonic() - stopped < grace + 5, "the node outlived its grace time"
        assert "engine.drain_cut_short" not in node.tail(200)
        await start(processes, node)
        doc = await node.wait_done(accepted["id"])
        duplicates = await check_nothing_lost(sandbox, doc, ("email",))
        report("duplicates", duplicates)
        assert duplicates == {"email": 0}


class TestTwoNodesOnPostgres:
    """Two nodes share one PostgreSQL store; one is killed, the other finishes its work."""

    async def test_survivor_takes_over_after_the_lease(
        self, tmp_path: Path, processes: list[Process], pg_cluster: PostgresCluster,
        report: Report,
    ) -> None:
        """A's claimed batches wait out their lease, then B sends them; callbacks land on B."""
        url = await pg_cluster.create_database()
        sandbox = SandboxProcess(tmp_path)
        first = Node("a", tmp_path / "clarion.toml")
        second = Node("b", tmp_path / "clarion.toml")
        channels = ("email", "sms")
        # Every status callback goes to B, wherever the message was sent from.
        write_config(
            tmp_path, sandbox, store_url=url, lease_s=2, channels=channels,
            callback_url=f"{second.url}/v1/callbacks/twilio",
        )
        await start(processes, sandbox, first)
        await start(processes, second)
        accepted = await first.post_alert(
            {**ALERT, "channels": list(channels), "audience": EMPLOYEES}
        )
        expected = {k: accepted["audience"]["by_channel"][k] for k in channels}
        at_kill = await kill_when_sent(first, sandbox, expected, 0.4)
        doc = await second.wait_done(accepted["id"])
        duplicates = await check_nothing_lost(sandbox, doc, channels)
        report("received_at_kill", at_kill)
        report("duplicates", duplicates)
        assert all(n <= IN_FLIGHT for n in duplicates.values()), duplicates
        # Both nodes sent: the work was shared before the kill.
        assert "alert.done" in second.tail(400)
        # Receipts from callbacks landed on B for messages A sent: every SMS ends delivered
        # except those whose callbacks A's death cut off before they were posted.
        async with asyncio.timeout(20):
            while True:
                sms = (await second.status(accepted["id"]))["channels"]["sms"]
                if sms["delivered"] >= sms["total"] - IN_FLIGHT:
                    break
                await asyncio.sleep(0.1)

    @pytest.mark.heavy
    @pytest.mark.parametrize("share", [0.1, 0.5, 0.9], ids=["early", "midway", "near_end"])
    async def test_whole_campus_every_kill_point(
        self, tmp_path: Path, processes: list[Process], pg_cluster: PostgresCluster,
        report: Report, share: float,
    ) -> None:
        """The whole campus on e-mail, SMS and push; A killed early, midway or near the end."""
        url = await pg_cluster.create_database()
        sandbox = SandboxProcess(tmp_path)
        first = Node("a", tmp_path / "clarion.toml")
        second = Node("b", tmp_path / "clarion.toml")
        channels = ("email", "sms", "push")
        write_config(tmp_path, sandbox, store_url=url, lease_s=2, channels=channels,
                     callback_url=f"{second.url}/v1/callbacks/twilio")
        await start(processes, sandbox, first)
        await start(processes, second)
        accepted = await first.post_alert({**ALERT, "channels": list(channels)})
        expected = {k: accepted["audience"]["by_channel"][k] for k in channels}
        at_kill = await kill_when_sent(first, sandbox, expected, share)
        doc = await second.wait_done(accepted["id"], timeout=120)
        duplicates = await check_nothing_lost(sandbox, doc, channels)
        report("received_at_kill", at_kill)
        report("duplicates", duplicates)
        assert all(n <= IN_FLIGHT for n in duplicates.values()), duplicates

    @pytest.mark.heavy
    async def test_cancel_on_one_node_stops_the_other(
        self, tmp_path: Path, processes: list[Process], pg_cluster: PostgresCluster
    ) -> None:
        """Cancelled through B while A sends: nothing suppressed is ever sent by either."""
        url = await pg_cluster.create_database()
        sandbox = SandboxProcess(tmp_path)
        first = Node("a", tmp_path / "clarion.toml")
        second = Node("b", tmp_path / "clarion.toml")
        write_config(tmp_path, sandbox, store_url=url, lease_s=2, channels=("email",),
                     email_rate=500)
        await start(processes, sandbox, first)
        await start(processes, second)
        accepted = await first.post_alert({**ALERT, "channels": ["email"]})
        expected = accepted["audience"]["by_channel"]["email"]
        while (await sandbox.stats()).get("email", {}).get("received", 0) < expected / 4:
            await asyncio.sleep(0.01)
        assert (await second.cancel(accepted["id"]))["state"] == "cancelled"
        await asyncio.sleep(1.0)
        doc = await first.status(accepted["id"])
        settled_at = doc["channels"]["email"]
        await asyncio.sleep(1.0)
        doc = await first.status(accepted["id"])
        email = doc["channels"]["email"]
        stats = (await sandbox.stats())["email"]
        assert doc["state"] == "cancelled"
        assert email == settled_at, "deliveries moved after the cancel settled"
        assert email["queued"] == email["sending"] == 0
        assert email["suppressed"] > 0
        # What the sandbox got is exactly what was sent before the cancel took hold.
        assert stats["unique"] == email["accepted"] + email["delivered"], (stats, email)
