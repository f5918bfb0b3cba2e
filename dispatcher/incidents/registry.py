"""The incident rules: recording (policy-checked), private details, the log, decisions, counts."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError

from dispatcher.access.auth import Caller, Role
from dispatcher.access.permissions import Permissions
from dispatcher.alerting.lint import lint_one
from dispatcher.alerting.request import problems
from dispatcher.clock import Clock
from dispatcher.incidents.calendar import entered_late, entry_deadline, local_date
from dispatcher.incidents.crime_log import CrimeLogPage, entry_of
from dispatcher.incidents.model import (
    Decision,
    Disposition,
    Incident,
    PrivateDetails,
    needs_decision,
)
from dispatcher.incidents.requests import IncidentInput
from dispatcher.incidents.sealing import PrivateSeal
from dispatcher.incidents.settings import IncidentSettings
from dispatcher.incidents.statistics import CrimeStatistics, count
from dispatcher.incidents.warning import draft_request
from dispatcher.places import campus_places
from dispatcher.refusals import Conflict, Invalid, NotFound, PolicyBreach, Problem
from dispatcher.settings import Settings, config_dir
from dispatcher.store.incidents import IncidentStore, StatisticsRequest

log = structlog.get_logger("clarion.incidents")

# The public log's text fields, checked against the confidentiality policy.
PUBLIC_TEXT = ("nature", "location")
PUBLIC_TEXT_MAX = 500
DAY_MS = 86_400_000
YEARS_REPORTED = 3


def incident_settings(settings: Settings) -> IncidentSettings:
    """The `[incidents]` section."""
    section: IncidentSettings = settings.incidents
    return section


@dataclass(frozen=True, slots=True)
class Recorded:
    """An incident as stored, with what staff should know about it."""

    incident: Incident
    late_entry: bool
    entry_due: str
    decision: Decision | None


class IncidentRegistry:
    """Records incidents and everything the Clery Act asks to show about them later."""

    def __init__(
        self, settings: Settings, store: IncidentStore, clock: Clock, permissions: Permissions
    ) -> None:
        self.settings = settings
        self.permissions = permissions
        self.config = incident_settings(settings)
        self.store = store
        self.clock = clock
        self.zone = ZoneInfo(self.config.timezone or settings.drills.timezone)
        self.seal = PrivateSeal.from_settings(self.config, settings.store.url)
        self._places = campus_places(settings)
        self._holidays = frozenset(self.config.holidays)

    # Recording

    def confidentiality(self, fields: dict[str, str]) -> list[dict[str, Any]]:
        """Every confidentiality violation in the public fields, each naming its field."""
        found = []
        for name, text in fields.items():
            verdict = lint_one({"kind": "advisory", "text": text}, self.settings,
                               places=self._places)
            for v in verdict["violations"]:
                if v["rule"].startswith("confidentiality.") and v.get("severity") == "error":
                    found.append({**v, "field": name})
        return found

    def _ms(self, moment: datetime | None) -> int | None:
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return int(moment.timestamp() * 1000)

    async def record(
        self, body: Any, caller: Caller, *, entered_at: int | None = None, audited: bool = True
    ) -> Recorded:
        """Validate, check the public text, seal the private details and store the incident."""
        try:
            given = IncidentInput.model_validate(body)
        except ValidationError as exc:
            raise Invalid([Problem(p["field"], p["message"]) for p in problems(exc)]) from None
        violations = self.confidentiality({f: getattr(given, f) for f in PUBLIC_TEXT})
        if violations:
            raise PolicyBreach(violations)
        now = self.clock.now_ms()
        entered = now if entered_at is None else entered_at
        reported = self._ms(given.reported_at)
        assert reported is not None
        start, end = self._ms(given.occurred_from), self._ms(given.occurred_to)
        wrong = []
        if reported > now + 60_000:
            wrong.append(Problem("reported_at", "is in the future"))
        if start is not None and start > reported:
            wrong.append(Problem("occurred_from", "is after the crime was reported"))
        if start is not None and end is not None and end < start:
            wrong.append(Problem("occurred_to", "is before occurred_from"))
        if wrong:
            raise Invalid(wrong)
        details = PrivateDetails(
            victim=given.victim.as_dict() if given.victim else {},
            reporter=given.reporter.as_dict() if given.reporter else {},
        )
        incident = Incident(
            id=f"inc_{secrets.token_hex(6)}",
            reported_at=reported, occurred_from=start, occurred_to=end, entered_at=entered,
            location=given.location, geography=given.geography, category=given.category,
            bias=given.bias, nature=given.nature, disposition=given.disposition,
            source=given.source, created_by=caller.name, has_private=not details.empty,
        )
        decision = needs_decision(incident.category, incident.bias, incident.geography)
        await self.store.insert(
            incident, None if details.empty else self.seal.seal(details), decision=decision,
            case_year=local_date(reported, self.zone).year, audited=audited,
        )
        log.info("incident.recorded", incident=incident.id, decision_opened=decision,
                 geography=incident.geography.value)
        found = await self.get(incident.id)
        assert found is not None
        return found

    async def get(self, incident_id: str) -> Recorded | None:
        """An incident with its entry deadline and decision."""
        incident = await self.store.get(incident_id)
        if incident is None:
            return None
        return await self._recorded(incident)

    async def _recorded(self, incident: Incident) -> Recorded:
        due = entry_deadline(local_date(incident.reported_at, self.zone),
                             self.config.entry_business_days, self._holidays)
        late = entered_late(incident.reported_at, incident.entered_at, zone=self.zone,
                            business_days=self.config.entry_business_days,
                            holidays=self._holidays)
        return Recorded(incident, late, due.isoformat(), await self.store.decision(incident.id))

    async def require(self, incident_id: str) -> Incident:
        """The incident, or NotFound."""
        incident = await self.store.get(incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        return incident

    def document(self, recorded: Recorded) -> dict[str, Any]:
        """What staff see of an incident (never its private details)."""
        doc = recorded.incident.as_json()
        doc["late_entry"] = recorded.late_entry
        doc["entry_due"] = recorded.entry_due
        doc["decision"] = (
            None if recorded.decision is None
            else recorded.decision.as_json(overdue_after_ms=self.config.decision_overdue_s * 1000,
                                           now_ms=self.clock.now_ms())
        )
        doc["warnings"] = self.warnings(recorded)
        return doc

    def warnings(self, recorded: Recorded) -> list[str]:
        """What a compliance officer should act on for this incident."""
        out = []
        if recorded.late_entry:
            out.append(f"entered in the crime log after it was due ({recorded.entry_due}, "
                       f"{self.config.entry_business_days} business days after the report)")
        d = recorded.decision
        if d is not None and d.open and (
            self.clock.now_ms() - d.opened_at > self.config.decision_overdue_s * 1000
        ):
            out.append("the timely-warning decision is overdue")
        return out

    async def listing(self, days: int) -> list[Recorded]:
        """Incidents reported in the last `days` days, newest first (held ones too)."""
        now = self.clock.now_ms()
        found = await self.store.between(now - days * DAY_MS, now + DAY_MS)
        return [await self._recorded(i) for i in found]

    # Private details

    async def private(self, incident_id: str, caller: Caller) -> PrivateDetails:
        """The victim and reporter details, for allowed roles; every attempt is audited."""
        await self.require(incident_id)
        allowed = self.permissions.may_read_incident_private(caller)
        await self.store.audit_private(incident_id, actor=caller.name, at=self.clock.now_ms(),
                                       allowed=allowed, role=caller.role.value)
        self.permissions.check_read_incident_private(caller)
        sealed = await self.store.sealed(incident_id)
        return PrivateDetails() if sealed is None else self.seal.open(sealed)

    # Disposition and holding back

    async def set_disposition(
        self, incident_id: str, disposition: Disposition, caller: Caller, note: str = ""
    ) -> None:
        """Change the disposition; the old one stays in the history."""
        await self.require(incident_id)
        await self.store.set_disposition(incident_id, disposition, actor=caller.name,
                                         at=self.clock.now_ms(), note=note)

    async def correct(
        self, incident_id: str, *, nature: str, location: str, caller: Caller
    ) -> None:
        """Correct an entry's public text (nature, location), checked as when recorded."""
        await self.require(incident_id)
        given = {"nature": nature.strip(), "location": location.strip()}
        wrong = [Problem(name, f"between 1 and {PUBLIC_TEXT_MAX} characters")
                 for name, text in given.items() if not 1 <= len(text) <= PUBLIC_TEXT_MAX]
        if wrong:
            raise Invalid(wrong)
        violations = self.confidentiality(given)
        if violations:
            raise PolicyBreach(violations)
        await self.store.correct(incident_id, nature=given["nature"],
                                 location=given["location"], actor=caller.name,
                                 at=self.clock.now_ms())

    async def hold(self, incident_id: str, reason: str, caller: Caller) -> None:
        """Hold an entry back from the public log with the reason on file."""
        incident = await self.require(incident_id)
        if incident.held:
            raise Conflict(f"incident {incident_id} is already held back")
        await self.store.hold(incident_id, reason=reason, actor=caller.name,
                              at=self.clock.now_ms())

    async def release(self, incident_id: str, caller: Caller) -> None:
        """Release a held entry to the public log."""
        incident = await self.require(incident_id)
        if not incident.held:
            raise Conflict(f"incident {incident_id} is not held back")
        await self.store.release(incident_id, actor=caller.name, at=self.clock.now_ms())

    # The timely-warning decision

    async def decide(
        self, incident_id: str, *, warn: bool, reasons: str, caller: Caller
    ) -> dict[str, Any] | None:
        """Close the decision; for a warning, the alert request body to send."""
        incident = await self.require(incident_id)
        self.permissions.check_decide_incident(caller)
        decision = await self.store.decision(incident_id)
        if decision is None:
            raise Conflict(f"incident {incident_id} needs no timely-warning decision "
                           "(not a Clery crime on Clery geography)")
        closed = await self.store.decide(incident_id, warn=warn, reasons=reasons,
                                         actor=caller.name, at=self.clock.now_ms())
        if not closed:
            raise Conflict(f"the decision on incident {incident_id} was already made")
        log.info("incident.decided", incident=incident_id, warn=warn)
        if not warn:
            return None
        return draft_request(incident, self.zone, self.settings.templates_dir())

    async def overdue(self) -> list[Decision]:
        """Open decisions older than the configured time, oldest first."""
        cutoff = self.clock.now_ms() - self.config.decision_overdue_s * 1000
        return await self.store.open_decisions(cutoff)

    # The public log

    async def public_page(self, page: int) -> CrimeLogPage:
        """Page 1 is the last `public_days` days; page 2 the span before it, and so on."""
        days = self.config.public_days
        today = local_date(self.clock.now_ms(), self.zone)
        last = today - timedelta(days=days * (page - 1))
        first = last - timedelta(days=days - 1)
        start, end = self._day_ms(first), self._day_ms(last + timedelta(days=1))
        found = await self.store.between(start, end, public=True)
        older = await self.store.between(0, start, public=True, limit=1)
        return CrimeLogPage(
            institution=self.settings.service.institution,
            first_day=first.isoformat(), last_day=last.isoformat(), page=page,
            has_older=bool(older), entries=tuple(entry_of(i, self.zone) for i in found),
        )

    def _day_ms(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp() * 1000)

    # The example

    async def seed_example(self) -> int:
        """Load the example incidents into an empty store; returns how many were added."""
        if not self.config.seed_example or await self.store.count():
            return 0
        path = self.settings.resolve(self.config.example_file)
        if not path.is_file():
            path = config_dir() / self.config.example_file
        if not path.is_file():
            return 0
        examples = json.loads(path.read_text(encoding="utf-8"))
        now = self.clock.now_ms()
        if not await self.store.take_example_load(self.config.example_file, now):
            return 0  # another node starting on the same empty store loads them
        today = datetime.fromtimestamp(now / 1000, tz=self.zone).replace(
            minute=0, second=0, microsecond=0)
        caller = Caller("example", Role.ADMIN)
        for example in examples:
            item = dict(example)
            reported = today.replace(hour=int(item.pop("hour"))) - timedelta(
                days=int(item.pop("reported_days_ago")))
            before = item.pop("occurred_hours_before", None)
            later = item.pop("disposition_later", None)
            item["reported_at"] = reported.isoformat()
            if before is not None:
                item["occurred_from"] = (reported - timedelta(hours=float(before))).isoformat()
            entered = reported + timedelta(hours=float(item.pop("entered_after_hours", 1)))
            # Example data, not anybody's decision: kept out of the audit log.
            recorded = await self.record(item, caller, audited=False,
                                         entered_at=min(now, int(entered.timestamp() * 1000)))
            if later is not None:
                await self.store.set_disposition(recorded.incident.id, Disposition(later),
                                                 actor=caller.name, at=now, note="",
                                                 audited=False)
        log.info("incidents.example_loaded", incidents=len(examples))
        return len(examples)

    # Annual Security Report

    async def statistics(self, year: int) -> CrimeStatistics:
        """Counts for `year` and the two calendar years before it."""
        years = tuple(range(year - YEARS_REPORTED + 1, year + 1))
        start = self._day_ms(date(years[0], 1, 1))
        # The day after 31 December (date(10000, 1, 1) does not exist).
        end = self._day_ms(date(year, 12, 31)) + 86_400_000
        incidents = await self.store.between(start, end, limit=10_000_000)
        return count(incidents, years, self.zone)

    async def statistics_requests(self, year: int) -> list[StatisticsRequest]:
        """The requests to local law enforcement for the three years' statistics."""
        return await self.store.statistics_requests(
            tuple(range(year - YEARS_REPORTED + 1, year + 1))
        )

    async def report_section(self, year: int) -> dict[str, Any]:
        """The yearly report's part about crimes: statistics and requests to local police."""
        stats = await self.statistics(year)
        return {
            "crime_statistics": stats.as_json(),
            "law_enforcement_requests": [
                r.as_json() for r in await self.statistics_requests(year)
            ],
            "timely_warning_decisions": await self.decisions_of(year),
        }

    async def decisions_of(self, year: int) -> list[dict[str, Any]]:
        """Each incident of `year` that needed a timely-warning decision: what was reported,
        what was decided, by whom and when, and the alerts sent for it (no private field)."""
        start = self._day_ms(date(year, 1, 1))
        end = self._day_ms(date(year, 12, 31)) + 86_400_000
        found = []
        for incident in reversed(await self.store.between(start, end, limit=10_000_000)):
            decision = await self.store.decision(incident.id)
            if decision is None:
                continue
            found.append({
                "incident_id": incident.id,
                "reported_at": incident.reported_at,
                "category": None if incident.category is None else incident.category.value,
                "geography": incident.geography.value,
                "nature": incident.nature,
                "location": incident.location,
                "decision": "open" if decision.open else (
                    "warn" if decision.warn else "no_warning"),
                "decided_by": decision.decided_by,
                "decided_at": decision.decided_at,
                "reasons": decision.reasons,
                "alerts": await self.store.alerts(incident.id),
            })
        return found

