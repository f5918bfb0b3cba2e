"""Upstream feed routes: every relay decision, and the proposals waiting for a dispatcher."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, RootModel, ValidationError

from dispatcher.alerting.intake import Held
from dispatcher.alerting.request import problems
from dispatcher.api.openapi import Param, Reply, Route, refused
from dispatcher.edge import (
    HeldReply,
    caller_of,
    error,
    held_response,
    reply,
    service_of,
    unless_none,
)
from dispatcher.store.feeds import FeedEvent, FeedProposal, ProposalState

routes = web.RouteTableDef()

MAX_EVENTS = 1000
# Ids are stored as 64-bit integers; a larger cursor names no decision.
MAX_ID = 2**62


class EventsQuery(BaseModel):
    """The query of `GET /v1/feeds/events`: a page size (kept within 1 to MAX_EVENTS) and the
    id the page ends before."""

    limit: int = 100
    before: int | None = Field(default=None, ge=0, le=MAX_ID)


class FeedDecision(BaseModel):
    """One relay decision: what came in, what was done, and why."""

    id: int
    at: int
    feed: str
    message: str
    thread: str
    event: str
    outcome: str
    reason: str
    alert_id: str | None
    proposal_id: str | None

    @classmethod
    def of(cls, event: FeedEvent) -> FeedDecision:
        """The decision as the API shows it."""
        return cls.model_validate(event.as_json())


class FeedDecisions(BaseModel):
    """A page of relay decisions, newest first, and the link to the next older page."""

    items: list[FeedDecision]
    next: str | None


class Proposal(BaseModel):
    """A draft campus alert from a feed, waiting for a dispatcher (the upstream document
    only when one proposal is read)."""

    id: str
    feed: str
    event: str
    upstream: str
    state: ProposalState
    created_at: int
    request: dict[str, Any]
    decided_by: str | None
    decided_at: int | None
    alert_id: str | None
    source: str | None = unless_none("the upstream document the proposal came from")

    @classmethod
    def of(cls, proposal: FeedProposal, *, source: bool = True) -> Proposal:
        """The proposal as the API shows it."""
        return cls.model_validate(proposal.as_json(source=source))


class Proposals(BaseModel):
    """Proposals in one state (or all)."""

    items: list[Proposal]


class ProposalSent(BaseModel):
    """The 202 of a proposal sent: its alert is stored durably and dispatching."""

    id: str
    status_url: str
    proposal: Proposal


class ProposalReply(RootModel[ProposalSent | HeldReply]):
    """The 202 of a proposal sent: dispatching, or held for a second person's approval."""


@routes.get("/v1/feeds/events")
async def feed_events(request: web.Request) -> web.Response:
    """Every relay decision (sent, proposed, updated, cleared, ignored, suppressed, refused)."""
    service = service_of(request)
    try:
        query = EventsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return error(422, "invalid parameters", problems=problems(exc))
    limit = min(max(query.limit, 1), MAX_EVENTS)
    events = await service.feed_relay.store.events(limit=limit, before_id=query.before)
    return reply(FeedDecisions(
        items=[FeedDecision.of(e) for e in events],
        next=f"/v1/feeds/events?before={events[-1].id}&limit={limit}"
        if len(events) == limit else None,
    ))


@routes.get("/v1/feeds/proposals")
async def list_proposals(request: web.Request) -> web.Response:
    """Draft alerts from the feeds; pending ones unless `state` says otherwise (or `all`)."""
    service = service_of(request)
    raw = request.query.get("state", "pending")
    if raw != "all" and raw not in {s.value for s in ProposalState}:
        return error(422, "invalid parameters",
                     problems=[{"field": "state", "message": "pending, sent, dismissed or all"}])
    state = None if raw == "all" else ProposalState(raw)
    found = await service.feed_relay.store.proposals(state)
    return reply(Proposals(items=[Proposal.of(p, source=False) for p in found]))


@routes.get("/v1/feeds/proposals/{id}")
async def get_proposal(request: web.Request) -> web.Response:
    """One proposal with the upstream document it came from."""
    service = service_of(request)
    proposal = await service.feed_relay.store.proposal(request.match_info["id"])
    if proposal is None:
        return error(404, f"no proposal {request.match_info['id']}")
    return reply(Proposal.of(proposal))


@routes.post("/v1/feeds/proposals/{id}/send")
async def send_proposal(request: web.Request) -> web.Response:
    """Send a proposal as the caller's alert: 202 with the alert (or approval) id."""
    service = service_of(request)
    proposal, accepted = await service.feed_relay.send_proposal(
        request.match_info["id"], caller_of(request)
    )
    if isinstance(accepted, Held):
        return held_response(accepted)
    alert_id = accepted.id
    return reply(ProposalSent(id=alert_id, status_url=f"/v1/alerts/{alert_id}",
                              proposal=Proposal.of(proposal, source=False)), status=202)


@routes.post("/v1/feeds/proposals/{id}/dismiss")
async def dismiss_proposal(request: web.Request) -> web.Response:
    """Decide not to send a proposal."""
    service = service_of(request)
    proposal = await service.feed_relay.dismiss_proposal(
        request.match_info["id"], caller_of(request)
    )
    return reply(Proposal.of(proposal, source=False))


NO_SUCH = refused("no such proposal")

ROUTES = (
    Route("get", "/v1/feeds/events", "Every decision on an upstream feed message, newest first",
          params=(Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_EVENTS)]),
                  Param("before", "query", Annotated[int, Field(ge=0, le=MAX_ID)])),
          replies={200: Reply("decisions", FeedDecisions),
                   422: refused("limit or before is not a whole number, or before is out of "
                                "range")}),
    Route("get", "/v1/feeds/proposals", "Draft alerts from the feeds waiting for a dispatcher",
          params=(Param("state", "query", Literal["pending", "sent", "dismissed", "all"]),),
          replies={200: Reply("proposals", Proposals),
                   422: refused("state is not pending, sent, dismissed or all")}),
    Route("get", "/v1/feeds/proposals/{id}", "One proposal with its upstream document",
          replies={200: Reply("the proposal", Proposal), 404: NO_SUCH}),
    Route("post", "/v1/feeds/proposals/{id}/send", "Send a proposal as the caller's alert",
          replies={202: Reply("the alert is durable, or held for approval", ProposalReply),
                   403: refused("the role may not send it"),
                   404: NO_SUCH,
                   409: refused("the proposal is no longer pending"),
                   422: refused("policy violations")}),
    Route("post", "/v1/feeds/proposals/{id}/dismiss", "Decide not to send a proposal",
          replies={200: Reply("the dismissed proposal", Proposal),
                   403: refused("the role may not dismiss it"),
                   404: NO_SUCH,
                   409: refused("the proposal is no longer pending")}),
)


