"""The same directory SQL on PostgreSQL: a throwaway cluster, when the server is installed."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.database import Database, open_database
from segments.settings import DirectorySettings
from segments.synthetic import generate_people
from tests.segments.helpers import LATE_MS, Campus, make_campus_files, person, write_rows


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


INITDB, PG_CTL = _bin("initdb"), _bin("pg_ctl")
pytestmark = pytest.mark.skipif(INITDB is None or PG_CTL is None, reason="PostgreSQL not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A PostgreSQL server on a free port for this module; its base URL."""
    assert INITDB is not None and PG_CTL is not None
    # Not under pytest's tmp folder: the postgres user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="clarion-pg-"))
    data = folder / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the postgres user.
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str, check: bool = True) -> None:
        subprocess.run([*prefix, *args], check=check, capture_output=True)  # noqa: S603 - server tools

    run(INITDB, "-D", str(data), "-A", "trust", "-U", "postgres", "--encoding=UTF8", "--no-locale")
    run(PG_CTL, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        run(PG_CTL, "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture
async def pg(cluster: str, tmp_path: Path) -> AsyncIterator[Campus]:
    """A fresh database in the cluster with the campus map beside it."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{cluster}/postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    make_campus_files(tmp_path)
    db: Database = await open_database(f"{cluster}/{name}")
    settings = DirectorySettings(people="people.csv", devices="devices.csv",
                                 buildings="buildings.csv",
                                 segments={"north": "building:north-hall and role:student"})
    try:
        yield Campus(tmp_path, db, settings)
    finally:
        await db.close()


async def test_import_upsert_and_remove(pg: Campus) -> None:
    rows = [person(f"P{i}", groups="band" if i % 2 else "") for i in range(1, 8)]
    report = await pg.people([*rows, person("BAD", phone="12")])
    assert (report.added, len(report.rejected)) == (7, 1)
    again = await pg.people([*rows[:5], person("P1", groups="greek")][1:], remove_missing=True)
    assert (again.changed, again.unchanged, again.removed) == (1, 4, 2)
    assert await pg.recipients("group:band") == {"P3", "P5"}
    devices = await pg.devices()
    assert devices.added == 12


async def test_same_answers_as_sqlite(pg: Campus, campus: Campus) -> None:
    campus = campus.with_settings(segments=pg.settings.segments)
    rows = list(generate_people(1500, seed=11))
    for target in (pg, campus):
        path = write_rows(target.base / "people-gen.csv", rows)
        report = await target.importer.import_people(path)
        assert report.added == 1500
        await target.devices()
    expressions = ["all", "north or group:band", "zone:b and not zone:b-labs",
                   "not role:student and class_year:2028", "class:siren or department:history"]
    for expression in expressions:
        for kind in (AlertKind.EMERGENCY, AlertKind.ADVISORY):
            want = await campus.resolver.count(expression, [], kind, list(ChannelKind),
                                               now_ms=LATE_MS)
            got = await pg.resolver.count(expression, [], kind, list(ChannelKind), now_ms=LATE_MS)
            assert got == want, expression
    planned = await pg.plan("all", ["campus"], exclude_zones=["c"])
    expected = await campus.plan("all", ["campus"], exclude_zones=["c"])
    assert Counter(planned) == Counter(expected)
    chunks = [c async for c in pg.resolver.plan("all", [], AlertKind.EMERGENCY,
                                                 list(ChannelKind), chunk=64)]
    assert max(len(c) for c in chunks) <= 64
    flat = [(p.recipient, p.channel) for c in chunks for p in c]
    assert len(flat) == len(set(flat))
