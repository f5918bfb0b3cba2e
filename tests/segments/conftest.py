"""Fixtures: the synthetic campus map and a fresh SQLite store per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from dispatcher.store.database import open_database
from segments.settings import DirectorySettings
from tests.segments.helpers import Campus, make_campus_files


@pytest_asyncio.fixture
async def campus(tmp_path: Path) -> AsyncIterator[Campus]:
    """Zones, buildings and twelve devices on disk; an empty directory in SQLite."""
    make_campus_files(tmp_path)
    db = await open_database(f"sqlite:///{tmp_path / 'clarion.db'}")
    try:
        settings = DirectorySettings(
            people="people.csv", devices="devices.csv", buildings="buildings.csv"
        )
        yield Campus(tmp_path, db, settings)
    finally:
        await db.close()
