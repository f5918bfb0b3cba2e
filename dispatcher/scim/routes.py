"""The SCIM endpoints at `/scim/v2/` (RFC 7644): Users, Groups and the discovery documents.

Only bearer tokens of the `scim` role are let in (and they are let in nowhere else). Every
answer, errors included, is `application/scim+json`; errors are SCIM's error body with its
`scimType`, whatever failed: the token, the body, the filter, the store's uniqueness.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import hdrs, web
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    NotFoundException,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)

from dispatcher.access.auth import Caller, retry_after
from dispatcher.edge import CALLER, SERVICE, read_body
from dispatcher.refusals import Forbidden
from dispatcher.scim.provisioning import Provisioning, bound
from dispatcher.scim.resources import resource_types, schemas, service_provider_config
from dispatcher.service import Service
from dispatcher.store.scim import ScimKind

log = structlog.get_logger("clarion.scim")

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class ScimEndpoints:
    """What the SCIM routes are handed: the provisioning and the discovery documents."""

    provisioning: Provisioning
    discovery: Mapping[str, Any]


SCIM: web.AppKey[ScimEndpoints] = web.AppKey("scim", ScimEndpoints)


def scim_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None
                  ) -> web.Response:
    """A SCIM body."""
    return web.Response(status=status, text=json.dumps(data), content_type=MEDIA_TYPE,
                        headers=headers)


def scim_error(status: int, detail: str, scim_type: str | None = None,
               headers: Mapping[str, str] | None = None) -> web.Response:
    """SCIM's error body (RFC 7644 §3.12)."""
    body = Error(status=status, scim_type=scim_type, detail=detail)
    return scim_response(body.model_dump(scim_ctx=Context.DEFAULT), status, headers)


def _from_exception(exc: SCIMException) -> web.Response:
    error = exc.to_error()
    return scim_response(error.model_dump(scim_ctx=Context.DEFAULT), exc.status)


async def _authenticate(request: web.Request) -> Caller | web.Response:
    service = request.app[SERVICE]
    caller = await service.auth.identify(request.headers.get("Authorization"))
    if caller is None:
        return scim_error(401, "missing or unknown bearer token",
                          headers={"WWW-Authenticate": 'Bearer realm="clarion-scim"'})
    try:
        service.permissions.check_provision(caller)
    except Forbidden as exc:
        return scim_error(403, str(exc))
    wait = service.auth.throttle(caller)
    if wait > 0:
        return scim_error(429, "too many requests with this token",
                          headers={"Retry-After": retry_after(wait)})
    return caller


def _scim(methods: Mapping[str, Handler]) -> Handler:
    """One path's handler: the token checked, the method chosen, every failure a SCIM
    error."""

    async def handle(request: web.Request) -> web.Response:
        who = await _authenticate(request)
        if isinstance(who, web.Response):
            return who
        request[CALLER] = who
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(methods)
            return scim_error(405, f"use {allowed} here", headers={"Allow": allowed})
        try:
            return await handler(request)
        except SCIMException as exc:
            return _from_exception(exc)
        except ValidationError as exc:
            errors = Error.from_validation_errors(exc)
            first = errors[0] if errors else Error(status=400, detail="invalid request")
            return scim_response(first.model_dump(scim_ctx=Context.DEFAULT), first.status or 400)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return scim_error(exc.status, exc.reason)

    return handle


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidSyntaxException(detail="the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidSyntaxException(detail="the body is not a JSON object")
    return data


def _base(request: web.Request) -> str:
    public = request.app[SERVICE].settings.service.public_url
    root = public.rstrip("/") if public else f"{request.scheme}://{request.host}"
    return f"{root}{PREFIX}"


def _list_of(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _query(request: web.Request, kind: ScimKind) -> SearchRequest[Any]:
    params: dict[str, Any] = {}
    query = request.query
    for name in ("filter", "startIndex", "count", "sortBy", "sortOrder"):
        if name in query:
            params[name] = query[name]
    if "count" in params:
        try:
            # RFC 7644 §3.4.2.4: a negative count is read as 0.
            params["count"] = max(0, int(params["count"]))
        except ValueError:
            raise InvalidSyntaxException(detail="count is not a number") from None
    for name in ("attributes", "excludedAttributes"):
        listed = _list_of(query.get(name))
        if listed:
            params[name] = listed
    search: SearchRequest[Any] = bound(SearchRequest, kind).model_validate(
        params, scim_ctx=Context.SEARCH_REQUEST
    )
    return search


def _params(request: web.Request, kind: ScimKind) -> ResponseParameters[Any] | None:
    attributes = _list_of(request.query.get("attributes"))
    excluded = _list_of(request.query.get("excludedAttributes"))
    if not attributes and not excluded:
        return None
    params: ResponseParameters[Any] = bound(ResponseParameters, kind).model_validate(
        {"attributes": attributes, "excludedAttributes": excluded}
    )
    return params


def _resource_routes(kind: ScimKind, endpoint: str) -> list[web.RouteDef]:
    async def listing(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        return scim_response(await provisioning.search(kind, _query(request, kind),
                                                       _base(request)))

    async def search(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        body = bound(SearchRequest, kind).model_validate(
            await _json(request), scim_ctx=Context.SEARCH_REQUEST
        )
        return scim_response(await provisioning.search(kind, body, _base(request)))

    async def create(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        body = await provisioning.create(kind, await _json(request), request[CALLER].name,
                                         _base(request))
        return scim_response(body, 201, {"Location": body["meta"]["location"]})

    async def get(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        return scim_response(await provisioning.get(
            kind, request.match_info["id"], _base(request), _params(request, kind)
        ))

    async def put(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        return scim_response(await provisioning.replace(
            kind, request.match_info["id"], await _json(request), request[CALLER].name,
            _base(request),
        ))

    async def patch(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        return scim_response(await provisioning.patch(
            kind, request.match_info["id"], await _json(request), request[CALLER].name,
            _base(request),
        ))

    async def delete(request: web.Request) -> web.Response:
        provisioning = request.app[SCIM].provisioning
        await provisioning.delete(kind, request.match_info["id"], request[CALLER].name)
        return web.Response(status=204)

    return [
        web.route("*", f"{PREFIX}/{endpoint}", _scim({"GET": listing, "POST": create})),
        web.route("*", f"{PREFIX}/{endpoint}/.search", _scim({"POST": search})),
        web.route("*", f"{PREFIX}/{endpoint}/{{id}}",
                  _scim({hdrs.METH_GET: get, hdrs.METH_PUT: put, hdrs.METH_PATCH: patch,
                         hdrs.METH_DELETE: delete})),
    ]


async def _search_all(request: web.Request) -> web.Response:
    provisioning = request.app[SCIM].provisioning
    body: SearchRequest[Any] = SearchRequest.model_validate(
        await _json(request), scim_ctx=Context.SEARCH_REQUEST
    )
    return scim_response(await provisioning.search_all(body, _base(request)))


def _listed(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _discovery(name: str) -> list[web.RouteDef]:
    async def every(request: web.Request) -> web.Response:
        return scim_response(_listed(list(request.app[SCIM].discovery[name].values())))

    async def one(request: web.Request) -> web.Response:
        found = request.app[SCIM].discovery[name].get(request.match_info["id"])
        if found is None:
            raise NotFoundException(detail=f"no {name} {request.match_info['id']}")
        return scim_response(found)

    return [
        web.route("*", f"{PREFIX}/{name}", _scim({"GET": every})),
        web.route("*", f"{PREFIX}/{name}/{{id}}", _scim({"GET": one})),
    ]


async def _config(request: web.Request) -> web.Response:
    return scim_response(request.app[SCIM].discovery["ServiceProviderConfig"])


async def _unknown(request: web.Request) -> web.Response:
    return scim_error(404, "no such SCIM endpoint")


def discovery_documents() -> dict[str, Any]:
    """The discovery documents as served: the config, and resource types and schemas by id."""
    ctx = Context.RESOURCE_QUERY_RESPONSE
    return {
        "ServiceProviderConfig": service_provider_config().model_dump(scim_ctx=ctx),
        "ResourceTypes": {str(t.id): t.model_dump(scim_ctx=ctx) for t in resource_types()},
        "Schemas": {str(s.id): s.model_dump(scim_ctx=ctx) for s in schemas()},
    }


routes: list[web.RouteDef] = [
    web.route("*", f"{PREFIX}/ServiceProviderConfig", _scim({"GET": _config})),
    *_discovery("ResourceTypes"),
    *_discovery("Schemas"),
    *_resource_routes(ScimKind.USER, "Users"),
    *_resource_routes(ScimKind.GROUP, "Groups"),
    web.route("*", f"{PREFIX}/.search", _scim({"POST": _search_all})),
    web.route("*", f"{PREFIX}/{{tail:.*}}", _scim({m: _unknown for m in (
        hdrs.METH_GET, hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH, hdrs.METH_DELETE)})),
]


def install(app: web.Application, service: Service) -> None:
    """Add the SCIM endpoints, handed the provisioning the composition root built."""
    app[SCIM] = ScimEndpoints(provisioning=service.scim, discovery=discovery_documents())
    app.add_routes(routes)
