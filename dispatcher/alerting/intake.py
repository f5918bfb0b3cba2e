"""Intake: everything between a decoded request and a durable alert (webhook, CLI, scheduler)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from dispatcher.access.auth import Authenticator, Caller
from dispatcher.access.permissions import Permissions
from dispatcher.alerting.rendering import Rendered, render_alert
from dispatcher.alerting.request import AlertRequest, ConfirmedBy
from dispatcher.alerting.templates import TemplateError, expand
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind
from dispatcher.engine import Engine
from dispatcher.observability import Metrics
from dispatcher.places import campus_places
from dispatcher.policy import evaluate
from dispatcher.policy.engine import finder_for
from dispatcher.policy.verdict import Verdict
from dispatcher.refusals import Conflict, Invalid, NotFound, PolicyBreach, Problem, Refused, located
from dispatcher.settings import ConfigError, Settings
from dispatcher.store.alerts import AlertRecord, AlertStore
from dispatcher.store.approvals import ApprovalRecord, ApprovalState, ApprovalStore, alert_key
from dispatcher.store.incidents import IncidentStore
from segments.audience import AudienceError, AudienceResolver

log = structlog.get_logger("clarion.intake")

EMPTY_AUDIENCE = (
    "this audience reaches no one (0 people and 0 devices on the chosen channels): check the "
    "segment, zones and channels, or set allow_empty_audience to send it anyway"
)


@dataclass(frozen=True, slots=True)
class Held:
    """Not an alert yet: held until a second person approves it (the API answers 202)."""

    record: ApprovalRecord
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored alert: its id, whether this call created it, and what the caller should see."""

    id: str
    created: bool
    audience: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)


# What a follow-up (an update or all clear naming the alert it follows) inherits from that
# alert unless the request gives it.
INHERITED = ("audience", "zones", "exclude_zones", "channels", "language", "confirmed_by")


def inherit(request: AlertRequest, follows: AlertRecord) -> AlertRequest:
    """The follow-up with what it leaves out taken from the alert it follows."""
    given = request.model_fields_set
    earlier = follows.request
    update: dict[str, Any] = {}
    if "audience" not in given:
        update["audience"] = follows.audience
    if "zones" not in given:
        update["zones"] = list(follows.zones)
    if "exclude_zones" not in given:
        update["exclude_zones"] = list(follows.exclude_zones)
    if request.channels is None:
        update["channels"] = list(follows.channels)
    if "language" not in given:
        update["language"] = earlier.language
    if request.confirmed_by is None and earlier.confirmed_by is not None:
        update["confirmed_by"] = earlier.confirmed_by
    return request.model_copy(update=update) if update else request


def whole_audience(audience: str, zones: Sequence[str], exclude_zones: Sequence[str]) -> str:
    """One expression for an audience narrowed by its zones (zones are `zone:` terms)."""
    parts = [f"({audience})"]
    if zones:
        parts.append("(" + " or ".join(f"zone:{z}" for z in zones) + ")")
    if exclude_zones:
        parts.append("not (" + " or ".join(f"zone:{z}" for z in exclude_zones) + ")")
    return " and ".join(parts)


def _reach(request: AlertRequest) -> tuple[str, frozenset[str], frozenset[str]]:
    return request.audience, frozenset(request.zones), frozenset(request.exclude_zones)


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a follow-up does differently from the alert it follows."""

    field: str
    before: str
    after: str


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(getattr(v, "value", v)) for v in value) or "none"
    if isinstance(value, ConfirmedBy):
        return f"{value.name}, {value.title}"
    return "none" if value is None else str(value)


def changes(
    follows: AlertRecord, request: AlertRequest, channels: Sequence[ChannelKind]
) -> tuple[Change, ...]:
    """What the follow-up changes of the inherited parts, in `INHERITED`'s order."""
    earlier = follows.request
    pairs: dict[str, tuple[Any, Any]] = {
        "audience": (follows.audience, request.audience),
        "zones": (sorted(follows.zones), sorted(request.zones)),
        "exclude_zones": (sorted(follows.exclude_zones), sorted(request.exclude_zones)),
        "channels": (sorted(c.value for c in follows.channels), sorted(c.value for c in channels)),
        "language": (earlier.language, request.language),
        "confirmed_by": (earlier.confirmed_by, request.confirmed_by),
    }
    return tuple(
        Change(name, _shown(before), _shown(after))
        for name, (before, after) in pairs.items() if before != after
    )


@dataclass(frozen=True, slots=True)
class Preview:
    """What intake would do with a request, nothing stored: the same checks as `submit`.

    `refusals` are what `submit` would raise (the first one), located by field; when an
    early check refuses (role, template, audience, scope, references, incident, channels)
    there is nothing rendered or counted yet. A message the policy refuses is still rendered
    and counted, and its verdict says where.
    """

    request: AlertRequest
    refusals: tuple[Refused, ...] = ()
    channels: tuple[ChannelKind, ...] = ()
    rendered: Rendered | None = None
    verdict: Verdict | None = None
    counts: dict[str, Any] | None = None
    held: bool = False
    follows: AlertRecord | None = None
    changes: tuple[Change, ...] = ()
    widened: int = 0

    @property
    def ok(self) -> bool:
        """Nothing stops it: `submit` would store it, or hold it for approval."""
        return not self.refusals

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Every refusal but the policy's, as field problems."""
        return tuple(p for exc in self.refusals for p in located(exc))


@dataclass(frozen=True, slots=True)
class _Checked:
    """A request through every check, with what storing it needs, and what the last checks
    (the policy, an audience of no one) refused: `submit` raises the first of those."""

    request: AlertRequest
    channels: list[ChannelKind]
    rendered: Rendered
    verdict: Verdict
    counts: dict[str, Any]
    refusals: tuple[Refused, ...] = ()
    follows: AlertRecord | None = None
    widened: int = 0
    # The request as asked, with what a follow-up inherits filled in: what a hold keeps.
    asked: AlertRequest | None = None

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """The policy's findings, as the API lists them."""
        violations: list[dict[str, Any]] = self.verdict.to_json()["violations"]
        return violations


class Intake:
    """Checks a request (role, template, audience, scope, references, incident, channels,
    policy, an audience of no one, approval) and stores it with its audit entry and its
    incident link.

    Refusals are raised as `dispatcher.refusals` types and counted here, whoever called.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        auth: Authenticator,
        permissions: Permissions,
        alerts: AlertStore,
        audience: AudienceResolver,
        engine: Engine,
        metrics: Metrics,
        clock: Clock,
        approvals: ApprovalStore,
        incidents: IncidentStore,
    ) -> None:
        self._settings = settings
        self._incidents = incidents
        self._permissions = permissions
        self._alerts = alerts
        self._audience = audience
        self._engine = engine
        self._metrics = metrics
        self._clock = clock
        self._places = campus_places(settings)
        # Built once (~25 ms): at start, not on the first alert's clock.
        finder_for(self._places)
        self.approvals = approvals
        segments = settings.directory.segments
        for caller in auth.callers:
            unknown = [s for s in caller.scopes if s not in segments]
            if unknown:
                raise ConfigError(
                    f"auth.tokens {caller.name!r}: segments {unknown} are not named segments "
                    f"(directory.segments: {', '.join(sorted(segments)) or 'none'})"
                )

    def channels_for(self, request: AlertRequest) -> list[ChannelKind]:
        """The channels an alert goes out on: asked for, or the kind's default, if configured."""
        configured = self._engine.channels
        if request.channels is not None:
            missing = [c.value for c in request.channels if c not in configured]
            if missing:
                raise Invalid.one(
                    "channels", f"not configured on this service: {', '.join(missing)}"
                )
            return list(request.channels)
        wanted = self._settings.dispatch.default_channels.get(request.kind, [])
        chosen = [c for c in wanted if c in configured]
        if not chosen:
            raise Invalid.one(
                "channels", f"none of the channels a {request.kind.value} uses by default is "
                "configured on this service: choose the channels")
        return chosen

    async def preview(self, request: AlertRequest, caller: Caller) -> Preview:
        """Every check `submit` makes, without storing or holding anything (nothing counted)."""
        try:
            checked = await self._check(request, caller)
        except Refused as exc:
            return Preview(request, refusals=(exc,))
        held = self._needs_approval(checked) and not self._permissions.may_bypass_approval(
            caller)
        follows = checked.follows
        return Preview(
            checked.request, refusals=checked.refusals, channels=tuple(checked.channels),
            rendered=checked.rendered, verdict=checked.verdict, counts=checked.counts,
            held=held, follows=follows, widened=checked.widened,
            changes=() if follows is None else changes(follows, checked.request,
                                                       checked.channels),
        )

    async def submit(
        self, request: AlertRequest, caller: Caller, *, idempotency_key: str | None = None
    ) -> Accepted | Held:
        """Validate against policy and store durably; the engine starts after this returns.

        Returns the stored alert, or the held request when the audience needs a second
        person's approval and the caller's role may not bypass it. Raises a `Refused`.
        """
        with self._counted():
            checked = self._passed(await self._check(request, caller))
            approval: dict[str, Any] | None = None
            if self._needs_approval(checked):
                if not self._permissions.may_bypass_approval(caller):
                    return await self._hold(checked.asked or request, caller, checked,
                                            idempotency_key)
                approval = {"required": True, "bypassed": True}
                log.warning("approval.bypassed", actor=caller.name, role=caller.role.value,
                            recipients=checked.counts.get("total", 0))
            return await self._store(checked, caller, idempotency_key, approval=approval)

    async def approve(self, approval_id: str, approver: Caller) -> Accepted:
        """A second person approves a held request: its alert is created and dispatched."""
        with self._counted():
            return await self._approve(approval_id, approver)

    async def _approve(self, approval_id: str, approver: Caller) -> Accepted:
        store = self.approvals
        record = await self._approvable(approval_id, approver)
        if record.state is ApprovalState.APPROVED and record.alert_id:
            return Accepted(record.alert_id, False, record.audience_counts)
        now = self._clock.now_ms()
        if not await store.claim(record.id, approver, now):
            latest = await store.get(record.id)
            if latest is not None and latest.state is ApprovalState.APPROVED and latest.alert_id:
                return Accepted(latest.alert_id, False, latest.audience_counts)
            raise Conflict(f"approval request {record.id} is no longer pending")
        try:
            # Checked again as its composer: roles, scopes, the directory or the policy
            # may have changed while it waited.
            checked = self._passed(await self._check(record.request, record.requester))
            accepted = await self._store(
                checked,
                record.requester,
                alert_key(record.id),
                approval={
                    "required": True,
                    "approval_id": record.id,
                    "approved_by": approver.name,
                    "approver_role": approver.role.value,
                },
            )
        except Exception:
            # Back to pending, so it can be approved again or rejected.
            await store.release(record.id)
            raise
        await store.approved(
            record.id, approver=approver, alert_id=accepted.id, now_ms=self._clock.now_ms()
        )
        log.info("approval.approved", approval_id=record.id, alert_id=accepted.id,
                 actor=approver.name, requested_by=record.requested_by)
        return accepted

    async def reject(self, approval_id: str, caller: Caller, reason: str = "") -> ApprovalRecord:
        """Refuse a held request (an approver), or withdraw it (its composer)."""
        with self._counted():
            store = self.approvals
            record = await store.get(approval_id)
            if record is None:
                raise NotFound(f"no approval request {approval_id}")
            self._permissions.check_reject(caller, record.requester, record.request.audience)
            if not await store.reject(record.id, actor=caller, reason=reason,
                                      now_ms=self._clock.now_ms()):
                state = (await store.get(record.id) or record).state_at(self._clock.now_ms())
                raise Conflict(f"approval request {record.id} is {state.value}, not pending")
            log.info("approval.rejected", approval_id=record.id, actor=caller.name)
            rejected = await store.get(record.id)
            assert rejected is not None
            return rejected

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count each refusal under its label, so metrics see role, scope and policy refusals."""
        try:
            yield
        except Refused as exc:
            if exc.counted_as is not None:
                self._metrics.rejected.labels(exc.counted_as).inc()
            raise

    # -- the checks -----------------------------------------------------------------------------

    async def _check(self, request: AlertRequest, caller: Caller) -> _Checked:
        """Everything that must hold before an alert is stored or held for approval.

        The first checks raise; the policy's verdict and an audience of no one come back as
        `refusals`, so a preview shows them beside the rendering and the count.
        """
        self._permissions.check_send(caller, request.mode)
        follows: AlertRecord | None = None
        if request.references is not None:
            follows = await self._alerts.get(request.references)
            if follows is None:
                raise Invalid.one("references", f"no alert {request.references}")
            request = inherit(request, follows)
        asked = request
        try:
            request = expand(request, self._settings.templates_dir())
        except TemplateError as exc:
            raise Invalid.one("template", str(exc)) from None
        try:
            await self._audience.check(request.audience, request.zones, request.exclude_zones)
        except AudienceError as exc:
            message = str(exc)
            where = next((f for f in ("exclude_zones", "zones") if message.startswith(f"{f}:")),
                         "audience")
            raise Invalid.one(where, message.removeprefix(f"{where}: ")) from None
        self._permissions.check_audience(caller, request.audience)
        if request.incident is not None:
            self._permissions.check_link_incident(caller)
            refusal = await self._incidents.refusal_for_alert(request.incident)
            if refusal is not None:
                raise refusal
        channels = self.channels_for(request)
        # The store counts the audience on its reader thread while the policy runs here.
        counting = asyncio.ensure_future(self._audience.count(
            request.audience, request.zones, request.kind, channels,
            exclude_zones=request.exclude_zones,
        ))
        try:
            rendered, verdict = self._police(request, caller, channels)
        except BaseException:
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
            raise
        counts = await counting
        # Broadcast targets and webhook subscribers: the channels' config names them, and an
        # alert that reaches only them reaches someone.
        destinations = self._destinations(request, channels)
        by_channel = counts.get("by_channel")
        if isinstance(by_channel, dict):
            by_channel.update(destinations)
        refusals: list[Refused] = []
        if not verdict.ok:
            refusals.append(PolicyBreach(verdict.to_json()["violations"]))
        if (int(counts.get("total", 0)) == 0 and not any(destinations.values())
                and not request.allow_empty_audience):
            refusals.append(Invalid.one("audience", EMPTY_AUDIENCE))
        widened = 0
        if follows is not None and _reach(request) != (
                follows.audience, frozenset(follows.zones), frozenset(follows.exclude_zones)):
            widened = await self._newly_reached(request, follows, channels)
            if widened and not request.widen:
                refusals.append(Invalid.one("widen", (
                    f"this {request.kind.value.replace('_', ' ')} reaches {widened} people "
                    f"or devices that alert {follows.id} did not: to reach them too, widen it "
                    "explicitly (widen: true); or keep that alert's audience and zones "
                    "(leave them out to inherit them)")))
        return _Checked(request, channels, rendered, verdict, counts, tuple(refusals),
                        follows=follows, widened=widened, asked=asked)

    async def _newly_reached(
        self, request: AlertRequest, follows: AlertRecord, channels: list[ChannelKind]
    ) -> int:
        """How many people and devices a follow-up reaches that the alert it follows did not."""
        before = whole_audience(follows.audience, follows.zones, follows.exclude_zones)
        counts = await self._audience.count(
            f"({request.audience}) and not ({before})", request.zones, request.kind, channels,
            exclude_zones=request.exclude_zones,
        )
        return int(counts.get("total", 0))

    def _destinations(
        self, request: AlertRequest, channels: list[ChannelKind]
    ) -> dict[str, int]:
        """How many broadcast targets and webhook subscribers the alert's channels name."""
        return {
            kind.value: len(self._engine.channels[kind].destinations(request.kind))
            for kind in channels if kind.is_institutional
        }

    @staticmethod
    def _passed(checked: _Checked) -> _Checked:
        """The checked request, or the first refusal of the last checks raised."""
        if checked.refusals:
            raise checked.refusals[0]
        return checked

    def _police(
        self, request: AlertRequest, caller: Caller, channels: list[ChannelKind]
    ) -> tuple[Rendered, Verdict]:
        """Render the alert for its channels and check it against the message policy."""
        rendered = render_alert(
            request, channels, self._settings.rendering, limits=self._settings.policy
        )
        overridden = frozenset(request.override.rules) if request.override else frozenset()
        if overridden:
            self._permissions.check_override(caller)
        verdict = evaluate(
            request, rendered, self._settings.policy, overridden=overridden, places=self._places
        )
        return rendered, verdict

    def _needs_approval(self, checked: _Checked) -> bool:
        settings = self._settings.auth.approval
        return (
            settings.enabled
            and checked.request.mode in settings.modes
            and int(checked.counts.get("total", 0)) >= settings.min_audience
        )

    async def _hold(
        self,
        request: AlertRequest,
        caller: Caller,
        checked: _Checked,
        idempotency_key: str | None,
    ) -> Held:
        now = self._clock.now_ms()
        record, created = await self.approvals.hold(
            request,
            caller=caller,
            counts=checked.counts,
            now_ms=now,
            expires_ms=now + 1000 * self._settings.auth.approval.expires_s,
            idempotency_key=idempotency_key,
        )
        if created:
            log.info("approval.requested", approval_id=record.id, actor=caller.name,
                     kind=request.kind.value, recipients=checked.counts.get("total", 0))
        return Held(record, checked.warnings)

    async def _approvable(self, approval_id: str, approver: Caller) -> ApprovalRecord:
        record = await self.approvals.get(approval_id)
        if record is None:
            raise NotFound(f"no approval request {approval_id}")
        self._permissions.check_approve(approver, record.requester, record.request.audience)
        state = record.state_at(self._clock.now_ms())
        if state in (ApprovalState.REJECTED, ApprovalState.EXPIRED):
            raise Conflict(f"approval request {record.id} is {state.value}")
        return record

    # -- storing --------------------------------------------------------------------------------

    async def _store(
        self,
        checked: _Checked,
        caller: Caller,
        idempotency_key: str | None,
        *,
        approval: dict[str, Any] | None,
    ) -> Accepted:
        request, channels, counts = checked.request, checked.channels, checked.counts
        now = self._clock.now_ms()
        expires = now + 1000 * (
            request.expires_in or self._settings.dispatch.expires_s.get(request.kind, 3600)
        )
        clery = {
            "confirmed_by": request.confirmed_by.model_dump() if request.confirmed_by else None,
            "confirmed_at": now if request.confirmed_by else None,
            "chosen_by": caller.name,
            "delay_reason": request.delay_reason,
            "drill": request.drill.model_dump() if request.drill else None,
        }
        if approval is not None and "approved_by" in approval:
            clery["approved_by"] = approval["approved_by"]
        audit: dict[str, Any] = {
            "role": caller.role.value,
            "kind": request.kind.value,
            "mode": request.mode.value,
            "audience": request.audience,
            "zones": request.zones,
            "exclude_zones": request.exclude_zones,
            "channels": [c.value for c in channels],
            "confirmed_by": clery["confirmed_by"],
            "override": request.override.model_dump() if request.override else None,
            "warnings": [v["rule"] for v in checked.warnings],
        }
        if approval is not None:
            audit["approval"] = approval
        alert_id, created = await self._alerts.create(
            request, checked.rendered, actor=caller.name, now_ms=now, expires_ms=expires,
            channels=channels, idempotency_key=idempotency_key, audience_counts=counts,
            clery=clery, audit_detail=audit, incident=request.incident,
        )
        if created:
            self._metrics.alerts.labels(request.kind.value, request.mode.value).inc()
            if request.override:
                log.warning("alert.policy_overridden", alert_id=alert_id, actor=caller.name,
                            rules=request.override.rules)
            log.info("alert.accepted", alert_id=alert_id, kind=request.kind.value,
                     mode=request.mode.value, actor=caller.name, channels=audit["channels"])
            self._engine.dispatch(alert_id)
        return Accepted(alert_id, created, counts, checked.warnings)
