"""Every call the console makes into intake, approvals, the engine and the drill scheduler.

One place that turns their typed refusals (`dispatcher.refusals`) into the console's own
`Refused`, the shape its pages show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatcher import refusals
from dispatcher.access.auth import Caller
from dispatcher.access.tokens import ListedToken
from dispatcher.alerting import intake
from dispatcher.alerting.request import AlertRequest, DrillRecord
from dispatcher.domain import AlertState
from dispatcher.drills.schedule import UnknownDrill
from dispatcher.records import note_text
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord
from dispatcher.store.approvals import ApprovalRecord
from dispatcher.store.feeds import FeedEvent, FeedProposal, ProposalState


@dataclass(frozen=True, slots=True)
class Sent:
    """An alert was stored and is being dispatched."""

    alert_id: str


@dataclass(frozen=True, slots=True)
class Held:
    """The alert waits for a second person's approval."""

    approval_id: str
    audience: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """Not done: a plain message, and the field problems or policy violations behind it."""

    message: str
    problems: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    forbidden: bool = False


def _refused(exc: refusals.Refused) -> Refused:
    return Refused(
        message=exc.message,
        problems=[p.as_json() for p in exc.problems]
        if isinstance(exc, refusals.Invalid) else [],
        violations=list(exc.violations) if isinstance(exc, refusals.PolicyBreach) else [],
        forbidden=isinstance(exc, refusals.Forbidden),
    )


async def submit(
    service: Service, request: AlertRequest, caller: Caller, *, key: str | None
) -> Sent | Held | Refused:
    """Send an alert (or hold it for approval) as the signed-in person."""
    try:
        accepted = await service.intake.submit(request, caller, idempotency_key=key)
    except refusals.Refused as exc:
        return _refused(exc)
    if isinstance(accepted, intake.Held):
        return Held(accepted.record.id, accepted.record.audience_counts)
    return Sent(accepted.id)


async def approve(service: Service, approval_id: str, caller: Caller) -> Sent | Refused:
    """Approve a held alert as the second person."""
    try:
        accepted = await service.intake.approve(approval_id, caller)
    except refusals.Refused as exc:
        return _refused(exc)
    return Sent(accepted.id)


async def pending_approvals(service: Service, limit: int = 100) -> list[ApprovalRecord]:
    """Held alerts still waiting, oldest first."""
    return await service.intake.approvals.pending(service.clock.now_ms(), limit=limit)


async def approval(service: Service, approval_id: str) -> ApprovalRecord | None:
    """One held alert, whatever its state."""
    return await service.intake.approvals.get(approval_id)


async def reject(
    service: Service, approval_id: str, caller: Caller, reason: str
) -> Refused | None:
    """Refuse (or withdraw) a held alert; None when done."""
    try:
        await service.intake.reject(approval_id, caller, reason)
    except refusals.Refused as exc:
        return _refused(exc)
    return None


async def preview(service: Service, request: AlertRequest, caller: Caller) -> intake.Preview:
    """What intake would do with the request (every check it makes), nothing stored."""
    return await service.intake.preview(request, caller)


def may_act_on(service: Service, record: AlertRecord, caller: Caller) -> bool:
    """Whether the person may cancel, update or clear this alert (as the API decides)."""
    try:
        service.permissions.check_cancel(caller, record.mode, record.request.audience)
    except refusals.Forbidden:
        return False
    return True


async def cancel(
    service: Service, record: AlertRecord, caller: Caller, reason: str
) -> int | Refused:
    """Withdraw an alert; the number of deliveries stopped."""
    if not may_act_on(service, record, caller):
        return Refused(f"Your role ({caller.role}) may not cancel this alert", forbidden=True)
    if record.state is AlertState.CANCELLED:
        return 0
    return await service.engine.cancel(record, actor=caller.name, reason=reason)


async def run_drill(
    service: Service, name: str, caller: Caller, record: DrillRecord | None = None
) -> Sent | Held | Refused:
    """Fire a configured drill now, as the person, with the Clery record they gave."""
    try:
        manual = await service.scheduler.run_now(name, caller, record)
    except UnknownDrill:
        return Refused(f"There is no drill called {name!r}")
    except refusals.Refused as exc:
        return _refused(exc)
    if manual.held is not None:
        return Held(manual.held.record.id, manual.held.record.audience_counts)
    if not manual.run.alert_id:
        return Refused(f"The drill {name!r} did not start")
    return Sent(manual.run.alert_id)


async def add_note(
    service: Service, record: AlertRecord, caller: Caller, text: str
) -> Refused | None:
    """Add a follow-up note to an alert's record (audited)."""
    try:
        service.permissions.check_note(caller, record.mode)
    except refusals.Forbidden:
        return Refused(f"Your role ({caller.role}) may add notes to drills and tests only",
                       forbidden=True)
    try:
        clean = note_text(text)
    except ValueError as exc:
        return Refused(str(exc).removeprefix("text: "),
                       problems=[{"field": "text", "message": str(exc).removeprefix("text: ")}])
    await service.records.add_note(record.id, author=caller.name, text=clean,
                                       now_ms=service.clock.now_ms())
    return None


# -- upstream feed proposals ------------------------------------------------------------------


async def feed_proposals(service: Service) -> list[FeedProposal]:
    """Draft alerts from the upstream feeds waiting for a dispatcher, newest first."""
    return await service.feed_relay.store.proposals(ProposalState.PENDING)


async def feed_proposal(service: Service, proposal_id: str) -> FeedProposal | None:
    """One proposal, with the upstream document it came from."""
    return await service.feed_relay.store.proposal(proposal_id)


async def feed_decisions(service: Service, limit: int = 20) -> list[FeedEvent]:
    """The latest relay decisions."""
    return await service.feed_relay.store.events(limit=limit)


async def send_feed_proposal(
    service: Service, proposal_id: str, caller: Caller
) -> Sent | Held | Refused:
    """One click: the proposal goes out as the signed-in person's alert."""
    try:
        _, accepted = await service.feed_relay.send_proposal(proposal_id, caller)
    except refusals.Refused as exc:
        return _refused(exc)
    if isinstance(accepted, intake.Held):
        return Held(accepted.record.id, accepted.record.audience_counts)
    return Sent(accepted.id)


async def dismiss_feed_proposal(
    service: Service, proposal_id: str, caller: Caller
) -> Refused | None:
    """Decide not to send a proposal."""
    try:
        await service.feed_relay.dismiss_proposal(proposal_id, caller)
    except refusals.Refused as exc:
        return _refused(exc)
    return None


async def api_tokens(service: Service, caller: Caller) -> list[ListedToken] | Refused:
    """Every API token, configured and stored, for someone who may manage them."""
    try:
        service.permissions.check_manage_tokens(caller)
    except refusals.Refused as exc:
        return _refused(exc)
    return await service.token_registry.listed()


async def revoke_token(service: Service, name: str, caller: Caller) -> Refused | None:
    """Revoke a token by name (refused on every node from the next request); None when done."""
    try:
        service.permissions.check_manage_tokens(caller)
        await service.token_registry.revoke(name, actor=caller.name)
    except refusals.Refused as exc:
        return _refused(exc)
    return None


def held_channels(service: Service, request: AlertRequest) -> list[str]:
    """The channels a held request goes out on once approved (those it asked for, if one of
    them is no longer configured)."""
    try:
        return [c.value for c in service.intake.channels_for(request)]
    except refusals.Refused:
        return [c.value for c in request.channels or ()]
