"""SCIM resources in the store: the Users and Groups an identity provider pushes, their lookup
values and group memberships, written in the same transaction as the directory's people rows
derived from them, the suppression of a removed person's queued deliveries and the audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row, Session
from dispatcher.store.directory import DirectoryRow, delete_people, write_person

# Why a queued delivery to a deprovisioned person was not sent.
DEPROVISIONED = "deprovisioned"


class ScimKind(StrEnum):
    """The resource types the service keeps."""

    USER = "User"
    GROUP = "Group"


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One resource as stored: its JSON (no read-only parts), times and version."""

    id: str
    kind: ScimKind
    body: dict[str, Any]
    created_at: int
    updated_at: int
    version: int


@dataclass(frozen=True, slots=True)
class Membership:
    """One member of a group (with the display name the provider gave it), or one group of a
    user (with the group's displayName)."""

    group_id: str
    user_id: str
    display: str


# A user's stored JSON and the display names of its groups -> its person row, or None when
# the user has no person (disabled).
PersonFn = Callable[[str, Mapping[str, Any], Sequence[str]], DirectoryRow | None]


@dataclass(frozen=True, slots=True)
class ScimWrite:
    """One change: the resource to write (None: to delete), its lookup values, a group's
    members, and who made the change, for the audit."""

    kind: ScimKind
    id: str
    body: dict[str, Any] | None
    lookup: tuple[tuple[str, str], ...] = ()
    members: tuple[tuple[str, str], ...] | None = None
    actor: str = ""
    action: str = ""
    detail: Mapping[str, Any] | None = None


class ScimConflict(Exception):
    """A value that must be unique (a userName, a group's displayName) is taken."""

    def __init__(self, attribute: str) -> None:
        super().__init__(f"{attribute} is already in use")
        self.attribute = attribute


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _resource(row: Row) -> StoredResource:
    return StoredResource(
        id=row["id"], kind=ScimKind(row["kind"]), body=json.loads(row["body"]),
        created_at=int(row["created_at"]), updated_at=int(row["updated_at"]),
        version=int(row["version"]),
    )


_COLUMNS = "id, kind, body, created_at, updated_at, version"


class ScimStore:
    """Reads and writes SCIM resources and keeps the directory's people in step with them."""

    def __init__(self, db: Database, audit: AuditLog, person: PersonFn) -> None:
        self._db = db
        self._audit = audit
        self._person = person

    async def get(self, kind: ScimKind, resource_id: str) -> StoredResource | None:
        """One resource by id, or None."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM scim_resources WHERE id = ? AND kind = ?",
            (resource_id, kind.value),
        )
        return _resource(row) if row is not None else None

    async def many(self, kind: ScimKind, ids: Sequence[str]) -> list[StoredResource]:
        """The resources of these ids that exist, in creation order."""
        found: list[StoredResource] = []
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM scim_resources"
                f" WHERE kind = ? AND id IN ({_marks(len(part))})",
                [kind.value, *part],
            )
            found.extend(_resource(r) for r in rows)
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def count(self, kind: ScimKind) -> int:
        """How many resources of a kind there are."""
        return int(await self._db.fetchval(
            "SELECT COUNT(*) FROM scim_resources WHERE kind = ?", (kind.value,)
        ))

    async def page(self, kind: ScimKind, offset: int, limit: int) -> list[StoredResource]:
        """Resources of a kind in creation order, `limit` of them from `offset`."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM scim_resources WHERE kind = ?"
            " ORDER BY created_at, id LIMIT ? OFFSET ?",
            (kind.value, limit, offset),
        )
        return [_resource(r) for r in rows]

    async def ids(self, kind: ScimKind) -> list[str]:
        """Every id of a kind, in creation order."""
        rows = await self._db.fetchall(
            "SELECT id FROM scim_resources WHERE kind = ? ORDER BY created_at, id",
            (kind.value,),
        )
        return [r["id"] for r in rows]

    async def lookup(self, kind: ScimKind, name: str, value: str) -> list[str]:
        """Ids of the resources of a kind with this lookup value (lowercased)."""
        rows = await self._db.fetchall(
            "SELECT l.resource_id FROM scim_lookup l JOIN scim_resources r"
            " ON r.id = l.resource_id WHERE l.name = ? AND l.value = ? AND r.kind = ?",
            (name, value.lower(), kind.value),
        )
        return [r["resource_id"] for r in rows]

    async def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[Membership]]:
        """Per user, the groups it is a member of (with their display names)."""
        out: dict[str, list[Membership]] = {u: [] for u in user_ids}
        for start in range(0, len(user_ids), 500):
            part = list(user_ids[start : start + 500])
            rows = await self._db.fetchall(
                "SELECT m.group_id, m.user_id, g.body FROM scim_members m"
                " JOIN scim_resources g ON g.id = m.group_id"
                f" WHERE m.user_id IN ({_marks(len(part))}) ORDER BY m.group_id",
                part,
            )
            for r in rows:
                name = str(json.loads(r["body"]).get("displayName", ""))
                out[r["user_id"]].append(Membership(r["group_id"], r["user_id"], name))
        return out

    async def members_of(self, group_ids: Sequence[str]) -> dict[str, list[Membership]]:
        """Per group, its members (with the display names the provider gave them)."""
        out: dict[str, list[Membership]] = {g: [] for g in group_ids}
        for start in range(0, len(group_ids), 500):
            part = list(group_ids[start : start + 500])
            rows = await self._db.fetchall(
                "SELECT group_id, user_id, display FROM scim_members"
                f" WHERE group_id IN ({_marks(len(part))}) ORDER BY user_id",
                part,
            )
            for r in rows:
                out[r["group_id"]].append(Membership(r["group_id"], r["user_id"], r["display"]))
        return out

    async def write(self, change: ScimWrite, now_ms: int) -> StoredResource | None:
        """Apply one change in one transaction: the resource, its lookup values and members,
        the people rows of every user it touches (a user without a person has its queued
        deliveries suppressed) and the audit entry. Returns the stored resource (None after
        a delete); raises ScimConflict when a unique value is taken."""
        async with self._db.transaction() as tx:
            # One change at a time: a group's change rewrites its members' people rows, which
            # a parallel change of one of them must not overwrite with older groups.
            await tx.lock("scim")
            touched: set[str] = set()
            if change.kind is ScimKind.USER:
                touched.add(change.id)
            old = set(await _member_ids(tx, change)) if change.kind is ScimKind.GROUP else set()
            renamed = await _renamed(tx, change)
            stored: StoredResource | None = None
            if change.body is None:
                await tx.execute("DELETE FROM scim_lookup WHERE resource_id = ?", (change.id,))
                await tx.execute(
                    "DELETE FROM scim_members WHERE group_id = ? OR user_id = ?",
                    (change.id, change.id),
                )
                await tx.execute("DELETE FROM scim_resources WHERE id = ?", (change.id,))
                touched.update(old)
            else:
                await _check_unique(tx, change)
                stored = await _upsert(tx, change, now_ms)
                if change.members is not None:
                    await tx.execute(
                        "DELETE FROM scim_members WHERE group_id = ?", (change.id,)
                    )
                    display = dict(change.members)
                    members = await _existing_users(tx, display)
                    await tx.executemany(
                        "INSERT INTO scim_members (group_id, user_id, display) VALUES (?, ?, ?)",
                        [(change.id, m, display[m]) for m in members],
                    )
                    # Only the people who joined or left (all of them when the group's name
                    # changed): a big group's one new member rewrites one person.
                    touched.update(old | set(members) if renamed else old ^ set(members))
            await self._people(tx, sorted(touched), now_ms)
            await self._audit.append(
                tx, at=now_ms, actor=change.actor, action=change.action,
                detail=dict(change.detail or {}),
            )
        return stored

    async def _people(self, tx: Session, user_ids: list[str], now_ms: int) -> None:
        """Rewrite the people rows of these users from their stored resources and groups."""
        for start in range(0, len(user_ids), 500):
            await self._people_page(tx, user_ids[start : start + 500], now_ms)

    async def _people_page(self, tx: Session, user_ids: list[str], now_ms: int) -> None:
        rows = await tx.fetchall(
            f"SELECT id, body FROM scim_resources WHERE kind = 'User'"
            f" AND id IN ({_marks(len(user_ids))})",
            user_ids,
        )
        bodies = {r["id"]: json.loads(r["body"]) for r in rows}
        groups: dict[str, list[str]] = {u: [] for u in user_ids}
        for r in await tx.fetchall(
            "SELECT m.user_id, g.body FROM scim_members m JOIN scim_resources g"
            f" ON g.id = m.group_id WHERE m.user_id IN ({_marks(len(user_ids))})",
            user_ids,
        ):
            groups[r["user_id"]].append(str(json.loads(r["body"]).get("displayName", "")))
        gone: list[str] = []
        for user_id in user_ids:
            body = bodies.get(user_id)
            row = self._person(user_id, body, sorted(groups[user_id])) if body else None
            if row is None:
                gone.append(user_id)
            else:
                await write_person(tx, row, now_ms)
        if gone:
            await delete_people(tx, gone)
            await tx.execute(
                "UPDATE deliveries SET state = 'suppressed', detail = ?, updated_at = ?"
                f" WHERE state = 'queued' AND recipient IN ({_marks(len(gone))})",
                [DEPROVISIONED, now_ms, *gone],
            )


async def _renamed(tx: Session, change: ScimWrite) -> bool:
    """Whether a group change gives the group another displayName (or deletes it)."""
    if change.kind is not ScimKind.GROUP:
        return False
    body = await tx.fetchval("SELECT body FROM scim_resources WHERE id = ?", (change.id,))
    if body is None or change.body is None:
        return True
    return bool(json.loads(body).get("displayName") != change.body.get("displayName"))


async def _member_ids(tx: Session, change: ScimWrite) -> list[str]:
    rows = await tx.fetchall(
        "SELECT user_id FROM scim_members WHERE group_id = ?", (change.id,)
    )
    return [r["user_id"] for r in rows]


async def _existing_users(tx: Session, ids: Iterable[str]) -> list[str]:
    wanted = sorted(set(ids))
    found: list[str] = []
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        rows = await tx.fetchall(
            f"SELECT id FROM scim_resources WHERE kind = 'User' AND id IN ({_marks(len(part))})",
            part,
        )
        found.extend(r["id"] for r in rows)
    return sorted(found)


_UNIQUE = {ScimKind.USER: "username", ScimKind.GROUP: "displayname"}
_UNIQUE_NAMES = {"username": "userName", "displayname": "displayName"}


async def _check_unique(tx: Session, change: ScimWrite) -> None:
    name = _UNIQUE[change.kind]
    for key, value in change.lookup:
        if key != name:
            continue
        taken = await tx.fetchone(
            "SELECT l.resource_id FROM scim_lookup l JOIN scim_resources r"
            " ON r.id = l.resource_id"
            " WHERE l.name = ? AND l.value = ? AND r.kind = ? AND l.resource_id <> ?",
            (name, value, change.kind.value, change.id),
        )
        if taken is not None:
            raise ScimConflict(_UNIQUE_NAMES[name])


async def _upsert(tx: Session, change: ScimWrite, now_ms: int) -> StoredResource:
    body = json.dumps(change.body, sort_keys=True)
    await tx.execute(
        "INSERT INTO scim_resources (id, kind, body, created_at, updated_at, version)"
        " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO UPDATE SET body = excluded.body,"
        " updated_at = excluded.updated_at, version = scim_resources.version + 1",
        (change.id, change.kind.value, body, now_ms, now_ms),
    )
    await tx.execute("DELETE FROM scim_lookup WHERE resource_id = ?", (change.id,))
    lookup = sorted({(k, v) for k, v in change.lookup if v})
    if lookup:
        await tx.executemany(
            "INSERT INTO scim_lookup (resource_id, name, value) VALUES (?, ?, ?)",
            [(change.id, k, v) for k, v in lookup],
        )
    row = await tx.fetchone(
        f"SELECT {_COLUMNS} FROM scim_resources WHERE id = ?", (change.id,)
    )
    assert row is not None
    return _resource(row)
