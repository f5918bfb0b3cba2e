"""When an alert waited on a channel behind a more urgent one: for its page and its record.

A pause is opened once per alert and channel however many nodes see it (a partial unique
index on the open ones), and closed when the channel is the alert's again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.domain import ChannelKind
from dispatcher.store.database import Database


@dataclass(frozen=True, slots=True)
class Pause:
    """An alert's channel waiting behind a more urgent alert, from `started_at` to `ended_at`
    (None while it still waits)."""

    alert_id: str
    channel: ChannelKind
    behind_alert_id: str
    started_at: int
    ended_at: int | None

    def seconds(self, now_ms: int) -> float:
        """How long it waited (so far)."""
        return max(0, (self.ended_at or now_ms) - self.started_at) / 1000


class AlertPauses:
    """Opens, closes and reads the pauses of alerts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self, channel: ChannelKind, alert_ids: Sequence[str], *, behind: str, now_ms: int
    ) -> None:
        """These alerts now wait on `channel` behind `behind` (a no-op for one already waiting)."""
        if not alert_ids:
            return
        await self._db.executemany(
            "INSERT INTO alert_pauses (alert_id, channel, behind_alert_id, started_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (alert_id, channel) WHERE ended_at IS NULL"
            " DO NOTHING",
            [(a, channel.value, behind, now_ms) for a in sorted(set(alert_ids))],
        )

    async def close(
        self, channel: ChannelKind, *, now_ms: int, keep: Sequence[str] = ()
    ) -> int:
        """End the open pauses on `channel`, except those of `keep`; returns how many."""
        marks = ", ".join("?" * len(keep))
        spared = f" AND alert_id NOT IN ({marks})" if keep else ""
        return await self._db.execute(
            "UPDATE alert_pauses SET ended_at = ? WHERE channel = ? AND ended_at IS NULL"
            + spared,
            (now_ms, channel.value, *keep),
        )

    async def close_alert(self, alert_id: str, now_ms: int) -> None:
        """End an alert's open pauses (it finished or was cancelled)."""
        await self._db.execute(
            "UPDATE alert_pauses SET ended_at = ? WHERE alert_id = ? AND ended_at IS NULL",
            (now_ms, alert_id),
        )

    async def of(self, alert_id: str) -> list[Pause]:
        """An alert's pauses, earliest first."""
        rows = await self._db.fetchall(
            "SELECT alert_id, channel, behind_alert_id, started_at, ended_at FROM alert_pauses"
            " WHERE alert_id = ? ORDER BY started_at, id",
            (alert_id,),
        )
        return [
            Pause(r["alert_id"], ChannelKind(r["channel"]), r["behind_alert_id"],
                  int(r["started_at"]), None if r["ended_at"] is None else int(r["ended_at"]))
            for r in rows
        ]
