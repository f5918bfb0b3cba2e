"""POST /v1/lint over a real HTTP server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.api import lint as lint_routes
from dispatcher.edge import SERVICE
from tests.policy.helpers import settings


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The lint routes alone, with a service object that only has settings."""
    app = web.Application()
    app[SERVICE] = SimpleNamespace(settings=settings())  # type: ignore[assignment]
    app.add_routes(lint_routes.routes)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        yield test_client


async def test_single_request(client: TestClient[web.Request, web.Application]) -> None:
    """One request object gives one verdict with spans."""
    text = "Timely Warning: Michael Torres, a freshman, was robbed. Walk with others."
    response = await client.post("/v1/lint", json={"kind": "timely_warning", "text": text})
    assert response.status == 200
    verdict = await response.json()
    assert verdict["ok"] is False
    [v] = verdict["violations"]
    assert text[v["start"] : v["end"]] == "Michael Torres"


async def test_list_of_requests(client: TestClient[web.Request, web.Application]) -> None:
    """A list gives a list of verdicts in order."""
    body = [
        {"kind": "emergency", "text": "Fire at Carver Hall. Evacuate now."},
        # A drill: a live emergency is never held back for its wording.
        {"kind": "emergency", "mode": "drill",
         "text": "Gas odor reported at the Biology Building."},
    ]
    response = await client.post("/v1/lint", json=body)
    verdicts = await response.json()
    assert response.status == 200 and [v["ok"] for v in verdicts] == [True, False]


async def test_malformed(client: TestClient[web.Request, web.Application]) -> None:
    """A body that is no alert request is 422 naming the problem (and the item in a list)."""
    response = await client.post("/v1/lint", json={"text": "Evacuate now."})
    assert response.status == 422 and "missing kind" in (await response.json())["error"]
    response = await client.post("/v1/lint", json=[{"kind": "emergency", "text": "Go."}, {}])
    body = await response.json()
    assert response.status == 422 and body["index"] == 1 and "item 1" in body["error"]
    response = await client.post("/v1/lint", json=[])
    assert response.status == 422
    response = await client.post(
        "/v1/lint", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status == 422 and "not valid JSON" in await response.text()


async def test_suggestion_with_each_confidentiality_violation(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Each confidentiality violation carries a neutral rewrite of its span, the contract's
    keys unchanged."""
    text = "Fire in the room of Kevin Miller, West Hall 1104. Evacuate now."
    response = await client.post("/v1/lint", json={"kind": "emergency", "text": text})
    verdict = await response.json()
    found = {text[v["start"] : v["end"]]: v for v in verdict["violations"]}
    assert found["Kevin Miller"]["suggestion"] == "a student"
    assert found["Kevin Miller"]["rule"] == "confidentiality.name"
    assert {"rule", "message", "start", "end"} <= set(found["Kevin Miller"])
