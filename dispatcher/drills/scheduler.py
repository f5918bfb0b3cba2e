"""Scheduled drills: cron expressions in the config, each occurrence sent once through intake.

An occurrence (a drill's name and its scheduled time) is claimed in `drill_runs` with
INSERT ... ON CONFLICT DO NOTHING before anything is sent, so it fires once however many
processes share the store and however often they restart. The alert's Idempotency-Key,
`drill:<name>:<scheduled time, ISO 8601 UTC>`, guards the send a second time: a claim whose
holder died before it recorded the outcome is taken over and submitted again, and intake then
returns the alert that was already made instead of making another.

How far each schedule has been looked at is kept in `drill_schedule`, so the occurrences that
passed while no process was running are found at the next start: each is reported as missed
(a warning in the log and a `drill_runs` row marked missed), the latest is fired late when it
is within the grace period, and the others are recorded as skipped.

The schedule itself (the `[drills]` config models and the cron math) is in
`dispatcher/drills/schedule.py`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from dispatcher.access.auth import Caller, Role
from dispatcher.alerting.intake import Held, Intake
from dispatcher.alerting.request import DrillRecord
from dispatcher.alerting.templates import TemplateError, expand
from dispatcher.clock import Clock
from dispatcher.drills.schedule import (
    DrillSettings,
    ScheduledDrill,
    UnknownDrill,
    drill_settings,
    iso,
    occurrences_after,
    occurrences_between,
)
from dispatcher.refusals import Refused
from dispatcher.store.alerts import IdempotencyConflict
from dispatcher.store.database import Database
from dispatcher.store.drill_runs import DrillRun, DrillRunStore, RunSource, RunStatus

__all__ = [
    "SCHEDULER_NAME",
    "DrillRun",
    "DrillScheduler",
    "ManualRun",
    "RunSource",
    "RunStatus",
    "idempotency_key",
    "recent_runs",
]

log = structlog.get_logger("clarion.scheduler")

SCHEDULER_NAME = "scheduler"
# Attempts at a free millisecond for a manual run (two runs in one millisecond).
MANUAL_ATTEMPTS = 5


async def recent_runs(db: Database, name: str | None = None, limit: int = 10) -> list[DrillRun]:
    """Recent runs in a store, newest first: of one drill, or of all."""
    return await DrillRunStore(db).recent(name, limit)


def idempotency_key(name: str, scheduled_for: int) -> str:
    """The Idempotency-Key of one occurrence: `drill:<name>:<scheduled time ISO UTC>`."""
    return f"drill:{name}:{iso(scheduled_for)}"


@dataclass(frozen=True, slots=True)
class ManualRun:
    """A run asked for now: its record, and the held request when it waits for approval."""

    run: DrillRun
    held: Held | None = None


class DrillScheduler:
    """Fires the configured drills on time, once each, and keeps the record of every run."""

    def __init__(
        self,
        settings: DrillSettings | Mapping[str, Any],
        *,
        db: Database,
        intake: Intake,
        clock: Clock,
        single_node: bool,
        templates_dir: Path | None = None,
    ) -> None:
        self.settings = drill_settings(settings)
        self._runs = DrillRunStore(db)
        self._intake = intake
        self._clock = clock
        self._single_node = single_node
        self._templates_dir = templates_dir
        self.owner = f"scheduler-{secrets.token_hex(4)}"
        self._caller = Caller(SCHEDULER_NAME, Role.DRILL)
        self._watermarks: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # The first look after a start on a store only this process uses takes over every
        # open claim at once: they can only be a dead process's.
        self._fresh = True

    # -- reading -------------------------------------------------------------------------------

    def drill(self, name: str) -> ScheduledDrill:
        """A configured drill by name; raises UnknownDrill."""
        try:
            return self.settings.schedule[name]
        except KeyError:
            raise UnknownDrill(name) from None

    async def runs(self, name: str | None = None, limit: int = 10) -> list[DrillRun]:
        """Recent runs, newest first: of one drill, or of all."""
        return await self._runs.recent(name, limit)

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load how far each schedule was looked at, then look now and keep looking."""
        self._check_templates()
        await self._load_watermarks()
        if self.settings.schedule:
            # The first look happens before start returns: what was missed while no process
            # ran is reported (and fired late, or skipped) as part of starting.
            await self._look()
            self._task = asyncio.create_task(self._loop(), name="drill-scheduler")
            log.info(
                "drill.scheduler_started",
                drills=sorted(n for n, d in self.settings.schedule.items() if d.enabled),
            )

    async def stop(self) -> None:
        """Stop looking; a run cut short is taken over at the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._pause_s())
            await self._look()

    async def _look(self) -> None:
        try:
            await self.tick()
        except Exception as exc:
            # The store may be away for a moment: look again at the next pause.
            log.error("drill.tick_failed", error=type(exc).__name__, detail=str(exc))

    def _pause_s(self) -> float:
        """Until the next occurrence of any enabled drill, at most check_s."""
        now = self._clock.now_ms()
        pause = self.settings.check_s
        for name, drill in self.settings.schedule.items():
            if drill.enabled:
                after = max(self._watermarks.get(name, now), now)
                nxt = occurrences_after(name, drill, self.settings.zone(drill), after, 1)[0]
                pause = min(pause, (nxt - now) / 1000)
        return max(pause, 0.01)

    async def tick(self) -> list[DrillRun]:
        """Look at the schedule once: fire what is due, report what was missed."""
        async with self._lock:
            now = self._clock.now_ms()
            runs = await self._take_over(now)
            for name, drill in self.settings.schedule.items():
                since = self._watermarks.get(name, now)
                if drill.enabled and now > since:
                    runs.extend(await self._due(name, drill, since, now))
                await self._advance(name, now)
            return runs

    async def run_now(
        self, name: str, caller: Caller, record: DrillRecord | None = None
    ) -> ManualRun:
        """Fire a drill now, on behalf of `caller` (`clarion drill run NAME`), with the Clery
        record the person gave (else the configured one).

        Raises UnknownDrill, or intake's refusal after the run was recorded with its outcome.
        """
        drill = self.drill(name)
        if record is not None:
            drill = drill.model_copy(update={
                "description": record.description, "announced": record.announced,
                "procedures_publicized": record.procedures_publicized,
            })
        now = self._clock.now_ms()
        for attempt in range(MANUAL_ATTEMPTS):
            run_id = await self._claim(
                name, now + attempt, RunSource.MANUAL, RunStatus.PENDING, False, now
            )
            if run_id is not None:
                run, outcome = await self._submit(
                    run_id, name, drill, now + attempt, missed=False, caller=caller
                )
                if isinstance(outcome, Refused):
                    raise outcome
                return ManualRun(run, outcome)
        raise RuntimeError(f"no free moment to record a run of drill {name!r}")

    # -- the schedule --------------------------------------------------------------------------

    async def _due(
        self, name: str, drill: ScheduledDrill, since: int, now: int
    ) -> list[DrillRun]:
        slots, truncated = occurrences_between(
            name, drill, self.settings.zone(drill), since, now
        )
        if truncated:
            log.warning("drill.missed_truncated", drill=name, since=iso(since), kept=len(slots))
        late_after = 1000 * self.settings.late_after_s
        grace = self.settings.grace_ms(drill)
        runs: list[DrillRun] = []
        for position, slot in enumerate(slots):
            lateness = now - slot
            if lateness <= late_after:
                run = await self._fire(name, drill, slot, missed=False)
            elif position < len(slots) - 1:
                run = await self._skip(name, slot, now, "superseded by a later occurrence")
            elif lateness > grace:
                run = await self._skip(
                    name, slot, now, f"missed by {lateness // 1000} s, past the grace period "
                    f"of {grace // 1000} s"
                )
            else:
                run = await self._fire(name, drill, slot, missed=True)
            if run is not None:
                runs.append(run)
        return runs

    async def _fire(
        self, name: str, drill: ScheduledDrill, slot: int, *, missed: bool
    ) -> DrillRun | None:
        now = self._clock.now_ms()
        status = RunStatus.MISSED if missed else RunStatus.PENDING
        run_id = await self._claim(name, slot, RunSource.SCHEDULE, status, missed, now)
        if run_id is None:
            log.debug("drill.claimed_elsewhere", drill=name, scheduled_for=iso(slot))
            return None
        if missed:
            log.warning("drill.missed", drill=name, scheduled_for=iso(slot),
                        late_s=(now - slot) // 1000, action="fire_late")
        run, _refused = await self._submit(run_id, name, drill, slot, missed=missed,
                                           caller=self._caller)
        return run

    async def _skip(self, name: str, slot: int, now: int, reason: str) -> DrillRun | None:
        run_id = await self._claim(name, slot, RunSource.SCHEDULE, RunStatus.SKIPPED, True, now)
        if run_id is None:
            return None
        await self._runs.set_detail(run_id, reason)
        log.warning("drill.missed", drill=name, scheduled_for=iso(slot),
                    late_s=(now - slot) // 1000, action="skip")
        log.warning("drill.skipped", drill=name, scheduled_for=iso(slot), reason=reason)
        return await self._runs.get(run_id)

    async def _claim(
        self, name: str, slot: int, source: RunSource, status: RunStatus, missed: bool, now: int
    ) -> int | None:
        """Insert the occurrence's row; None when another process (or run) has it."""
        return await self._runs.claim(
            name, slot, source=source, status=status, missed=missed, owner=self.owner,
            now_ms=now, lease_until=now + int(self.settings.lease_s * 1000),
        )

    async def _submit(
        self,
        run_id: int,
        name: str,
        drill: ScheduledDrill,
        slot: int,
        *,
        missed: bool,
        caller: Caller,
    ) -> tuple[DrillRun, Refused | Held | None]:
        """Send the occurrence through intake and record what came of it."""
        key = idempotency_key(name, slot)
        outcome: Refused | Held | None = None
        alert_id: str | None = None
        try:
            accepted = await self._intake.submit(drill.request(), caller, idempotency_key=key)
        except IdempotencyConflict as exc:
            # The key was used: this occurrence's alert exists (the drill's config changed
            # between a claim and its takeover).
            alert_id = exc.alert_id
            status = RunStatus.FIRED_LATE if missed else RunStatus.FIRED
            detail = "already sent before an interruption"
        except Refused as exc:
            outcome = exc
            status, detail = RunStatus.FAILED, exc.summary()[:2000]
        else:
            if isinstance(accepted, Held):
                outcome = accepted
                status, detail = RunStatus.HELD, f"waiting for approval {accepted.record.id}"
            else:
                alert_id = accepted.id
                status = RunStatus.FIRED_LATE if missed else RunStatus.FIRED
                detail = "" if accepted.created else "already sent before an interruption"
        now = self._clock.now_ms()
        await self._runs.record_outcome(
            run_id, status, alert_id=alert_id, fired_at=now if alert_id else None, detail=detail
        )
        event = {
            RunStatus.FIRED: "drill.fired",
            RunStatus.FIRED_LATE: "drill.fired_late",
            RunStatus.HELD: "drill.held",
            RunStatus.FAILED: "drill.failed",
        }[status]
        emit = log.error if status is RunStatus.FAILED else log.info
        emit(event, drill=name, scheduled_for=iso(slot), alert_id=alert_id, actor=caller.name,
             detail=detail or None)
        run = await self._runs.get(run_id)
        return run, outcome

    async def _take_over(self, now: int) -> list[DrillRun]:
        """Claims whose holder died before recording an outcome: finish them, once."""
        until = now + int(self.settings.lease_s * 1000)
        # On a store only this process uses, every open claim at start is a dead process's.
        expired_before = 2**62 if (self._single_node and self._fresh) else now
        self._fresh = False
        taken_over = await self._runs.take_over(
            owner=self.owner, lease_until=until, expired_before=expired_before
        )
        runs: list[DrillRun] = []
        for taken in taken_over:
            log.warning("drill.run_taken_over", drill=taken.drill,
                        scheduled_for=iso(taken.scheduled_for), source=taken.source.value)
            runs.append(await self._finish_taken(taken, now))
        return runs

    async def _finish_taken(self, taken: DrillRun, now: int) -> DrillRun:
        key = idempotency_key(taken.drill, taken.scheduled_for)
        existing = await self._runs.alert_made_with(key)
        drill = self.settings.schedule.get(taken.drill)
        if existing is not None:
            status = RunStatus.FIRED_LATE if taken.missed else RunStatus.FIRED
            return await self._settle(taken, status, existing, "sent before an interruption")
        if taken.source is RunSource.MANUAL:
            return await self._settle(taken, RunStatus.FAILED, None,
                                      "interrupted before it was sent; run it again")
        if drill is None:
            return await self._settle(taken, RunStatus.FAILED, None,
                                      "the drill is no longer in the config")
        lateness = now - taken.scheduled_for
        missed = taken.missed or lateness > 1000 * self.settings.late_after_s
        if lateness > self.settings.grace_ms(drill):
            log.warning("drill.skipped", drill=taken.drill,
                        scheduled_for=iso(taken.scheduled_for), reason="past the grace period")
            return await self._settle(
                taken, RunStatus.SKIPPED, None,
                f"interrupted, then past the grace period ({lateness // 1000} s late)",
            )
        run, _refused = await self._submit(
            taken.id, taken.drill, drill, taken.scheduled_for, missed=missed, caller=self._caller
        )
        return run

    async def _settle(
        self, run: DrillRun, status: RunStatus, alert_id: str | None, detail: str
    ) -> DrillRun:
        await self._runs.settle(
            run.id, status, alert_id=alert_id, detail=detail,
            fired_at=self._clock.now_ms() if alert_id else None,
        )
        return await self._runs.get(run.id)

    # -- how far the schedule was looked at ----------------------------------------------------

    async def _load_watermarks(self) -> None:
        stored = await self._runs.watermarks()
        now = self._clock.now_ms()
        for name in self.settings.schedule:
            if name in stored:
                self._watermarks[name] = stored[name]
            else:
                # A drill new to this store: nothing of it can have been missed yet.
                self._watermarks[name] = now
                await self._advance(name, now)

    async def _advance(self, name: str, now: int) -> None:
        """Everything up to `now` has been looked at (never moves back: clocks differ)."""
        self._watermarks[name] = max(self._watermarks.get(name, now), now)
        await self._runs.advance(name, self._watermarks[name])

    def _check_templates(self) -> None:
        """Say at start, not at the first occurrence, when a drill names a missing template."""
        if self._templates_dir is None:
            return
        for name, drill in self.settings.schedule.items():
            if drill.template is None:
                continue
            try:
                expand(drill.request(), self._templates_dir)
            except TemplateError as exc:
                log.error("drill.misconfigured", drill=name, detail=str(exc))
