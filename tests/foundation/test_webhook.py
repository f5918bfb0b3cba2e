"""The webhook end to end: POST an alert, e-mail reaches the SMTP sandbox, receipts are stored."""

from __future__ import annotations

import json

from channels.sandbox.server import Sandbox
from tests.support import AUTH, Running

FIRE = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "audience": "all",
    "channels": ["email"],
}


async def people(running: Running) -> int:
    return int(await running.service.db.fetchval("SELECT COUNT(*) FROM people"))


class TestEndToEnd:
    """An alert goes from the webhook to every inbox, with counts, receipts and audit."""

    async def test_email_reaches_everyone_once(self, running: Running, sandbox: Sandbox) -> None:
        """Every person with an address gets exactly one e-mail and the counts agree."""
        resp = await running.post_alert(FIRE)
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["status_url"] == f"/v1/alerts/{body['id']}"
        doc = await running.wait_state(body["id"])
        email = doc["channels"]["email"]
        assert doc["state"] == "done"
        assert email["total"] + email["suppressed"] == await people(running)
        assert email["accepted"] == email["total"] > 0
        assert email["failed"] == 0 and email["queued"] == 0
        stats = sandbox.stats.snapshot()["email"]
        assert stats == {"received": email["total"], "unique": email["total"]}

    async def test_receipts_and_audit_are_stored(self, running: Running) -> None:
        """Each delivery has an accepted receipt; the audit log names who sent what."""
        resp = await running.post_alert(FIRE)
        alert_id = (await resp.json())["id"]
        await running.wait_state(alert_id)
        db = running.service.db
        deliveries = await db.fetchval(
            "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND state != 'suppressed'",
            (alert_id,),
        )
        receipts = await db.fetchval(
            "SELECT COUNT(*) FROM receipts WHERE alert_id = ? AND status = 'accepted'", (alert_id,)
        )
        assert deliveries == receipts > 0
        entries = await running.service.audit.entries(alert_id)
        assert entries[0]["action"] == "alert.created"
        assert entries[0]["actor"] == "admin-token"
        assert entries[0]["detail"]["channels"] == ["email"]
        versions = await running.service.alerts.versions(alert_id)
        assert versions[0].request["text"] == FIRE["text"]

    async def test_deliveries_are_paged_and_masked(self, running: Running) -> None:
        """The deliveries listing pages by cursor and never shows an address."""
        alert_id = (await (await running.post_alert(FIRE)).json())["id"]
        await running.wait_state(alert_id)
        seen: list[int] = []
        after = 0
        while True:
            resp = await running.client.get(
                f"/v1/alerts/{alert_id}/deliveries?limit=250&after={after}", headers=AUTH
            )
            page = await resp.json()
            assert "@" not in json.dumps(page)
            seen += [item["id"] for item in page["items"]]
            if page["next"] is None:
                break
            after = page["next"]
        assert len(seen) == len(set(seen)) == await people(running)

    async def test_events_stream_reports_progress_then_done(self, running: Running) -> None:
        """The SSE stream sends progress events and ends with `done`."""
        alert_id = (await (await running.post_alert(FIRE)).json())["id"]
        resp = await running.client.get(f"/v1/alerts/{alert_id}/events", headers=AUTH)
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        text = await resp.text()
        events = [
            line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")
        ]
        assert events[0] == "progress"
        assert events[-1] == "done"
        last = json.loads([ln for ln in text.splitlines() if ln.startswith("data: ")][-1][6:])
        assert last["state"] == "done"

    async def test_cancel_stops_what_is_queued(self, running: Running) -> None:
        """A cancelled alert sends nothing more and says so."""
        resp = await running.post_alert(FIRE)
        alert_id = (await resp.json())["id"]
        resp = await running.client.post(
            f"/v1/alerts/{alert_id}/cancel",
            headers=AUTH,
            json={"reason": "sent to the wrong building"},
        )
        assert resp.status == 200
        assert (await resp.json())["state"] == "cancelled"
        doc = await running.wait_state(alert_id)
        assert doc["state"] == "cancelled"
        entries = await running.service.audit.entries(alert_id)
        assert entries[-1]["action"] == "alert.cancelled"
        assert entries[-1]["detail"]["reason"] == "sent to the wrong building"


class TestIdempotency:
    """Idempotency-Key makes retries of the same webhook safe."""

    async def test_same_key_same_body_same_alert(self, running: Running) -> None:
        """The second POST returns the first alert's id and stores nothing new."""
        first = await (await running.post_alert(FIRE, **{"Idempotency-Key": "k1"})).json()
        second = await running.post_alert(FIRE, **{"Idempotency-Key": "k1"})
        assert second.status == 202
        assert (await second.json())["id"] == first["id"]
        assert await running.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 1

    async def test_same_key_other_body_conflicts(self, running: Running) -> None:
        """Reusing a key with another body is a 409 naming the first alert."""
        first = await (await running.post_alert(FIRE, **{"Idempotency-Key": "k2"})).json()
        other = {**FIRE, "text": FIRE["text"].replace("Carver", "Baker")}
        resp = await running.post_alert(other, **{"Idempotency-Key": "k2"})
        assert resp.status == 409
        assert (await resp.json())["id"] == first["id"]


NOBODY = "role:student and role:faculty"  # one role per person: no one is both


class TestNoAlertToNobody:
    """An audience that resolves to no one is refused unless the request says so."""

    async def test_refused_at_audience_and_nothing_stored(self, running: Running) -> None:
        """422 with the problem at `audience`, saying how to send anyway; no alert."""
        resp = await running.post_alert({**FIRE, "audience": NOBODY})
        assert resp.status == 422, await resp.text()
        (problem,) = (await resp.json())["problems"]
        assert problem["field"] == "audience"
        assert "reaches no one" in problem["message"]
        assert "allow_empty_audience" in problem["message"]
        assert await running.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0

    async def test_sent_when_the_request_says_so(self, running: Running) -> None:
        """With `allow_empty_audience` the alert is accepted, to 0 people."""
        resp = await running.post_alert({**FIRE, "audience": NOBODY,
                                         "allow_empty_audience": True})
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["audience"]["total"] == 0


class TestOperations:
    """Health, metrics and the API description."""

    async def test_health_metrics_openapi(self, running: Running) -> None:
        """The open endpoints answer without a token."""
        health = await (await running.client.get("/healthz")).json()
        assert health["ok"] is True and health["channels"] == ["email.smtp"]
        alert_id = (await (await running.post_alert(FIRE)).json())["id"]
        await running.wait_state(alert_id)
        metrics = await (await running.client.get("/metrics")).text()
        assert 'clarion_deliveries_total{channel="email.smtp",outcome="accepted"}' in metrics
        doc = await (await running.client.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        assert "/v1/alerts" in doc["paths"]
        assert doc["components"]["schemas"]["AlertRequest"]["additionalProperties"] is False
