"""Turns an alert's audience into a stream of planned deliveries, devices first."""

from __future__ import annotations

import csv
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.database import Database
from segments.settings import DirectorySettings

log = structlog.get_logger("clarion.audience")


class AudienceError(ValueError):
    """The audience expression or zones cannot be resolved; the message says where and why."""


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One recipient or device on one channel, before it enters the outbox."""

    channel: ChannelKind
    recipient: str
    address: str
    language: str
    role: str
    suppressed: str | None = None


_PERSON_ADDRESS = {ChannelKind.EMAIL: "email", ChannelKind.SMS: "phone", ChannelKind.PUSH: "push"}


class AudienceResolver:
    """Resolves audiences against the directory in the store, streaming in chunks."""

    def __init__(self, db: Database, settings: DirectorySettings, base_dir: Path) -> None:
        self._db = db
        self._settings = settings
        self._base = base_dir

    async def check(self, audience: str, zones: Sequence[str]) -> None:
        """Raise AudienceError when the audience cannot be resolved."""
        if audience.strip() != "all":
            raise AudienceError(f"audience {audience!r}: only 'all' is supported")

    async def plan(
        self,
        audience: str,
        zones: Sequence[str],
        kind: AlertKind,
        channels: Sequence[ChannelKind],
        *,
        chunk: int = 500,
    ) -> AsyncIterator[list[PlannedDelivery]]:
        """Planned deliveries in chunks: device channels first, then people by urgency."""
        await self.check(audience, zones)
        ordered = sorted(channels, key=lambda c: c.urgency)
        for channel in (c for c in ordered if c.is_device):
            rows = await self._db.fetchall(
                "SELECT id FROM devices WHERE class = ? ORDER BY id", (channel.value,)
            )
            for start in range(0, len(rows), chunk):
                yield [
                    PlannedDelivery(channel, r["id"], r["id"], "en", "device")
                    for r in rows[start : start + chunk]
                ]
        people = [c for c in ordered if not c.is_device]
        if not people:
            return
        after = ""
        while True:
            rows = await self._db.fetchall(
                "SELECT id, email, phone, push, role, language FROM people "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, chunk),
            )
            if not rows:
                return
            after = rows[-1]["id"]
            planned = []
            for channel in people:
                column = _PERSON_ADDRESS[channel]
                for r in rows:
                    if r[column]:
                        planned.append(
                            PlannedDelivery(channel, r["id"], r[column], r["language"], r["role"])
                        )
            yield planned

    async def load_example(self) -> None:
        """Import the configured people and devices files into an empty store."""
        if not self._settings.import_on_start:
            return
        if await self._db.fetchval("SELECT COUNT(*) FROM people"):
            return
        now = int(time.time() * 1000)
        people = self._base / self._settings.people
        with people.open(newline="", encoding="utf-8") as fh:
            rows = [
                (
                    r["id"], r["first_name"], r["last_name"], r["email"], r["phone"],
                    r.get("push", ""), r["role"], r["building"], r["campus"],
                    r["language"] or "en", r["groups"], now,
                )
                for r in csv.DictReader(fh)
            ]
        await self._db.executemany(
            "INSERT INTO people (id, first_name, last_name, email, phone, push, role, building,"
            " campus, language, groups, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        devices = self._base / self._settings.devices
        with devices.open(newline="", encoding="utf-8") as fh:
            drows = [
                (r["id"], r["class"], r["zone"], r["building"], float(r["lat"]), float(r["lon"]), now)
                for r in csv.DictReader(fh)
            ]
        await self._db.executemany(
            "INSERT INTO devices (id, class, zone, building, lat, lon, updated_at)"
            " VALUES (?,?,?,?,?,?,?)",
            drows,
        )
        log.info("directory.loaded", people=len(rows), devices=len(drows))
