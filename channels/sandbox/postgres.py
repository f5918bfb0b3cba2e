"""A throwaway PostgreSQL server for the tests and the benchmark: initdb and pg_ctl on a free
loopback port, in a temporary folder, stopped and removed at the end.

The server binaries come from the Debian package (`make tools` installs it). initdb refuses
root, so as root the server runs as the `postgres` user in a folder it owns, with its unix
socket beside the data.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from channels.sandbox.broker import free_port

HOST = "127.0.0.1"


class PostgresUnavailable(RuntimeError):
    """The server could not be started; the message says why (not installed, initdb failed)."""


def server_binary(name: str) -> str | None:
    """The newest installed PostgreSQL server tool `name`, or None."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    return found[-1] if found else shutil.which(name)


def _version_key(path: str) -> tuple[int, str]:
    version = Path(path).parent.parent.name
    return (int(version) if version.isdigit() else 0, path)


@dataclass
class ThrowawayPostgres:
    """A running server: its folder, port, and the command prefix that runs its tools."""

    folder: Path
    port: int
    prefix: tuple[str, ...]
    pg_ctl: str

    @property
    def url(self) -> str:
        """The server's URL without a database name."""
        return f"postgresql://postgres@{HOST}:{self.port}"

    @classmethod
    def start(cls, *settings: str, prefix: str = "clarion-pg-") -> ThrowawayPostgres:
        """initdb and start with extra server `settings` (`-c name=value` each); raises
        PostgresUnavailable with the reason when it cannot."""
        initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found in "
                "/usr/lib/postgresql/*/bin or on PATH: run `make tools` (installs the Debian "
                "package `postgresql`)"
            )
        # Not under a test's tmp folder: the postgres user must be able to reach it.
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        run_as: tuple[str, ...] = ()
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
            os.chmod(folder, 0o700)
            run_as = ("runuser", "-u", "postgres", "--")
        server = cls(folder, free_port(HOST), run_as, pg_ctl)
        data = str(folder / "data")
        options = " ".join(
            [f"-p {server.port} -k {folder} -c listen_addresses={HOST}",
             *(f"-c {s}" for s in settings)]
        )
        for step in (
            [initdb, "-D", data, "-A", "trust", "-U", "postgres", "--encoding=UTF8",
             "--no-locale"],
            [pg_ctl, "-D", data, "-l", str(folder / "log"), "-w", "-o", options, "start"],
        ):
            done = subprocess.run(  # noqa: S603 - the server's own tools
                [*run_as, *step], capture_output=True, text=True, check=False, timeout=120
            )
            if done.returncode != 0:
                log = folder / "log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                server.stop()
                raise PostgresUnavailable(
                    f"{Path(step[0]).name} failed: {done.stderr.strip()}\n{tail}"
                )
        return server

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
            check=False, capture_output=True, timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
