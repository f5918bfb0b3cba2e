"""The throwaway PostgreSQL server as pytest fixtures: one server per test session, a fresh
database per test. A machine without the server binaries fails the test with what to run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from channels.sandbox.postgres import PostgresUnavailable, ThrowawayPostgres, server_binary

PostgresCluster = ThrowawayPostgres

__all__ = ["PostgresCluster", "pg_cluster", "pg_url", "server_binary", "start_cluster"]


def start_cluster() -> PostgresCluster:
    """A server tuned for tests (no fsync: durability across OS crashes is not under test)."""
    try:
        return ThrowawayPostgres.start(
            "fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"
        )
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


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
