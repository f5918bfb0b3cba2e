"""The Clery coordinator's pages of the console: incidents, the daily crime log, timely-warning
decisions and the yearly report.

The incident registry does the work and `permissions.py` decides who may do what, as for the
API: these pages only map form fields to the registry's inputs and its refusals back to fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from dispatcher.console.compose import FieldProblem
from dispatcher.console.web import PERSON, _console, _forbidden, _render, _service, signed_in
from dispatcher.domain import AlertKind
from dispatcher.edge import read_form
from dispatcher.incidents.model import Bias, Category, Disposition, Geography, Source
from dispatcher.incidents.registry import IncidentRegistry, Recorded
from dispatcher.incidents.warning import draft_request
from dispatcher.refusals import Conflict, Forbidden, Invalid, NotFound, PolicyBreach

routes = web.RouteTableDef()

MAX_DAYS = 3660

GEOGRAPHY_LABELS = {
    Geography.ON_CAMPUS.value: "On campus",
    Geography.ON_CAMPUS_HOUSING.value: "On campus, in student housing",
    Geography.NONCAMPUS.value: "Noncampus building or property",
    Geography.PUBLIC_PROPERTY.value: "Public property next to campus",
    Geography.NONE.value: "Outside Clery geography",
}
SOURCE_LABELS = {
    Source.CAMPUS_POLICE.value: "Campus police",
    Source.CSA_REPORT.value: "A campus security authority",
    Source.LOCAL_POLICE.value: "Local police",
}
DECISION_LABELS = {
    "open": "not decided yet",
    "warn": "a timely warning is sent",
    "no_warning": "no timely warning",
}


def words(value: str) -> str:
    """An enum value in plain words: `motor_vehicle_theft` is "Motor vehicle theft"."""
    return value.replace("_", " ").capitalize()


# The form's fields: (form name, input id, label). Private ones are the victim's and reporter's.
FIELDS = (
    ("reported_at", "reported-at", "When it was reported"),
    ("occurred_from", "occurred-from", "When it happened (from)"),
    ("occurred_to", "occurred-to", "When it happened (until)"),
    ("nature", "nature", "Nature of the crime"),
    ("location", "location", "General location"),
    ("geography", "geography", "Clery geography"),
    ("category", "category", "Clery crime category"),
    ("bias", "bias", "Bias (hate crimes)"),
    ("disposition", "disposition", "Disposition"),
    ("source", "source", "Reported by"),
)
PRIVATE_FIELDS = (
    ("victim", "name", "Victim's name"),
    ("victim", "phone", "Victim's phone"),
    ("victim", "email", "Victim's e-mail"),
    ("reporter", "name", "Reporter's name"),
    ("reporter", "phone", "Reporter's phone"),
    ("reporter", "email", "Reporter's e-mail"),
)
_IDS = {name: (field_id, label) for name, field_id, label in FIELDS} | {
    f"{who}.{key}": (f"{who}-{key}", label) for who, key, label in PRIVATE_FIELDS
}
REQUIRED = {
    "reported_at": "Enter the date and time the crime was reported",
    "nature": "Enter the nature of the crime, such as 'theft of a bicycle'",
    "location": "Enter the general location, such as 'Library, north entrance'",
    "geography": "Choose where it happened in Clery terms",
}


@dataclass(frozen=True, slots=True)
class IncidentForm:
    """What the crime log's entry form holds, as typed."""

    values: dict[str, str]

    @classmethod
    def from_post(cls, data: Any) -> IncidentForm:
        """Read the posted form."""
        names = [name for name, _, _ in FIELDS] + [
            f"{who}.{key}" for who, key, _ in PRIVATE_FIELDS
        ]
        values = {}
        for name in names:
            raw = data.get(name, "")
            values[name] = raw.strip() if isinstance(raw, str) else ""
        return cls(values)

    def missing(self) -> list[FieldProblem]:
        """The required fields left empty, in the form's order."""
        return [FieldProblem(_IDS[name][0], message) for name, message in REQUIRED.items()
                if not self.values.get(name)]

    def body(self) -> dict[str, Any]:
        """The incident input (the API's JSON shape) the form makes."""
        body: dict[str, Any] = {
            name: value for name, value in self.values.items() if value and "." not in name
        }
        for who in ("victim", "reporter"):
            given = {key: self.values[f"{who}.{key}"] for w, key, _ in PRIVATE_FIELDS
                     if w == who and self.values.get(f"{who}.{key}")}
            if given:
                body[who] = given
        return body


def problem_of(field: str, message: str) -> FieldProblem:
    """A registry problem on the form: at its field, named by its label."""
    found = _IDS.get(field)
    if found is None:
        # A rule across fields (a bias without a category, a hate-crime-only category).
        return FieldProblem("category" if "categor" in message or "bias" in message
                            else "reported-at", message[:1].upper() + message[1:])
    field_id, label = found
    return FieldProblem(field_id, f"{label}: {message}")


def _registry(request: web.Request) -> IncidentRegistry:
    return _service(request).incidents


def _choices() -> dict[str, Any]:
    return {
        "geographies": GEOGRAPHY_LABELS,
        "categories": [c.value for c in Category],
        "biases": [b.value for b in Bias],
        "dispositions": [d.value for d in Disposition],
        "sources": SOURCE_LABELS,
        "private_fields": PRIVATE_FIELDS,
        "words": words,
        "decision_labels": DECISION_LABELS,
    }


def _may(request: web.Request) -> dict[str, bool]:
    """What the signed-in person may do here: the decisions of `permissions.py`."""
    permissions = _service(request).permissions
    caller = request[PERSON].caller
    return {
        "may_write": permissions.may_write_incidents(caller),
        "may_decide": permissions.may_decide_incident(caller),
        "may_read_private": permissions.may_read_incident_private(caller),
    }


async def _recorded(request: web.Request) -> Recorded:
    recorded = await _registry(request).get(request.match_info["id"])
    if recorded is None:
        raise web.HTTPNotFound(text="no such incident")
    return recorded


def _back(incident_id: str, message: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/console/incidents/{incident_id}?message=" + quote(message))


# -- the list and the crime log ----------------------------------------------------------------


@routes.get("/console/incidents")
@signed_in
async def incidents(request: web.Request) -> web.Response:
    """Incidents of recent days, held ones too; overdue decisions and late entries first."""
    registry = _registry(request)
    try:
        days = int(request.query.get("days", registry.config.public_days))
    except ValueError:
        days = registry.config.public_days
    days = min(max(days, 1), MAX_DAYS)
    listed = await registry.listing(days)
    docs = [registry.document(r) for r in listed]
    return _render(request, "incidents.html", {
        "title": "Incidents and the daily crime log", "incidents": docs, "days": days,
        "overdue": [d for d in docs if d["decision"] and d["decision"]["overdue"]],
        "late": [d for d in docs if d["late_entry"]],
        "message": request.query.get("message", ""), **_may(request), **_choices(),
    })


@routes.get("/console/incidents/new")
@signed_in
async def new_incident(request: web.Request) -> web.Response:
    """The form to add an entry to the daily crime log."""
    caller = request[PERSON].caller
    if not _service(request).permissions.may_write_incidents(caller):
        return _forbidden(request, f"Your role ({caller.role.value}) may read the crime log "
                          "but not add to it.")
    now = datetime.now(_registry(request).zone).strftime("%Y-%m-%dT%H:%M")
    form = IncidentForm({"reported_at": now, "disposition": Disposition.OPEN.value,
                         "source": Source.CAMPUS_POLICE.value})
    return _render(request, "incident_new.html", {
        "title": "Add to the daily crime log", "form": form.values, **_choices(),
    })


@routes.post("/console/incidents")
@signed_in
async def record_incident(request: web.Request) -> web.StreamResponse:
    """Record the entry: back to the form with every problem, or on to the incident."""
    service = _service(request)
    caller = request[PERSON].caller
    try:
        service.permissions.check_incident_write(caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    form = IncidentForm.from_post(await read_form(request))
    errors = form.missing()
    if not errors:
        try:
            recorded = await _registry(request).record(form.body(), caller)
        except Invalid as exc:
            errors = [problem_of(p.field, p.message) for p in exc.problems]
        except PolicyBreach as exc:
            errors = [problem_of(str(v.get("field", "")), str(v.get("message", "")))
                      for v in exc.violations]
        else:
            raise _back(recorded.incident.id, "Added to the daily crime log")
    return _render(request, "incident_new.html", {
        "title": "Add to the daily crime log", "form": form.values, "errors": errors,
        **_choices(),
    }, status=422)


# -- the yearly report --------------------------------------------------------------------------


@routes.get("/console/incidents/report")
@signed_in
async def yearly_report(request: web.Request) -> web.Response:
    """The Annual Security Report's crime part for a year, and the full report's files."""
    registry = _registry(request)
    this_year = datetime.now(_console(request).zone).year
    try:
        year = int(request.query.get("year", this_year))
    except ValueError:
        year = this_year
    year = min(max(year, 1990), 9999)
    section = await registry.report_section(year)
    stats = await registry.statistics(year)
    return _render(request, "incident_report.html", {
        "title": f"Crime statistics {year}", "year": year, "stats": stats,
        "rows": stats.rows(), "decisions": section["timely_warning_decisions"],
        "requests": section["law_enforcement_requests"],
        "years": list(range(this_year, this_year - 8, -1)), **_choices(),
    })


# -- one incident -------------------------------------------------------------------------------


@routes.get("/console/incidents/{id}")
@signed_in
async def incident(request: web.Request) -> web.Response:
    """One incident: the log's fields, its history, the decision; private details on request."""
    return await _incident_page(request, [])


async def _incident_page(
    request: web.Request, errors: list[FieldProblem], *, status: int = 200,
    typed: dict[str, str] | None = None,
) -> web.Response:
    registry = _registry(request)
    recorded = await _recorded(request)
    incident_id = recorded.incident.id
    private = None
    if request.query.get("private") == "yes":
        try:
            # Audited, allowed or not, as `?include=private` is in the API.
            private = (await registry.private(incident_id, request[PERSON].caller)).as_json()
        except Forbidden as exc:
            return _forbidden(request, exc.message[:1].upper() + exc.message[1:] + ".")
    doc = registry.document(recorded)
    decision = doc["decision"]
    return _render(request, "incident.html", {
        "title": f"Incident {incident_id}", "doc": doc, "private": private,
        "history": await registry.store.history(incident_id),
        "alerts": await registry.store.alerts(incident_id),
        "draft_open": decision is not None and decision["state"] == "warn",
        "typed": typed or {}, "errors": errors,
        "message": request.query.get("message", ""), **_may(request), **_choices(),
    }, status=status)


@routes.post("/console/incidents/{id}/disposition")
@signed_in
async def change_disposition(request: web.Request) -> web.StreamResponse:
    """Change the disposition; the history keeps the earlier ones."""
    service = _service(request)
    caller = request[PERSON].caller
    recorded = await _recorded(request)
    form = await read_form(request)
    chosen = str(form.get("disposition", ""))
    note = str(form.get("note", "")).strip()
    try:
        service.permissions.check_incident_write(caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    if chosen not in {d.value for d in Disposition}:
        return await _incident_page(request, [
            FieldProblem("disposition", "Choose the disposition")], status=422,
            typed={"note": note})
    if len(note) > 2000:
        return await _incident_page(request, [
            FieldProblem("note", "The note must be 2,000 characters or fewer")], status=422,
            typed={"note": note})
    await _registry(request).set_disposition(recorded.incident.id, Disposition(chosen),
                                             caller, note)
    raise _back(recorded.incident.id, f"Disposition changed to {words(chosen).lower()}")


@routes.post("/console/incidents/{id}/correct")
@signed_in
async def correct(request: web.Request) -> web.StreamResponse:
    """Correct the entry's public text (nature, location); the audit log keeps the old."""
    service = _service(request)
    caller = request[PERSON].caller
    recorded = await _recorded(request)
    form = await read_form(request)
    typed = {"nature": str(form.get("nature", "")).strip(),
             "location": str(form.get("location", "")).strip()}
    try:
        service.permissions.check_incident_write(caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    errors = [FieldProblem(f"correct-{name}", message)
              for name, message in REQUIRED.items() if name in typed and not typed[name]]
    if not errors:
        try:
            await _registry(request).correct(recorded.incident.id, nature=typed["nature"],
                                             location=typed["location"], caller=caller)
        except Invalid as exc:
            errors = [_corrected(problem_of(p.field, p.message)) for p in exc.problems]
        except PolicyBreach as exc:
            errors = [_corrected(problem_of(str(v.get("field", "")), str(v.get("message", ""))))
                      for v in exc.violations]
        else:
            raise _back(recorded.incident.id, "Entry corrected")
    return await _incident_page(request, errors, status=422,
                                typed={f"correct_{k}": v for k, v in typed.items()})


def _corrected(problem: FieldProblem) -> FieldProblem:
    """A problem of the correction form (its fields' ids are prefixed)."""
    return FieldProblem(f"correct-{problem.field_id}", problem.message)


@routes.post("/console/incidents/{id}/hold")
@signed_in
async def hold(request: web.Request) -> web.StreamResponse:
    """Hold the entry back from the public log, with the reason on file."""
    service = _service(request)
    caller = request[PERSON].caller
    recorded = await _recorded(request)
    reason = str((await read_form(request)).get("reason", "")).strip()
    try:
        service.permissions.check_incident_write(caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    if not 5 <= len(reason) <= 2000:
        return await _incident_page(request, [FieldProblem(
            "hold-reason", "Enter why the entry is held back (5 to 2,000 characters)")],
            status=422, typed={"hold_reason": reason})
    try:
        await _registry(request).hold(recorded.incident.id, reason, caller)
    except Conflict as exc:
        raise _back(recorded.incident.id, exc.message) from None
    raise _back(recorded.incident.id, "Held back from the public log")


@routes.post("/console/incidents/{id}/release")
@signed_in
async def release(request: web.Request) -> web.StreamResponse:
    """Release a held entry to the public log."""
    service = _service(request)
    caller = request[PERSON].caller
    recorded = await _recorded(request)
    try:
        service.permissions.check_incident_write(caller)
        await _registry(request).release(recorded.incident.id, caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    except Conflict as exc:
        raise _back(recorded.incident.id, exc.message) from None
    raise _back(recorded.incident.id, "Released to the public log")


# -- the timely-warning decision ----------------------------------------------------------------


@routes.get("/console/incidents/{id}/decision")
@signed_in
async def decision_page(request: web.Request) -> web.Response:
    """Decide: send a timely warning, or not, and why."""
    return await _decision_page(request, "", "", [])


async def _decision_page(
    request: web.Request, warn: str, reasons: str, errors: list[FieldProblem], *,
    status: int = 200,
) -> web.Response:
    registry = _registry(request)
    recorded = await _recorded(request)
    caller = request[PERSON].caller
    if not _service(request).permissions.may_decide_incident(caller):
        return _forbidden(request, f"Your role ({caller.role.value}) may not decide on timely "
                          "warnings.")
    doc = registry.document(recorded)
    return _render(request, "incident_decision.html", {
        "title": "Send a timely warning?", "doc": doc, "warn": warn, "reasons": reasons,
        "errors": errors, **_choices(),
    }, status=status)


@routes.post("/console/incidents/{id}/decision")
@signed_in
async def decide(request: web.Request) -> web.StreamResponse:
    """Close the decision; "send" opens the compose form with the warning's draft."""
    recorded = await _recorded(request)
    form = await read_form(request)
    warn = str(form.get("warn", ""))
    reasons = str(form.get("reasons", "")).strip()
    errors = []
    if warn not in ("yes", "no"):
        errors.append(FieldProblem("warn-yes", "Choose whether to send a timely warning"))
    if not 5 <= len(reasons) <= 4000:
        errors.append(FieldProblem("reasons", "Enter the reasons for the decision "
                                   "(5 to 4,000 characters)"))
    if errors:
        return await _decision_page(request, warn, reasons, errors, status=422)
    try:
        await _registry(request).decide(recorded.incident.id, warn=warn == "yes",
                                        reasons=reasons, caller=request[PERSON].caller)
    except Forbidden as exc:
        return _forbidden(request, exc.message)
    except Conflict as exc:
        raise _back(recorded.incident.id, exc.message) from None
    except NotFound:
        raise web.HTTPNotFound(text="no such incident") from None
    if warn == "yes":
        raise web.HTTPSeeOther(f"/console/incidents/{recorded.incident.id}/warning")
    raise _back(recorded.incident.id, "Decided: no timely warning")


@routes.get("/console/incidents/{id}/warning")
@signed_in
async def warning_draft(request: web.Request) -> web.StreamResponse:
    """The compose form, prefilled with the incident's timely-warning draft."""
    registry = _registry(request)
    recorded = await _recorded(request)
    if recorded.decision is None or recorded.decision.warn is not True:
        raise _back(recorded.incident.id, "Decide on a timely warning first")
    draft = draft_request(recorded.incident, registry.zone, registry.settings.templates_dir())
    query: dict[str, str] = {"kind": AlertKind.TIMELY_WARNING.value,
                             "incident": recorded.incident.id}
    if "template" in draft:
        query["template"] = str(draft["template"])
        query.update({f"field.{k}": str(v) for k, v in draft.get("fields", {}).items()})
    if "text" in draft:
        query["text"] = str(draft["text"])
    raise web.HTTPSeeOther("/console/compose?" + urlencode(query))
