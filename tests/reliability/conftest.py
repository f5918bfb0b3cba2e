"""Fixtures for the reliability tests: PostgreSQL databases with the example campus loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.settings import load_settings
from dispatcher.store.database import open_database
from segments.audience import AudienceResolver
from tests.pg import PostgresCluster, pg_cluster, pg_url

__all__ = ["campus_pg", "pg_cluster", "pg_url", "report"]

Report = Callable[[str, object], None]

_TEMPLATES: dict[int, str] = {}


async def _campus_template(cluster: PostgresCluster) -> str:
    """A database with the schema and the example directory, made once per cluster."""
    name = _TEMPLATES.get(cluster.port)
    if name is None:
        name = "campus_template"
        url = await cluster.create_database(name)
        settings = load_settings()
        db = await open_database(url)
        try:
            await AudienceResolver(db, settings.directory, settings.base_dir).load_example()
        finally:
            await db.close()
        _TEMPLATES[cluster.port] = name
    return name


@pytest_asyncio.fixture
async def campus_pg(pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    """A fresh PostgreSQL database holding the example campus (copied from a template)."""
    yield await pg_cluster.create_database(template=await _campus_template(pg_cluster))


@pytest.fixture
def report(
    request: pytest.FixtureRequest, record_testsuite_property: Callable[[str, Any], None]
) -> Report:
    """Keep a measurement (duplicates, request counts) in the JUnit report and print it."""

    def keep(name: str, value: object) -> None:
        record_testsuite_property(f"{request.node.name}.{name}", value)
        print(f"\n{request.node.name}: {name} = {value}")

    return keep
