"""Follow-ups (an update or all clear naming the alert it follows) inherit what they leave out,
and reach no one new unless they say so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatcher.access.auth import Caller, Role
from dispatcher.alerting.intake import Held
from dispatcher.alerting.request import AlertRequest
from dispatcher.cli import main
from tests.conftest import SettingsFactory
from tests.support import TOKEN, Running, start_service

FIRST = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "audience": "role:student",
    "zones": ["b"],
    "channels": ["email"],
    "confirmed_by": {"name": "Pat Lee", "title": "Fire Marshal"},
}
UPDATE = "Fire at Carver Hall is contained. Stay out of the building until told otherwise."
CLEAR = "All clear at Carver Hall. The fire is out and you may go back in."


async def sent(running: Running, body: dict[str, Any]) -> str:
    """POST an alert that must be accepted; its id."""
    resp = await running.post_alert(body)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


class TestInherit:
    """What a follow-up leaves out comes from the alert it follows."""

    async def test_update_and_all_clear_inherit(self, running: Running) -> None:
        """Audience, zones, channels, language and confirmation carry over, counts too."""
        first = await sent(running, FIRST)
        update = await sent(running, {"kind": "emergency", "references": first, "text": UPDATE})
        clear = await sent(running, {"kind": "all_clear", "references": update, "text": CLEAR})
        original = await running.service.alerts.get(first)
        assert original is not None
        for alert_id in (update, clear):
            record = await running.service.alerts.get(alert_id)
            assert record is not None
            assert (record.audience, record.zones, record.channels) == (
                original.audience, original.zones, original.channels)
            assert record.request.confirmed_by == original.request.confirmed_by
            assert record.request.language == original.request.language
            assert record.audience_counts["total"] == original.audience_counts["total"] > 0

    async def test_narrowing_needs_no_word(self, running: Running) -> None:
        """A follow-up to one of its alert's two zones is accepted as it is."""
        first = await sent(running, {**FIRST, "zones": ["b", "c"]})
        narrower = await sent(running, {"kind": "emergency", "references": first,
                                        "text": UPDATE, "zones": ["b"]})
        record = await running.service.alerts.get(narrower)
        original = await running.service.alerts.get(first)
        assert record is not None and original is not None
        assert record.zones == ("b",)
        assert 0 < record.audience_counts["total"] < original.audience_counts["total"]


class TestWiden:
    """Reaching people the first alert did not is refused unless the request says so."""

    async def test_wider_audience_is_refused_then_explicit(self, running: Running) -> None:
        """Everyone instead of zone b's students: 422 at `widen` saying how; with it, 202."""
        first = await sent(running, FIRST)
        wider = {"kind": "emergency", "references": first, "text": UPDATE,
                 "audience": "all", "zones": []}
        resp = await running.post_alert(wider)
        assert resp.status == 422, await resp.text()
        (problem,) = (await resp.json())["problems"]
        assert problem["field"] == "widen"
        assert "widen: true" in problem["message"] and first in problem["message"]
        before = await running.service.db.fetchval("SELECT COUNT(*) FROM alerts")
        assert before == 1
        accepted = await sent(running, {**wider, "widen": True})
        record = await running.service.alerts.get(accepted)
        assert record is not None and record.audience == "all" and record.zones == ()

    async def test_other_zone_is_a_widening(self, running: Running) -> None:
        """Moving a follow-up to another zone reaches new people: refused without `widen`."""
        first = await sent(running, FIRST)
        resp = await running.post_alert({"kind": "emergency", "references": first,
                                         "text": UPDATE, "zones": ["c"]})
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["problems"][0]["field"] == "widen"


class TestCommandLine:
    """`clarion send --references` behaves as the API does."""

    async def test_send_follow_up_inherits_and_widens_only_when_told(
        self, running: Running, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without --audience the update inherits; everyone in its zone is refused until --widen."""
        first = await sent(running, FIRST)
        client = ["--url", str(running.client.make_url("/")).rstrip("/"), "--token", TOKEN,
                  "--no-wait"]
        code = await asyncio.to_thread(main, [
            "send", UPDATE, "--references", first, *client])
        assert code == 0, capsys.readouterr()
        code = await asyncio.to_thread(main, [
            "send", UPDATE, "--references", first, "--audience", "all", *client])
        assert code != 0
        assert '"widen"' in capsys.readouterr().err
        code = await asyncio.to_thread(main, [
            "send", UPDATE, "--references", first, "--audience", "all", "--widen", *client])
        assert code == 0
        rows = await running.service.db.fetchall(
            "SELECT id FROM alerts WHERE references_id = ? ORDER BY created_at", (first,))
        records = [await running.service.alerts.get(r["id"]) for r in rows]
        assert [(r.audience, r.zones) for r in records if r is not None] == [
            ("role:student", ("b",)), ("all", ("b",))]


async def test_held_follow_up_keeps_what_it_inherits(make_settings: SettingsFactory) -> None:
    """A follow-up held for approval is held with its alert's audience and zones, so the
    approver sees (and the scope rule judges) who it really goes to."""
    settings = make_settings()
    approval = settings.auth.approval.model_copy(update={"enabled": True, "min_audience": 1})
    settings = settings.model_copy(update={"auth": settings.auth.model_copy(
        update={"approval": approval})})
    running = await start_service(settings)
    try:
        intake = running.service.intake
        first = await intake.submit(AlertRequest.model_validate(FIRST), Caller("a", Role.ADMIN))
        if isinstance(first, Held):
            first = await intake.approve(first.record.id, Caller("b", Role.ADMIN))
        held = await running.post_alert({"kind": "emergency", "references": first.id,
                                         "text": UPDATE})
        assert held.status == 202, await held.text()
        record = await running.service.intake.approvals.get((await held.json())["id"])
        assert record is not None
        assert (record.request.audience, record.request.zones) == ("role:student", ["b"])
    finally:
        await running.client.close()
