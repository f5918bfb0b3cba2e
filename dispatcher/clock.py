"""Time, read in one place so tests can control it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock:
    """Wall-clock milliseconds since the epoch."""

    def now_ms(self) -> int:
        """The current time."""
        return int(time.time() * 1000)

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)


def time_zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; a ValueError naming it when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name like America/New_York)"
        ) from None
