"""A restart of the service while deliveries are pending resumes them."""

from __future__ import annotations

import asyncio

from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.smtp import SmtpServer, SmtpSink
from tests.conftest import SettingsFactory
from tests.support import start_service

ALERT = {
    "kind": "emergency",
    "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
    "channels": ["email"],
}


class TestRestart:
    """Nothing queued is lost when the service stops and starts again."""

    async def test_pending_deliveries_resume(
        self, make_settings: SettingsFactory, sandbox: Sandbox
    ) -> None:
        """Stopped with everything still queued, a new process on the same store sends it all."""
        port = free_port()
        settings = make_settings(channels={"email.smtp": {"port": port}})
        first = await start_service(settings)
        alert_id = (await (await first.post_alert(ALERT)).json())["id"]
        async with asyncio.timeout(20):
            while (
                await first.service.db.fetchval(
                    "SELECT resolved_at FROM alerts WHERE id = ?", (alert_id,)
                )
                is None
            ):
                await asyncio.sleep(0.05)
        await first.client.close()

        relay = SmtpServer(SmtpSink(sandbox.stats), "127.0.0.1", port)
        await relay.start()
        second = await start_service(settings)
        try:
            doc = await second.wait_state(alert_id)
        finally:
            await second.client.close()
            await relay.stop()
        email = doc["channels"]["email"]
        assert doc["state"] == "done"
        assert email["accepted"] == email["total"] > 0
        assert sandbox.stats.snapshot()["email"] == {
            "received": email["total"],
            "unique": email["total"],
        }

    async def test_unresolved_alert_is_resolved_after_restart(
        self, make_settings: SettingsFactory, sandbox: Sandbox
    ) -> None:
        """An alert stored but not yet in the outbox is resolved by the next process."""
        settings = make_settings()
        first = await start_service(settings)
        alert_id = (await (await first.post_alert(ALERT)).json())["id"]
        await first.client.close()
        db_rows = None
        second = await start_service(settings)
        try:
            doc = await second.wait_state(alert_id)
            db_rows = await second.service.db.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND state != 'suppressed'",
                (alert_id,),
            )
        finally:
            await second.client.close()
        assert doc["state"] == "done"
        assert doc["channels"]["email"]["total"] == db_rows
        assert sandbox.stats.snapshot()["email"]["unique"] == db_rows
