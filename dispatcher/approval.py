"""Two-person approval: the held requests and their store live in `dispatcher.store.approvals`;
this module keeps the names where intake, the API and the console import them."""

from __future__ import annotations

from dispatcher.store.approvals import (
    ApprovalConflict,
    ApprovalRecord,
    ApprovalState,
    ApprovalStore,
    alert_key,
    new_approval_id,
)

__all__ = [
    "ApprovalConflict",
    "ApprovalRecord",
    "ApprovalState",
    "ApprovalStore",
    "alert_key",
    "new_approval_id",
]
