"""Directory import routes: every kept import with its report, and the safety brake's held
imports confirmed or discarded by a person."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from dispatcher.alerting.request import problems
from dispatcher.api.openapi import Param, Reply, Route, refused
from dispatcher.edge import caller_of, error, reply, service_of
from dispatcher.store.imports import ImportEntry, ImportState

routes = web.RouteTableDef()

MAX_LIST = 200
# Import ids are stored as 64-bit integers.
MAX_ID = 2**62


class ImportsQuery(BaseModel):
    """The query of `GET /v1/directory/imports`: a state (or all) and a page size."""

    state: ImportState | None = None
    limit: int = Field(default=50, ge=1, le=MAX_LIST)


class DirectoryImport(BaseModel):
    """One kept import: its source, what became of it, the share of the people it concerns
    that it changes or removes, and its report (counts, rejected rows and warnings)."""

    id: int
    source: str
    detail: str
    state: ImportState
    share: float
    report: dict[str, Any]
    error: str
    started_at: int
    finished_at: int
    decided_by: str | None
    decided_at: int | None

    @classmethod
    def of(cls, entry: ImportEntry) -> DirectoryImport:
        """The import as the API shows it."""
        return cls.model_validate(entry.as_json())


class DirectoryImports(BaseModel):
    """Kept imports, newest first."""

    items: list[DirectoryImport]


def _import_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) > MAX_ID:
        return None
    return int(raw)


@routes.get("/v1/directory/imports")
async def list_imports(request: web.Request) -> web.Response:
    """The latest directory imports, newest first (held ones with `state=held`)."""
    service = service_of(request)
    service.permissions.check_manage_directory(caller_of(request))
    try:
        query = ImportsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return error(422, "invalid parameters", problems=problems(exc))
    entries = await service.directory_imports.store.recent(limit=query.limit, state=query.state)
    return reply(DirectoryImports(items=[DirectoryImport.of(e) for e in entries]))


@routes.get("/v1/directory/imports/{id}")
async def get_import(request: web.Request) -> web.Response:
    """One directory import with its report."""
    service = service_of(request)
    service.permissions.check_manage_directory(caller_of(request))
    import_id = _import_id(request)
    if import_id is None:
        return error(404, f"no directory import {request.match_info['id']}")
    return reply(DirectoryImport.of(await service.directory_imports.get(import_id)))


async def _decide(request: web.Request, decision: Literal["confirm", "discard"]
                  ) -> web.Response:
    service = service_of(request)
    caller = caller_of(request)
    service.permissions.check_manage_directory(caller)
    import_id = _import_id(request)
    if import_id is None:
        return error(404, f"no directory import {request.match_info['id']}")
    imports = service.directory_imports
    if decision == "confirm":
        entry = await imports.confirm(import_id, actor=caller.name)
    else:
        entry = await imports.discard(import_id, actor=caller.name)
    return reply(DirectoryImport.of(entry))


@routes.post("/v1/directory/imports/{id}/confirm")
async def confirm_import(request: web.Request) -> web.Response:
    """Write a held import as it was planned."""
    return await _decide(request, "confirm")


@routes.post("/v1/directory/imports/{id}/discard")
async def discard_import(request: web.Request) -> web.Response:
    """Drop a held import without writing it."""
    return await _decide(request, "discard")


NO_SUCH = refused("no such directory import")
NOT_ADMIN = refused("only an admin manages directory imports")
NOT_HELD = refused("the import is not held (already decided, or a newer import of its source"
                   " came after it)")

ROUTES = (
    Route("get", "/v1/directory/imports", "Kept directory imports, newest first",
          params=(Param("state", "query", ImportState),
                  Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_LIST)])),
          replies={200: Reply("imports", DirectoryImports), 403: NOT_ADMIN,
                   422: refused("state or limit is not valid")}),
    Route("get", "/v1/directory/imports/{id}", "One directory import with its report",
          replies={200: Reply("the import", DirectoryImport), 403: NOT_ADMIN, 404: NO_SUCH}),
    Route("post", "/v1/directory/imports/{id}/confirm",
          "Write an import the safety brake held",
          replies={200: Reply("the confirmed import", DirectoryImport), 403: NOT_ADMIN,
                   404: NO_SUCH, 409: NOT_HELD}),
    Route("post", "/v1/directory/imports/{id}/discard",
          "Drop an import the safety brake held",
          replies={200: Reply("the discarded import", DirectoryImport), 403: NOT_ADMIN,
                   404: NO_SUCH, 409: NOT_HELD}),
)
