"""The suite keeps to its own ports and files, so it passes beside `make run`."""

from __future__ import annotations

import os
import re
import socket

import pytest

from tests.hermetic import MQTT_PORT, REPOSITORY, Guard, fixed_ports, guard

TESTS = REPOSITORY / "tests"
# A line that states a default (and reaches nothing) says so with this comment.
PRAGMA = "# hermetic:"
# The guard itself names the ports it keeps the tests from.
GUARD_MODULES = {TESTS / "hermetic.py", TESTS / "test_hermetic.py"}


def fixed_port_pattern() -> re.Pattern[str]:
    """Any of the fixed ports as a number of its own (not part of a longer number)."""
    numbers = "|".join(str(p) for p in sorted(fixed_ports()))
    return re.compile(rf"(?<![\d.])({numbers})(?!\d)")


class TestFixedPorts:
    """What the guard keeps the tests from."""

    def test_the_ports_make_run_listens_on_are_fixed(self) -> None:
        """The service, the sandbox's HTTP and SMTP, its mosquitto and MQTT's own port."""
        assert {8025, 8026, 8027, 8028, MQTT_PORT} <= fixed_ports()

    def test_no_test_names_a_fixed_port(self) -> None:
        """A test module or fixture asks for a free port (or its sandbox's) instead."""
        pattern = fixed_port_pattern()
        offenders = []
        for path in sorted(TESTS.rglob("*.py")):
            if path in GUARD_MODULES:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and PRAGMA not in line:
                    offenders.append(f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}")
        assert not offenders, "\n".join(offenders)

    def test_the_scan_sees_a_fixed_port(self) -> None:
        """The pattern finds a port in a URL and a keyword, not inside a longer number."""
        pattern = fixed_port_pattern()
        assert pattern.search('url = "http://127.0.0.1:8026/nws"')
        assert pattern.search("DeviceSettings(port=1883)")
        assert not pattern.search('phone = "+12015558026" or 18025 or 0.8025')


class TestGuard:
    """At run time a fixed port is refused, and a file written in the repository is noted."""

    def test_connecting_to_a_fixed_port_is_refused(self) -> None:
        """As if nothing listened there, whatever does; the test is told which port it was."""
        watch = guard()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", 8026), timeout=1)
        assert watch.take() == ["socket.connect 127.0.0.1:8026"]

    def test_binding_a_fixed_port_is_refused(self) -> None:
        """A server of the test's own never takes the service's port."""
        watch = guard()
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.bind(("127.0.0.1", 8025))
        assert watch.take() == ["socket.bind 127.0.0.1:8025"]

    def test_writes_in_the_repository_are_noted(self) -> None:
        """A store or key file in ./var would be `make run`'s; the test's own folder is fine."""
        watch = Guard(fixed_ports())
        watch("open", (str(REPOSITORY / "var" / "incidents.key"), "w", 0))
        watch("sqlite3.connect", ("var/clarion.db",))
        watch("open", (str(REPOSITORY / "README.md"), "r", os.O_RDONLY))
        watch("open", ("/tmp/pytest-of-someone/test0/clarion.db", "w", 0))
        assert watch.take() == ["open(w) var/incidents.key", "sqlite3.connect var/clarion.db"]
