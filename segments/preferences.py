"""Per-person delivery preferences (channel order, opt-outs, quiet hours) and the policy over them.

Mandatory alert kinds (emergencies, timely warnings and all-clears by default) ignore quiet
hours for everyone and ignore the opt-outs of people in mandatory roles (those the institution
enrols); opt-in lists such as parents and neighbours keep their opt-outs, because they chose
their channels themselves. Other kinds (advisories) respect every preference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dispatcher.domain import AlertKind, ChannelKind
from segments.settings import DirectorySettings

PERSON_CHANNELS = (ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.VOICE, ChannelKind.EMAIL)
# A voice call rings the same number a text goes to.
ADDRESS_COLUMN = {
    ChannelKind.SMS: "phone",
    ChannelKind.PUSH: "push",
    ChannelKind.VOICE: "phone",
    ChannelKind.EMAIL: "email",
}

NO_ADDRESS = "no_address"
OPT_OUT = "opt_out"
QUIET_HOURS = "quiet_hours"

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in minutes after local midnight, that may wrap past midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`22:00-07:00` into a window; empty text is no window; raises ValueError."""
        text = text.strip()
        if not text:
            return None
        parts = [p.strip() for p in text.split("-")]
        if len(parts) != 2:
            raise ValueError("quiet_hours must look like 22:00-07:00")
        minutes = []
        for part in parts:
            match = _CLOCK.match(part)
            if match is None:
                raise ValueError("quiet_hours must look like 22:00-07:00")
            minutes.append(int(match.group(1)) * 60 + int(match.group(2)))
        if minutes[0] == minutes[1]:
            raise ValueError("quiet_hours must not start and end at the same time")
        return cls(minutes[0], minutes[1])

    def covers(self, minute: int) -> bool:
        """True when the minute of the day falls in the window."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def parse_channels(text: str, *, allow_all: bool = False) -> tuple[ChannelKind, ...]:
    """A `;`-separated list of person channels, in order, without repeats; raises ValueError."""
    out: list[ChannelKind] = []
    for raw in text.replace(",", ";").split(";"):
        name = raw.strip().lower()
        if not name:
            continue
        if allow_all and name == "all":
            return PERSON_CHANNELS
        try:
            channel = ChannelKind(name)
        except ValueError:
            raise ValueError(f"unknown channel {name!r} (sms, push, voice or email)") from None
        if channel.is_device:
            raise ValueError(f"{name!r} is a device channel, not a person's")
        if channel not in out:
            out.append(channel)
    return tuple(out)


Choice = tuple[tuple[ChannelKind, str | None], ...]


class ChannelPolicy:
    """Decides, for one alert, which of a person's channels carry it and which are suppressed."""

    def __init__(
        self,
        settings: DirectorySettings,
        kind: AlertKind,
        channels: Sequence[ChannelKind],
        now_ms: int | None = None,
    ) -> None:
        self._settings = settings
        self.channels = tuple(sorted(
            dict.fromkeys(c for c in channels if c in PERSON_CHANNELS), key=lambda c: c.urgency
        ))
        self._mandatory = kind in settings.mandatory_kinds
        self._limit = 0 if self._mandatory else settings.optional_channels
        now = (
            datetime.now(UTC) if now_ms is None else datetime.fromtimestamp(now_ms / 1000, UTC)
        )
        local = now.astimezone(ZoneInfo(settings.timezone))
        self._minute = local.hour * 60 + local.minute
        self._cache: dict[tuple[str, str, str, str, frozenset[ChannelKind]], Choice] = {}

    def choose(
        self,
        role: str,
        order: str,
        opt_out: str,
        quiet_hours: str,
        reachable: frozenset[ChannelKind],
    ) -> Choice:
        """The person's channels for this alert, in their order, each with a suppression reason."""
        key = (role, order, opt_out, quiet_hours, reachable)
        found = self._cache.get(key)
        if found is None:
            found = self._decide(role, order, opt_out, quiet_hours, reachable)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _decide(
        self,
        role: str,
        order: str,
        opt_out: str,
        quiet_hours: str,
        reachable: frozenset[ChannelKind],
    ) -> Choice:
        # Stored preferences were validated at import; a bad one is ignored rather than
        # allowed to stop an alert.
        try:
            preferred = parse_channels(order)
        except ValueError:
            preferred = ()
        try:
            refused = frozenset(parse_channels(opt_out, allow_all=True))
        except ValueError:
            refused = frozenset()
        try:
            window = QuietHours.parse(quiet_hours)
        except ValueError:
            window = None
        keeps_opt_out = not (self._mandatory and role in self._settings.mandatory_roles)
        quiet = not self._mandatory and window is not None and window.covers(self._minute)
        ordered = [c for c in preferred if c in self.channels]
        ordered += [c for c in self.channels if c not in ordered]
        out: list[tuple[ChannelKind, str | None]] = []
        chosen = 0
        for channel in ordered:
            reason: str | None = None
            if channel not in reachable:
                reason = NO_ADDRESS
            elif keeps_opt_out and channel in refused:
                reason = OPT_OUT
            elif quiet and channel in self._settings.quiet_channels:
                reason = QUIET_HOURS
            if reason is None:
                if self._limit and chosen >= self._limit:
                    # Not a suppressed delivery: the person is reached on a channel they prefer.
                    continue
                chosen += 1
            out.append((channel, reason))
        return tuple(out)
