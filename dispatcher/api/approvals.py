"""Two-person approval routes: list and read held requests, approve or reject them."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.api.openapi import Body, Reply, Route, refused
from dispatcher.edge import (
    ErrorBody,
    ViolationBody,
    caller_of,
    error,
    read_json,
    reply,
    service_of,
)
from dispatcher.store.approvals import ApprovalRecord, ApprovalStore

routes = web.RouteTableDef()

MAX_REASON = 2000


class ApprovalStatus(BaseModel):
    """A held alert request: its state, who asked and decided, and the alert once approved."""

    id: str
    state: Literal["pending", "approved", "rejected", "expired"]
    kind: str
    mode: str
    audience: dict[str, Any]
    requested_by: str
    requested_at: int
    expires_at: int
    decided_by: str | None
    decided_at: int | None
    reason: str | None
    alert_id: str | None
    alert_url: str | None
    request: dict[str, Any] = Field(description="the alert request as it was composed")

    @classmethod
    def of(cls, record: ApprovalRecord, now_ms: int) -> ApprovalStatus:
        """The status of a stored record at a moment (a pending one past its time expired)."""
        return cls.model_validate(record.as_json(now_ms))


class ApprovalList(BaseModel):
    """Requests waiting for a second person, oldest first."""

    items: list[ApprovalStatus]


class Approved(BaseModel):
    """The 202 of an approval: the alert is stored durably and dispatching."""

    id: str
    status_url: str
    approval_id: str
    audience: dict[str, Any]
    warnings: list[ViolationBody]


class RejectBody(BaseModel):
    """Why a held request is refused (optional)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=MAX_REASON)


def _store(request: web.Request) -> ApprovalStore:
    store = service_of(request).intake.approvals
    if store is None:
        raise web.HTTPServiceUnavailable(
            text=ErrorBody(error="two-person approval is not available on this service").text(),
            content_type="application/json",
        )
    return store


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    """Requests waiting for a second person, oldest first."""
    service = service_of(request)
    now = service.clock.now_ms()
    records = await _store(request).pending(now)
    return reply(ApprovalList(items=[ApprovalStatus.of(r, now) for r in records]))


@routes.get("/v1/approvals/{id}")
async def get_approval(request: web.Request) -> web.Response:
    """One held request: its state, who asked and decided, and the alert once approved."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    record = await _store(request).get(approval_id)
    if record is None:
        return error(404, f"no approval request {approval_id}")
    return reply(ApprovalStatus.of(record, service.clock.now_ms()))


@routes.post("/v1/approvals/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    """Approve as a second person: the alert is created and sent; 202 with its id."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    _store(request)
    accepted = await service.intake.approve(approval_id, caller_of(request))
    return reply(Approved(
        id=accepted.id,
        status_url=f"/v1/alerts/{accepted.id}",
        approval_id=approval_id,
        audience=accepted.audience,
        warnings=[ViolationBody.model_validate(w) for w in accepted.warnings],
    ), status=202)


@routes.post("/v1/approvals/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    """Refuse a held request (or withdraw one's own); nothing is sent."""
    service = service_of(request)
    approval_id = request.match_info["id"]
    _store(request)
    body = RejectBody()
    if request.can_read_body:
        try:
            body = RejectBody.model_validate(await read_json(request))
        except ValidationError:
            return error(422, "invalid request", problems=[
                {"field": "reason", "message": f"a string of at most {MAX_REASON} characters"}])
    record = await service.intake.reject(approval_id, caller_of(request), body.reason)
    return reply(ApprovalStatus.of(record, service.clock.now_ms()))


NO_SUCH = refused("no such approval request")

ROUTES = (
    Route("get", "/v1/approvals", "Alert requests waiting for a second person's approval",
          replies={200: Reply("pending requests, oldest first", ApprovalList),
                   503: refused("two-person approval is not available on this service")}),
    Route("get", "/v1/approvals/{id}", "One held alert request",
          replies={200: Reply("the held request", ApprovalStatus), 404: NO_SUCH,
                   503: refused("two-person approval is not available on this service")}),
    Route("post", "/v1/approvals/{id}/approve",
          "Approve a held request as a second person; the alert is sent",
          replies={
              202: Reply("the alert is stored durably and dispatching", Approved),
              403: refused("the role may not approve, or the composer tried to approve"),
              404: NO_SUCH,
              409: refused("rejected, expired, or already being decided"),
              422: refused("the request no longer passes the checks it passed when held"),
              503: refused("two-person approval is not available on this service"),
          }),
    Route("post", "/v1/approvals/{id}/reject", "Reject a held request (or withdraw one's own)",
          body=Body(RejectBody, required=False),
          replies={
              200: Reply("the held request, rejected", ApprovalStatus),
              403: refused("the role may not reject"),
              404: NO_SUCH,
              409: refused("no longer pending"),
              422: refused("invalid body"),
              503: refused("two-person approval is not available on this service"),
          }),
)


