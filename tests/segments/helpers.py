"""A small campus in a temporary folder, and ways to fill and query its directory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.database import Database
from segments.audience import AudienceResolver, PlannedDelivery, load_campus
from segments.directory import DirectoryImporter, ImportReport
from segments.settings import DirectorySettings
from segments.synthetic import PUSH_SINK, write_campus

PEOPLE_COLUMNS = (
    "id", "first_name", "last_name", "email", "phone", "push", "role", "building", "campus",
    "language", "groups", "channels", "opt_out", "quiet_hours",
)
# 12:00 and 23:30 on 15 January 2026 in America/New_York (UTC-5).
NOON_MS = int(datetime(2026, 1, 15, 17, 0, tzinfo=UTC).timestamp() * 1000)
LATE_MS = int(datetime(2026, 1, 16, 4, 30, tzinfo=UTC).timestamp() * 1000)
PEOPLE_KINDS = [ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.EMAIL]


def person(person_id: str, **fields: str) -> dict[str, str]:
    """A valid person row; keyword arguments replace or add columns."""
    n = int("".join(ch for ch in person_id if ch.isdigit()) or "0")
    row = {
        "id": person_id,
        "first_name": "Tessa",
        "last_name": f"Quorin{n}",
        "email": f"t.quorin{n}@example.edu",
        "phone": f"+1201555{100 + n % 100:04d}",
        "push": f"{PUSH_SINK}{person_id}",
        "role": "student",
        "building": "north-hall",
        "campus": "",
        "language": "en",
        "groups": "",
        "channels": "",
        "opt_out": "",
        "quiet_hours": "",
    }
    row.update(fields)
    return row


def write_rows(path: Path, rows: Sequence[Mapping[str, str]], columns: Sequence[str] = ()) -> Path:
    """Rows as a CSV file with the given columns (default: every key seen, in order)."""
    header = list(columns) or list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})
    return path


@dataclass
class Campus:
    """The synthetic campus map (zones, buildings, twelve devices) with a store beside it."""

    base: Path
    db: Database
    settings: DirectorySettings = field(default_factory=DirectorySettings)
    files: int = 0

    def with_settings(self, **changes: Any) -> Campus:
        """The same campus and store under other directory settings."""
        raw = self.settings.model_dump(mode="json")
        raw.update(changes)
        return Campus(self.base, self.db, DirectorySettings.model_validate(raw), self.files)

    @property
    def importer(self) -> DirectoryImporter:
        """An importer over this campus."""
        return DirectoryImporter(self.db, self.settings, load_campus(self.settings, self.base))

    @property
    def resolver(self) -> AudienceResolver:
        """A resolver over this campus."""
        return AudienceResolver(self.db, self.settings, self.base)

    def file(self, rows: Sequence[Mapping[str, str]], columns: Sequence[str] = ()) -> Path:
        """Rows written to a new CSV file."""
        self.files += 1
        return write_rows(self.base / f"import-{self.files}.csv", rows, columns)

    async def people(self, rows: Sequence[Mapping[str, str]], **options: Any) -> ImportReport:
        """Import people rows."""
        return await self.importer.import_people(self.file(rows, columns_for(rows)), **options)

    async def devices(self) -> ImportReport:
        """Import the campus's twelve devices."""
        return await self.importer.import_devices(self.base / "devices.csv")

    async def plan(
        self,
        audience: str = "all",
        zones: Sequence[str] = (),
        kind: AlertKind = AlertKind.EMERGENCY,
        channels: Iterable[ChannelKind] = tuple(ChannelKind),
        **options: Any,
    ) -> list[PlannedDelivery]:
        """Every planned delivery, chunks joined."""
        out: list[PlannedDelivery] = []
        async for chunk in self.resolver.plan(audience, zones, kind, list(channels), **options):
            out.extend(chunk)
        return out

    async def recipients(
        self, audience: str = "all", zones: Sequence[str] = (), **options: Any
    ) -> set[str]:
        """Ids of the people and devices an emergency on every channel reaches."""
        return {p.recipient for p in await self.plan(audience, zones, **options)}


def columns_for(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The standard columns first, then any extra column the rows carry."""
    extra = [k for r in rows for k in r if k not in PEOPLE_COLUMNS]
    return [*PEOPLE_COLUMNS, *dict.fromkeys(extra)]


def make_campus_files(base: Path, people: int = 0, devices: int = 12) -> dict[str, Path]:
    """Zones, buildings, devices (and people, if any) of the synthetic campus in `base`."""
    return write_campus(base, people, devices)
