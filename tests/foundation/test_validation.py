"""Bad requests are refused with every problem named, and nothing is stored for them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import AUTH, Running

GOOD: dict[str, Any] = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit.",
    "channels": ["email"],
}


async def stored_alerts(running: Running) -> int:
    return int(await running.service.db.fetchval("SELECT COUNT(*) FROM alerts"))


class TestSchema:
    """Each kind of malformed body gives 422 and names the field."""

    @pytest.mark.parametrize(
        ("patch", "field"),
        [
            ({"kind": "nope"}, "kind"),
            ({"text": ""}, "text"),
            ({"text": "   "}, "text"),
            ({"text": 42}, "text"),
            ({"channels": ["fax"]}, "channels.0"),
            ({"channels": "email"}, "channels"),
            ({"mode": "rehearsal"}, "mode"),
            ({"expires_in": 5}, "expires_in"),
            ({"surprise": True}, "surprise"),
            ({"confirmed_by": {"name": "Chief Ortiz"}}, "confirmed_by.title"),
            ({"texts": {"fax": "x"}}, "texts.fax"),
        ],
    )
    async def test_field_is_named(
        self, running: Running, patch: dict[str, Any], field: str
    ) -> None:
        """The 422 lists the field and a message."""
        resp = await running.post_alert({**GOOD, **patch})
        assert resp.status == 422
        body = await resp.json()
        fields = [p["field"] for p in body["problems"]]
        assert field in fields, body
        assert all(p["message"] for p in body["problems"])
        assert await stored_alerts(running) == 0

    async def test_every_problem_is_listed(self, running: Running) -> None:
        """Several problems at once come back together."""
        resp = await running.post_alert({"kind": "nope", "text": "", "extra": 1})
        fields = {p["field"] for p in (await resp.json())["problems"]}
        assert {"kind", "text", "extra"} <= fields

    async def test_missing_text(self, running: Running) -> None:
        """No text and no template is refused."""
        resp = await running.post_alert({"kind": "emergency"})
        assert resp.status == 422

    async def test_malformed_json(self, running: Running) -> None:
        """A body that is not JSON is refused with a clear message."""
        resp = await running.client.post("/v1/alerts", data=b"{not json", headers=AUTH)
        assert resp.status == 422
        assert "JSON" in (await resp.json())["problems"][0]["message"]

    async def test_oversized_body(self, running: Running) -> None:
        """A body over the limit is 413 and nothing is stored."""
        big = {**GOOD, "description": "x" * 70_000}
        resp = await running.post_alert(big)
        assert resp.status == 413
        assert await stored_alerts(running) == 0

    async def test_unknown_alert(self, running: Running) -> None:
        """A status request for an unknown id is 404."""
        resp = await running.client.get("/v1/alerts/nope", headers=AUTH)
        assert resp.status == 404

    async def test_bad_paging_parameters(self, running: Running) -> None:
        """Paging parameters out of range are 422."""
        alert_id = (await (await running.post_alert(GOOD)).json())["id"]
        resp = await running.client.get(f"/v1/alerts/{alert_id}/deliveries?limit=0", headers=AUTH)
        assert resp.status == 422


class TestAuth:
    """Without a valid token nothing is sent."""

    async def test_no_token(self, running: Running) -> None:
        """No Authorization header: 401."""
        resp = await running.client.post("/v1/alerts", json=GOOD)
        assert resp.status == 401
        assert await stored_alerts(running) == 0

    async def test_wrong_token(self, running: Running) -> None:
        """An unknown token: 401."""
        resp = await running.client.post(
            "/v1/alerts", json=GOOD, headers={"Authorization": "Bearer wrong"}
        )
        assert resp.status == 401
        resp = await running.client.get("/v1/alerts/x", headers={"Authorization": "Basic abc"})
        assert resp.status == 401
