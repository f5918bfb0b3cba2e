"""Approvers are told by e-mail, through the e-mail channel's relay, that an alert waits."""

from __future__ import annotations

import asyncio
import io

from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Received
from tests.security.conftest import FIRE, SecureSettings, bearer, events
from tests.support import start_service

APPROVAL = {"enabled": True, "min_audience": 20, "expires_s": 600}
DUTY = ["duty-officer@example.edu", "chief@example.edu"]


async def mails_to(sandbox: Sandbox, address: str, approval_id: str) -> Received:
    """The notice to one approver about one request, once the relay has it."""
    async with asyncio.timeout(15):
        while True:
            for message in sandbox.stats.of("email"):
                if message.recipient == address and approval_id in message.text:
                    return message
            await asyncio.sleep(0.05)


class TestNotice:
    """A held request mails every configured approver once; nothing else is mailed."""

    async def test_held_request_mails_approvers(self, secure_settings: SecureSettings,
                                                sandbox: Sandbox) -> None:
        """Each address gets the count, the channels and the approval page's link."""
        run = await start_service(secure_settings(approval={**APPROVAL, "notify": DUTY}))
        try:
            resp = await run.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
            assert resp.status == 202, await resp.text()
            body = await resp.json()
            assert body["approval_required"] is True
            approval_id = body["id"]
            for address in DUTY:
                message = await mails_to(sandbox, address, approval_id)
                assert message.meta["subject"].startswith("Approval needed: alert to ")
                assert f"People: {body['audience']['total']:,}" in message.text
                assert "Channels: email" in message.text
                assert f"/console/approvals/{approval_id}" in message.text
            # Held, not sent: the alert itself reached nobody.
            assert [m for m in sandbox.stats.of("email") if m.alert_id] == []
            # The same request again (its Idempotency-Key) is not a new notice.
            again = await run.client.post("/v1/alerts", json=FIRE,
                                          headers={**bearer("alice"), "Idempotency-Key": "k1"})
            repeat = await run.client.post("/v1/alerts", json=FIRE,
                                           headers={**bearer("alice"), "Idempotency-Key": "k1"})
            second = (await again.json())["id"]
            assert (await repeat.json())["id"] == second
            await mails_to(sandbox, DUTY[0], second)
            await run.service.approval_notice.close()
            notices = [m for m in sandbox.stats.of("email") if m.recipient == DUTY[0]]
            assert len(notices) == 2
        finally:
            await run.client.close()

    async def test_without_addresses_nothing_is_mailed(self, secure_settings: SecureSettings,
                                                       sandbox: Sandbox) -> None:
        """No `notify`: held as before, and no mail."""
        run = await start_service(secure_settings(approval=APPROVAL))
        try:
            resp = await run.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
            assert (await resp.json())["approval_required"] is True
            assert not run.service.approval_notice.enabled
            await run.service.approval_notice.close()
            assert sandbox.stats.of("email") == []
        finally:
            await run.client.close()

    async def test_relay_down_still_holds(self, secure_settings: SecureSettings,
                                          logs: io.StringIO) -> None:
        """A relay that refuses the connection is logged; the request is held all the same."""
        settings = secure_settings(
            {"email.smtp": {"port": free_port(), "timeout_s": 2}},
            approval={**APPROVAL, "notify": DUTY},
        )
        run = await start_service(settings)
        try:
            resp = await run.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
            assert resp.status == 202
            approval_id = (await resp.json())["id"]
            await run.service.approval_notice.close()
            failed = events(logs, "approval.notice_failed")
            assert [e["approval_id"] for e in failed] == [approval_id]
            assert "duty-officer" not in logs.getvalue()
        finally:
            await run.client.close()
