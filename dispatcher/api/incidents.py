"""Incident routes: record, read, disposition, hold back, decide; the public daily crime log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.access.auth import Caller
from dispatcher.alerting.request import problems
from dispatcher.api.openapi import Body, Param, Reply, Route, refused
from dispatcher.edge import SERVICE, caller_of, error, read_json, service_of
from dispatcher.incidents.registry import IncidentRegistry
from dispatcher.incidents.requests import (
    DecisionInput,
    DispositionInput,
    HoldInput,
    IncidentInput,
    StatisticsRequestInput,
)
from dispatcher.refusals import Invalid, Problem

routes = web.RouteTableDef()

INCIDENTS: web.AppKey[IncidentRegistry] = web.AppKey("incidents")
FORMATS = ("html", "csv", "json")
MAX_PAGE = 1000
MAX_DAYS = 3660
# The public page: no scripts, nothing from elsewhere, not framed.
_Model = TypeVar("_Model", bound=BaseModel)
CRIME_LOG_CSP = (
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def setup(app: web.Application) -> None:
    """Serve the service's incident registry, and seed the example incidents at startup."""
    app[INCIDENTS] = app[SERVICE].incidents

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[INCIDENTS].seed_example()
        yield

    app.cleanup_ctx.append(lifecycle)


def registry_of(request: web.Request) -> IncidentRegistry:
    """The running service's incident registry."""
    return request.app[INCIDENTS]


def _writer(request: web.Request) -> Caller:
    caller = caller_of(request)
    service_of(request).permissions.check_incident_write(caller)
    return caller


async def _body(request: web.Request, model: type[_Model]) -> _Model:
    try:
        return model.model_validate(await read_json(request))
    except ValidationError as exc:
        raise Invalid([Problem(p["field"], p["message"]) for p in problems(exc)]) from None




@routes.post("/v1/incidents")
async def create_incident(request: web.Request) -> web.Response:
    """Record a reported crime; 422 with located violations when its text names a person."""
    caller = _writer(request)
    registry = registry_of(request)
    recorded = await registry.record(await read_json(request), caller)
    return web.json_response(registry.document(recorded), status=201)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Invalid.one(name, f"a whole number from {low} to {high}")
    return value


@routes.get("/v1/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    """Incidents of the last `days` (default 60), held ones too, and overdue decisions."""
    registry = registry_of(request)
    days = _int(request, "days", registry.config.public_days, 1, MAX_DAYS)
    items = [registry.document(r) for r in await registry.listing(days)]
    overdue = [d.incident_id for d in await registry.overdue()]
    return web.json_response({
        "items": items,
        "overdue_decisions": overdue,
        "late_entries": [i["id"] for i in items if i["late_entry"]],
    })


@routes.get("/v1/incidents/{id}")
async def get_incident(request: web.Request) -> web.Response:
    """One incident with its history and alerts; `?include=private` for allowed roles."""
    registry = registry_of(request)
    incident_id = request.match_info["id"]
    recorded = await registry.get(incident_id)
    if recorded is None:
        return error(404, f"no incident {incident_id}")
    doc = registry.document(recorded)
    doc["disposition_history"] = [
        c.as_json() for c in await registry.store.history(incident_id)
    ]
    doc["alerts"] = await registry.store.alerts(incident_id)
    if request.query.get("include") == "private":
        doc["private"] = (await registry.private(incident_id, caller_of(request))).as_json()
    return web.json_response(doc)


@routes.patch("/v1/incidents/{id}")
async def change_disposition(request: web.Request) -> web.Response:
    """Change the disposition; the history keeps every earlier one."""
    caller = _writer(request)
    registry = registry_of(request)
    body = await _body(request, DispositionInput)
    incident_id = request.match_info["id"]
    await registry.set_disposition(incident_id, body.disposition, caller, body.note)
    recorded = await registry.get(incident_id)
    assert recorded is not None
    doc = registry.document(recorded)
    doc["disposition_history"] = [c.as_json() for c in await registry.store.history(incident_id)]
    return web.json_response(doc)


@routes.post("/v1/incidents/{id}/hold")
async def hold_incident(request: web.Request) -> web.Response:
    """Hold the entry back from the public log, with the reason on file."""
    caller = _writer(request)
    registry = registry_of(request)
    body = await _body(request, HoldInput)
    await registry.hold(request.match_info["id"], body.reason, caller)
    recorded = await registry.get(request.match_info["id"])
    assert recorded is not None
    return web.json_response(registry.document(recorded))


@routes.post("/v1/incidents/{id}/release")
async def release_incident(request: web.Request) -> web.Response:
    """Release a held entry to the public log."""
    caller = _writer(request)
    registry = registry_of(request)
    await registry.release(request.match_info["id"], caller)
    recorded = await registry.get(request.match_info["id"])
    assert recorded is not None
    return web.json_response(registry.document(recorded))


@routes.post("/v1/incidents/{id}/decision")
async def decide(request: web.Request) -> web.Response:
    """Close the timely-warning decision; a warning returns the alert request to send."""
    registry = registry_of(request)
    body = await _body(request, DecisionInput)
    incident_id = request.match_info["id"]
    draft = await registry.decide(incident_id, warn=body.warn, reasons=body.reasons,
                                  caller=caller_of(request))
    recorded = await registry.get(incident_id)
    assert recorded is not None
    return web.json_response({"decision": registry.document(recorded)["decision"],
                              "alert_request": draft})


@routes.get("/v1/crime-statistics")
async def crime_statistics(request: web.Request) -> web.Response:
    """Counts for the Annual Security Report: `year` and the two before it."""
    registry = registry_of(request)
    this_year = datetime.fromtimestamp(registry.clock.now_ms() / 1000, tz=registry.zone).year
    year = _int(request, "year", this_year, 1990, 9999)
    return web.json_response(await registry.report_section(year))


@routes.post("/v1/crime-statistics/requests")
async def add_statistics_request(request: web.Request) -> web.Response:
    """Record a year's request to local law enforcement for its crime statistics."""
    caller = _writer(request)
    registry = registry_of(request)
    body = await _body(request, StatisticsRequestInput)
    await registry.store.add_statistics_request(
        year=body.year, requested_on=body.requested_on.isoformat(), agency=body.agency,
        response=body.response, actor=caller.name, at=registry.clock.now_ms(),
    )
    return web.json_response(
        {"items": [r.as_json() for r in await registry.store.statistics_requests((body.year,))]},
        status=201,
    )


@routes.get("/public/crime-log")
async def public_crime_log(request: web.Request) -> web.Response:
    """The daily crime log, no sign-in: HTML, `?format=csv` or `json`; `?page=2` is older."""
    registry = registry_of(request)
    fmt = request.query.get("format", "html")
    if fmt not in FORMATS:
        raise Invalid.one("format", f"one of {', '.join(FORMATS)}")
    page = await registry.public_page(_int(request, "page", 1, 1, MAX_PAGE))
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": CRIME_LOG_CSP}
    if fmt == "csv":
        headers["Content-Disposition"] = 'attachment; filename="crime-log.csv"'
        return web.Response(text=page.to_csv(), content_type="text/csv", charset="utf-8",
                            headers=headers)
    if fmt == "json":
        return web.json_response(page.as_json(), headers=headers)
    return web.Response(text=page.to_html(), content_type="text/html", charset="utf-8",
                        headers=headers)


class IncidentReply(BaseModel):
    """An incident as the registry shows it (private fields only for the roles allowed)."""

    model_config = ConfigDict(extra="allow")


class IncidentList(BaseModel):
    """Recent incidents, late entries and overdue decisions."""

    model_config = ConfigDict(extra="allow")


class DecisionReply(BaseModel):
    """The timely-warning decision and, for a warning, the alert request to send."""

    model_config = ConfigDict(extra="allow")


class CrimeStatistics(BaseModel):
    """Annual Security Report statistics and the requests to local police."""

    model_config = ConfigDict(extra="allow")


class CrimeLogPage(BaseModel):
    """A page of the public daily crime log."""

    model_config = ConfigDict(extra="allow")


_MAY_WRITE = {
    403: refused("the role may not do this"),
    404: refused("no such incident"),
    409: refused("contradicts what is stored (already held, decided, or not needed)"),
    422: refused("invalid request, or its text names a person (located violations)"),
}


def _page(name: str, low: int, high: int) -> Param:
    return Param(name, "query", Annotated[int, Field(ge=low, le=high)])


ROUTES = (
    Route("post", "/v1/incidents", "Record a reported crime", body=Body(IncidentInput),
          replies={201: Reply("the incident", IncidentReply), **_MAY_WRITE}),
    Route("get", "/v1/incidents", "Recent incidents, late entries and overdue decisions",
          params=(_page("days", 1, MAX_DAYS),),
          replies={200: Reply("the incidents", IncidentList), **_MAY_WRITE}),
    Route("get", "/v1/incidents/{id}",
          "One incident; ?include=private for allowed roles (audited)",
          params=(Param("include", "query", Literal["private"]),),
          replies={200: Reply("the incident", IncidentReply), **_MAY_WRITE}),
    Route("patch", "/v1/incidents/{id}", "Change the disposition (kept as history)",
          body=Body(DispositionInput),
          replies={200: Reply("the incident", IncidentReply), **_MAY_WRITE}),
    Route("post", "/v1/incidents/{id}/hold", "Hold an entry back from the public log",
          body=Body(HoldInput),
          replies={200: Reply("the incident", IncidentReply), **_MAY_WRITE}),
    Route("post", "/v1/incidents/{id}/release", "Release a held entry to the public log",
          replies={200: Reply("the incident", IncidentReply), **_MAY_WRITE}),
    Route("post", "/v1/incidents/{id}/decision", "Close the timely-warning decision",
          body=Body(DecisionInput),
          replies={200: Reply("the decision and, for a warning, the alert request to POST to "
                              "/v1/alerts", DecisionReply), **_MAY_WRITE}),
    Route("get", "/v1/crime-statistics",
          "Annual Security Report statistics for three calendar years",
          params=(_page("year", 1990, 9999),),
          replies={200: Reply("counts and requests to local police", CrimeStatistics),
                   **_MAY_WRITE}),
    Route("post", "/v1/crime-statistics/requests",
          "Record a request to local law enforcement for its statistics",
          body=Body(StatisticsRequestInput),
          replies={201: Reply("the year's requests", CrimeStatistics), **_MAY_WRITE}),
    Route("get", "/public/crime-log", "The daily crime log (no sign-in)", auth=False,
          params=(Param("format", "query", Literal["html", "csv", "json"]),
                  _page("page", 1, MAX_PAGE)),
          replies={200: Reply("the log", CrimeLogPage, text=("text/html", "text/csv")),
                   422: refused("invalid format or page")}),
)
