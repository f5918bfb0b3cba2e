"""A throwaway PostgreSQL cluster for tests: initdb and pg_ctl on a free port, stopped at the end.

The server binaries come from the Debian package (`make tools` installs it). Tests run as root
in CI, and initdb refuses root, so the cluster then runs as the `postgres` user in a temporary
folder it owns, with its unix socket beside the data.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from channels.sandbox.broker import free_port


def server_binary(name: str) -> str | None:
    """The newest installed PostgreSQL server tool `name`, or None."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    return found[-1] if found else shutil.which(name)


def _version_key(path: str) -> tuple[int, str]:
    version = Path(path).parent.parent.name
    return (int(version) if version.isdigit() else 0, path)


@dataclass
class PostgresCluster:
    """A running server: its folder, port, and the command prefix that runs its tools."""

    folder: Path
    port: int
    prefix: tuple[str, ...]
    pg_ctl: str

    @property
    def url(self) -> str:
        """The server's URL without a database name."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    async def create_database(self, name: str | None = None, *, template: str = "") -> str:
        """A new database, empty or a copy of `template`; returns its URL."""
        import asyncpg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        admin = await asyncpg.connect(f"{self.url}/postgres")
        try:
            for attempt in range(50):
                try:
                    await admin.execute(f'CREATE DATABASE "{name}"{copy}')
                    break
                except asyncpg.ObjectInUseError:
                    # The template's last connection is still closing on the server side.
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await admin.close()
        return f"{self.url}/{name}"

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        subprocess.run(  # noqa: S603 - the server's own tool
            [*self.prefix, self.pg_ctl, "-D", str(self.folder / "data"), "-m", "immediate",
             "stop"],
            check=False, capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster() -> PostgresCluster:
    """initdb and start a server on a free loopback port; fails clearly when not installed."""
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin"
            " or on PATH: run `make tools` (installs the Debian package `postgresql`)",
            pytrace=False,
        )
    # Not under pytest's tmp folder: the postgres user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="clarion-pg-"))
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o700)
        prefix = ("runuser", "-u", "postgres", "--")
    port = free_port()
    cluster = PostgresCluster(folder, port, prefix, pg_ctl)

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            log = folder / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            cluster.stop()
            pytest.fail(f"{Path(args[0]).name} failed: {done.stderr.strip()}\n{tail}",
                        pytrace=False)

    run(initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "--encoding=UTF8",
        "--no-locale")
    # fsync off: a test cluster trades durability across OS crashes for speed.
    run(pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start")
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole test session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest_asyncio.fixture
async def pg_url(pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    """A fresh database for one test; its URL."""
    yield await pg_cluster.create_database()
