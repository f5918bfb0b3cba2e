"""Roles and scopes: who may send what, and to whom; an unauthenticated or wrongly scoped
request sends nothing."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.access.auth import Authenticator, scope_permits, token_sha256
from dispatcher.service import Service
from dispatcher.settings import ConfigError, load_settings
from dispatcher.store.database import open_database
from tests.security.conftest import FIRE, NORTH_SCOPE, SecureSettings, bearer
from tests.support import Running

SEGMENTS = {
    NORTH_SCOPE: "role:student and building:north-hall",
    "responders": "group:police or group:facilities",
    "north-staff": "residents-north and role:staff",
}
DRILL = {
    "kind": "emergency",
    "mode": "drill",
    "text": "Fire drill at Carver Hall. Evacuate now by the nearest exit.",
    "channels": ["email"],
    "drill": {"description": "Annual evacuation drill", "announced": True},
}


async def alert_count(run: Running) -> int:
    return int(await run.service.db.fetchval("SELECT COUNT(*) FROM alerts"))


async def post(run: Running, caller: str, body: dict[str, Any]) -> Any:
    return await run.client.post("/v1/alerts", json=body, headers=bearer(caller))


class TestScopeRule:
    """A scoped audience must be a scope segment by name, or restricted to one with `and`."""

    @pytest.mark.parametrize(
        "audience",
        [
            "residents-north",
            "RESIDENTS-NORTH",
            "(residents-north)",
            "residents-north and role:student",
            "language:es and residents-north",
            "residents-north and not group:band",
            "residents-north and (role:staff or role:student)",
            "(residents-north and role:student) and building:north-hall",
            "north-staff",
        ],
    )
    def test_restricted_audiences_pass(self, audience: str) -> None:
        """Each selects a subset of the scope segment."""
        assert scope_permits(audience, [NORTH_SCOPE], SEGMENTS)

    @pytest.mark.parametrize(
        "audience",
        [
            "all",
            "role:student",
            "role:student and building:north-hall",
            "residents-north or role:staff",
            "residents-north and role:student or all",
            "not residents-north",
            "not not residents-north",
            "responders",
            "responders and role:staff",
            "__scope__:residents-north",
            "__scope__:residents-north and all",
            "residents-north and",
            "(residents-north",
            "",
        ],
    )
    def test_other_audiences_fail(self, audience: str) -> None:
        """Anything that could reach beyond the scope, or does not parse, is refused."""
        assert not scope_permits(audience, [NORTH_SCOPE], SEGMENTS)

    def test_unscoped_tokens_may_target_anyone(self) -> None:
        """No scopes: every audience."""
        assert scope_permits("all", [], SEGMENTS)

    def test_any_of_several_scopes(self) -> None:
        """A token with two scopes may target either."""
        assert scope_permits("responders", [NORTH_SCOPE, "responders"], SEGMENTS)
        assert not scope_permits("responders or residents-north", [NORTH_SCOPE, "responders"],
                                 SEGMENTS)


class TestAuthentication:
    """No token or a wrong one gets 401 and sends nothing; the open endpoints stay open."""

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWxpY2U6eA=="},
         {"Authorization": "Bearer "}],
    )
    async def test_unauthenticated_requests_send_nothing(
        self, secure: Running, headers: dict[str, str]
    ) -> None:
        """401 with a JSON error and a WWW-Authenticate challenge."""
        resp = await secure.client.post("/v1/alerts", json=FIRE, headers=headers)
        assert resp.status == 401
        assert "error" in await resp.json()
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await alert_count(secure) == 0

    async def test_reads_need_a_token_too(self, secure: Running) -> None:
        """Alert status, deliveries and device lists are not public."""
        for path in ("/v1/alerts/x", "/v1/devices", "/v1/feeds/cap", "/v1/approvals"):
            assert (await secure.client.get(path)).status == 401, path

    async def test_open_endpoints(self, secure: Running) -> None:
        """Health, metrics and the API description need no token."""
        for path in ("/healthz", "/metrics", "/openapi.json"):
            assert (await secure.client.get(path)).status == 200, path


class TestRoles:
    """Each role may do what its name says, and nothing more."""

    async def test_viewer_reads_but_never_writes(self, secure: Running) -> None:
        """A viewer can read an alert but not send, cancel or lint."""
        alert_id = (await (await post(secure, "alice", FIRE)).json())["id"]
        assert (await secure.client.get(f"/v1/alerts/{alert_id}",
                                        headers=bearer("watch"))).status == 200
        resp = await post(secure, "watch", FIRE)
        assert resp.status == 403 and "viewer" in (await resp.json())["error"]
        cancel = await secure.client.post(f"/v1/alerts/{alert_id}/cancel",
                                          headers=bearer("watch"))
        assert cancel.status == 403
        lint = await secure.client.post("/v1/lint", json=FIRE, headers=bearer("watch"))
        assert lint.status == 403
        assert await alert_count(secure) == 1

    async def test_drill_role_sends_drills_only(self, secure: Running) -> None:
        """A drill token is refused a live alert and accepted a drill."""
        live = await post(secure, "ehs", FIRE)
        assert live.status == 403
        drill = await post(secure, "ehs", DRILL)
        assert drill.status == 202, await drill.text()
        assert await alert_count(secure) == 1

    async def test_dispatcher_sends_live(self, secure: Running) -> None:
        """A dispatcher sends a live alert; the audit names it."""
        resp = await post(secure, "alice", FIRE)
        assert resp.status == 202
        entries = await secure.service.audit.entries((await resp.json())["id"])
        assert entries[0]["actor"] == "alice"
        assert entries[0]["detail"]["role"] == "dispatcher"

    async def test_only_override_roles_override(self, secure: Running) -> None:
        """A dispatcher may not override the policy; the admin may, and it is audited."""
        body = {**FIRE, "text": "Something happened somewhere.",
                "override": {"rules": ["actionable.no_instruction"],
                             "reason": "no instruction is known yet"}}
        resp = await post(secure, "alice", body)
        assert resp.status == 403 and "override" in (await resp.json())["error"]
        assert await alert_count(secure) == 0

    async def test_drill_role_cannot_cancel_live(self, secure: Running) -> None:
        """Cancelling a live alert takes a live-capable role."""
        alert_id = (await (await post(secure, "alice", FIRE)).json())["id"]
        resp = await secure.client.post(f"/v1/alerts/{alert_id}/cancel", headers=bearer("ehs"))
        assert resp.status == 403


class TestScopes:
    """A department token reaches only its segments."""

    async def test_scope_segment_by_name(self, secure: Running) -> None:
        """The scope segment itself, and a narrowing of it, are sent."""
        for audience in (NORTH_SCOPE, f"{NORTH_SCOPE} and language:en"):
            resp = await post(secure, "north", {**FIRE, "audience": audience})
            assert resp.status == 202, (audience, await resp.text())
            assert 0 < (await resp.json())["audience"]["total"] <= 10

    @pytest.mark.parametrize(
        "audience",
        ["all", "role:student", "role:student and building:north-hall",
         f"{NORTH_SCOPE} or role:staff", f"not {NORTH_SCOPE}", "responders"],
    )
    async def test_other_audiences_are_forbidden(self, secure: Running, audience: str) -> None:
        """403, naming the scopes, and nothing stored."""
        resp = await post(secure, "north", {**FIRE, "audience": audience})
        assert resp.status == 403, (audience, await resp.text())
        assert NORTH_SCOPE in (await resp.json())["error"]
        assert await alert_count(secure) == 0
        metrics = await (await secure.client.get("/metrics")).text()
        assert 'clarion_alerts_rejected_total{reason="scope"}' in metrics

    async def test_forged_marker_sends_nothing(self, secure: Running) -> None:
        """Writing the scope marker by hand is refused."""
        resp = await post(secure, "north", {**FIRE, "audience": "__scope__:residents-north"})
        assert resp.status in (403, 422)
        assert await alert_count(secure) == 0

    async def test_scoped_token_cancels_only_its_own_audience(self, secure: Running) -> None:
        """A department token may withdraw an alert to its segment, not a campus-wide one."""
        campus = (await (await post(secure, "alice", FIRE)).json())["id"]
        refused = await secure.client.post(f"/v1/alerts/{campus}/cancel", headers=bearer("north"))
        assert refused.status == 403 and NORTH_SCOPE in (await refused.json())["error"]
        record = await secure.service.alerts.get(campus)
        assert record is not None and record.state.value != "cancelled"
        own = (await (await post(secure, "north", {**FIRE, "audience": NORTH_SCOPE})).json())["id"]
        allowed = await secure.client.post(f"/v1/alerts/{own}/cancel", headers=bearer("north"))
        assert allowed.status == 200, await allowed.text()

    async def test_zones_narrow_a_scoped_audience(self, secure: Running) -> None:
        """Zones only ever narrow: a scoped token may add them."""
        resp = await post(secure, "north", {**FIRE, "audience": NORTH_SCOPE, "zones": ["a"]})
        assert resp.status == 202, await resp.text()


class TestTokenConfig:
    """Token settings are refused when they could not work as written."""

    async def test_unknown_scope_segment_is_a_config_error(
        self, secure_settings: SecureSettings
    ) -> None:
        """A token scoped to a segment that does not exist stops the service from starting."""
        settings = secure_settings(token_extra={"north": {"segments": ["nowhere"]}})
        db = await open_database(settings.store.url)
        try:
            with pytest.raises(ConfigError, match="nowhere"):
                Service(settings, db)
        finally:
            await db.close()

    def test_duplicate_names_are_refused(self) -> None:
        """Names identify callers (rate limits, audit, the second person): they are unique."""
        base = load_settings()
        entry = {"name": "x", "role": "viewer", "sha256": "0" * 64}
        other = {**entry, "sha256": "1" * 64}
        with pytest.raises(ValueError, match="distinct"):
            base.auth.model_validate({"tokens": [entry, other]})

    def test_tokens_are_compared_by_hash(self) -> None:
        """The config holds only hashes; the plain token authenticates."""
        from dispatcher.settings import AuthSettings

        digest = token_sha256("password")
        auth = Authenticator(AuthSettings.model_validate(
            {"tokens": [{"name": "a", "role": "viewer", "sha256": digest}]}
        ))
        caller = auth.authenticate("Bearer password")
        assert caller is not None and caller.name == "a"
        assert auth.authenticate(f"Bearer {digest}") is None
