"""The alert store's change hook: called once per committed create or cancel, and only then."""

from __future__ import annotations

from pathlib import Path

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind
from dispatcher.store.alerts import AlertStore
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database

NOW = 1_790_000_000_000


async def create(store: AlertStore, key: str | None = None) -> tuple[str, bool]:
    request = AlertRequest(kind="emergency", text="Gas leak at the Chemistry Building. Leave now.")
    return await store.create(
        request, {}, actor="test", now_ms=NOW, expires_ms=NOW + 3_600_000,
        channels=[ChannelKind.EMAIL], idempotency_key=key, audience_counts={}, clery={},
        audit_detail={},
    )


class TestChangeHook:
    """Listeners hear of new and cancelled alerts, not of replays or repeated cancels."""

    async def test_create_and_cancel_are_heard_once(self, tmp_path: Path) -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'clarion.db'}")
        try:
            store = AlertStore(db, AuditLog(db))
            heard: list[str] = []
            store.subscribe(heard.append)
            alert_id, created = await create(store, key="k1")
            replay_id, replayed = await create(store, key="k1")
            assert created and not replayed and replay_id == alert_id
            assert heard == [alert_id]
            await store.cancel(alert_id, actor="test", reason="done", now_ms=NOW + 1)
            await store.cancel(alert_id, actor="test", reason="again", now_ms=NOW + 2)
            assert heard == [alert_id, alert_id]
        finally:
            await db.close()
