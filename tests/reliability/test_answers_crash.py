"""Answers arriving while `clarion serve` is SIGKILLed: every answer it acknowledged is in the
store after the restart, and the ones it never acknowledged land when sent again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from dispatcher.answers.responses import TokenSigner
from tests.reliability.nodes import Node, Process, SandboxProcess, write_config

PEOPLE = 400
ALERT = {"kind": "emergency", "mode": "drill", "audience": "id:P000001", "channels": ["email"],
         "text": "Drill: shelter in place now. Stay away from windows.",
         "ask": {"question": "Are you safe?", "escalate_after_s": 0}}


@pytest_asyncio.fixture
async def processes() -> AsyncIterator[list[Process]]:
    """Every process the test starts; all stopped at the end."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


class TestAnswersThroughACrash:
    """SIGKILL of the only node while answer-page taps arrive."""

    async def test_no_acknowledged_answer_lost(
        self, tmp_path: Path, processes: list[Process]
    ) -> None:
        """200s survive the kill; the rest are recorded once when sent again."""
        sandbox = SandboxProcess(tmp_path)
        node = Node("node", tmp_path / "clarion.toml")
        db_path = tmp_path / "clarion.db"
        write_config(tmp_path, sandbox, store_url=f"sqlite:///{db_path}")
        processes.extend([sandbox, node])
        sandbox.start()
        node.start()
        await sandbox.ready()
        await node.ready()
        accepted = await node.post_alert(ALERT)
        alert_id = accepted["id"]
        await node.wait_done(alert_id)
        async with aiohttp.ClientSession() as http:
            # The node makes its link key on first use: one real link page asks for it.
            await http.get(f"{node.url}/public/answer/{alert_id}/x.y")
        with sqlite3.connect(db_path) as conn:
            key = conn.execute("SELECT secret FROM answer_keys WHERE id = 1").fetchone()[0]
            expires = conn.execute("SELECT expires_at FROM alerts WHERE id = ?",
                                   (alert_id,)).fetchone()[0]
        signer = TokenSigner(key.encode())
        links = {
            f"C{i:05d}": f"{node.url}/public/answer/{alert_id}/" + signer.sign(
                alert_id=alert_id, person_id=f"C{i:05d}", expires_ms=expires, nonce=str(i))
            for i in range(PEOPLE)
        }
        acknowledged: set[str] = set()
        cut_off: list[str] = []

        async def tap(http: aiohttp.ClientSession, person: str) -> None:
            try:
                async with http.post(links[person], data={"option": "safe"}) as r:
                    if r.status == 200:
                        acknowledged.add(person)
            except (aiohttp.ClientError, OSError):
                cut_off.append(person)  # the node died under it: not acknowledged

        async def kill_midway() -> None:
            while len(acknowledged) < PEOPLE // 4:
                await asyncio.sleep(0.005)
            node.kill()

        async with aiohttp.ClientSession() as http:
            limit = asyncio.Semaphore(16)

            async def limited(person: str) -> None:
                async with limit:
                    await tap(http, person)

            await asyncio.gather(kill_midway(), *(limited(p) for p in links))
        assert PEOPLE // 4 <= len(acknowledged) < PEOPLE
        assert cut_off  # the kill did land while taps were arriving
        node.start()
        await node.ready()
        with sqlite3.connect(db_path) as conn:
            stored = {r[0] for r in conn.execute(
                "SELECT person_id FROM answers WHERE alert_id = ?", (alert_id,))}
        assert acknowledged <= stored
        async with aiohttp.ClientSession() as http:
            for person in sorted(set(links) - stored):
                async with http.post(links[person], data={"option": "safe"}) as r:
                    assert r.status == 200
        with sqlite3.connect(db_path) as conn:
            counted = conn.execute("SELECT COUNT(*), COUNT(DISTINCT person_id) FROM answers"
                                   " WHERE alert_id = ?", (alert_id,)).fetchone()
        assert tuple(counted) == (PEOPLE, PEOPLE)
