"""Keeps each test to its own ports and files, so `make test` passes beside `make run`.

`make run` (and any `clarion serve` or `clarion sandbox` started by hand) listens on the
embedded config's fixed ports: the service, the sandbox's HTTP and SMTP listeners, its
mosquitto, and MQTT's own 1883. A test that reached one of them would talk to whatever happens
to run there. An audit hook, installed once per test process, refuses every loopback connect
or bind to those ports (the caller sees a refused connection, as when nothing listens) and
notes every file written inside the repository; the `hermetic` fixture fails the test that did
either. `tests/test_hermetic.py` keeps the port numbers out of the tests' source.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from channels.sandbox.server import Sandbox
from dispatcher.settings import Settings, load_settings

REPOSITORY = Path(__file__).resolve().parent.parent
MQTT_PORT = 1883
# Loopback, and the wildcard a server binds to.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""})  # noqa: S104
# Written inside the repository by pytest itself and by Python's import system.
_OWN_WRITES = (".pytest_cache", "__pycache__")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def fixed_ports(settings: Settings | None = None) -> frozenset[int]:
    """Every port the embedded config and the sandbox's defaults name, and MQTT's own."""
    settings = settings or load_settings()
    sandbox = Sandbox.__dataclass_fields__
    ports = {settings.service.port, MQTT_PORT}
    ports |= {sandbox["port"].default, sandbox["smtp_port"].default}
    for section in settings.channels.values():
        ports.update(_ports_in(section))
    for source in settings.feeds.sources.values():
        ports.update(_ports_in(source.model_dump(mode="json")))
    return frozenset(p for p in ports if isinstance(p, int) and p > 0)


def _ports_in(section: dict[str, Any]) -> Iterator[int]:
    for key, value in section.items():
        if key == "port" and isinstance(value, int):
            yield value
        elif isinstance(value, str) and "://" in value:
            try:
                port = urlsplit(value).port
            except ValueError:
                continue
            if port is not None:
                yield port


class Guard:
    """The audit hook and what it saw since the last `take()`."""

    def __init__(self, ports: frozenset[int]) -> None:
        self.ports = ports
        self.seen: list[str] = []
        self.screenshots = os.environ.get("CLARION_SCREENSHOTS", "")

    def take(self) -> list[str]:
        """What was refused or written since the last call."""
        seen, self.seen = self.seen, []
        return seen

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event in ("socket.connect", "socket.bind"):
            self._socket(event, args[1])
        elif event == "open":
            self._open(args)
        elif event == "sqlite3.connect":
            self._file(args[0], "sqlite3.connect")

    def _socket(self, event: str, address: object) -> None:
        if not (isinstance(address, tuple) and len(address) >= 2):
            return
        host, port = address[0], address[1]
        if port in self.ports and host in LOOPBACK:
            self.seen.append(f"{event} {host}:{port}")
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{host}:{port} is a fixed port, not this test's"
            )

    def _open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if isinstance(mode, str):
            writes = any(c in mode for c in "wax+")
        else:
            writes = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        if writes:
            self._file(path, f"open({mode or flags})")

    def _file(self, path: object, how: str) -> None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str | os.PathLike) or str(path) in ("", ":memory:"):
            return
        text = str(path)
        if text.startswith("file:"):
            return
        absolute = os.path.abspath(text)
        if not absolute.startswith(str(REPOSITORY) + os.sep):
            return
        relative = absolute[len(str(REPOSITORY)) + 1 :]
        if any(part in _OWN_WRITES for part in Path(relative).parts):
            return
        if self.screenshots and absolute.startswith(os.path.abspath(self.screenshots)):
            return
        self.seen.append(f"{how} {relative}")


_GUARD: list[Guard] = []


def guard() -> Guard:
    """This process's guard, installed on first use (an audit hook cannot be removed)."""
    if not _GUARD:
        _GUARD.append(Guard(fixed_ports()))
        sys.addaudithook(_GUARD[0])
    return _GUARD[0]
