"""`email.smtp` against a real SMTP server: 4xx retried, 5xx failed at once, outages survived."""

from __future__ import annotations

import asyncio

from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.smtp import SmtpServer, SmtpSink
from tests.conftest import SettingsFactory
from tests.support import AUTH, Running, start_service

ALERT = {
    "kind": "emergency",
    "text": "Chlorine leak at the Aquatic Center. Stay inside and close windows now.",
    "channels": ["email"],
}


async def some_addresses(running: Running, n: int) -> list[str]:
    rows = await running.service.db.fetchall(
        "SELECT email FROM people WHERE email != '' AND role IN ('student', 'staff')"
        " ORDER BY id LIMIT ?",
        (n,),
    )
    return [r["email"] for r in rows]


async def delivery(running: Running, alert_id: str, address: str) -> dict[str, object]:
    row = await running.service.db.fetchone(
        "SELECT id, state, attempts, detail FROM deliveries WHERE alert_id = ? AND address = ?",
        (alert_id, address),
    )
    assert row is not None
    receipts = await running.service.db.fetchall(
        "SELECT status, detail FROM receipts WHERE delivery_id = ? ORDER BY id", (row["id"],)
    )
    return {
        "state": row["state"],
        "attempts": row["attempts"],
        "detail": row["detail"],
        "receipts": [(r["status"], r["detail"]) for r in receipts],
    }


class TestScriptedReplies:
    """Per-recipient RCPT replies become per-recipient receipts."""

    async def test_451_is_retried_then_accepted(self, running: Running, sandbox: Sandbox) -> None:
        """A temporary refusal is retried with backoff and then accepted."""
        target = (await some_addresses(running, 3))[1]
        sandbox.smtp.sink.script(
            target, "451 4.3.0 Mailbox busy, try later", "451 4.3.0 Mailbox busy, try later"
        )
        alert_id = (await (await running.post_alert(ALERT)).json())["id"]
        doc = await running.wait_state(alert_id)
        assert doc["channels"]["email"]["failed"] == 0
        d = await delivery(running, alert_id, target)
        assert d["state"] == "accepted"
        assert d["attempts"] == 3
        assert [s for s, _ in d["receipts"]] == ["retry_scheduled", "retry_scheduled", "accepted"]
        assert "451" in str(d["receipts"][0][1])
        assert sandbox.stats.snapshot()["email"]["received"] == doc["channels"]["email"]["accepted"]

    async def test_550_fails_at_once_with_reason(self, running: Running, sandbox: Sandbox) -> None:
        """A permanent refusal is failed on the first try, reason kept, never retried."""
        target = (await some_addresses(running, 5))[4]
        sandbox.smtp.sink.script(target, "550 5.1.1 No such user here")
        rcpt_before = sandbox.smtp.sink.rcpt_commands
        alert_id = (await (await running.post_alert(ALERT)).json())["id"]
        doc = await running.wait_state(alert_id)
        email = doc["channels"]["email"]
        assert email["failed"] == 1
        assert email["accepted"] == email["total"] - 1
        d = await delivery(running, alert_id, target)
        assert d["state"] == "failed" and d["attempts"] == 1
        assert str(d["detail"]).startswith("550")
        assert "@" not in str(d["detail"])
        assert sandbox.smtp.sink.rcpt_commands - rcpt_before == email["total"]

    async def test_every_recipient_refused(self, running: Running, sandbox: Sandbox) -> None:
        """When all of a transaction's recipients are refused, each gets its own receipt."""
        for address in await some_addresses(running, 5000):
            sandbox.smtp.sink.script(address, "550 5.7.1 Relaying denied")
        alert_id = (await (await running.post_alert(ALERT)).json())["id"]
        doc = await running.wait_state(alert_id)
        email = doc["channels"]["email"]
        assert email["failed"] == email["total"] - await running.service.db.fetchval(
            "SELECT COUNT(*) FROM deliveries WHERE channel = 'email' AND state != 'suppressed'"
            " AND recipient IN (SELECT id FROM people WHERE role NOT IN ('student', 'staff'))"
        )


class TestOutage:
    """The relay being down is transient: deliveries wait and go out when it returns."""

    async def test_server_down_at_first(
        self, make_settings: SettingsFactory, sandbox: Sandbox
    ) -> None:
        """Nothing listens at first; the relay comes up; every e-mail then goes out once."""
        port = free_port()
        settings = make_settings(channels={"email.smtp": {"port": port}})
        run = await start_service(settings)
        try:
            alert_id = (await (await run.post_alert(ALERT)).json())["id"]
            async with asyncio.timeout(20):
                while not await run.service.db.fetchval(
                    "SELECT COUNT(*) FROM receipts WHERE alert_id = ? AND status = ?",
                    (alert_id, "retry_scheduled"),
                ):
                    await asyncio.sleep(0.05)
            late = SmtpServer(SmtpSink(sandbox.stats), "127.0.0.1", port)
            await late.start()
            try:
                doc = await run.wait_state(alert_id)
            finally:
                await late.stop()
            email = doc["channels"]["email"]
            assert email["accepted"] == email["total"] > 0
            assert sandbox.stats.snapshot()["email"] == {
                "received": email["total"],
                "unique": email["total"],
            }
            resp = await run.client.get(f"/v1/alerts/{alert_id}/deliveries?limit=1", headers=AUTH)
            assert (await resp.json())["items"][0]["attempts"] >= 2
        finally:
            await run.client.close()
