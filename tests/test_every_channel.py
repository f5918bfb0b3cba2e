"""One alert to the example campus reaches every channel through the sandbox, with proof."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lxml import etree

from tests.conftest import Stack
from tests.support import AUTH

XSD = Path(__file__).parent / "data" / "CAP-v1.2.xsd"
EVERY = ["sms", "email", "push", "siren", "signage", "pa", "desktop"]


async def settled(stack: Stack, alert_id: str, *, timeout: float = 60) -> dict[str, Any]:
    """Wait until the alert is done and every SMS and device has its final receipt."""
    async with asyncio.timeout(timeout):
        while True:
            doc = await stack.run.wait_state(alert_id, timeout=timeout)
            chans = doc["channels"]
            final = all(
                chans[k]["delivered"] + chans[k]["failed"] == chans[k]["total"]
                for k in ("sms", "siren", "signage", "pa", "desktop")
            )
            if final:
                return doc
            await asyncio.sleep(0.1)


class TestEveryChannel:
    """The mission in one test: every person and device, once each, with receipts."""

    async def test_alert_reaches_everyone_everywhere(self, stack: Stack) -> None:
        """Sandbox counts match the service's counts on all seven channels; CAP validates.

        The alert goes to zone a: its people and its siren, sign, speaker and desktop.
        """
        resp = await stack.run.post_alert(
            {
                "kind": "emergency",
                "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
                "channels": EVERY,
                "zones": ["a"],
            }
        )
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        doc = await settled(stack, alert_id)
        stats = stack.sandbox.stats.snapshot()
        for kind in EVERY:
            counts = doc["channels"][kind]
            assert counts["total"] > 0, kind
            assert counts["failed"] == 0, (kind, counts)
            assert stats[kind]["unique"] == counts["total"], (kind, stats[kind], counts)
            assert stats[kind]["received"] == stats[kind]["unique"], kind
        assert doc["channels"]["sms"]["delivered"] == doc["channels"]["sms"]["total"]
        cap = await stack.run.client.get(f"/v1/alerts/{alert_id}/cap", headers=AUTH)
        schema = etree.XMLSchema(etree.parse(str(XSD)))
        assert schema.validate(etree.fromstring(await cap.read())), schema.error_log

    async def test_devices_first(self, stack: Stack) -> None:
        """Sirens, signs and speakers are sent before SMS and push, and those before e-mail."""
        resp = await stack.run.post_alert(
            {
                "kind": "emergency",
                "text": "Tornado warning: take shelter now in an interior room.",
                "channels": EVERY,
                "zones": ["b"],
            }
        )
        alert_id = (await resp.json())["id"]
        await settled(stack, alert_id)
        rows = await stack.run.service.db.fetchall(
            "SELECT channel, MIN(at) AS first FROM receipts WHERE alert_id = ? GROUP BY channel",
            (alert_id,),
        )
        first = {r["channel"]: r["first"] for r in rows}
        assert max(first[k] for k in ("siren", "signage", "pa", "desktop")) <= first["email"]
