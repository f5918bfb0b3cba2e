"""Create, read, search, replace, patch and delete SCIM Users and Groups (RFC 7644 §3).

Every change is one store transaction: the resource, the directory people it touches (a
disabled or deleted user leaves every audience and their queued deliveries are suppressed) and
an audit entry that names the resource by id only, never by a name or an address. Failures are
raised as scim2-models exceptions, which the routes turn into SCIM error bodies.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scim2_models import (
    Context,
    ListResponse,
    NotFoundException,
    PatchOp,
    ResponseParameters,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)

from dispatcher.clock import Clock
from dispatcher.scim.mapping import PersonMapping
from dispatcher.scim.resources import MAX_RESULTS, POLICY, GroupModel, UserModel
from dispatcher.store.scim import (
    Membership,
    ScimConflict,
    ScimKind,
    ScimStore,
    ScimWrite,
    StoredResource,
)

MODELS: dict[ScimKind, Any] = {ScimKind.USER: UserModel, ScimKind.GROUP: GroupModel}
ENDPOINTS = {ScimKind.USER: "Users", ScimKind.GROUP: "Groups"}
# Attributes a filter may look up by equality in the store, by (attribute, sub-attribute).
LOOKUPS: dict[ScimKind, dict[tuple[str, str | None], str]] = {
    ScimKind.USER: {
        ("username", None): "username",
        ("externalid", None): "externalid",
        ("displayname", None): "displayname",
        ("emails", "value"): "emails.value",
    },
    ScimKind.GROUP: {
        ("displayname", None): "displayname",
        ("externalid", None): "externalid",
    },
}
# Parts of a resource that the store keeps elsewhere or makes itself.
_NOT_STORED = ("id", "meta", "groups", "members")


def bound(generic: Any, kind: ScimKind) -> Any:
    """A scim2-models generic (a filter, a PATCH, a search) bound to a kind's model."""
    return generic[MODELS[kind]]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class Provisioning:
    """SCIM Users and Groups over the store, and the directory people they make."""

    def __init__(self, store: ScimStore, mapping: PersonMapping, clock: Clock) -> None:
        self._store = store
        self._mapping = mapping
        self._clock = clock

    # -- reading -----------------------------------------------------------------------------

    async def get(
        self, kind: ScimKind, resource_id: str, base: str,
        params: ResponseParameters[Any] | None = None,
    ) -> dict[str, Any]:
        """One resource as a response body; NotFoundException when there is none."""
        stored = await self._existing(kind, resource_id)
        resource = (await self._resources(kind, [stored], base))[0]
        return dump(resource, params)

    async def search(
        self, kind: ScimKind, request: SearchRequest[Any], base: str
    ) -> dict[str, Any]:
        """A page of the resources that match the request's filter (all without one)."""
        start, count = _window(request)
        if request.filter is None:
            total = await self._store.count(kind)
            page = await self._store.page(kind, start - 1, count) if count else []
            resources = await self._resources(kind, page, base)
        else:
            matched = await self._matching(kind, str(request.filter), base)
            total = len(matched)
            resources = matched[start - 1 : start - 1 + count]
        return _listed(MODELS[kind], total, start, resources, request)

    async def search_all(self, request: SearchRequest[Any], base: str) -> dict[str, Any]:
        """A search at the service's root (RFC 7644 §3.4.3): Users, then Groups."""
        start, count = _window(request)
        matched: list[Any] = []
        for kind in ScimKind:
            if request.filter is None:
                stored = await self._store.many(kind, await self._store.ids(kind))
                matched.extend(await self._resources(kind, stored, base))
            else:
                matched.extend(await self._matching(kind, str(request.filter), base))
        page = matched[start - 1 : start - 1 + count]
        return _listed(UserModel | GroupModel, len(matched), start, page, request)

    async def _matching(self, kind: ScimKind, text: str, base: str) -> list[Any]:
        """Every resource of a kind that a filter matches, in creation order."""
        found = bound(ScimFilter, kind)(text)
        ids = await self._candidates(kind, found.ast)
        every = await self._store.ids(kind) if ids is None else await self._ids(kind, ids)
        matched: list[Any] = []
        for chunk in range(0, len(every), 500):
            stored = await self._store.many(kind, every[chunk : chunk + 500])
            matched.extend(
                r for r in await self._resources(kind, stored, base) if found.match(r)
            )
        return matched

    # -- changing ----------------------------------------------------------------------------

    async def create(
        self, kind: ScimKind, payload: Mapping[str, Any], actor: str, base: str
    ) -> dict[str, Any]:
        """Create a resource from a POST body; its response body."""
        resource = MODELS[kind].model_validate(
            payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        stored = await self._write(kind, uuid.uuid4().hex, resource, actor, "created")
        return await self.get(kind, stored.id, base)

    async def replace(
        self, kind: ScimKind, resource_id: str, payload: Mapping[str, Any], actor: str,
        base: str,
    ) -> dict[str, Any]:
        """Replace a resource with a PUT body; its response body."""
        original = await self._existing(kind, resource_id)
        before = (await self._resources(kind, [original], base))[0]
        resource = MODELS[kind].model_validate(
            payload, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST
        )
        resource.replace(before)
        await self._write(kind, resource_id, resource, actor, "replaced")
        return await self.get(kind, resource_id, base)

    async def patch(
        self, kind: ScimKind, resource_id: str, payload: Mapping[str, Any], actor: str,
        base: str,
    ) -> dict[str, Any]:
        """Apply a PATCH body's operations (add, replace, remove); the response body."""
        original = await self._existing(kind, resource_id)
        resource = (await self._resources(kind, [original], base))[0]
        operations = bound(PatchOp, kind).model_validate(
            payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY
        )
        operations.patch(resource, scim_policy=POLICY)
        await self._write(kind, resource_id, resource, actor, "patched")
        return await self.get(kind, resource_id, base)

    async def delete(self, kind: ScimKind, resource_id: str, actor: str) -> None:
        """Delete a resource: a user's person leaves the directory and every audience."""
        await self._existing(kind, resource_id)
        await self._store.write(
            ScimWrite(kind, resource_id, None, actor=actor,
                      action=f"scim.{kind.value.lower()}_deleted",
                      detail={"id": resource_id}),
            self._clock.now_ms(),
        )

    async def _write(
        self, kind: ScimKind, resource_id: str, resource: Any, actor: str, verb: str
    ) -> StoredResource:
        body = {
            k: v for k, v in resource.model_dump(scim_ctx=Context.DEFAULT).items()
            if k not in _NOT_STORED
        }
        detail: dict[str, Any] = {"id": resource_id}
        members: tuple[tuple[str, str], ...] | None = None
        if kind is ScimKind.USER:
            groups = await self._store.groups_of([resource_id])
            _, unusable = self._mapping.person(
                resource_id, body, [g.display for g in groups[resource_id]]
            )
            detail["active"] = body.get("active") is not False
            if unusable:
                detail["unusable"] = list(unusable)
        else:
            members = tuple(
                (str(m.value), str(m.display or "")) for m in resource.members or [] if m.value
            )
            detail["members"] = len(members)
        try:
            stored = await self._store.write(
                ScimWrite(kind, resource_id, body, _lookup(kind, resource), members,
                          actor=actor, action=f"scim.{kind.value.lower()}_{verb}",
                          detail=detail),
                self._clock.now_ms(),
            )
        except ScimConflict as exc:
            raise UniquenessException(detail=f"{exc.attribute} is already in use") from None
        assert stored is not None
        return stored

    # -- helpers -----------------------------------------------------------------------------

    async def _existing(self, kind: ScimKind, resource_id: str) -> StoredResource:
        stored = await self._store.get(kind, resource_id)
        if stored is None:
            raise NotFoundException(detail=f"{kind.value} {resource_id} not found")
        return stored

    async def _candidates(self, kind: ScimKind, node: FilterNode) -> set[str] | None:
        """Ids that may match a filter, found by the store's lookup values (the filter itself
        then decides), or None when it cannot narrow the search and every one is tested."""
        if isinstance(node, Comparison) and node.op is CompareOperator.eq:
            name = _lookup_name(kind, node.attr_path)
            if name is None or node.value is None:
                return None
            return set(await self._store.lookup(kind, name, str(node.value)))
        if isinstance(node, ValuePath) and isinstance(node.val_filter, Comparison):
            inner = node.val_filter
            path = AttrPath(node.attr_path.attr, inner.attr_path.attr, node.attr_path.uri)
            return await self._candidates(kind, Comparison(path, inner.op, inner.value))
        if isinstance(node, LogicalExpr):
            found = [await self._candidates(kind, term) for term in node.terms]
            known = [f for f in found if f is not None]
            if node.op is LogicalOperator.and_:
                return set.intersection(*known) if known else None
            return set.union(*known) if len(known) == len(found) else None
        return None

    async def _ids(self, kind: ScimKind, ids: set[str]) -> list[str]:
        found = await self._store.many(kind, sorted(ids))
        return [r.id for r in found]

    async def _resources(
        self, kind: ScimKind, stored: Sequence[StoredResource], base: str
    ) -> list[Any]:
        """The stored resources as models, with their meta and memberships."""
        ids = [s.id for s in stored]
        if kind is ScimKind.USER:
            links = await self._store.groups_of(ids)
        else:
            links = await self._store.members_of(ids)
        return [_model(kind, s, links[s.id], base) for s in stored]


def _model(kind: ScimKind, stored: StoredResource, links: list[Membership], base: str) -> Any:
    data = dict(stored.body)
    data["id"] = stored.id
    data["meta"] = {
        "resourceType": kind.value,
        "created": _iso(stored.created_at),
        "lastModified": _iso(stored.updated_at),
        "version": f'W/"{stored.version}"',
        "location": f"{base}/{ENDPOINTS[kind]}/{stored.id}",
    }
    if kind is ScimKind.USER and links:
        data["groups"] = [
            {"value": m.group_id, "display": m.display, "type": "direct",
             "$ref": f"{base}/Groups/{m.group_id}"}
            for m in links
        ]
    if kind is ScimKind.GROUP and links:
        data["members"] = [
            {"value": m.user_id, "type": "User", "$ref": f"{base}/Users/{m.user_id}",
             **({"display": m.display} if m.display else {})}
            for m in links
        ]
    return MODELS[kind].model_validate(data, scim_ctx=Context.DEFAULT)


def _window(request: SearchRequest[Any]) -> tuple[int, int]:
    """The first index (1-based) and the page size a request asks for, within the limits."""
    start = max(1, request.start_index or 1)
    count = MAX_RESULTS if request.count is None else max(0, min(request.count, MAX_RESULTS))
    return start, count


def _listed(
    model: Any, total: int, start: int, resources: list[Any], request: SearchRequest[Any]
) -> dict[str, Any]:
    generic: Any = ListResponse
    listed = generic[model](
        total_results=total, start_index=start, items_per_page=len(resources),
        resources=resources,
    )
    return dict(listed.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=request))


def dump(resource: Any, params: ResponseParameters[Any] | None = None) -> dict[str, Any]:
    """A resource as a response body, with the attributes the request asked for."""
    return dict(resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE,
                                    response_parameters=params))


def _lookup(kind: ScimKind, resource: Any) -> tuple[tuple[str, str], ...]:
    values: list[tuple[str, str]] = []
    if resource.external_id:
        values.append(("externalid", str(resource.external_id).lower()))
    if kind is ScimKind.USER:
        values.append(("username", str(resource.user_name or "").lower()))
        if resource.display_name:
            values.append(("displayname", str(resource.display_name).lower()))
        values.extend(
            ("emails.value", str(e.value).lower()) for e in resource.emails or [] if e.value
        )
    else:
        values.append(("displayname", str(resource.display_name or "").lower()))
    return tuple(values)


def _lookup_name(kind: ScimKind, path: AttrPath) -> str | None:
    sub = path.sub_attr.lower() if path.sub_attr else None
    if path.attr.lower() == "emails" and sub is None:
        sub = "value"
    return LOOKUPS[kind].get((path.attr.lower(), sub))
