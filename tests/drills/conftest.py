"""Fixtures for the drill tests: a clock the test moves, and services that use it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
import structlog
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.api.app import build_app
from dispatcher.clock import Clock
from dispatcher.service import Service
from dispatcher.settings import Settings
from tests.conftest import SettingsFactory
from tests.support import Running

DRILL_TEXT = (
    "Evacuation drill: leave the building by the nearest exit now and gather at the west lawn."
)
SMALL_AUDIENCE = "group:dining"


class MovableClock(Clock):
    """Real time shifted by an offset the test sets: time runs, and jumps when told to."""

    def __init__(self, at: datetime | None = None) -> None:
        self._offset_ms = 0
        if at is not None:
            self.set(at)

    def now_ms(self) -> int:
        """The shifted time."""
        return int(time.time() * 1000) + self._offset_ms

    def set(self, at: datetime) -> None:
        """From now on, the time is `at` (and runs on from there)."""
        self._offset_ms = int(at.timestamp() * 1000) - int(time.time() * 1000)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
        ) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def drill(**overrides: Any) -> dict[str, Any]:
    """A scheduled drill's config: noon every day, e-mail to a small group."""
    base: dict[str, Any] = {
        "cron": "0 12 * * *",
        "mode": "drill",
        "kind": "emergency",
        "text": DRILL_TEXT,
        "audience": SMALL_AUDIENCE,
        "channels": ["email"],
        "description": "Daily evacuation exercise of the dining staff",
        "announced": True,
        "procedures_publicized": True,
    }
    base.update(overrides)
    return base


def drill_section(schedule: dict[str, dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """The `[drills]` section, with a long look interval so only the test moves the schedule."""
    return {"timezone": "UTC", "grace_s": 3600, "check_s": 3600, "schedule": schedule,
            **settings}


async def start_at(settings: Settings, clock: Clock) -> Running:
    """A service with the given clock behind a real HTTP server."""
    service = await Service.open(settings, clock=clock)
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    return Running(service, client)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The `clarion` commands a test runs configure logging for the whole process: undo it."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest_asyncio.fixture
async def services() -> AsyncIterator[list[Running]]:
    """Services a test started; closed at the end (a test may close one earlier)."""
    started: list[Running] = []
    yield started
    for run in started:
        await run.client.close()  # idempotent: a test may have closed it already


@pytest.fixture
def drill_settings(make_settings: SettingsFactory) -> Callable[..., Settings]:
    """Settings with the given scheduled drills (e-mail only, to the sandbox)."""

    def make(schedule: dict[str, dict[str, Any]], **drills: Any) -> Settings:
        return make_settings(drills=drill_section(schedule, **drills))

    return make
