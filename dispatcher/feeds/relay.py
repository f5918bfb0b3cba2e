"""The relay: carries out each decision of `rules.decide` through intake, proposals or cancel.

Each upstream message is claimed in the store before it is decided, so however many nodes poll
the same feed and however often they restart, it is decided and relayed once. The campus
alert's Idempotency-Key, `feed:<thread>`, guards the send a second time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from dispatcher.access.auth import Caller, Role
from dispatcher.access.permissions import Permissions
from dispatcher.alerting.intake import Accepted, Held, Intake
from dispatcher.alerting.request import AlertRequest, parse_request
from dispatcher.cap.format import CapAlert, CapInfo, main_info, request_from_cap
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind
from dispatcher.engine import Engine
from dispatcher.feeds.rules import Decision, Outcome, area_key, decide, instruction_key
from dispatcher.feeds.settings import FeedsSettings
from dispatcher.policy.settings import PolicySettings
from dispatcher.refusals import Conflict, NotFound, Refused
from dispatcher.store.alerts import AlertStore
from dispatcher.store.approvals import ApprovalState
from dispatcher.store.feeds import (
    FeedEvent,
    FeedProposal,
    FeedStore,
    FeedThread,
    ProposalState,
    ThreadState,
)
from segments.zones import Zone, zones_overlapping

log = structlog.get_logger("clarion.feeds")

# What an update with no new audience still reaches: the signs and speakers that show it.
_DISPLAYS = (ChannelKind.SIGNAGE, ChannelKind.PA)
_SMS_BUDGET_CHARS = 153  # one concatenated GSM-7 segment


def message_key(sender: str, identifier: str) -> str:
    """How an upstream message is named in the store: `sender,identifier`."""
    return f"{sender},{identifier}"


class FeedRelay:
    """Decides each upstream message once and relays it as the rules say."""

    def __init__(
        self,
        *,
        feeds: FeedsSettings,
        store: FeedStore,
        intake: Intake,
        engine: Engine,
        alerts: AlertStore,
        zones: Callable[[], Mapping[str, Zone]],
        clock: Clock,
        permissions: Permissions,
        policy: PolicySettings,
    ) -> None:
        self._feeds = feeds
        self._store = store
        self._intake = intake
        self._engine = engine
        self._alerts = alerts
        self._zones = zones
        self._clock = clock
        self._permissions = permissions
        # NWS headlines run long: clipped to what a push title and a sign headline may hold.
        self._headline_max = min(policy.push_title_max, policy.signage_headline_max)
        self.owner = f"feeds-{secrets.token_hex(4)}"

    @property
    def store(self) -> FeedStore:
        """The decisions and proposals."""
        return self._store

    def _zones_of(self, polygon: Any) -> tuple[str, ...] | None:
        return zones_overlapping(self._zones(), polygon)

    async def handle(self, feed: str, alert: CapAlert, source: bytes) -> FeedEvent | None:
        """Decide one upstream message and act; None when it was decided before."""
        key = message_key(alert.sender, alert.identifier)
        earlier = [",".join(r.split(",")[:2]) for r in alert.references]
        thread_key = await self._store.thread_of(earlier) or key
        now_ms = self._clock.now_ms()
        if not await self._store.claim_message(key, thread_key, feed, owner=self.owner,
                                               now_ms=now_ms):
            return None
        thread = await self._store.thread(thread_key)
        if thread is not None:
            thread = await self._settle(thread)
        info = main_info(alert)
        event = info.event if info is not None else alert.msg_type
        where = area_key(info) if info is not None else ""
        repeat = None
        if info is not None and thread is None:
            window = self._feeds.rules.repeat_window_s * 1000
            repeat = await self._store.recent_relay(event, where, now_ms - window, thread_key)
        decision = decide(alert, thread=thread, repeat=repeat, rules=self._feeds.rules,
                          zones_of=self._zones_of, now=datetime.fromtimestamp(now_ms / 1000, UTC))
        outcome, reason, alert_id, proposal_id = await self._act(
            feed, alert, info, source, thread_key, thread, decision
        )
        recorded = await self._store.record(
            at=now_ms, feed=feed, message_key=key, thread_key=thread_key, event=event,
            area_key=where, outcome=outcome.value, reason=reason, alert_id=alert_id,
            proposal_id=proposal_id,
        )
        log.info("feed.decided", feed=feed, upstream=key, event_name=event,
                 outcome=outcome.value, reason=reason, alert_id=alert_id)
        return recorded

    async def _act(
        self,
        feed: str,
        alert: CapAlert,
        info: CapInfo | None,
        source: bytes,
        thread_key: str,
        thread: FeedThread | None,
        decision: Decision,
    ) -> tuple[Outcome, str, str | None, str | None]:
        outcome, reason = decision.outcome, decision.reason
        now_ms = self._clock.now_ms()
        if outcome is Outcome.CLEARED and thread is not None:
            return await self._clear(thread, reason)
        if outcome is Outcome.SUPPRESSED and thread is not None and info is not None:
            # Only the expiry moved: keep the thread's clock in step so expiry still clears it.
            await self._store.save_thread(_replace(thread, expires_at=_ms(info.expires),
                                                   updated_at=now_ms))
            return outcome, reason, thread.alert_id, thread.proposal_id
        if info is None or outcome not in (Outcome.SENT, Outcome.PROPOSED, Outcome.UPDATED):
            return outcome, reason, None, None
        sent_before = thread
        if outcome is Outcome.UPDATED and thread is not None and thread.approval_id is not None:
            # The campus alert never went out: withdraw the held request and send the update
            # whole, to everyone it reaches, for approval again if the audience needs it.
            thread = await self._withdraw(thread, "superseded by an upstream update")
            sent_before = thread if thread.alert_id else None
        displays = [c for c in _DISPLAYS if c in self._engine.channels]
        if (outcome is Outcome.UPDATED and sent_before is not None and decision.added_zones == ()
                and sent_before.state is ThreadState.ACTIVE and not displays):
            # No one new to reach and nothing that shows it: re-sending would repeat it to all.
            await self._store.save_thread(_replace(
                sent_before, area_key=area_key(info), instruction_key=instruction_key(info),
                expires_at=_ms(info.expires), updated_at=now_ms))
            return (outcome, f"{reason}; no one new to reach and no sign or speaker "
                    "configured: not re-sent", sent_before.alert_id, None)
        try:
            request = self._request(feed, alert, info, decision, sent_before)
        except (ValueError, ValidationError) as exc:
            return Outcome.REFUSED, f"not a valid campus alert: {_first_line(exc)}", None, None
        base = FeedThread(
            thread_key, feed, info.event, area_key(info), instruction_key(info),
            _union(thread.zones if thread else (), decision.zones), None, None,
            ThreadState.ACTIVE, _ms(info.expires), now_ms,
        )
        if outcome is Outcome.PROPOSED or (sent_before is not None
                                           and sent_before.state is ThreadState.PROPOSED):
            if thread is not None and thread.proposal_id:
                await self._store.decide_proposal(thread.proposal_id, ProposalState.DISMISSED,
                                                  actor=f"feed:{feed}", now_ms=now_ms)
            proposal = await self._store.propose(
                thread_key=thread_key, feed=feed, message_key=message_key(alert.sender,
                                                                          alert.identifier),
                event=info.event, request=request.model_dump(mode="json", exclude_none=True),
                source=source.decode("utf-8", "replace"), now_ms=now_ms,
            )
            await self._store.save_thread(_replace(base, state=ThreadState.PROPOSED,
                                                   proposal_id=proposal.id))
            return Outcome.PROPOSED, reason, None, proposal.id
        caller = Caller(f"feed:{feed}", Role.DISPATCHER)
        try:
            accepted = await self._intake.submit(request, caller,
                                                 idempotency_key=f"feed:{thread_key}"[:200]
                                                 if thread is None else
                                                 f"feed:{thread_key}:{alert.identifier}"[:200])
        except Refused as exc:
            # A policy refusal (or any other) is a decision on record, not a crash.
            return Outcome.REFUSED, f"{reason}; refused: {exc.summary()}", None, None
        if isinstance(accepted, Held):
            await self._store.save_thread(_replace(base, state=ThreadState.PROPOSED,
                                                   approval_id=accepted.record.id))
            return outcome, f"{reason}; held for approval {accepted.record.id}", None, None
        await self._store.save_thread(_replace(base, alert_id=accepted.id))
        return outcome, reason, accepted.id, None

    def _request(
        self,
        feed: str,
        alert: CapAlert,
        info: CapInfo,
        decision: Decision,
        thread: FeedThread | None,
    ) -> AlertRequest:
        """The campus alert for an upstream one: texts per channel, zones, source named."""
        now = datetime.fromtimestamp(self._clock.now_ms() / 1000, UTC)
        raw = request_from_cap(alert, now=now, zones_of=None)
        raw["mode"] = "live"
        raw.pop("references", None)
        raw.pop("drill", None)
        zones = decision.zones
        channels = decision.rule.channels if decision.rule is not None else None
        if decision.outcome is Outcome.UPDATED and thread is not None:
            raw["references"] = thread.alert_id
            if decision.added_zones:
                zones = decision.added_zones
                raw["widen"] = True  # upstream's area grew: the new zones are its people
            elif decision.added_zones is None:
                zones = None
                raw["widen"] = True
            else:
                # No one new to reach: the update is shown where the alert is shown.
                zones = thread.zones
                wanted = channels or list(ChannelKind)
                channels = [c for c in wanted if c in _DISPLAYS] or list(_DISPLAYS)
        raw["zones"] = list(zones or [])
        if channels is not None:
            raw["channels"] = [c.value for c in channels if c in self._engine.channels] or None
            if raw["channels"] is None:
                raw.pop("channels")
        if decision.rule is not None and decision.rule.exclude_zones and not zones:
            raw["exclude_zones"] = list(decision.rule.exclude_zones)
        raw["texts"] = channel_texts(alert, info, feed)
        headline = str(raw.get("headline") or "")
        if len(headline) > self._headline_max:
            raw["headline"] = headline[: self._headline_max - 1].rstrip() + "…"
        if raw.get("references") is None:
            raw.pop("references", None)
        return parse_request(raw)

    async def _clear(
        self, thread: FeedThread, reason: str
    ) -> tuple[Outcome, str, str | None, str | None]:
        now_ms = self._clock.now_ms()
        if thread.state is ThreadState.PROPOSED and thread.proposal_id:
            await self._store.decide_proposal(thread.proposal_id, ProposalState.DISMISSED,
                                              actor=f"feed:{thread.feed}", now_ms=now_ms)
        if thread.approval_id is not None:
            thread = await self._withdraw(thread, reason)
        cleared: list[str] = []
        for alert_id in [thread.alert_id] if thread.alert_id else []:
            record = await self._alerts.get(alert_id)
            # Every alert of the thread: an update references the one before it.
            while record is not None:
                if record.state.value != "cancelled":
                    await self._engine.cancel(record, actor=f"feed:{thread.feed}", reason=reason)
                    cleared.append(record.id)
                record = (await self._alerts.get(record.references_id)
                          if record.references_id else None)
        await self._store.save_thread(_replace(thread, state=ThreadState.CLEARED,
                                               updated_at=now_ms))
        return Outcome.CLEARED, reason, thread.alert_id, thread.proposal_id

    async def expire(self) -> list[FeedEvent]:
        """Clear the campus alerts whose upstream alert expired with no word from upstream."""
        now_ms = self._clock.now_ms()
        done = []
        for thread in await self._store.expired_threads(now_ms):
            if not await self._store.take_expired(thread, now_ms):
                continue
            _, reason, alert_id, _ = await self._clear(await self._settle(thread),
                                                       "upstream alert expired")
            done.append(await self._store.record(
                at=now_ms, feed=thread.feed, message_key=thread.thread_key,
                thread_key=thread.thread_key, event=thread.event, area_key=thread.area_key,
                outcome=Outcome.CLEARED.value, reason=reason, alert_id=alert_id,
            ))
        return done

    # -- held for approval ---------------------------------------------------------------------

    async def _settle(self, thread: FeedThread) -> FeedThread:
        """A thread whose campus alert was held for approval learns what became of it: approved
        (the alert joins the thread), rejected or expired (the thread is ignored from then on)."""
        if thread.approval_id is None:
            return thread
        now_ms = self._clock.now_ms()
        record = await self._intake.approvals.get(thread.approval_id)
        state = record.state_at(now_ms) if record is not None else ApprovalState.EXPIRED
        if state in (ApprovalState.PENDING, ApprovalState.APPROVING):
            return thread
        if record is not None and record.alert_id:
            settled = _replace(thread, state=ThreadState.ACTIVE, alert_id=record.alert_id,
                               approval_id=None, updated_at=now_ms)
        else:
            settled = _replace(thread, state=ThreadState.IGNORED, approval_id=None,
                               updated_at=now_ms)
        await self._store.save_thread(settled)
        return settled

    async def _withdraw(self, thread: FeedThread, reason: str) -> FeedThread:
        """Withdraw the thread's held request (the relay composed it); if a person approved it
        meanwhile, the thread carries the alert that was sent, for the caller to clear."""
        assert thread.approval_id is not None
        composer = Caller(f"feed:{thread.feed}", Role.DISPATCHER)
        try:
            await self._intake.reject(thread.approval_id, composer, reason=reason)
        except Conflict:
            log.info("feed.withdraw_too_late", approval_id=thread.approval_id)
        return await self._settle(thread)

    # -- proposals -----------------------------------------------------------------------------

    async def send_proposal(
        self, proposal_id: str, caller: Caller
    ) -> tuple[FeedProposal, Accepted | Held]:
        """One click by a dispatcher: the proposal goes through intake as theirs."""
        proposal = await self._pending(proposal_id)
        request = parse_request(proposal.request)
        self._intake_permissions_check(caller, request)
        now_ms = self._clock.now_ms()
        if not await self._store.decide_proposal(proposal.id, ProposalState.SENT,
                                                 actor=caller.name, now_ms=now_ms):
            raise Conflict(f"proposal {proposal.id} is no longer pending")
        try:
            accepted = await self._intake.submit(request, caller,
                                                 idempotency_key=f"feed:{proposal.id}")
        except Exception:
            await self._store.reopen_proposal(proposal.id)
            raise
        if not isinstance(accepted, Held):
            await self._store.proposal_sent(proposal.id, accepted.id)
            thread = await self._store.thread(proposal.thread_key)
            if thread is not None:
                await self._store.save_thread(_replace(thread, state=ThreadState.ACTIVE,
                                                       alert_id=accepted.id, updated_at=now_ms))
        await self._store.record(
            at=now_ms, feed=proposal.feed, message_key=proposal.message_key,
            thread_key=proposal.thread_key, event=proposal.event, area_key="",
            outcome=Outcome.SENT.value, reason=f"proposal sent by {caller.name}",
            alert_id=None if isinstance(accepted, Held) else accepted.id,
            proposal_id=proposal.id,
        )
        return (await self._pending_or_any(proposal.id)), accepted

    async def dismiss_proposal(self, proposal_id: str, caller: Caller) -> FeedProposal:
        """A dispatcher decides not to send it."""
        proposal = await self._pending(proposal_id)
        self._intake_permissions_check(caller, parse_request(proposal.request))
        now_ms = self._clock.now_ms()
        if not await self._store.decide_proposal(proposal.id, ProposalState.DISMISSED,
                                                 actor=caller.name, now_ms=now_ms):
            raise Conflict(f"proposal {proposal.id} is no longer pending")
        thread = await self._store.thread(proposal.thread_key)
        if thread is not None:
            await self._store.save_thread(_replace(thread, state=ThreadState.IGNORED,
                                                   updated_at=now_ms))
        await self._store.record(
            at=now_ms, feed=proposal.feed, message_key=proposal.message_key,
            thread_key=proposal.thread_key, event=proposal.event, area_key="",
            outcome=Outcome.IGNORED.value, reason=f"proposal dismissed by {caller.name}",
            proposal_id=proposal.id,
        )
        return await self._pending_or_any(proposal.id)

    def _intake_permissions_check(self, caller: Caller, request: AlertRequest) -> None:
        self._permissions.check_feed_proposal(caller, request.mode, request.audience)

    async def _pending(self, proposal_id: str) -> FeedProposal:
        proposal = await self._store.proposal(proposal_id)
        if proposal is None:
            raise NotFound(f"no proposal {proposal_id}")
        if proposal.state is not ProposalState.PENDING:
            raise Conflict(f"proposal {proposal.id} is {proposal.state.value}")
        return proposal

    async def _pending_or_any(self, proposal_id: str) -> FeedProposal:
        proposal = await self._store.proposal(proposal_id)
        assert proposal is not None
        return proposal


def channel_texts(alert: CapAlert, info: CapInfo, feed: str) -> dict[str, Any]:
    """Long NWS texts per channel: headline and instruction for SMS within one segment, the
    full description by e-mail and on signage, each naming the upstream source."""
    headline = info.headline or info.event
    sms = headline.rstrip(". ")
    if info.instruction:
        first = info.instruction.split(". ")[0].rstrip(". ")
        candidate = f"{sms}. {first}."
        sms = candidate if len(candidate) <= _SMS_BUDGET_CHARS else sms + "."
    if len(sms) > _SMS_BUDGET_CHARS:
        sms = sms[: _SMS_BUDGET_CHARS - 1].rstrip() + "…"
    # The sender is often a person's address: the feed's name and the identifier say enough.
    source = f"Source: upstream feed {feed}, alert {alert.identifier}"
    body = "\n\n".join(p for p in (info.description, info.instruction, source) if p)
    long_text = "\n\n".join(p for p in (headline, info.description, info.instruction) if p)
    return {
        "sms": sms,
        "email": {"subject": headline[:200], "body": body[:20000]},
        "signage": long_text[:4000],
    }


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:500]


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _union(
    old: tuple[str, ...] | None, new: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    if old is None or new is None:
        return None
    return tuple(sorted(set(old) | set(new)))


def _replace(thread: FeedThread, **changes: Any) -> FeedThread:
    values = {name: getattr(thread, name) for name in FeedThread.__dataclass_fields__}
    values.update(changes)
    return FeedThread(**values)
