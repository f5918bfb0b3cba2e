"""The drill schedule with each drill's next times and recent runs, as `GET /v1/drills` and the
console's drills page show it."""

from __future__ import annotations

from dispatcher.clock import Clock
from dispatcher.drills.schedule import describe
from dispatcher.drills.scheduler import DrillScheduler
from dispatcher.views.model import ReadModel


class DrillRunView(ReadModel):
    """One occurrence of a drill: when it was due, whether it fired, and its alert."""

    id: int
    drill: str
    scheduled_for: str
    scheduled_for_ms: int
    source: str
    status: str
    missed: bool
    fired_at: str | None
    alert_id: str | None
    detail: str


class DrillView(ReadModel):
    """A configured drill, its next times (in its time zone) and its recent runs."""

    name: str
    enabled: bool
    cron: str
    timezone: str
    kind: str
    mode: str
    description: str
    announced: bool
    procedures_publicized: bool
    audience: str
    zones: list[str]
    channels: list[str] | None
    template: str | None
    grace_s: int
    next: list[str]
    next_ms: int | None
    recent_runs: list[DrillRunView]


class DrillSchedule(ReadModel):
    """What `GET /v1/drills` returns: the drills, soonest first, then those not scheduled."""

    timezone: str
    grace_s: int
    drills: list[DrillView]


class DrillViews:
    """Reads the schedule and the recent runs of every configured drill."""

    def __init__(self, scheduler: DrillScheduler, clock: Clock) -> None:
        self._scheduler = scheduler
        self._clock = clock

    async def schedule(self, *, recent: int) -> DrillSchedule:
        """Every drill with its next times and its `recent` latest runs."""
        settings = self._scheduler.settings
        now = self._clock.now_ms()
        drills = []
        for name in settings.schedule:
            runs = [r.as_json() for r in await self._scheduler.runs(name, recent)]
            drills.append(DrillView.model_validate(
                {**describe(settings, name, now), "recent_runs": runs}
            ))
        drills.sort(key=lambda d: (d.next_ms is None, d.next_ms or 0, d.name))
        return DrillSchedule(timezone=settings.timezone, grace_s=settings.grace_s, drills=drills)
