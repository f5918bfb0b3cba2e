"""`GET /v1/alerts/{id}/events` over HTTP: every viewer of an alert is served from its one
progress stream, and the stream is gone once the viewers are."""

from __future__ import annotations

import asyncio
import json

from tests.support import AUTH, Running

FIRE = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "audience": "all",
    "channels": ["email"],
}


def _events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        names = [ln.removeprefix("event: ") for ln in lines if ln.startswith("event: ")]
        data = "\n".join(ln.removeprefix("data: ") for ln in lines if ln.startswith("data: "))
        if names:
            out.append((names[0], data))
    return out


async def _follow(running: Running, alert_id: str) -> list[tuple[str, str]]:
    resp = await running.client.get(f"/v1/alerts/{alert_id}/events", headers=AUTH)
    assert resp.status == 200
    return _events(await resp.text())


class TestSharedEvents:
    """Several clients following one alert."""

    async def test_every_viewer_ends_with_the_same_final_state(self, running: Running) -> None:
        """Three clients all get progress, then `done` with the same final document."""
        alert_id = (await (await running.post_alert(FIRE)).json())["id"]
        streams = await asyncio.gather(*(_follow(running, alert_id) for _ in range(3)))
        finals = []
        for events in streams:
            assert events[0][0] == "progress"
            assert events[-1][0] == "done"
            finals.append(json.loads(events[-1][1]))
        assert finals[0]["state"] == "done"
        assert finals[0]["channels"]["email"]["total"] > 0
        assert finals[0] == finals[1] == finals[2]
        assert running.service.progress.watched == frozenset()

    async def test_an_unknown_alert_is_404(self, running: Running) -> None:
        """No stream is started for an alert that does not exist."""
        resp = await running.client.get("/v1/alerts/nope/events", headers=AUTH)
        assert resp.status == 404
        assert running.service.progress.watched == frozenset()
