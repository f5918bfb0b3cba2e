"""A real mosquitto broker on a loopback port, for the sandbox, `make run` and the tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger("clarion.sandbox.broker")

# Where Debian's package puts the binary; /usr/sbin is often missing from a user's PATH.
_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
_PBKDF2_ROUNDS = 101


class BrokerUnavailable(RuntimeError):
    """mosquitto is not installed, or did not come up."""


def find_mosquitto() -> str:
    """The mosquitto binary's path, or BrokerUnavailable saying how to install it."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerUnavailable(
        "mosquitto is not installed: run `make tools` or `apt-get install mosquitto`"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a server started a moment later.

    Taken below the kernel's ephemeral range (where outgoing connections get their local
    ports), so no client connection can take it between this choice and the bind.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(QUIET_PORTS[0], min(QUIET_PORTS[1], low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port between {QUIET_PORTS[0]} and {low}")


# Ports for servers started by the sandbox, the tests and the bench: clear of the usual
# services (PostgreSQL, Redis, MQTT, Clarion's 8025-8028) and of the ephemeral range.
QUIET_PORTS = (20000, 32768)


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return max(QUIET_PORTS[0] + 1000, int(text.split()[0]))
    except (OSError, ValueError, IndexError):
        return QUIET_PORTS[1]


def password_line(username: str, password: str) -> str:
    """One mosquitto password-file line (PBKDF2-SHA512, the `$7$` format of mosquitto 2)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ROUNDS)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"{username}:$7${_PBKDF2_ROUNDS}${encoded[0]}${encoded[1]}"


class Mosquitto:
    """One mosquitto process with a generated config; `restart()` keeps the port."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        users: Mapping[str, str] | None = None,
        binary: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.users = dict(users or {})
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running broker's process id."""
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        """`mqtt://host:port`."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        binary = self._binary or find_mosquitto()
        if self.port == 0:
            self.port = free_port(self.host)
        config = self._write_config()
        self._process = self._spawn(binary, config)
        await self._wait_ready()
        log.info("broker.started", host=self.host, port=self.port, pid=self._process.pid)

    async def stop(self) -> None:
        """Stop the broker (SIGTERM by PID, SIGKILL if it lingers) and remove its files."""
        await self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def restart(self) -> None:
        """Stop and start again on the same port; retained messages are lost (no persistence)."""
        await self._terminate()
        await self.start()

    def kill(self) -> None:
        """Stop at once without waiting; for exit handlers that cannot await."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def __aenter__(self) -> Mosquitto:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _write_config(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="clarion-mosquitto-"))
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            # Past this, mosquitto silently drops QoS 1 messages to a slow subscriber.
            "max_queued_messages 100000",
            "max_inflight_messages 0",
            f"log_dest file {self._dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.users:
            passwords = self._dir / "passwords"
            passwords.write_text(
                "".join(password_line(u, p) + "\n" for u, p in self.users.items()),
                encoding="utf-8",
            )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        config = self._dir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._hand_over(self._dir)
        return config

    @staticmethod
    def _hand_over(folder: Path) -> None:
        # Started as root, mosquitto drops to the `mosquitto` user before reading the password
        # file and writing its log, so that user must own the folder.
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            return
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)

    def _spawn(self, binary: str, config: Path) -> subprocess.Popen[bytes]:
        # Popen only forks and execs; it does not wait, so it is safe on the event loop.
        return subprocess.Popen(  # noqa: S603 - the mosquitto binary on PATH, our own config
            [binary, "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                raise BrokerUnavailable(
                    f"mosquitto exited at start on {self.host}:{self.port}: {self._log_tail()}"
                )
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    await self._terminate()
                    raise BrokerUnavailable(
                        f"mosquitto did not listen on {self.host}:{self.port} within "
                        f"{self._start_timeout_s:.0f} s: {self._log_tail()}"
                    ) from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                deadline = time.monotonic() + 5.0
            await asyncio.sleep(0.02)
        log.info("broker.stopped", port=self.port, pid=process.pid)

    def _log_tail(self) -> str:
        if self._dir is None:
            return "(no log)"
        try:
            text = (self._dir / "mosquitto.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-3:]) or "(empty log)"
