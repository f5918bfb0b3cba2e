"""Drill and Clery routes: the schedule, a run now, follow-up notes, records and the report."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from dispatcher.api.openapi import (
    AlertRecordDocument,
    Body,
    CleryReportDocument,
    NoteDocument,
    NotesDocument,
    Param,
    Reply,
    Route,
    refused,
)
from dispatcher.drills.schedule import UnknownDrill
from dispatcher.edge import (
    HeldReply,
    caller_of,
    error,
    held_response,
    read_json,
    service_of,
)
from dispatcher.incidents.statistics import section_html
from dispatcher.records import note_text, render_html, report_csv

routes = web.RouteTableDef()

RECENT_RUNS = 10
FORMATS = ("json", "csv", "html")
MIN_YEAR, MAX_YEAR = 1990, 9999


def _invalid(name: str, message: str) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(
        text=json.dumps({"error": "invalid request",
                         "problems": [{"field": name, "message": message}]}),
        content_type="application/json",
    )


@routes.get("/v1/drills")
async def list_drills(request: web.Request) -> web.Response:
    """The configured drills with their next times and recent runs."""
    schedule = await service_of(request).drills.schedule(recent=RECENT_RUNS)
    return web.json_response(schedule.to_json())


@routes.post("/v1/drills/{name}/run")
async def run_drill(request: web.Request) -> web.Response:
    """Fire a configured drill now, as the caller; 202 like POST /v1/alerts."""
    service = service_of(request)
    name = request.match_info["name"]
    try:
        manual = await service.scheduler.run_now(name, caller_of(request))
    except UnknownDrill:
        return error(404, f"no drill {name!r} in the config")
    if manual.held is not None:
        return held_response(manual.held)
    run = manual.run
    return web.json_response(
        {"id": run.alert_id, "status_url": f"/v1/alerts/{run.alert_id}", "drill": name,
         "run": run.as_json()},
        status=202,
    )


@routes.post("/v1/alerts/{id}/notes")
async def add_note(request: web.Request) -> web.Response:
    """Add a follow-up note to an alert's or a drill's record (audited)."""
    service = service_of(request)
    caller = caller_of(request)
    record = await service.alerts.get(request.match_info["id"])
    if record is None:
        return error(404, f"no alert {request.match_info['id']}")
    service.permissions.check_note(caller, record.mode)
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"text"}:
        raise _invalid("(body)", 'an object with one field, "text"')
    try:
        text = note_text(body.get("text"))
    except ValueError as exc:
        raise _invalid("text", str(exc).removeprefix("text: ")) from None
    records = service.records
    note = await records.add_note(record.id, author=caller.name, text=text,
                                  now_ms=service.clock.now_ms())
    return web.json_response(note.as_json(records.zone), status=201)


@routes.get("/v1/alerts/{id}/notes")
async def list_notes(request: web.Request) -> web.Response:
    """An alert's follow-up notes, oldest first."""
    service = service_of(request)
    alert_id = request.match_info["id"]
    if await service.alerts.get(alert_id) is None:
        return error(404, f"no alert {alert_id}")
    records = service.records
    return web.json_response(
        {"items": [n.as_json(records.zone) for n in await records.notes(alert_id)]}
    )


@routes.get("/v1/alerts/{id}/record")
async def alert_record(request: web.Request) -> web.Response:
    """One alert's Clery record."""
    service = service_of(request)
    records = service.records
    record = await records.record(request.match_info["id"])
    if record is None:
        return error(404, f"no alert {request.match_info['id']}")
    return web.json_response(record.as_json(records.zone))


@routes.get("/v1/reports/clery")
async def clery_report(request: web.Request) -> web.Response:
    """The year's notifications, warnings and tests: JSON (default), CSV or HTML."""
    service = service_of(request)
    records = service.records
    now = service.clock.now_ms()
    raw_year = request.query.get("year")
    if raw_year is None:
        year = datetime.fromtimestamp(now / 1000, tz=records.zone).year
    else:
        try:
            year = int(raw_year)
        except ValueError:
            year = 0
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise _invalid("year", f"a year from {MIN_YEAR} to {MAX_YEAR}")
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise _invalid("format", f"one of {', '.join(FORMATS)}")
    report = await records.report(year, now_ms=now)
    filename = f"clery-{year}.{fmt}"
    crimes = await service.incidents.report_section(year)
    if fmt == "csv":
        return web.Response(
            text=report_csv(report, crimes), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if fmt == "html":
        html = render_html(report).replace("</body>", section_html(crimes) + "</body>", 1)
        return web.Response(text=html, content_type="text/html", charset="utf-8")
    return web.json_response({**report.to_json(), **crimes})


class DrillSchedule(BaseModel):
    """The configured drills with their next times and recent runs."""

    model_config = ConfigDict(extra="allow")

    timezone: str
    grace_s: int
    drills: list[dict[str, Any]]


class DrillStarted(BaseModel):
    """The 202 of a drill fired now: its alert is stored and dispatching."""

    model_config = ConfigDict(extra="allow")

    id: str
    status_url: str
    drill: str
    run: dict[str, Any]


class DrillStartedOrHeld(RootModel[DrillStarted | HeldReply]):
    """The 202 of a drill fired now: dispatching, or held for a second person's approval."""


class NoteBody(BaseModel):
    """A follow-up note to an alert's record."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


NO_ALERT = refused("no such alert")

ROUTES = (
    Route("get", "/v1/drills", "Scheduled drills with their next times and recent runs",
          replies={200: Reply("the schedule", DrillSchedule)}),
    Route("post", "/v1/drills/{name}/run", "Fire a configured drill now",
          params=(Param("name", "path", str, required=True),),
          replies={
              202: Reply("the drill's alert is stored and dispatching", DrillStartedOrHeld),
              403: refused("the role may not send"),
              404: refused("no such drill in the config"),
              422: refused("the drill's alert breaks the policy or names a missing template"),
          }),
    Route("post", "/v1/alerts/{id}/notes",
          "Add a follow-up note to an alert's or drill's Clery record (audited)",
          body=Body(NoteBody),
          replies={201: Reply("the note", NoteDocument),
                   403: refused("a drill token may annotate drills and tests only"),
                   404: NO_ALERT, 422: refused("invalid body")}),
    Route("get", "/v1/alerts/{id}/notes", "An alert's follow-up notes",
          replies={200: Reply("the notes, oldest first", NotesDocument), 404: NO_ALERT}),
    Route("get", "/v1/alerts/{id}/record", "One alert's Clery record",
          replies={200: Reply("the record", AlertRecordDocument), 404: NO_ALERT}),
    Route("get", "/v1/reports/clery",
          "The year's emergency notifications, timely warnings and tests",
          params=(
              Param("year", "query", Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)],
                    description="calendar year in drills.timezone; default the current one"),
              Param("format", "query", Literal["json", "csv", "html"]),
          ),
          replies={200: Reply("the report", CleryReportDocument,
                              text=("text/csv", "text/html")),
                   422: refused("invalid year or format")}),
)
