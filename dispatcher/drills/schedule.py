"""The drill schedule: the `[drills]` config models and the cron math that reads them.

Cron expressions have five fields (or a macro such as `@monthly`) read in the drill's time
zone. When both the day of the month and the day of the week are restricted, both must match:
`0 12 1-7 * WED` is noon on the first Wednesday of each month, the usual siren test (classic
cron would fire on each of the first seven days and on every Wednesday).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import Field, ValidationError, field_validator, model_validator

from dispatcher.access.credentials import SettingsModel
from dispatcher.alerting.request import AlertRequest, DrillRecord, problems
from dispatcher.clock import time_zone
from dispatcher.domain import AlertKind, ChannelKind, Mode

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Missed occurrences looked at per drill and per look: a minutely drill after a month down
# would otherwise write tens of thousands of rows.
MAX_MISSED = 100


class ScheduledDrill(SettingsModel):
    """One recurring drill or test: when, what, to whom, and what its Clery record says."""

    cron: str = Field(description='five cron fields or a macro, e.g. "0 12 1-7 * WED"')
    timezone: str | None = Field(default=None, description="default: drills.timezone")
    enabled: bool = Field(default=True, description="false: listed and runnable, not scheduled")
    kind: AlertKind = AlertKind.EMERGENCY
    mode: Mode = Field(default=Mode.DRILL, description="drill (CAP Exercise) or test (CAP Test)")
    template: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    text: str | None = None
    headline: str | None = None
    instruction: str | None = None
    language: str = "en"
    audience: str = "all"
    zones: list[str] = Field(default_factory=list)
    exclude_zones: list[str] = Field(default_factory=list)
    channels: list[ChannelKind] | None = None
    expires_in: int | None = None
    description: str = Field(min_length=1, max_length=2000,
                             description="the exercise, as the Clery record describes it")
    announced: bool = True
    procedures_publicized: bool = False
    grace_s: int | None = Field(
        default=None, ge=0, description="default: drills.grace_s"
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if not (value.startswith("@") or len(value.split()) == 5) or not croniter.is_valid(
            value, hash_id="x"
        ):
            raise ValueError(f"not a cron expression with five fields: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            time_zone(value)
        return value

    @field_validator("mode")
    @classmethod
    def _not_live(cls, value: Mode) -> Mode:
        if value is Mode.LIVE:
            raise ValueError("a scheduled drill is mode 'drill' or 'test', never 'live'")
        return value

    @model_validator(mode="after")
    def _valid_request(self) -> ScheduledDrill:
        try:
            self.request()
        except ValidationError as exc:
            found = "; ".join(f"{p['field']}: {p['message']}" for p in problems(exc))
            raise ValueError(f"not a valid alert: {found}") from None
        return self

    def request(self) -> AlertRequest:
        """The alert request each occurrence sends."""
        return AlertRequest(
            kind=self.kind,
            mode=self.mode,
            text=self.text,
            headline=self.headline,
            instruction=self.instruction,
            language=self.language,
            template=self.template,
            fields=self.fields,
            audience=self.audience,
            zones=self.zones,
            exclude_zones=self.exclude_zones,
            channels=self.channels,
            expires_in=self.expires_in,
            drill=DrillRecord(
                description=self.description,
                announced=self.announced,
                procedures_publicized=self.procedures_publicized,
            ),
        )


class DrillSettings(SettingsModel):
    """The `[drills]` section: the institution's time zone, grace periods, the schedule."""

    timezone: str = Field(
        default="UTC",
        description="the institution's time zone: each drill's default and the report's years",
    )
    grace_s: int = Field(
        default=3600, ge=0, description="a missed occurrence this recent is fired late"
    )
    late_after_s: int = Field(
        default=120, ge=1, description="an occurrence found later than this counts as missed"
    )
    check_s: float = Field(
        default=30.0, gt=0, le=3600, description="longest wait between looks at the schedule"
    )
    lease_s: float = Field(
        default=60.0, gt=0, description="how long a claimed occurrence is held before another "
        "process may take it over"
    )
    qualifying_modes: list[Mode] = Field(
        default_factory=lambda: [Mode.DRILL],
        description="modes that count as the yearly test of the emergency procedures",
    )
    schedule: dict[str, ScheduledDrill] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        time_zone(value)
        return value

    @field_validator("qualifying_modes")
    @classmethod
    def _qualifying(cls, value: list[Mode]) -> list[Mode]:
        if Mode.LIVE in value:
            raise ValueError("real emergencies do not count as tests")
        return value

    @field_validator("schedule")
    @classmethod
    def _names(cls, value: dict[str, ScheduledDrill]) -> dict[str, ScheduledDrill]:
        bad = [n for n in value if not re.match(NAME_PATTERN, n)]
        if bad:
            raise ValueError(
                f"drill names are 1-64 letters, digits, '.', '_' or '-': {', '.join(bad)}"
            )
        return value

    def zone(self, drill: ScheduledDrill | None = None) -> ZoneInfo:
        """A drill's time zone, or the institution's."""
        return time_zone((drill.timezone if drill is not None else None) or self.timezone)

    def grace_ms(self, drill: ScheduledDrill) -> int:
        """How late a missed occurrence of this drill may still be fired."""
        return 1000 * (self.grace_s if drill.grace_s is None else drill.grace_s)


def drill_settings(value: DrillSettings | Mapping[str, Any]) -> DrillSettings:
    """The `[drills]` section as a DrillSettings, whether validated already or still raw."""
    if isinstance(value, DrillSettings):
        return value
    return DrillSettings.model_validate(dict(value))


def iso(ms: int, zone: ZoneInfo | None = None) -> str:
    """Milliseconds since the epoch as ISO 8601 (UTC unless a zone is given)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if zone is not None:
        moment = moment.astimezone(zone)
    return moment.isoformat(timespec="milliseconds")


def _cron(drill: ScheduledDrill, name: str, start: datetime) -> croniter:
    # hash_id: an `H` field spreads each drill to its own minute, the same on every node.
    return croniter(drill.cron, start, day_or=False, hash_id=name)


def occurrences_after(
    name: str, drill: ScheduledDrill, zone: ZoneInfo, after_ms: int, count: int
) -> list[int]:
    """The next `count` scheduled times strictly after `after_ms`."""
    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(zone)
    it = _cron(drill, name, start)
    found: list[int] = []
    while len(found) < count:
        moment: datetime = it.get_next(datetime)
        ms = int(moment.timestamp() * 1000)
        if ms > after_ms:
            found.append(ms)
    return found


def occurrences_between(
    name: str, drill: ScheduledDrill, zone: ZoneInfo, after_ms: int, until_ms: int,
    limit: int = MAX_MISSED,
) -> tuple[list[int], bool]:
    """Scheduled times in (after, until], oldest first: at most the `limit` latest, and
    whether older ones were left out."""
    # Walked backwards from `until` (+1 ms, so an occurrence exactly then is included).
    start = (datetime.fromtimestamp(until_ms / 1000, tz=UTC) + timedelta(milliseconds=1))
    it = _cron(drill, name, start.astimezone(zone))
    found: list[int] = []
    while True:
        moment: datetime = it.get_prev(datetime)
        ms = int(moment.timestamp() * 1000)
        if ms <= after_ms:
            return sorted(found), False
        if len(found) == limit:
            return sorted(found), True
        found.append(ms)


class UnknownDrill(KeyError):
    """No drill of that name in the config."""


def describe(settings: DrillSettings, name: str, now_ms: int, count: int = 3) -> dict[str, Any]:
    """A drill as `GET /v1/drills` and `clarion drill list` show it, without its runs."""
    try:
        drill = settings.schedule[name]
    except KeyError:
        raise UnknownDrill(name) from None
    zone = settings.zone(drill)
    nxt = occurrences_after(name, drill, zone, now_ms, count) if drill.enabled else []
    return {
        "name": name,
        "enabled": drill.enabled,
        "cron": drill.cron,
        "timezone": zone.key,
        "kind": drill.kind.value,
        "mode": drill.mode.value,
        "description": drill.description,
        "announced": drill.announced,
        "procedures_publicized": drill.procedures_publicized,
        "audience": drill.audience,
        "zones": drill.zones,
        "channels": [c.value for c in drill.channels] if drill.channels else None,
        "template": drill.template,
        "grace_s": settings.grace_ms(drill) // 1000,
        "next": [iso(ms, zone) for ms in nxt],
        "next_ms": nxt[0] if nxt else None,
    }
