"""One small async database interface with two drivers, so the code above speaks SQL once.

SQL is written with `?` placeholders; the PostgreSQL driver numbers them. Rows support
`row["column"]` on both drivers.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import structlog

log = structlog.get_logger("clarion.store")

Params = Sequence[Any]


class Row(Protocol):
    """A result row: columns by name (or by position)."""

    def __getitem__(self, key: str | int, /) -> Any: ...


class Session(ABC):
    """Statements run on one connection, inside or outside a transaction."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for each parameter row."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row."""

    async def lock(self, name: str) -> None:  # noqa: B027 - SQLite's writer lock suffices
        """Inside a transaction: wait until no other transaction holds `name`, then hold it
        until this one ends (one writer at a time for a hash chain, a migration)."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, if any."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """Run a query and return the first column of its first row, if any."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


class Database(Session):
    """A connection pool (or its SQLite equivalent) that also opens transactions."""

    dialect: str

    async def ping(self) -> None:
        """Raise unless the store answers a query."""
        await self.fetchval("SELECT 1")

    @abstractmethod
    def transaction(self, *, urgent: bool = False) -> Any:
        """`async with db.transaction() as tx:` runs statements atomically. An `urgent` one
        (receipts, device acks) goes ahead of the others waiting for the store's one writer
        (SQLite); on PostgreSQL, which has many, it changes nothing."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    async def migrate(self) -> int:
        """Apply every migration not applied yet; returns the schema version."""
        async with self.transaction() as tx:
            # Several nodes starting together: one migrates, the others then find it done.
            await tx.lock("schema_migrations")
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            rows = await tx.fetchall("SELECT version FROM schema_migrations")
            done = {r["version"] for r in rows}
            version = max(done, default=0)
            for number, name, sql in migrations(self.dialect):
                if number in done:
                    continue
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name)
                )
                log.info("store.migrated", version=number, migration=name)
                version = number
        return version


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """The numbered migrations for a dialect, in order."""
    folder = resources.files("dispatcher.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    """A migration's statements, split at `;` except inside a `$$` body (a PostgreSQL
    function) or a SQLite trigger's BEGIN ... END."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    out: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";"):
        pending = f"{pending};{piece}" if pending else piece
        text = pending.strip()
        unfinished_trigger = (
            text.upper().startswith("CREATE TRIGGER")
            and "\nBEGIN" in text.upper()
            and not text.upper().endswith("END")
        )
        if text.count("$$") % 2 == 1 or unfinished_trigger:
            continue
        if text:
            out.append(text)
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


class _SQLiteSession(Session):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    # Each statement runs shielded: a caller cancelled mid-statement must not leave its
    # cursor open on the shared connection, or the next COMMIT fails ("SQL statements in
    # progress") for whoever holds the writer next.
    async def execute(self, sql: str, params: Params = ()) -> int:
        return await asyncio.shield(self._execute(sql, params))

    async def _execute(self, sql: str, params: Params) -> int:
        cursor = await self._conn.execute(sql, params)
        try:
            return cursor.rowcount
        finally:
            await cursor.close()

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await asyncio.shield(self._conn.executemany(sql, rows))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await asyncio.shield(self._fetchall(sql, params))

    async def _fetchall(self, sql: str, params: Params) -> list[Row]:
        # One call on the connection's thread runs and exhausts the statement. Separate
        # execute and fetch calls let another reader's statement start in between, and a
        # statement still open holds its read snapshot: a read just after a commit could then
        # miss that commit.
        return list(await self._conn.execute_fetchall(sql, params))


class SQLiteDatabase(Database):
    """SQLite in WAL mode: one writer connection behind a lock, one for reads."""

    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._lock = _WriterTurns()
        self._read = _SQLiteSession(reader)
        self._write = _SQLiteSession(writer)

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        """Open (creating) the file and its folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        await _pragma(writer, "journal_mode=WAL")
        reader = await _connect(path)
        return cls(writer, reader)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._read.fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[Session]:
        # aiosqlite runs statements in order on one thread, so a COMMIT or ROLLBACK that
        # outlives a cancelled caller (shielded) still lands before the next BEGIN.
        async with self._lock.turn(urgent=urgent):
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except BaseException:
                await asyncio.shield(self._writer.rollback())
                raise
            try:
                yield self._write
            except BaseException:
                await asyncio.shield(self._writer.rollback())
                raise
            try:
                await asyncio.shield(self._writer.commit())
            except BaseException:
                # A COMMIT that failed leaves the transaction open on the one writer
                # connection: end it, or every later BEGIN fails.
                if self._writer.in_transaction:
                    await asyncio.shield(self._writer.rollback())
                raise

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()


class _WriterTurns:
    """The one writer's turns: urgent transactions first, each kind in arrival order."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(), deque()
        )

    @asynccontextmanager
    async def turn(self, *, urgent: bool) -> AsyncIterator[None]:
        if self._busy or any(self._waiting):
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[0 if urgent else 1].append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._next()  # the turn was handed to us: hand it on
                else:
                    for queue in self._waiting:
                        if waiter in queue:
                            queue.remove(waiter)
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._next()

    def _next(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes straight to it: still busy
                    return
        self._busy = False


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in ("busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON"):
        await _pragma(conn, pragma)
    return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    # Step every PRAGMA to completion: a half-read statement keeps a lock on the file.
    async with conn.execute(f"PRAGMA {pragma}") as cursor:
        await cursor.fetchall()


_PLACEHOLDER = re.compile(r"\?")


def _numbered(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


class _PostgresSession(Session):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        status: str = await self._conn.execute(_numbered(sql), *params)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(_numbered(sql), list(rows))

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._conn.fetch(_numbered(sql), *params))

    async def lock(self, name: str) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)


class PostgresDatabase(Database):
    """PostgreSQL through an asyncpg pool, shared by several `clarion serve` processes."""

    dialect = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresDatabase:
        """Connect a pool to the database at `url`."""
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size)
        return cls(pool)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._pool.acquire() as conn:
            return await _PostgresSession(conn).execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._pool.acquire() as conn:
            await _PostgresSession(conn).executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._pool.acquire() as conn:
            return await _PostgresSession(conn).fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[Session]:
        del urgent  # every transaction has a connection of its own
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PostgresSession(conn)

    async def close(self) -> None:
        await self._pool.close()


async def open_database(url: str, *, base: Path | None = None) -> Database:
    """Open the store a URL names: `sqlite:///relative/or//absolute.db` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        db: Database = await SQLiteDatabase.open(path)
    elif url.startswith(("postgresql://", "postgres://")):
        db = await PostgresDatabase.open(url)
    else:
        raise ValueError(f"store.url: unsupported database URL scheme in {url.split(':', 1)[0]!r}")
    await db.migrate()
    return db
