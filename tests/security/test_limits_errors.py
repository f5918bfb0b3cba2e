"""Rate limits per token, body size limits, and errors that never carry a stack trace."""

from __future__ import annotations

import io
import json

import pytest

from dispatcher.access.auth import RateLimiter, retry_after
from tests.security.conftest import FIRE, SecureSettings, bearer, events
from tests.support import AUTH, Running, start_service


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now




class TestRateLimiter:
    """Token buckets: a burst, then the sustained rate."""

    def test_burst_then_rate(self) -> None:
        """`burst` requests at once, then one per 1/rate seconds, with the wait reported."""
        clock = FakeClock()
        limiter = RateLimiter(clock)
        assert [limiter.take("a", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = limiter.take("a", 2.0, 3)
        assert wait == pytest.approx(0.5)
        assert retry_after(wait) == "1"
        clock.now += 0.5
        assert limiter.take("a", 2.0, 3) == 0.0
        assert limiter.take("b", 2.0, 3) == 0.0

    def test_refusals_do_not_spend(self) -> None:
        """A refused request costs nothing: waiting the reported time is enough."""
        clock = FakeClock()
        limiter = RateLimiter(clock)
        limiter.take("a", 1.0, 1)
        for _ in range(5):
            assert limiter.take("a", 1.0, 1) > 0
        clock.now += 1.0
        assert limiter.take("a", 1.0, 1) == 0.0

    def test_zero_rate_is_unlimited(self) -> None:
        """rate 0 turns the limit off."""
        limiter = RateLimiter(FakeClock())
        assert all(limiter.take("a", 0, 1) == 0.0 for _ in range(100))


class TestApiRateLimit:
    """Through the API: 429 with Retry-After for one token, the others unaffected."""

    async def test_token_over_its_rate(self, secure_settings: SecureSettings) -> None:
        """The fourth request in a row of a 3-burst token is a 429 with a JSON error."""
        settings = secure_settings(
            token_extra={"watch": {"rate_per_second": 0.01, "rate_burst": 3}}
        )
        run = await start_service(settings)
        try:
            statuses = [
                (await run.client.get("/v1/approvals", headers=bearer("watch"))).status
                for _ in range(3)
            ]
            assert statuses == [200, 200, 200]
            resp = await run.client.get("/v1/approvals", headers=bearer("watch"))
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
            assert "too many" in (await resp.json())["error"]
            other = await run.client.get("/v1/approvals", headers=bearer("alice"))
            assert other.status == 200
        finally:
            await run.client.close()


class TestErrors:
    """Every error is JSON with an `error` key; a fault is a 500 that reveals nothing."""

    async def test_fault_is_a_bare_500(self, secure: Running, logs: io.StringIO) -> None:
        """A store fault inside a handler: 500, no trace or SQL in the body; the trace is logged."""
        alert_id = (await (await secure.post_alert(FIRE)).json())["id"]
        await secure.wait_state(alert_id)
        await secure.service.db.execute("DROP TABLE alert_versions")
        resp = await secure.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
        assert resp.status == 500
        body = await resp.text()
        assert json.loads(body) == {"error": "internal error: the request was not completed"}
        for leak in ("Traceback", "alert_versions", "sqlite", "File \"", "OperationalError"):
            assert leak not in body
        unhandled = events(logs, "http.unhandled")
        assert unhandled and unhandled[0]["route"] == "/v1/alerts/{id}"
        assert "Traceback" in str(unhandled[0]["exception"])

    async def test_framework_errors_are_json(self, secure: Running) -> None:
        """Unknown routes and methods answer in JSON; 405 keeps its Allow header."""
        missing = await secure.client.get("/nowhere")
        assert missing.status == 404 and "error" in await missing.json()
        wrong = await secure.client.delete("/v1/alerts", headers=AUTH)
        assert wrong.status == 405 and "error" in await wrong.json()
        assert "POST" in wrong.headers["Allow"]

    async def test_body_limits(self, secure: Running) -> None:
        """A body over the limit is a 413 with a JSON error, declared or streamed."""
        limit = secure.service.settings.service.max_body_bytes
        big = b"{" + b" " * limit + b"}"
        resp = await secure.client.post("/v1/alerts", data=big, headers=AUTH)
        assert resp.status == 413 and "error" in await resp.json()

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(limit // 1024 + 2):
                yield b" " * 1024

        streamed = await secure.client.post("/v1/lint", data=chunks(), headers=AUTH)
        assert streamed.status == 413 and "error" in await streamed.json()
        assert (await secure.client.get("/healthz")).status == 200

    async def test_malformed_json(self, secure: Running) -> None:
        """Broken, deeply nested or non-UTF-8 JSON: 422 that says where the problem is."""
        for raw in (b"{", b"[" * 20_000 + b"]" * 20_000, b"\xff\xfe{}", b"null", b"[]"):
            resp = await secure.client.post("/v1/alerts", data=raw, headers=AUTH)
            assert resp.status == 422, (raw[:10], resp.status)
            assert "error" in await resp.json()

    async def test_refusals_are_logged_without_secrets(
        self, secure: Running, logs: io.StringIO
    ) -> None:
        """A 401 is logged with its route and status, never with the token presented."""
        await secure.client.post("/v1/alerts", json=FIRE,
                                 headers={"Authorization": "Bearer wrong-token-value"})
        refused = events(logs, "http.refused")
        assert refused and refused[0]["status"] == 401 and refused[0]["route"] == "/v1/alerts"
        assert "wrong-token-value" not in logs.getvalue()
