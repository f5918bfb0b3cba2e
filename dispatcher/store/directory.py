"""The directory in the store: people (with their segment attributes) and devices, upserted by
id and compared by fingerprint, so an unchanged row is never rewritten."""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.store.database import Database, Session

# Column order of the values a DirectoryRow carries, then its digest and the write time.
PEOPLE_FIELDS = (
    "id", "first_name", "last_name", "email", "phone", "push", "role", "building", "campus",
    "language", "groups", "channels", "opt_out", "quiet_hours", "attrs", "digest", "updated_at",
)
DEVICE_FIELDS = (
    "id", "class", "zone", "building", "lat", "lon", "topic", "name", "attrs", "digest",
    "updated_at",
)
# Ids per statement when removing: well under SQLite's limit on parameters.
REMOVE_PAGE = 500


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """One person or device to write: its column values in table order up to the digest,
    its fingerprint, and (people only) its segment attributes as (name, value) pairs."""

    values: tuple[Any, ...]
    digest: str
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """The person's or device's id (the first column)."""
        return str(self.values[0])


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What one write did: rows added, changed, left as they were, removed."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class ListedDevice:
    """A device as the directory lists it."""

    id: str
    device_class: str
    zone: str
    building: str
    name: str


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _upsert(table: str, fields: tuple[str, ...]) -> str:
    # Built from the constant column lists above; values always travel as parameters.
    return (
        f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({_marks(len(fields))})"
        " ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{f} = excluded.{f}" for f in fields[1:])
    )


_PEOPLE_UPSERT = _upsert("people", PEOPLE_FIELDS)
_DEVICE_UPSERT = _upsert("devices", DEVICE_FIELDS)


class DirectoryStore:
    """Writes and reads the people and devices tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def has_people(self) -> bool:
        """True once anyone is in the directory."""
        return await self._db.fetchone("SELECT id FROM people LIMIT 1") is not None

    async def has_devices(self) -> bool:
        """True once any device is in the directory."""
        return await self._db.fetchone("SELECT id FROM devices LIMIT 1") is not None

    async def devices(self) -> list[ListedDevice]:
        """Every device in the directory, by id."""
        rows = await self._db.fetchall(
            "SELECT id, class, zone, building, name FROM devices ORDER BY id"
        )
        return [
            ListedDevice(r["id"], str(r["class"]), r["zone"], r["building"], r["name"])
            for r in rows
        ]

    async def people_fingerprints(self) -> dict[str, tuple[str, str]]:
        """Every stored person's id with their role and fingerprint (what an import compares
        itself with before it writes)."""
        rows = await self._db.fetchall("SELECT id, role, digest FROM people")
        return {r["id"]: (r["role"], r["digest"]) for r in rows}

    async def upsert_people(self, people: Sequence[DirectoryRow], now_ms: int) -> WriteCounts:
        """Write the people whose fingerprint changed, with their attributes, in one
        transaction; the others are left as they are."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT id, digest FROM people WHERE id IN ({_marks(len(people))})",
                [p.id for p in people],
            )
            stored = {r["id"]: r["digest"] for r in rows}
            write = [p for p in people if stored.get(p.id) != p.digest]
            changed = [p.id for p in write if p.id in stored]
            counts = WriteCounts(
                added=len(write) - len(changed),
                changed=len(changed),
                unchanged=len(people) - len(write),
            )
            if not write:
                return counts
            if changed:
                await tx.execute(
                    f"DELETE FROM person_attributes WHERE person_id IN ({_marks(len(changed))})",
                    changed,
                )
            await tx.executemany(
                _PEOPLE_UPSERT, [(*p.values, p.digest, now_ms) for p in write]
            )
            attributes = [(p.id, name, value) for p in write for name, value in p.attributes]
            if attributes:
                await tx.executemany(
                    "INSERT INTO person_attributes (person_id, name, value) VALUES (?, ?, ?)",
                    attributes,
                )
        return counts

    async def remove_people(self, role: str, *, keep: Container[str], page: int = 1000) -> int:
        """Remove the people of a role whose id is not in `keep`, a page at a time (each page
        in its own transaction); how many were removed. People an identity provider
        provisioned over SCIM are its to remove, never a file's."""
        removed = 0
        after = ""
        while True:
            rows = await self._db.fetchall(
                "SELECT id FROM people WHERE role = ? AND id > ?"
                " AND NOT EXISTS (SELECT 1 FROM scim_resources s WHERE s.id = people.id)"
                " ORDER BY id LIMIT ?",
                (role, after, page),
            )
            if not rows:
                return removed
            after = rows[-1]["id"]
            gone = [r["id"] for r in rows if r["id"] not in keep]
            if gone:
                async with self._db.transaction() as tx:
                    await _delete_people(tx, gone)
                removed += len(gone)

    async def refresh_people_statistics(self) -> None:
        """Let the planner see the people tables as they now are."""
        # After a bulk load PostgreSQL otherwise plans segment queries for an empty table
        # (measured: 8 s instead of 1 s to stream 30,000 students).
        await self._db.execute("ANALYZE people")
        await self._db.execute("ANALYZE person_attributes")

    async def write_devices(
        self,
        devices: Sequence[DirectoryRow],
        now_ms: int,
        *,
        remove_except: Container[str] | None = None,
    ) -> WriteCounts:
        """Write the devices whose fingerprint changed and, with `remove_except`, remove every
        stored device whose id is not in it; all in one transaction."""
        async with self._db.transaction() as tx:
            stored = {
                r["id"]: r["digest"] for r in await tx.fetchall("SELECT id, digest FROM devices")
            }
            write = [d for d in devices if stored.get(d.id) != d.digest]
            changed = sum(1 for d in write if d.id in stored)
            if write:
                await tx.executemany(
                    _DEVICE_UPSERT, [(*d.values, d.digest, now_ms) for d in write]
                )
            removed = 0
            if remove_except is not None:
                gone = [d for d in stored if d not in remove_except]
                for start in range(0, len(gone), REMOVE_PAGE):
                    part = gone[start : start + REMOVE_PAGE]
                    await tx.execute(f"DELETE FROM devices WHERE id IN ({_marks(len(part))})", part)
                removed = len(gone)
        return WriteCounts(
            added=len(write) - changed,
            changed=changed,
            unchanged=len(devices) - len(write),
            removed=removed,
        )


async def write_person(tx: Session, person: DirectoryRow, now_ms: int) -> None:
    """Write one person and their attributes inside the caller's transaction, unless the
    stored row has the same fingerprint."""
    stored = await tx.fetchval("SELECT digest FROM people WHERE id = ?", (person.id,))
    if stored == person.digest:
        return
    await tx.execute("DELETE FROM person_attributes WHERE person_id = ?", (person.id,))
    await tx.execute(_PEOPLE_UPSERT, (*person.values, person.digest, now_ms))
    if person.attributes:
        await tx.executemany(
            "INSERT INTO person_attributes (person_id, name, value) VALUES (?, ?, ?)",
            [(person.id, name, value) for name, value in person.attributes],
        )


async def delete_people(tx: Session, ids: list[str]) -> None:
    """Remove people and their attributes inside the caller's transaction."""
    await _delete_people(tx, ids)


async def _delete_people(tx: Session, ids: list[str]) -> None:
    marks = _marks(len(ids))
    await tx.execute(f"DELETE FROM person_attributes WHERE person_id IN ({marks})", ids)
    await tx.execute(f"DELETE FROM people WHERE id IN ({marks})", ids)
