"""Sign-in counts and stored tokens on PostgreSQL, as several nodes share them: two pools on
one database count one account's parallel tries together, exactly."""

from __future__ import annotations

import asyncio

from dispatcher.store.database import open_database
from dispatcher.store.sign_in import SignInLimits
from dispatcher.store.tokens import TokenRecord, TokenStore
from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]


class TestOnPostgres:
    """The upsert is atomic across nodes; a revocation is seen by every node."""

    async def test_parallel_tries_from_two_nodes(self, pg_url: str) -> None:
        """Forty tries at once, half on each node: counts 1 to 40, each once."""
        nodes = [await open_database(pg_url) for _ in range(2)]
        try:
            limits = [SignInLimits(db) for db in nodes]
            tries = await asyncio.gather(*(
                limits[n % 2].count("user:dana", now_ms=1_000_000, window_ms=900_000)
                for n in range(40)))
            assert sorted(t.failures for t in tries) == list(range(1, 41))
            later = await limits[0].count("user:dana", now_ms=1_000_000 + 900_001,
                                          window_ms=900_000)
            assert later.failures == 1
        finally:
            for db in nodes:
                await db.close()

    async def test_revocation_seen_by_the_other_node(self, pg_url: str) -> None:
        """Revoked through one pool, the other reads it revoked."""
        one, two = await open_database(pg_url), await open_database(pg_url)
        try:
            await TokenStore(one).add(TokenRecord("a" * 64, "cad", "dana", "dispatcher", (),
                                                  "tests", 1, None, None, None))
            assert await TokenStore(two).revoke("cad", by="tests", now_ms=2)
            record = await TokenStore(one).by_hash("a" * 64)
            assert record is not None and not record.usable_at(3)
        finally:
            await one.close()
            await two.close()
