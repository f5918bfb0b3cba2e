"""Intake: everything between a decoded request and a durable alert (webhook, CLI, scheduler)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from dispatcher.auth import Authenticator, Caller
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, Mode
from dispatcher.engine import Engine
from dispatcher.observability import Metrics
from dispatcher.policy import campus_places, evaluate
from dispatcher.rendering import render_alert
from dispatcher.request import AlertRequest
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertStore, IdempotencyConflict
from dispatcher.templates import TemplateError, expand
from segments.audience import AudienceError, AudienceResolver

log = structlog.get_logger("clarion.intake")


class Rejected(Exception):
    """The request cannot become an alert; `status` and `body` say why, for the API to return."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


@dataclass(frozen=True, slots=True)
class Accepted:
    """A stored alert: its id, whether this call created it, and what the caller should see."""

    id: str
    created: bool
    audience: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)


class Intake:
    """Checks a request (role, audience, template, policy) and stores it with its audit entry."""

    def __init__(
        self,
        *,
        settings: Settings,
        auth: Authenticator,
        alerts: AlertStore,
        audience: AudienceResolver,
        engine: Engine,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._alerts = alerts
        self._audience = audience
        self._engine = engine
        self._metrics = metrics
        self._clock = clock
        self._places = campus_places(settings)

    def channels_for(self, request: AlertRequest) -> list[ChannelKind]:
        """The channels an alert goes out on: asked for, or the kind's default, if configured."""
        configured = self._engine.channels
        if request.channels is not None:
            missing = [c.value for c in request.channels if c not in configured]
            if missing:
                raise Rejected(
                    422, "invalid request",
                    problems=[{"field": "channels",
                               "message": f"not configured on this service: {', '.join(missing)}"}],
                )
            return list(request.channels)
        wanted = self._settings.dispatch.default_channels.get(request.kind, list(ChannelKind))
        return [c for c in wanted if c in configured]

    async def submit(
        self, request: AlertRequest, caller: Caller, *, idempotency_key: str | None = None
    ) -> Accepted:
        """Validate against policy and store durably; the engine starts after this returns."""
        if not caller.can_send:
            raise Rejected(403, f"role {caller.role} may not send alerts")
        if request.mode is Mode.LIVE and not caller.can_send_live:
            raise Rejected(403, f"role {caller.role} may send drills and tests only")
        try:
            request = expand(request, self._settings.templates_dir())
        except TemplateError as exc:
            raise Rejected(422, "invalid request",
                           problems=[{"field": "template", "message": str(exc)}]) from None
        try:
            await self._audience.check(request.audience, request.zones, request.exclude_zones)
        except AudienceError as exc:
            raise Rejected(422, "invalid request",
                           problems=[{"field": "audience", "message": str(exc)}]) from None
        if caller.scopes and request.audience not in caller.scopes:
            raise Rejected(403, f"this token may only target: {', '.join(caller.scopes)}")
        if request.references is not None and await self._alerts.get(request.references) is None:
            raise Rejected(422, "invalid request", problems=[
                {"field": "references", "message": f"no alert {request.references}"}])
        channels = self.channels_for(request)
        rendered = render_alert(
            request, channels, self._settings.rendering, limits=self._settings.policy
        )
        overridden = frozenset(request.override.rules) if request.override else frozenset()
        if overridden and not self._auth.may_override(caller):
            raise Rejected(403, f"role {caller.role} may not override the message policy")
        verdict = evaluate(
            request, rendered, self._settings.policy, overridden=overridden, places=self._places
        )
        if not verdict.ok:
            self._metrics.rejected.labels("policy").inc()
            raise Rejected(422, "the message breaks the alert policy",
                           violations=[v for v in verdict.to_json()["violations"]])
        now = self._clock.now_ms()
        expires = now + 1000 * (
            request.expires_in or self._settings.dispatch.expires_s.get(request.kind, 3600)
        )
        counts = await self._audience.count(
            request.audience, request.zones, request.kind, channels,
            exclude_zones=request.exclude_zones,
        )
        clery = {
            "confirmed_by": request.confirmed_by.model_dump() if request.confirmed_by else None,
            "confirmed_at": now if request.confirmed_by else None,
            "chosen_by": caller.name,
            "delay_reason": request.delay_reason,
            "drill": request.drill.model_dump() if request.drill else None,
        }
        audit = {
            "role": caller.role.value,
            "kind": request.kind.value,
            "mode": request.mode.value,
            "audience": request.audience,
            "zones": request.zones,
            "exclude_zones": request.exclude_zones,
            "channels": [c.value for c in channels],
            "confirmed_by": clery["confirmed_by"],
            "override": request.override.model_dump() if request.override else None,
            "warnings": [v["rule"] for v in verdict.to_json()["violations"]],
        }
        try:
            alert_id, created = await self._alerts.create(
                request, rendered, actor=caller.name, now_ms=now, expires_ms=expires,
                channels=channels, idempotency_key=idempotency_key, audience_counts=counts,
                clery=clery, audit_detail=audit,
            )
        except IdempotencyConflict as exc:
            raise Rejected(409, str(exc), id=exc.alert_id) from None
        if created:
            self._metrics.alerts.labels(request.kind.value, request.mode.value).inc()
            if request.override:
                log.warning("alert.policy_overridden", alert_id=alert_id, actor=caller.name,
                            rules=request.override.rules)
            log.info("alert.accepted", alert_id=alert_id, kind=request.kind.value,
                     mode=request.mode.value, actor=caller.name, channels=audit["channels"])
            self._engine.dispatch(alert_id)
        return Accepted(alert_id, created, counts, verdict.to_json()["violations"])
