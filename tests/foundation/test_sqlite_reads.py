"""SQLite reads see every commit that finished before them, however many readers run at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dispatcher.store.database import SQLiteDatabase


async def test_read_after_commit_sees_it_under_concurrent_reads(tmp_path: Path) -> None:
    """A row read back right after its commit is found while other readers share the reader.

    The readers' statements interleave on the one read connection; a statement left open
    between its execute and its fetch would hold an older snapshot and hide the commit."""
    db = await SQLiteDatabase.open(tmp_path / "reads.db")
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            await tx.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 50,) for _ in range(2000)])
        done = asyncio.Event()

        async def other_reader() -> int:
            reads = 0
            while not done.is_set():
                await db.fetchall("SELECT * FROM t LIMIT 500")
                reads += 1
            return reads

        readers = [asyncio.create_task(other_reader()) for _ in range(8)]
        missed = []
        for i in range(300):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t (id, v) VALUES (?, 'new')", (100_000 + i,))
            if await db.fetchone("SELECT id FROM t WHERE id = ?", (100_000 + i,)) is None:
                missed.append(i)
        done.set()
        assert all(await asyncio.gather(*readers)), "the other readers did not run"
        assert missed == []
    finally:
        await db.close()
