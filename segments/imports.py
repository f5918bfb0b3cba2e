"""Directory imports that are kept and braked: a file, a scheduled export or an LDAP sync.

Each import is planned before anything is written (`DirectoryImporter.plan_people`). A plan
that would change or remove more than `[directory.safety_brake] max_change_share` of the
people it concerns is **held**: its checked records are kept in the store, nothing in the
directory changes, and a person confirms it (`clarion directory imports confirm ID`, or
`POST /v1/directory/imports/{id}/confirm`) or discards it. So a truncated export, or an LDAP
filter that suddenly matches no one, never empties the alert list. Every import's report is
kept (`clarion directory imports list|show`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import structlog

from dispatcher.clock import Clock
from dispatcher.refusals import Conflict, NotFound
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database
from dispatcher.store.imports import ImportEntry, ImportState, ImportStore
from segments.directory import (
    DirectoryImporter,
    ImportReport,
    PeoplePlan,
    ProgressFn,
    RowOrProblem,
    RowProblem,
)
from segments.settings import DirectorySettings
from segments.zones import CampusMap

log = structlog.get_logger("clarion.directory")


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What became of one import: its kept id, state, report and the share it changes."""

    id: int
    state: ImportState
    report: ImportReport
    share: float

    @property
    def held(self) -> bool:
        """Whether the safety brake held it for a person to confirm."""
        return self.state is ImportState.HELD


class DirectoryImports:
    """Runs people imports through the safety brake and keeps each one's report."""

    def __init__(
        self,
        db: Database,
        settings: DirectorySettings,
        campus: Callable[[], CampusMap],
        *,
        audit: AuditLog,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._campus = campus
        self._audit = audit
        self._clock = clock or Clock()
        self.store = ImportStore(db)

    def _importer(self) -> DirectoryImporter:
        return DirectoryImporter(self._db, self._settings, self._campus())

    async def run(
        self,
        source: str,
        rows: Iterable[RowOrProblem],
        *,
        detail: str = "",
        fingerprint: str = "",
        role: str | None = None,
        remove_missing: bool = False,
        roles: Iterable[str] = (),
        header_row: bool = False,
        skipped: int = 0,
        names: Mapping[int, str] | None = None,
        locate: Mapping[str, str] | None = None,
        brake: bool = True,
        writing: ProgressFn | None = None,
    ) -> ImportOutcome:
        """Plan the rows, then write them, or hold them when the brake says so; kept either
        way. `brake=False` is a person's own confirmation given up front. `names` labels the
        report's problems by entry where rows have no line numbers (LDAP); `locate` maps
        directory columns to a file's own (an export's column map), named in its problems."""
        started = self._clock.now_ms()
        plan = await self._importer().plan_people(
            rows, role=role, remove_missing=remove_missing, roles=roles, header_row=header_row
        )
        plan = _relabel(plan, skipped, names or {}, locate or {})
        limit = self._settings.safety_brake.max_change_share
        if brake and plan.share > limit:
            import_id = await self.store.add(
                source=source, detail=detail, fingerprint=fingerprint, state=ImportState.HELD,
                share=plan.share, report=plan.report.to_json(), started_at=started,
                finished_at=self._clock.now_ms(), plan=plan.to_parts(),
            )
            log.warning(
                "directory.import_held", import_id=import_id, source=source,
                share=round(plan.share, 4), limit=limit, changed=plan.report.changed,
                removed=plan.report.removed,
            )
            return ImportOutcome(import_id, ImportState.HELD, plan.report, plan.share)
        report = await self._importer().apply_people(plan, writing)
        import_id = await self.store.add(
            source=source, detail=detail, fingerprint=fingerprint, state=ImportState.APPLIED,
            share=plan.share, report=report.to_json(), started_at=started,
            finished_at=self._clock.now_ms(),
        )
        log.info(
            "directory.imported", import_id=import_id, source=source, added=report.added,
            changed=report.changed, removed=report.removed, rejected=len(report.rejected),
        )
        return ImportOutcome(import_id, ImportState.APPLIED, report, plan.share)

    async def failed(self, source: str, error: str, *, detail: str = "",
                     fingerprint: str = "") -> int:
        """Keep an import that could not be read at all (a bad file, LDAP unreachable)."""
        now = self._clock.now_ms()
        import_id = await self.store.add(
            source=source, detail=detail, fingerprint=fingerprint, state=ImportState.FAILED,
            share=0.0, report={}, error=error, started_at=now, finished_at=now,
        )
        log.warning("directory.import_failed", import_id=import_id, source=source, error=error)
        return import_id

    async def get(self, import_id: int) -> ImportEntry:
        """One kept import; raises NotFound."""
        entry = await self.store.get(import_id)
        if entry is None:
            raise NotFound(f"no directory import {import_id}")
        return entry

    async def confirm(
        self, import_id: int, *, actor: str, writing: ProgressFn | None = None
    ) -> ImportEntry:
        """Write a held import as it was planned; raises NotFound or Conflict.

        Only the newest import of its source may be confirmed: a newer one already brought
        the directory past it (one that failed to read its source changed nothing).
        """
        entry = await self.get(import_id)
        if entry.state is not ImportState.HELD:
            raise Conflict(f"directory import {import_id} is {entry.state.value}, not held")
        latest = await self.store.latest(entry.source, read=True)
        if latest is not None and latest.id != entry.id:
            raise Conflict(
                f"directory import {latest.id} from {entry.source} came after it;"
                " discard this one"
            )
        parts = await self.store.plan(import_id)
        now = self._clock.now_ms()
        if not parts or not await self.store.decide(
            import_id, ImportState.CONFIRMED, by=actor, at=now
        ):
            raise Conflict(f"directory import {import_id} was decided meanwhile")
        await self._audit.record(
            at=now, actor=actor, action="directory.import_confirmed",
            detail={"import": import_id, "source": entry.source, "share": entry.share},
        )
        try:
            report = await self._importer().apply_people(PeoplePlan.of_parts(parts), writing)
        except Exception as exc:
            await self.store.settle(
                import_id, ImportState.FAILED, report=None, error=f"writing failed: {exc}"
            )
            raise
        await self.store.settle(import_id, ImportState.CONFIRMED, report=report.to_json())
        log.info("directory.import_confirmed", import_id=import_id, source=entry.source,
                 added=report.added, changed=report.changed, removed=report.removed)
        return await self.get(import_id)

    async def discard(self, import_id: int, *, actor: str) -> ImportEntry:
        """Drop a held import without writing it; raises NotFound or Conflict."""
        entry = await self.get(import_id)
        now = self._clock.now_ms()
        if entry.state is not ImportState.HELD or not await self.store.decide(
            import_id, ImportState.DISCARDED, by=actor, at=now
        ):
            raise Conflict(f"directory import {import_id} is {entry.state.value}, not held")
        await self._audit.record(
            at=now, actor=actor, action="directory.import_discarded",
            detail={"import": import_id, "source": entry.source, "share": entry.share},
        )
        await self.store.settle(import_id, ImportState.DISCARDED, report=None)
        log.info("directory.import_discarded", import_id=import_id, source=entry.source)
        return await self.get(import_id)


def _relabel(
    plan: PeoplePlan, skipped: int, names: Mapping[int, str], columns: Mapping[str, str]
) -> PeoplePlan:
    def named(problems: tuple[RowProblem, ...]) -> tuple[RowProblem, ...]:
        out = []
        for problem in problems:
            reason = problem.reason
            # "email is not a valid address" names the directory column: say the file's too.
            theirs = columns.get(reason.split(" ", 1)[0])
            if theirs is not None:
                reason = f"{reason} (column {theirs!r})"
            if problem.row in names:
                reason = f"{names[problem.row]}: {reason}"
            out.append(RowProblem(problem.row, reason))
        return tuple(out)

    report = plan.report
    return replace(plan, report=replace(
        report, skipped=skipped, rejected=named(report.rejected),
        warnings=named(report.warnings),
    ))
