"""Fixtures of the security tests: a small campus, one token per role, a scoped and a signing
token, and a service that knows them all."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.access.auth import token_sha256
from dispatcher.observability import configure_logging
from dispatcher.settings import Settings, config_dir
from tests.support import TOKEN, Running, start_service

# Plain tokens of the callers the tests speak as; the service knows only their hashes.
TOKENS = {
    "alice": ("alice-dispatcher-token-0001", "dispatcher"),
    "bob": ("bob-dispatcher-token-000002", "dispatcher"),
    "ehs": ("ehs-drill-token-00000000003", "drill"),
    "watch": ("watch-viewer-token-00000004", "viewer"),
    "north": ("north-department-token-0005", "dispatcher"),
    "cad": ("cad-signing-token-000000006", "dispatcher"),
}
HMAC_SECRET = "cad-shared-secret-for-signatures"
NORTH_SCOPE = "residents-north"
PEOPLE_IN_SMALL_CAMPUS = 80


def bearer(name: str) -> dict[str, str]:
    """The Authorization header of a named caller (`admin` for the admin token)."""
    token = TOKEN if name == "admin" else TOKENS[name][0]
    return {"Authorization": f"Bearer {token}"}


def token_entries(**extra: dict[str, Any]) -> list[dict[str, Any]]:
    """`[[auth.tokens]]` for every test caller; `extra` adds keys to a caller's entry."""
    entries = []
    for name, (token, role) in TOKENS.items():
        entry: dict[str, Any] = {"name": name, "role": role, "sha256": token_sha256(token)}
        if name == "north":
            entry["segments"] = [NORTH_SCOPE]
        if name == "cad":
            entry["hmac_secret"] = HMAC_SECRET
        entry.update(extra.get(name, {}))
        entries.append(entry)
    return entries


@pytest.fixture
def small_people(tmp_path: Path) -> Path:
    """A people file with the first rows of the example campus and some North Hall students."""
    source = config_dir() / "campus" / "people.csv"
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    north = [r for r in body if r[6] == "student" and r[7] == "north-hall"][:10]
    chosen = body[: PEOPLE_IN_SMALL_CAMPUS - len(north)]
    chosen += [r for r in north if r not in chosen]
    path = tmp_path / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *chosen])
    return path


SecureSettings = Callable[..., Settings]


@pytest.fixture
def secure_settings(make_settings: Callable[..., Settings], small_people: Path) -> SecureSettings:
    """Settings with every test token and the small campus; keyword arguments patch `auth`."""

    def make(channels: dict[str, dict[str, Any]] | None = None, **auth: Any) -> Settings:
        section = {"tokens": token_entries(**auth.pop("token_extra", {})), **auth}
        return make_settings(channels, auth=section, directory={"people": str(small_people)})

    return make


@pytest_asyncio.fixture
async def secure(secure_settings: SecureSettings) -> AsyncIterator[Running]:
    """The service with every test token, e-mail only, on the small campus."""
    run = await start_service(secure_settings())
    yield run
    await run.client.close()


FIRE = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "channels": ["email"],
}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line written during the test, as JSON lines."""
    stream = io.StringIO()
    configure_logging("debug")
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


def events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    """The log entries of one event."""
    entries = (json.loads(line) for line in stream.getvalue().splitlines()
               if line.startswith("{"))
    return [entry for entry in entries if entry.get("event") == name]
