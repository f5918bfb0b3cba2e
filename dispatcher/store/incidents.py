"""The incident tables: every SQL statement the incidents package runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatcher.incidents.model import (
    Bias,
    Category,
    Decision,
    Disposition,
    DispositionChange,
    Geography,
    Incident,
    Source,
)
from dispatcher.refusals import Invalid
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row, Session

# An incident in one of these takes no more alerts: the case is over, or was no crime.
CLOSED_DISPOSITIONS = (Disposition.CLOSED, Disposition.UNFOUNDED)


def incident_refusal(incident_id: str, disposition: Disposition | None) -> Invalid | None:
    """Why an alert may not name this incident (unknown or closed), or None when it may."""
    if disposition is None:
        return Invalid.one("incident", f"no incident {incident_id}")
    if disposition in CLOSED_DISPOSITIONS:
        return Invalid.one(
            "incident", f"incident {incident_id} is {disposition.value.replace('_', ' ')}: "
            "it takes no more alerts (reopen it by changing its disposition first)")
    return None


async def link_alert_in(
    tx: Session, audit: AuditLog, incident_id: str, alert_id: str, *, actor: str, at: int
) -> None:
    """Link a new alert to its incident inside the transaction that stores the alert.

    Raises `Invalid` (and so rolls the alert back) when the incident is unknown or closed by
    the time the alert is written.
    """
    row = await tx.fetchone("SELECT disposition FROM incidents WHERE id = ?", (incident_id,))
    refusal = incident_refusal(
        incident_id, None if row is None else Disposition(row["disposition"]))
    if refusal is not None:
        raise refusal
    await tx.execute(
        "INSERT INTO incident_alerts (incident_id, alert_id, linked_at, linked_by)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (incident_id, alert_id, at, actor),
    )
    await audit.append(tx, at=at, actor=actor, action="incident.alert_linked",
                       alert_id=alert_id, detail={"incident": incident_id})

_COLUMNS = (
    "id, reported_at, occurred_from, occurred_to, entered_at, location, geography, category,"
    " bias, nature, disposition, source, created_by, held_reason, held_at, held_by,"
    " released_at, released_by, private_sealed IS NOT NULL AS has_private, case_number"
)


@dataclass(frozen=True, slots=True)
class StatisticsRequest:
    """One year's request to a local law enforcement agency for its crime statistics."""

    id: int
    year: int
    requested_on: str
    agency: str
    response: str
    recorded_at: int
    recorded_by: str

    def as_json(self) -> dict[str, Any]:
        """The request as the API and the report show it."""
        return {"id": self.id, "year": self.year, "requested_on": self.requested_on,
                "agency": self.agency, "response": self.response,
                "recorded_at": self.recorded_at, "recorded_by": self.recorded_by}


def _incident(row: Row) -> Incident:
    return Incident(
        id=row["id"],
        reported_at=row["reported_at"],
        occurred_from=row["occurred_from"],
        occurred_to=row["occurred_to"],
        entered_at=row["entered_at"],
        location=row["location"],
        geography=Geography(row["geography"]),
        category=None if row["category"] is None else Category(row["category"]),
        bias=None if row["bias"] is None else Bias(row["bias"]),
        nature=row["nature"],
        disposition=Disposition(row["disposition"]),
        source=Source(row["source"]),
        created_by=row["created_by"],
        held_reason=row["held_reason"],
        held_at=row["held_at"],
        held_by=row["held_by"],
        released_at=row["released_at"],
        released_by=row["released_by"],
        has_private=bool(row["has_private"]),
        case_number=row["case_number"] or "",
    )


def _decision(row: Row) -> Decision:
    return Decision(
        incident_id=row["incident_id"],
        opened_at=row["opened_at"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        warn=None if row["warn"] is None else bool(row["warn"]),
        reasons=row["reasons"],
    )


class IncidentStore:
    """Incidents, their history and decisions, over either database."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    async def insert(
        self, incident: Incident, sealed: str | None, *, decision: bool, case_year: int,
        audited: bool = True,
    ) -> str:
        """Store a new incident, its first disposition and (when due) its open decision; its
        case number (the next of `case_year`, the year it was reported)."""
        i = incident
        async with self.db.transaction() as tx:
            taken = await tx.fetchall(
                "INSERT INTO incident_case_counters (year, last_number) VALUES (?, 1)"
                " ON CONFLICT (year)"
                " DO UPDATE SET last_number = incident_case_counters.last_number + 1"
                " RETURNING last_number",
                (case_year,),
            )
            case_number = f"{case_year}-{int(taken[0]['last_number']):06d}"
            await tx.execute(
                "INSERT INTO incidents (id, reported_at, occurred_from, occurred_to, entered_at,"
                " location, geography, category, bias, nature, disposition, source, created_by,"
                " private_sealed, case_number)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (i.id, i.reported_at, i.occurred_from, i.occurred_to, i.entered_at, i.location,
                 i.geography.value, None if i.category is None else i.category.value,
                 None if i.bias is None else i.bias.value, i.nature, i.disposition.value,
                 i.source.value, i.created_by, sealed, case_number),
            )
            await self._disposition(tx, i.id, i.entered_at, i.created_by, i.disposition, "")
            if decision:
                await tx.execute(
                    "INSERT INTO incident_decisions (incident_id, opened_at) VALUES (?, ?)",
                    (i.id, i.entered_at),
                )
            if audited:
                await self.audit.append(tx, at=i.entered_at, actor=i.created_by,
                                        action="incident.created",
                                        detail={"incident": i.id, "case": case_number,
                                                "decision_opened": decision})
        return case_number

    async def count(self) -> int:
        """How many incidents the store holds."""
        return int(await self.db.fetchval("SELECT COUNT(*) FROM incidents") or 0)

    async def take_example_load(self, name: str, now_ms: int) -> bool:
        """True for the one caller (on any node) that is to load the example `name`."""
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "INSERT INTO incident_example_loads (name, loaded_at) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, now_ms),
            )
        return bool(rows)

    async def get(self, incident_id: str) -> Incident | None:
        """One incident, without its private details."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        )
        return None if row is None else _incident(row)

    async def between(
        self, start_ms: int, end_ms: int, *, public: bool = False, limit: int = 10000
    ) -> list[Incident]:
        """Incidents reported in [start, end), newest first; `public` leaves out held ones."""
        held = " AND (held_at IS NULL OR released_at IS NOT NULL)" if public else ""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM incidents WHERE reported_at >= ? AND reported_at < ?"
            f"{held} ORDER BY reported_at DESC, id DESC LIMIT ?",
            (start_ms, end_ms, limit),
        )
        return [_incident(r) for r in rows]

    async def sealed(self, incident_id: str) -> str | None:
        """The sealed private details of one incident."""
        value = await self.db.fetchval(
            "SELECT private_sealed FROM incidents WHERE id = ?", (incident_id,)
        )
        return None if value is None else str(value)

    async def audit_private(
        self, incident_id: str, *, actor: str, at: int, allowed: bool, role: str
    ) -> None:
        """Record a read of (or a refused attempt at) an incident's private details."""
        await self.audit.record(
            at=at, actor=actor,
            action="incident.private_read" if allowed else "incident.private_refused",
            detail={"incident": incident_id, "role": role},
        )

    async def set_disposition(
        self, incident_id: str, disposition: Disposition, *, actor: str, at: int, note: str,
        audited: bool = True,
    ) -> None:
        """Change the disposition, keeping the change in its history."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE incidents SET disposition = ? WHERE id = ?",
                             (disposition.value, incident_id))
            await self._disposition(tx, incident_id, at, actor, disposition, note)
            if audited:
                await self.audit.append(tx, at=at, actor=actor, action="incident.disposition",
                                        detail={"incident": incident_id,
                                                "disposition": disposition.value})

    async def _disposition(
        self, tx: Session, incident_id: str, at: int, actor: str, disposition: Disposition,
        note: str,
    ) -> None:
        await tx.execute(
            "INSERT INTO incident_dispositions (incident_id, at, actor, disposition, note)"
            " VALUES (?, ?, ?, ?, ?)",
            (incident_id, at, actor, disposition.value, note),
        )

    async def history(self, incident_id: str) -> list[DispositionChange]:
        """Every disposition the incident had, oldest first."""
        rows = await self.db.fetchall(
            "SELECT at, actor, disposition, note FROM incident_dispositions"
            " WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
        return [DispositionChange(r["at"], r["actor"], Disposition(r["disposition"]), r["note"])
                for r in rows]

    async def correct(
        self, incident_id: str, *, nature: str, location: str, actor: str, at: int
    ) -> None:
        """Correct the log's public text; the audit entry keeps what it said before."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT nature, location FROM incidents WHERE id = ?", (incident_id,)
            )
            if row is None:
                return
            await tx.execute("UPDATE incidents SET nature = ?, location = ? WHERE id = ?",
                             (nature, location, incident_id))
            await self.audit.append(tx, at=at, actor=actor, action="incident.corrected",
                                    detail={"incident": incident_id,
                                            "before": {"nature": row["nature"],
                                                       "location": row["location"]},
                                            "after": {"nature": nature, "location": location}})

    async def hold(self, incident_id: str, *, reason: str, actor: str, at: int) -> None:
        """Hold the entry back from the public log, with the reason on file."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE incidents SET held_reason = ?, held_at = ?, held_by = ?,"
                " released_at = NULL, released_by = NULL WHERE id = ?",
                (reason, at, actor, incident_id),
            )
            await self.audit.append(tx, at=at, actor=actor, action="incident.held",
                                    detail={"incident": incident_id, "reason": reason})

    async def release(self, incident_id: str, *, actor: str, at: int) -> None:
        """Release a held entry to the public log."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE incidents SET released_at = ?, released_by = ? WHERE id = ?",
                (at, actor, incident_id),
            )
            await self.audit.append(tx, at=at, actor=actor, action="incident.released",
                                    detail={"incident": incident_id})

    async def decision(self, incident_id: str) -> Decision | None:
        """The incident's timely-warning decision, if it needs one."""
        row = await self.db.fetchone(
            "SELECT incident_id, opened_at, decided_at, decided_by, warn, reasons"
            " FROM incident_decisions WHERE incident_id = ?",
            (incident_id,),
        )
        return None if row is None else _decision(row)

    async def open_decisions(self, opened_before: int) -> list[Decision]:
        """Undecided decisions opened before a moment, oldest first."""
        rows = await self.db.fetchall(
            "SELECT incident_id, opened_at, decided_at, decided_by, warn, reasons"
            " FROM incident_decisions WHERE decided_at IS NULL AND opened_at < ?"
            " ORDER BY opened_at",
            (opened_before,),
        )
        return [_decision(r) for r in rows]

    async def decide(
        self, incident_id: str, *, warn: bool, reasons: str, actor: str, at: int
    ) -> bool:
        """Close an open decision; False when it was already closed."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE incident_decisions SET decided_at = ?, decided_by = ?, warn = ?,"
                " reasons = ? WHERE incident_id = ? AND decided_at IS NULL",
                (at, actor, warn, reasons, incident_id),
            )
            if changed:
                await self.audit.append(tx, at=at, actor=actor, action="incident.decided",
                                        detail={"incident": incident_id, "warn": warn})
            return bool(changed)

    async def refusal_for_alert(self, incident_id: str) -> Invalid | None:
        """Why an alert may not name this incident (unknown or closed), or None when it may."""
        row = await self.db.fetchone(
            "SELECT disposition FROM incidents WHERE id = ?", (incident_id,))
        return incident_refusal(
            incident_id, None if row is None else Disposition(row["disposition"]))

    async def alerts(self, incident_id: str) -> list[str]:
        """Ids of the alerts sent about an incident, oldest first."""
        rows = await self.db.fetchall(
            "SELECT alert_id FROM incident_alerts WHERE incident_id = ? ORDER BY linked_at",
            (incident_id,),
        )
        return [r["alert_id"] for r in rows]

    async def add_statistics_request(
        self, *, year: int, requested_on: str, agency: str, response: str, actor: str, at: int
    ) -> None:
        """Record a request to local law enforcement for a year's statistics."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO statistics_requests (year, requested_on, agency, response,"
                " recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?)",
                (year, requested_on, agency, response, at, actor),
            )
            await self.audit.append(tx, at=at, actor=actor, action="incident.statistics_request",
                                    detail={"year": year, "agency": agency})

    async def statistics_requests(self, years: tuple[int, ...]) -> list[StatisticsRequest]:
        """The requests recorded for some years, by year then order recorded."""
        marks = ", ".join("?" for _ in years)
        rows = await self.db.fetchall(
            "SELECT id, year, requested_on, agency, response, recorded_at, recorded_by"
            f" FROM statistics_requests WHERE year IN ({marks}) ORDER BY year, id",
            years,
        )
        return [StatisticsRequest(r["id"], r["year"], r["requested_on"], r["agency"],
                                  r["response"], r["recorded_at"], r["recorded_by"]) for r in rows]
