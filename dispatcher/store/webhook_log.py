"""The delivery log of webhook subscribers: every attempt to post an alert to one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.store.database import Database


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One post to a subscriber: which try of which delivery, and what came of it."""

    subscriber: str
    alert_id: str
    delivery_id: int
    attempt: int
    at: int
    """When the post began (ms since 1970)."""
    status: int | None
    """The HTTP status answered; None when no answer came (a timeout, a refused connection)."""
    outcome: str
    """The receipt's outcome: accepted, retry or failed."""
    detail: str
    ms: int
    """How long the post took."""


class WebhookLog:
    """Appends attempts as they happen and reads a subscriber's log, newest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, attempts: Sequence[WebhookAttempt], /) -> None:
        """Append one batch's attempts in one statement."""
        if not attempts:
            return
        await self._db.executemany(
            "INSERT INTO webhook_attempts (subscriber, alert_id, delivery_id, attempt, at,"
            " status, outcome, detail, ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (a.subscriber, a.alert_id, a.delivery_id, a.attempt, a.at, a.status, a.outcome,
                 a.detail, a.ms)
                for a in attempts
            ],
        )

    async def of(
        self, subscriber: str, *, limit: int = 50, alert_id: str | None = None
    ) -> list[WebhookAttempt]:
        """A subscriber's latest attempts, newest first (of one alert when named)."""
        where, params = "subscriber = ?", [subscriber]
        if alert_id is not None:
            where += " AND alert_id = ?"
            params.append(alert_id)
        rows = await self._db.fetchall(
            "SELECT subscriber, alert_id, delivery_id, attempt, at, status, outcome, detail, ms"
            f" FROM webhook_attempts WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [
            WebhookAttempt(
                r["subscriber"], r["alert_id"], int(r["delivery_id"]), int(r["attempt"]),
                int(r["at"]), None if r["status"] is None else int(r["status"]), r["outcome"],
                r["detail"], int(r["ms"]),
            )
            for r in rows
        ]
