"""The served service: a truncated export is held by its schedule, listed by the API, and
confirmed or discarded there by an admin."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from dispatcher.settings import Settings, config_dir
from tests.support import AUTH, TOKEN, Running, own_config, start_service

DISPATCHER_TOKEN = "dispatcher-token-0123456789"
DISPATCHER = {"Authorization": f"Bearer {DISPATCHER_TOKEN}"}


def truncated_export(path: Path) -> Path:
    path.write_text(
        "STUDENT_ID,FIRST,LAST,EMAIL\n"
        "T0001,Tess,One,tess.one@example.edu\n"
        "T0002,Tom,Two,tom.two@example.edu\n",
        encoding="utf-8",
    )
    return path


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """The example campus served, with a nightly student export that came out truncated."""
    raw = own_config(tmp_path)
    raw["auth"]["tokens"] = [{
        "name": "cad", "role": "dispatcher",
        "sha256": hashlib.sha256(DISPATCHER_TOKEN.encode()).hexdigest(),
    }]
    raw["directory"]["exports"] = {"banner": {
        "path": str(truncated_export(tmp_path / "students.csv")), "role": "student",
        "columns": {"id": "STUDENT_ID", "first_name": "FIRST", "last_name": "LAST",
                    "email": "EMAIL"},
        "every_s": 3600,
    }}
    # No channel that connects at start (the devices' MQTT): nothing is sent here.
    raw["channels"] = {k: v for k, v in raw["channels"].items() if k == "email.smtp"}
    raw["base_dir"] = config_dir()
    settings = Settings.model_validate(raw)
    served = await start_service(settings)
    try:
        yield served
    finally:
        await served.client.close()


async def held_import(running: Running) -> dict[str, object]:
    async with asyncio.timeout(30):
        while True:
            resp = await running.client.get("/v1/directory/imports?state=held", headers=AUTH)
            assert resp.status == 200
            items = (await resp.json())["items"]
            if items:
                return dict(items[0])
            await asyncio.sleep(0.05)


async def students(running: Running) -> int:
    count = await running.service.db.fetchval(
        "SELECT COUNT(*) FROM people WHERE role = 'student'"
    )
    return int(count)


class TestHeldExport:
    """The schedule holds the truncated export; the directory keeps its students."""

    async def test_listed_then_discarded(self, running: Running) -> None:
        before = await students(running)
        held = await held_import(running)
        assert (held["source"], held["detail"], held["state"]) == (
            "export:banner", "students.csv", "held"
        )
        assert float(str(held["share"])) > 0.9
        assert await students(running) == before
        url = f"/v1/directory/imports/{held['id']}"
        refused = await running.client.post(f"{url}/discard", headers=DISPATCHER)
        assert refused.status == 403
        resp = await running.client.post(f"{url}/discard", headers=AUTH)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["state"] == "discarded" and body["decided_by"]
        audit = await running.service.db.fetchall(
            "SELECT actor FROM audit WHERE action = 'directory.import_discarded'"
        )
        assert [r["actor"] for r in audit] == [body["decided_by"]]
        again = await running.client.post(f"{url}/confirm", headers=AUTH)
        assert again.status == 409
        assert await students(running) == before

    async def test_confirmed_by_an_admin(self, running: Running) -> None:
        held = await held_import(running)
        resp = await running.client.post(
            f"/v1/directory/imports/{held['id']}/confirm", headers=AUTH
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["state"] == "confirmed"
        assert body["report"]["added"] == 2
        assert await students(running) == 2

    async def test_unknown_ids_and_bad_queries(self, running: Running) -> None:
        for path in ("/v1/directory/imports/999999", "/v1/directory/imports/abc"):
            assert (await running.client.get(path, headers=AUTH)).status == 404
        bad = await running.client.get("/v1/directory/imports?state=maybe", headers=AUTH)
        assert bad.status == 422
        listed = await running.client.get("/v1/directory/imports", headers=DISPATCHER)
        assert listed.status == 403
        assert TOKEN not in await listed.text()
