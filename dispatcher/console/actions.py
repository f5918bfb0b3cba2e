"""Every call the console makes into intake, approvals, the engine and the drill scheduler.

One place that turns their refusals into the console's own `Refused`, so a change in how
intake reports refusals is adapted here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatcher.approval import ApprovalRecord
from dispatcher.auth import Caller, scope_permits
from dispatcher.domain import AlertState, ChannelKind, Mode
from dispatcher.intake import ApprovalRequired, Rejected
from dispatcher.request import AlertRequest
from dispatcher.scheduler import UnknownDrill
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord


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


def _refused(exc: Rejected) -> Refused:
    body = exc.body
    return Refused(
        message=str(body.get("error", "refused")),
        problems=list(body.get("problems", [])),
        violations=list(body.get("violations", [])),
        forbidden=exc.status == 403,
    )


async def submit(
    service: Service, request: AlertRequest, caller: Caller, *, key: str | None
) -> Sent | Held | Refused:
    """Send an alert (or hold it for approval) as the signed-in person."""
    try:
        accepted = await service.intake.submit(request, caller, idempotency_key=key)
    except ApprovalRequired as held:
        return Held(held.record.id, held.record.audience_counts)
    except Rejected as exc:
        return _refused(exc)
    return Sent(accepted.id)


async def approve(service: Service, approval_id: str, caller: Caller) -> Sent | Refused:
    """Approve a held alert as the second person."""
    try:
        accepted = await service.intake.approve(approval_id, caller)
    except Rejected as exc:
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
    except Rejected as exc:
        return _refused(exc)
    return None


def channels_for(service: Service, request: AlertRequest) -> list[ChannelKind] | Refused:
    """The channels intake would send the request on, or why it would not."""
    try:
        return service.intake.channels_for(request)
    except Rejected as exc:
        return _refused(exc)


def may_act_on(service: Service, record: AlertRecord, caller: Caller) -> bool:
    """Whether the person may cancel, update or clear this alert (as the API decides)."""
    if not caller.can_send or (record.mode is Mode.LIVE and not caller.can_send_live):
        return False
    segments = service.settings.directory.segments
    return scope_permits(record.request.audience, caller.scopes, segments)


async def cancel(
    service: Service, record: AlertRecord, caller: Caller, reason: str
) -> int | Refused:
    """Withdraw an alert; the number of deliveries stopped."""
    if not may_act_on(service, record, caller):
        return Refused(f"Your role ({caller.role}) may not cancel this alert", forbidden=True)
    if record.state is AlertState.CANCELLED:
        return 0
    return await service.engine.cancel(record, actor=caller.name, reason=reason)


async def run_drill(service: Service, name: str, caller: Caller) -> Sent | Refused:
    """Fire a configured drill now, as the person."""
    try:
        run = await service.scheduler.run_now(name, caller)
    except UnknownDrill:
        return Refused(f"There is no drill called {name!r}")
    except Rejected as exc:
        return _refused(exc)
    if not run.alert_id:
        return Refused(f"The drill {name!r} did not start")
    return Sent(run.alert_id)


async def add_note(
    service: Service, record: AlertRecord, caller: Caller, text: str
) -> Refused | None:
    """Add a follow-up note to an alert's record (audited)."""
    from dispatcher.api.drills import records_of
    from dispatcher.records import note_text

    if record.mode is Mode.LIVE and not caller.can_send_live:
        return Refused(f"Your role ({caller.role}) may add notes to drills and tests only",
                       forbidden=True)
    try:
        clean = note_text(text)
    except ValueError as exc:
        return Refused(str(exc).removeprefix("text: "),
                       problems=[{"field": "text", "message": str(exc).removeprefix("text: ")}])
    await records_of(service).add_note(record.id, author=caller.name, text=clean,
                                       now_ms=service.clock.now_ms())
    return None
