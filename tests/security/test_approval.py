"""Two-person approval: a large live audience waits for a second person; every step audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.api.app import build_app
from dispatcher.clock import Clock
from dispatcher.service import Service
from dispatcher.store.database import open_database
from tests.security.conftest import FIRE, NORTH_SCOPE, SecureSettings, bearer
from tests.support import Running

APPROVAL = {"enabled": True, "min_audience": 20, "bypass_roles": ["admin"], "expires_s": 600}


class StepClock(Clock):
    """Wall-clock time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


class Approvals(Running):
    """The service with approval on, a movable clock, and helpers."""

    def __init__(self, service: Service, client: TestClient, clock: StepClock) -> None:
        super().__init__(service, client)
        self.clock = clock

    async def send(self, caller: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        return await self.client.post("/v1/alerts", json=body or FIRE,
                                      headers={**bearer(caller), **headers})

    async def decide(self, caller: str, approval_id: str, verb: str, **body: str) -> Any:
        return await self.client.post(f"/v1/approvals/{approval_id}/{verb}",
                                      json=body or None, headers=bearer(caller))

    async def alerts(self) -> int:
        return int(await self.service.db.fetchval("SELECT COUNT(*) FROM alerts"))

    async def actions(self) -> list[str]:
        rows = await self.service.db.fetchall("SELECT action FROM audit ORDER BY seq")
        return [r["action"] for r in rows]


@pytest_asyncio.fixture
async def held(secure_settings: SecureSettings) -> AsyncIterator[Approvals]:
    """Approval required from 20 recipients; admins may bypass."""
    settings = secure_settings(approval=APPROVAL)
    clock = StepClock()
    service = Service(settings, await open_database(settings.store.url), clock=clock)
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    yield Approvals(service, client, clock)
    await client.close()


class TestHolding:
    """What needs approval is held, not sent; what does not goes at once."""

    async def test_large_audience_is_held(self, held: Approvals) -> None:
        """202 with approval_required and a status URL of its own; no alert exists yet."""
        resp = await held.send("alice")
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["approval_required"] is True
        assert body["status_url"] == f"/v1/approvals/{body['id']}"
        assert body["audience"]["total"] >= 20
        assert await held.alerts() == 0
        assert (await held.client.get(f"/v1/alerts/{body['id']}",
                                      headers=bearer("alice"))).status == 404
        status = await (await held.client.get(body["status_url"], headers=bearer("watch"))).json()
        assert status["state"] == "pending" and status["requested_by"] == "alice"
        assert status["request"]["text"] == FIRE["text"]
        listed = await (await held.client.get("/v1/approvals", headers=bearer("bob"))).json()
        assert [i["id"] for i in listed["items"]] == [body["id"]]
        assert await held.actions() == ["approval.requested"]

    async def test_small_audience_and_drills_go_at_once(self, held: Approvals) -> None:
        """Below the threshold, or a drill, needs no second person."""
        small = await held.send("north", {**FIRE, "audience": NORTH_SCOPE})
        assert small.status == 202 and "approval_required" not in await small.json()
        drill = await held.send("ehs", {**FIRE, "mode": "drill",
                                        "drill": {"description": "Annual drill"}})
        assert drill.status == 202 and "approval_required" not in await drill.json()
        assert await held.alerts() == 2

    async def test_checks_come_before_holding(self, held: Approvals) -> None:
        """A request that would be refused is refused, not held."""
        assert (await held.send("watch")).status == 403
        assert (await held.send("north")).status == 403
        # Refused by the policy: a victim's name (a live emergency is no longer refused for
        # its wording, so "Something." would now be sent with a warning).
        named = "Fire at Carver Hall. Anna Kim was injured. Evacuate now by the nearest exit."
        assert (await held.send("alice", {**FIRE, "text": named})).status == 422
        assert await held.actions() == []

    async def test_idempotent_retry_returns_the_same_request(self, held: Approvals) -> None:
        """The composer's retry with the same key finds the held request; another body is 409."""
        first = await (await held.send("alice", **{"Idempotency-Key": "k1"})).json()
        again = await (await held.send("alice", **{"Idempotency-Key": "k1"})).json()
        assert again["id"] == first["id"]
        other = await held.send("alice", {**FIRE, "text": FIRE["text"].replace("Carver", "Baker")},
                                **{"Idempotency-Key": "k1"})
        assert other.status == 409
        assert await held.actions() == ["approval.requested"]


class TestDeciding:
    """A second person approves (the alert is sent) or rejects (nothing is)."""

    async def test_second_person_approves(self, held: Approvals) -> None:
        """Bob approves Alice's request: the alert is Alice's, sent, and the audit says who."""
        approval_id = (await (await held.send("alice")).json())["id"]
        resp = await held.decide("bob", approval_id, "approve")
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        alert_id = body["id"]
        assert body["status_url"] == f"/v1/alerts/{alert_id}"
        assert body["approval_id"] == approval_id
        doc = await held.wait_state(alert_id)
        assert doc["state"] == "done" and doc["channels"]["email"]["accepted"] > 0
        entries = await held.service.audit.entries(alert_id)
        created = entries[0]
        assert created["action"] == "alert.created" and created["actor"] == "alice"
        assert created["detail"]["approval"]["approved_by"] == "bob"
        assert "approval.approved" in [e["action"] for e in entries]
        status = await (await held.client.get(f"/v1/approvals/{approval_id}",
                                              headers=bearer("alice"))).json()
        assert status["state"] == "approved" and status["alert_id"] == alert_id
        assert status["decided_by"] == "bob"
        assert (await held.service.audit.verify()).ok

    async def test_approving_twice_returns_the_same_alert(self, held: Approvals) -> None:
        """A retried approval is idempotent: one alert."""
        approval_id = (await (await held.send("alice")).json())["id"]
        first = await (await held.decide("bob", approval_id, "approve")).json()
        second = await held.decide("admin", approval_id, "approve")
        assert second.status == 202
        assert (await second.json())["id"] == first["id"]
        assert await held.alerts() == 1

    async def test_composer_cannot_approve(self, held: Approvals) -> None:
        """The same token is the same person: 403."""
        approval_id = (await (await held.send("alice")).json())["id"]
        resp = await held.decide("alice", approval_id, "approve")
        assert resp.status == 403 and "second person" in (await resp.json())["error"]
        assert await held.alerts() == 0

    async def test_roles_that_may_not_approve(self, held: Approvals) -> None:
        """Viewers, drill tokens and tokens scoped away from the audience cannot approve."""
        approval_id = (await (await held.send("alice")).json())["id"]
        for caller in ("watch", "ehs", "north"):
            resp = await held.decide(caller, approval_id, "approve")
            assert resp.status == 403, caller
        assert await held.alerts() == 0

    async def test_rejection(self, held: Approvals) -> None:
        """Bob rejects with a reason: nothing is sent, approving later is a 409."""
        approval_id = (await (await held.send("alice")).json())["id"]
        resp = await held.decide("bob", approval_id, "reject", reason="wrong building")
        assert resp.status == 200
        body = await resp.json()
        assert body["state"] == "rejected" and body["reason"] == "wrong building"
        assert (await held.decide("admin", approval_id, "approve")).status == 409
        assert (await held.decide("bob", approval_id, "reject")).status == 409
        assert await held.alerts() == 0
        assert await held.actions() == ["approval.requested", "approval.rejected"]

    async def test_composer_may_withdraw(self, held: Approvals) -> None:
        """The composer rejects their own request; a viewer cannot."""
        approval_id = (await (await held.send("alice")).json())["id"]
        assert (await held.decide("watch", approval_id, "reject")).status == 403
        assert (await held.decide("alice", approval_id, "reject")).status == 200

    async def test_scoped_token_cannot_veto_outside_its_scope(self, held: Approvals) -> None:
        """A token scoped to one segment may neither approve nor reject a campus-wide request."""
        approval_id = (await (await held.send("alice")).json())["id"]
        for verb in ("approve", "reject"):
            resp = await held.decide("north", approval_id, verb)
            assert resp.status == 403, (verb, await resp.text())
        status = await (await held.client.get(f"/v1/approvals/{approval_id}",
                                              headers=bearer("bob"))).json()
        assert status["state"] == "pending"

    async def test_expired_requests_cannot_be_approved(self, held: Approvals) -> None:
        """After approval.expires_s the request is expired: 409, nothing sent."""
        approval_id = (await (await held.send("alice")).json())["id"]
        held.clock.offset_ms = 601_000
        resp = await held.decide("bob", approval_id, "approve")
        assert resp.status == 409 and "expired" in (await resp.json())["error"]
        status = await (await held.client.get(f"/v1/approvals/{approval_id}",
                                              headers=bearer("bob"))).json()
        assert status["state"] == "expired"
        listed = await (await held.client.get("/v1/approvals", headers=bearer("bob"))).json()
        assert listed["items"] == []
        assert await held.alerts() == 0

    async def test_unknown_request(self, held: Approvals) -> None:
        """404 with a JSON error."""
        for verb in ("approve", "reject"):
            resp = await held.decide("bob", "apr-nothing", verb)
            assert resp.status == 404 and "error" in await resp.json()
        assert (await held.client.get("/v1/approvals/x", headers=bearer("bob"))).status == 404


class TestBypass:
    """A configured emergency role sends at once, and the audit says it bypassed approval."""

    async def test_admin_bypasses(self, held: Approvals) -> None:
        """The admin's campus-wide alert is sent at once; the audit entry records the bypass."""
        resp = await held.send("admin")
        assert resp.status == 202
        body = await resp.json()
        assert "approval_required" not in body
        entries = await held.service.audit.entries(body["id"])
        assert entries[0]["detail"]["approval"] == {"required": True, "bypassed": True}


class TestDisabled:
    """Approval is off by default: nothing is held."""

    async def test_default_sends_at_once(self, secure: Running) -> None:
        """The same campus-wide alert goes straight out."""
        resp = await secure.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
        assert resp.status == 202 and "approval_required" not in await resp.json()
