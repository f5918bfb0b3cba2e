"""The audience queries the resolver runs: an audience expression compiled to a condition over
the people table, people and devices read page by page (keyset on id, never all at once), the
preference combinations counted in SQL, and the look-ups that check an expression's terms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.domain import ChannelKind
from dispatcher.store.database import Database, Row
from segments.expression import And, Everyone, Node, Not, Or
from segments.preferences import ADDRESS_COLUMN

# Segment terms matched against a column of the people table.
PERSON_TERM_COLUMNS = {"role": "role", "building": "building", "campus": "campus",
                       "language": "language", "id": "id"}


@dataclass(frozen=True, slots=True)
class PeopleFilter:
    """An audience as a condition over `people p`; its values travel as parameters."""

    where: str
    params: tuple[Any, ...]


def people_filter(node: Node, buildings_in: Callable[[str], Sequence[str]]) -> PeopleFilter:
    """Compile a parsed audience; `buildings_in(zone)` names the buildings inside a zone."""
    params: list[Any] = []
    where = _people_sql(node, params, buildings_in)
    return PeopleFilter(where, tuple(params))


def _people_sql(
    node: Node, params: list[Any], buildings_in: Callable[[str], Sequence[str]]
) -> str:
    if isinstance(node, Everyone):
        return "1 = 1"
    if isinstance(node, Not):
        return f"NOT ({_people_sql(node.inner, params, buildings_in)})"
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(_people_sql(p, params, buildings_in) for p in node.parts) + ")"
    key, value = node.key, node.value
    if key in PERSON_TERM_COLUMNS:
        params.append(value)
        return f"p.{PERSON_TERM_COLUMNS[key]} = ?"
    if key == "zone":
        buildings = list(buildings_in(value))
        if not buildings:
            return "1 = 0"
        params.extend(buildings)
        return f"p.building IN ({', '.join('?' * len(buildings))})"
    if key == "class":
        # Device classes select no person.
        return "1 = 0"
    params.extend((key, value))
    return (
        "EXISTS (SELECT 1 FROM person_attributes a"
        " WHERE a.name = ? AND a.value = ? AND a.person_id = p.id)"
    )


@dataclass(frozen=True, slots=True)
class PersonContact:
    """A person as an alert reaches them: addresses, role, language and stored preferences."""

    id: str
    email: str
    phone: str
    push: str
    role: str
    language: str
    channels: str
    opt_out: str
    quiet_hours: str

    def address(self, channel: ChannelKind) -> str:
        """The person's address on a person channel ("" when they have none)."""
        return str(getattr(self, ADDRESS_COLUMN[channel]))

    @property
    def reachable(self) -> frozenset[ChannelKind]:
        """The person channels the person has an address on."""
        return frozenset(c for c in ADDRESS_COLUMN if self.address(c))


@dataclass(frozen=True, slots=True)
class PreferenceGroup:
    """How many of an audience share one role, one set of stored preferences and one set of
    channels they can be reached on."""

    role: str
    channels: str
    opt_out: str
    quiet_hours: str
    reachable: frozenset[ChannelKind]
    count: int


@dataclass(frozen=True, slots=True)
class DeviceLocation:
    """A device where it listens: its zone, building and coordinates."""

    id: str
    device_class: str
    zone: str
    building: str
    lat: float | None
    lon: float | None


class AudienceStore:
    """Reads the directory for audience resolution."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def people_page(
        self, audience: PeopleFilter, *, after: str, limit: int
    ) -> list[PersonContact]:
        """Up to `limit` people of the audience with ids after `after`, by id."""
        rows = await self._db.fetchall(
            "SELECT id, email, phone, push, role, language, channels, opt_out,"
            f" quiet_hours FROM people p WHERE p.id > ? AND {audience.where}"
            " ORDER BY p.id LIMIT ?",
            (after, *audience.params, limit),
        )
        return [_contact(r) for r in rows]

    async def preference_groups(
        self, audience: PeopleFilter, channels: Sequence[ChannelKind]
    ) -> list[PreferenceGroup]:
        """The audience counted per role, stored preferences and reachability on `channels`."""
        # People come in few combinations: the caller decides once per combination.
        flags = "".join(
            f", CASE WHEN {ADDRESS_COLUMN[c]} <> '' THEN 1 ELSE 0 END AS has_{c.value}"
            for c in channels
        )
        groups = ", ".join(str(i) for i in range(1, 5 + len(channels)))
        rows = await self._db.fetchall(
            f"SELECT role, channels, opt_out, quiet_hours{flags}, COUNT(*) AS n"
            f" FROM people p WHERE {audience.where} GROUP BY {groups}",
            audience.params,
        )
        return [
            PreferenceGroup(
                r["role"], r["channels"], r["opt_out"], r["quiet_hours"],
                frozenset(c for c in channels if r[f"has_{c.value}"]), int(r["n"]),
            )
            for r in rows
        ]

    async def devices_page(
        self, device_class: str, *, after: str, limit: int
    ) -> list[DeviceLocation]:
        """Up to `limit` devices of a class with ids after `after`, by id."""
        rows = await self._db.fetchall(
            "SELECT id, class, zone, building, lat, lon FROM devices"
            " WHERE class = ? AND id > ? ORDER BY id LIMIT ?",
            (device_class, after, limit),
        )
        return [
            DeviceLocation(r["id"], str(r["class"]), r["zone"], r["building"], r["lat"], r["lon"])
            for r in rows
        ]

    async def role_in_use(self, role: str) -> bool:
        """True when someone in the directory has this role."""
        return await self._exists("SELECT id FROM people WHERE role = ? LIMIT 1", role)

    async def building_in_use(self, building: str) -> bool:
        """True when a person or a device in the directory is in this building."""
        return (
            await self._exists("SELECT id FROM people WHERE building = ? LIMIT 1", building)
            or await self._exists("SELECT id FROM devices WHERE building = ? LIMIT 1", building)
        )

    async def attribute_in_use(self, name: str) -> bool:
        """True when someone has an attribute (a group or an imported column) of this name."""
        return await self._exists(
            "SELECT person_id FROM person_attributes WHERE name = ? LIMIT 1", name
        )

    async def roles(self) -> list[str]:
        """Every role someone in the directory has."""
        rows = await self._db.fetchall("SELECT DISTINCT role FROM people")
        return [r["role"] for r in rows]

    async def attribute_names(self) -> list[str]:
        """Every attribute name someone in the directory has."""
        rows = await self._db.fetchall("SELECT DISTINCT name FROM person_attributes")
        return [r["name"] for r in rows]

    async def _exists(self, sql: str, value: str) -> bool:
        return await self._db.fetchone(sql, (value,)) is not None


def _contact(row: Row) -> PersonContact:
    return PersonContact(
        row["id"], row["email"], row["phone"], row["push"], row["role"], row["language"],
        row["channels"], row["opt_out"], row["quiet_hours"],
    )
