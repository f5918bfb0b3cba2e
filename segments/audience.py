"""Turns an alert's audience into a stream of planned deliveries, devices first.

The audience is one expression (segment terms, named segments, `and`/`or`/`not`) narrowed by
the alert's `zones` and `exclude_zones`, which are rewritten into the same expression
(`(audience) and (zone:z1 or ...) and not (zone:e1 or ...)`) so an exclude is applied exactly
like a `not zone:` term and can never be dropped. People are selected in SQL and read page by
page (keyset on id), never all at once; each person appears once whatever the number of
segments they match, and gets at most one delivery per channel.

Terms about people (role, group, imported columns) select no device, and device terms
(`class:`) select no person; `zone:`, `building:` and `id:` apply to both. So `not role:student`
also sounds every siren, while `role:student` sounds none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.audience import (
    PERSON_TERM_COLUMNS,
    AudienceStore,
    DeviceLocation,
    PeopleFilter,
    PersonContact,
    people_filter,
)
from dispatcher.store.database import Database
from dispatcher.store.directory import DirectoryStore
from segments.directory import DEVICE_CLASSES, GROUP, DirectoryImporter, ImportReport
from segments.expression import And, AudienceError, Everyone, Node, Not, Or, Term, parse, terms
from segments.preferences import ChannelPolicy
from segments.settings import DirectorySettings
from segments.zones import CampusMap, Zone

__all__ = ["AudienceError", "AudienceResolver", "PlannedDelivery"]

log = structlog.get_logger("clarion.audience")

# People read for the first page of a plan; later pages grow to the caller's chunk.
FIRST_PAGE = 250
DEVICE_ROLE = "device"
DEVICE_KEYS = frozenset({"id", "class", "building", "zone"})
BUILT_IN_KEYS = frozenset(PERSON_TERM_COLUMNS) | DEVICE_KEYS | {GROUP}
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One recipient or device on one channel, before it enters the outbox."""

    channel: ChannelKind
    recipient: str
    address: str
    language: str
    role: str
    suppressed: str | None = None


@dataclass(frozen=True, slots=True)
class _Query:
    """A checked audience: the expression with its zones, and its condition over people."""

    node: Node
    people: PeopleFilter


@dataclass(frozen=True, slots=True)
class _Device:
    id: str
    device_class: str
    zone: str
    building: str
    zones: frozenset[str]


def resolve_path(base_dir: Path, path: str) -> Path:
    """A data path from the config, relative to the config file's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def load_campus(settings: DirectorySettings, base_dir: Path) -> CampusMap:
    """The zones and buildings files the settings name."""
    return CampusMap.load(
        resolve_path(base_dir, settings.zones), resolve_path(base_dir, settings.buildings)
    )


class AudienceResolver:
    """Resolves audiences against the directory in the store, streaming in chunks."""

    def __init__(self, db: Database, settings: DirectorySettings, base_dir: Path) -> None:
        self._db = db
        self._store = AudienceStore(db)
        self._settings = settings
        self._base = base_dir
        self._campus: CampusMap | None = None

    @property
    def campus(self) -> CampusMap:
        """The campus map (zones and buildings), read once."""
        if self._campus is None:
            self._campus = load_campus(self._settings, self._base)
        return self._campus

    @property
    def zones(self) -> dict[str, Zone]:
        """Every zone by id (their polygons go into CAP areas)."""
        return self.campus.zones

    async def check(
        self, audience: str, zones: Sequence[str], exclude_zones: Sequence[str] = ()
    ) -> None:
        """Raise AudienceError when the audience cannot be resolved."""
        await self._query(audience, zones, exclude_zones)

    async def plan(
        self,
        audience: str,
        zones: Sequence[str],
        kind: AlertKind,
        channels: Sequence[ChannelKind],
        *,
        exclude_zones: Sequence[str] = (),
        chunk: int = 500,
        now_ms: int | None = None,
        languages: Sequence[str] = (),
    ) -> AsyncIterator[list[PlannedDelivery]]:
        """Planned deliveries in chunks of at most `chunk`: device channels first, then people.

        `languages`, when given, are the languages the alert is written in: a person whose
        language is not among them gets the first. `now_ms` is the clock for quiet hours.
        """
        query = await self._query(audience, zones, exclude_zones)
        chunk = max(1, chunk)
        ordered = sorted(dict.fromkeys(channels), key=lambda c: c.urgency)
        for channel in (c for c in ordered if c.is_device):
            async for devices in self._devices(query, channel, chunk):
                yield [
                    PlannedDelivery(
                        channel, d.id, d.zone, self._settings.default_language, DEVICE_ROLE
                    )
                    for d in devices
                ]
        policy = ChannelPolicy(self._settings, kind, ordered, now_ms)
        if not policy.channels:
            return
        fallback = languages[0] if languages else ""
        async for people in self._people(query, chunk):
            by_channel: dict[ChannelKind, list[PlannedDelivery]] = {c: [] for c in policy.channels}
            for person in people:
                language = person.language or self._settings.default_language
                if fallback and language not in languages:
                    language = fallback
                for channel, reason in policy.choose(
                    person.role, person.channels, person.opt_out, person.quiet_hours,
                    person.reachable,
                ):
                    by_channel[channel].append(PlannedDelivery(
                        channel, person.id, person.address(channel), language, person.role,
                        reason,
                    ))
            planned = [p for c in policy.channels for p in by_channel[c]]
            for start in range(0, len(planned), chunk):
                yield planned[start : start + chunk]

    async def count(
        self,
        audience: str,
        zones: Sequence[str],
        kind: AlertKind,
        channels: Sequence[ChannelKind],
        *,
        exclude_zones: Sequence[str] = (),
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """`{"total", "by_role", "by_channel"}` for what `plan` would produce, without sending.

        `total` is the number of distinct recipients `plan` covers: the people selected (when
        any person channel is asked for) plus the devices selected on the device channels
        asked for. `by_role` splits it by role, devices under "device". `by_channel` counts the
        deliveries `plan` would make on each channel asked for, suppressed ones excluded.
        """
        query = await self._query(audience, zones, exclude_zones)
        # Broadcast targets and webhook subscribers are the channels' own, not the audience's.
        ordered = sorted(
            dict.fromkeys(c for c in channels if not c.is_institutional), key=lambda c: c.urgency
        )
        by_role: Counter[str] = Counter()
        by_channel: Counter[str] = Counter({c.value: 0 for c in ordered})
        for channel in (c for c in ordered if c.is_device):
            async for devices in self._devices(query, channel, 1000):
                by_channel[channel.value] += len(devices)
                by_role[DEVICE_ROLE] += len(devices)
        policy = ChannelPolicy(self._settings, kind, ordered, now_ms)
        if policy.channels:
            # Preferences come in few combinations: decide once per combination, not per person.
            for group in await self._store.preference_groups(query.people, policy.channels):
                by_role[group.role] += group.count
                for channel, reason in policy.choose(
                    group.role, group.channels, group.opt_out, group.quiet_hours, group.reachable
                ):
                    if reason is None:
                        by_channel[channel.value] += group.count
        return {
            "total": sum(by_role.values()),
            "by_role": dict(sorted(by_role.items())),
            "by_channel": dict(by_channel),
        }

    async def load_example(self) -> None:
        """Import the configured people and devices files into an empty store."""
        if not self._settings.import_on_start:
            return
        importer = DirectoryImporter(self._db, self._settings, self.campus)
        directory = DirectoryStore(self._db)
        reports: list[ImportReport] = []
        people = resolve_path(self._base, self._settings.people)
        if people.is_file() and not await directory.has_people():
            reports.append(await importer.import_people(people))
        devices = resolve_path(self._base, self._settings.devices)
        if devices.is_file() and not await directory.has_devices():
            reports.append(await importer.import_devices(devices))
        for report in reports:
            log.info(
                "directory.loaded",
                kind=report.kind,
                added=report.added,
                rejected=len(report.rejected),
                first_rejected_row=report.rejected[0].row if report.rejected else None,
            )

    # -- resolution ---------------------------------------------------------------------------

    async def _query(
        self, audience: str, zones: Sequence[str], exclude_zones: Sequence[str]
    ) -> _Query:
        node = parse(audience, self._settings.segments)
        for term in terms(node):
            await self._check_term(term)
        include = [self._zone_id(z, "zones") for z in zones]
        exclude = [self._zone_id(z, "exclude_zones") for z in exclude_zones]
        parts: list[Node] = [node]
        if include:
            parts.append(Or(tuple(Term("zone", z, 0, "zones") for z in include)))
        if exclude:
            parts.append(Not(Or(tuple(Term("zone", z, 0, "exclude_zones") for z in exclude))))
        full = parts[0] if len(parts) == 1 else And(tuple(parts))
        return _Query(full, people_filter(full, lambda zone: self.campus.buildings_in([zone])))

    def _zone_id(self, raw: str, field: str) -> str:
        zone = raw.strip().lower()
        if zone not in self.campus.zones:
            raise AudienceError(f"{field}: unknown zone {raw!r} (zones: {self._zone_list()})")
        return zone

    def _zone_list(self) -> str:
        return ", ".join(sorted(self.campus.zones)) or "none are configured"

    async def _check_term(self, term: Term) -> None:
        key, value = term.key, term.value
        if key == "zone":
            if value not in self.campus.zones:
                raise AudienceError(
                    f"unknown zone {value!r} {term.where()} (zones: {self._zone_list()})",
                    term.position,
                )
        elif key == "class":
            if value not in {c.value for c in DEVICE_CLASSES}:
                raise AudienceError(
                    f"unknown device class {value!r} {term.where()} "
                    "(siren, signage, pa or desktop)",
                    term.position,
                )
        elif key == "role":
            if value not in self._settings.roles and not await self._store.role_in_use(value):
                raise AudienceError(
                    f"unknown role {value!r} {term.where()} "
                    f"(roles: {', '.join(await self._roles())})",
                    term.position,
                )
        elif key == "building":
            if value not in self.campus.buildings and not await self._store.building_in_use(
                value
            ):
                raise AudienceError(
                    f"unknown building {value!r} {term.where()}", term.position
                )
        elif key == "language":
            if not _LANGUAGE.match(value):
                raise AudienceError(
                    f"language {value!r} {term.where()} is not a code such as en or es",
                    term.position,
                )
        elif key not in BUILT_IN_KEYS and not await self._store.attribute_in_use(key):
            # An unknown key would select no one, and under `not` everyone: refuse it.
            known = sorted(BUILT_IN_KEYS | set(await self._attribute_names()))
            raise AudienceError(
                f"unknown attribute {key!r} {term.where()} (attributes: {', '.join(known)})",
                term.position,
            )

    async def _roles(self) -> list[str]:
        return sorted(set(self._settings.roles) | set(await self._store.roles()))

    async def _attribute_names(self) -> list[str]:
        return [n for n in await self._store.attribute_names() if n != GROUP]

    def _device_matches(self, node: Node, device: _Device) -> bool:
        if isinstance(node, Everyone):
            return True
        if isinstance(node, Not):
            return not self._device_matches(node.inner, device)
        if isinstance(node, And):
            return all(self._device_matches(p, device) for p in node.parts)
        if isinstance(node, Or):
            return any(self._device_matches(p, device) for p in node.parts)
        if node.key == "zone":
            return node.value in device.zones
        if node.key == "class":
            return node.value == device.device_class
        if node.key == "building":
            return node.value == device.building
        if node.key == "id":
            return node.value == device.id
        return False

    async def _devices(
        self, query: _Query, channel: ChannelKind, page: int
    ) -> AsyncIterator[list[_Device]]:
        after = ""
        while True:
            rows = await self._store.devices_page(channel.value, after=after, limit=page)
            if not rows:
                return
            after = rows[-1].id
            matched = [
                d for d in (self._device(r) for r in rows) if self._device_matches(query.node, d)
            ]
            if matched:
                yield matched

    def _device(self, row: DeviceLocation) -> _Device:
        # The zone column is where the device listens; its coordinates place it in any
        # other zone that covers it (a subzone, the whole campus).
        zones = {row.zone, *self.campus.zones_at(row.lat, row.lon)}
        return _Device(row.id, row.device_class, row.zone, row.building, frozenset(zones))

    async def _people(self, query: _Query, page: int) -> AsyncIterator[list[PersonContact]]:
        # Small pages first, so the first messages leave at once; then whole chunks, so a
        # large campus is enqueued in a few transactions.
        after, size = "", min(page, FIRST_PAGE)
        while True:
            rows = await self._store.people_page(query.people, after=after, limit=size)
            if not rows:
                return
            after = rows[-1].id
            size = min(page, size * 4)
            yield rows
