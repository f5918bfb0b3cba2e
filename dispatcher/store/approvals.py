"""Two-person approval in the store: alert requests held until a second person approves them,
every change with its audit entry in the same transaction.

A request is `pending` until approved, rejected or expired. Approving moves it to `approving`
while its alert is created (with an Idempotency-Key derived from the approval, so a retry after
a crash finds the same alert), then to `approved` with the alert's id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dispatcher.access.auth import Caller, Role
from dispatcher.alerting.request import AlertRequest
from dispatcher.refusals import Conflict
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row


class ApprovalState(StrEnum):
    """Where a held request stands."""

    PENDING = "pending"
    APPROVING = "approving"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalConflict(Conflict):
    """The Idempotency-Key was used for another held request with another body."""

    def __init__(self, approval_id: str) -> None:
        super().__init__(
            f"Idempotency-Key already used for approval request {approval_id} with another body",
            existing_id=approval_id,
        )
        self.approval_id = approval_id


def new_approval_id(now_ms: int) -> str:
    """Time-ordered, unguessable, and never mistaken for an alert id."""
    return f"apr-{now_ms:012x}{secrets.token_hex(4)}"


def alert_key(approval_id: str) -> str:
    """The Idempotency-Key of the alert an approval creates."""
    return f"approval:{approval_id}"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A held alert request as stored."""

    id: str
    state: ApprovalState
    request: AlertRequest
    audience_counts: dict[str, Any]
    requested_by: str
    requested_person: str
    requester_role: Role
    requester_scopes: tuple[str, ...]
    requested_at: int
    expires_at: int
    decided_by: str | None
    decided_at: int | None
    reason: str
    alert_id: str | None

    @property
    def requester(self) -> Caller:
        """The caller who composed the request."""
        return Caller(self.requested_by, self.requester_role, self.requester_scopes,
                      person=self.requested_person)

    def state_at(self, now_ms: int) -> ApprovalState:
        """The state as callers see it: a pending request past its time has expired."""
        if self.state is ApprovalState.PENDING and now_ms >= self.expires_at:
            return ApprovalState.EXPIRED
        return self.state

    def as_json(self, now_ms: int) -> dict[str, Any]:
        """What `GET /v1/approvals/{id}` returns."""
        state = self.state_at(now_ms)
        return {
            "id": self.id,
            # Approving is a moment's work inside one call; to callers it is still pending.
            "state": (ApprovalState.PENDING if state is ApprovalState.APPROVING else state).value,
            "kind": self.request.kind.value,
            "mode": self.request.mode.value,
            "audience": self.audience_counts,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "reason": self.reason or None,
            "alert_id": self.alert_id,
            "alert_url": f"/v1/alerts/{self.alert_id}" if self.alert_id else None,
            "request": self.request.model_dump(mode="json", exclude_none=True),
        }


_COLUMNS = (
    "id, state, request, audience_counts, requested_by, requested_person, requester_role,"
    " requester_scopes,"
    " requested_at, expires_at, decided_by, decided_at, reason, alert_id"
)


def _record(row: Row) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        state=ApprovalState(row["state"]),
        request=AlertRequest.model_validate_json(row["request"]),
        audience_counts=json.loads(row["audience_counts"]),
        requested_by=row["requested_by"],
        # Requests held before people were recorded: the composer's name was their person.
        requested_person=row["requested_person"] or row["requested_by"],
        requester_role=Role(row["requester_role"]),
        requester_scopes=tuple(json.loads(row["requester_scopes"])),
        requested_at=int(row["requested_at"]),
        expires_at=int(row["expires_at"]),
        decided_by=row["decided_by"],
        decided_at=None if row["decided_at"] is None else int(row["decided_at"]),
        reason=row["reason"],
        alert_id=row["alert_id"],
    )


class ApprovalStore:
    """Held requests and their decisions; every change carries its audit entry."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._listeners: list[Callable[[ApprovalRecord], None]] = []

    def subscribe(self, listener: Callable[[ApprovalRecord], None]) -> None:
        """Call `listener(record)` after each new held request is committed (the approvers'
        notice); listeners must be quick and must not raise."""
        self._listeners.append(listener)

    async def hold(
        self,
        request: AlertRequest,
        *,
        caller: Caller,
        counts: dict[str, Any],
        now_ms: int,
        expires_ms: int,
        idempotency_key: str | None,
    ) -> tuple[ApprovalRecord, bool]:
        """Store a request for approval; returns (record, created). Raises ApprovalConflict."""
        fingerprint = request.fingerprint()
        async with self._db.transaction() as tx:
            if idempotency_key is not None:
                row = await tx.fetchone(
                    f"SELECT {_COLUMNS}, request_sha256 FROM approvals WHERE idempotency_key = ?",
                    (idempotency_key,),
                )
                if row is not None:
                    if row["request_sha256"] != fingerprint:
                        raise ApprovalConflict(row["id"])
                    return _record(row), False
            approval_id = new_approval_id(now_ms)
            await tx.execute(
                "INSERT INTO approvals (id, state, kind, mode, audience, audience_total,"
                " audience_counts, request, request_sha256, requested_by, requested_person,"
                " requester_role, requester_scopes, requested_at, expires_at, idempotency_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval_id,
                    ApprovalState.PENDING.value,
                    request.kind.value,
                    request.mode.value,
                    request.audience,
                    int(counts.get("total", 0)),
                    json.dumps(counts),
                    request.model_dump_json(),
                    fingerprint,
                    caller.name,
                    caller.person,
                    caller.role.value,
                    json.dumps(list(caller.scopes)),
                    now_ms,
                    expires_ms,
                    idempotency_key,
                ),
            )
            await self._audit.append(
                tx,
                at=now_ms,
                actor=caller.name,
                action="approval.requested",
                detail={
                    "approval_id": approval_id,
                    "person": caller.person,
                    "role": caller.role.value,
                    "kind": request.kind.value,
                    "mode": request.mode.value,
                    "audience": request.audience,
                    "zones": request.zones,
                    "recipients": int(counts.get("total", 0)),
                },
            )
        record = await self.get(approval_id)
        if record is None:
            raise LookupError(f"approval {approval_id} vanished right after it was stored")
        for listener in self._listeners:
            listener(record)
        return record, True

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        """One held request, or None."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        )
        return None if row is None else _record(row)

    async def pending(self, now_ms: int, limit: int = 100) -> list[ApprovalRecord]:
        """Requests still waiting for a decision, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM approvals WHERE state IN (?, ?) AND expires_at > ?"
            " ORDER BY requested_at, id LIMIT ?",
            (ApprovalState.PENDING.value, ApprovalState.APPROVING.value, now_ms, limit),
        )
        return [_record(r) for r in rows]

    async def claim(self, approval_id: str, approver: Caller, now_ms: int) -> bool:
        """Take a pending request for approval; False when it is no longer pending.

        One already being approved may be taken again: the alert it creates is idempotent,
        so an approval cut short by a crash can be completed.
        """
        changed = await self._db.execute(
            "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ? AND ((state = ? AND expires_at > ?) OR state = ?)",
            (
                ApprovalState.APPROVING.value,
                approver.name,
                now_ms,
                approval_id,
                ApprovalState.PENDING.value,
                now_ms,
                ApprovalState.APPROVING.value,
            ),
        )
        return changed == 1

    async def release(self, approval_id: str) -> None:
        """Put a claimed request back to pending (its alert could not be created)."""
        await self._db.execute(
            "UPDATE approvals SET state = ?, decided_by = NULL, decided_at = NULL"
            " WHERE id = ? AND state = ?",
            (ApprovalState.PENDING.value, approval_id, ApprovalState.APPROVING.value),
        )

    async def approved(
        self, approval_id: str, *, approver: Caller, alert_id: str, now_ms: int
    ) -> None:
        """Record the approval and the alert it created."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, alert_id = ?"
                " WHERE id = ? AND state = ?",
                (
                    ApprovalState.APPROVED.value,
                    approver.name,
                    now_ms,
                    alert_id,
                    approval_id,
                    ApprovalState.APPROVING.value,
                ),
            )
            if changed:
                await self._audit.append(
                    tx,
                    at=now_ms,
                    actor=approver.name,
                    action="approval.approved",
                    alert_id=alert_id,
                    detail={"approval_id": approval_id, "person": approver.person,
                            "role": approver.role.value},
                )

    async def reject(
        self, approval_id: str, *, actor: Caller, reason: str, now_ms: int
    ) -> bool:
        """Refuse a pending request; False when it is no longer pending."""
        async with self._db.transaction() as tx:
            changed: int = await tx.execute(
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, reason = ?"
                " WHERE id = ? AND state = ? AND expires_at > ?",
                (
                    ApprovalState.REJECTED.value,
                    actor.name,
                    now_ms,
                    reason,
                    approval_id,
                    ApprovalState.PENDING.value,
                    now_ms,
                ),
            )
            if changed:
                await self._audit.append(
                    tx,
                    at=now_ms,
                    actor=actor.name,
                    action="approval.rejected",
                    detail={"approval_id": approval_id, "person": actor.person,
                            "role": actor.role.value, "reason": reason},
                )
        return changed == 1
