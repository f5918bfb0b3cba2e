"""Provider faults: error storms, outages and a sandbox that goes away mid-alert."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from channels.breaker import BreakerSettings, BreakerState, CircuitBreaker
from channels.sandbox.stats import Stats
from dispatcher.domain import ChannelKind
from tests.reliability.conftest import Report
from tests.reliability.rig import (
    Providers,
    rig_settings,
    service_port,
    start_providers,
    start_rig_service,
)
from tests.support import Running

ALERT = {
    "kind": "emergency",
    "text": "Severe thunderstorm warning. Move indoors now and stay away from windows.",
}
SMS_ONLY: dict[str, dict[str, Any]] = {"sms.twilio": {}}
BATCH_SIZE = 50
CONCURRENCY = 4


class Cleanup:
    """What a test started, stopped at its end in reverse order."""

    def __init__(self) -> None:
        self.providers: list[Providers] = []
        self.services: list[Running] = []

    async def close(self) -> None:
        """Stop services, then providers."""
        for running in reversed(self.services):
            await running.client.close()
        for providers in reversed(self.providers):
            await providers.sandbox.stop()


@pytest_asyncio.fixture
async def cleanup() -> AsyncIterator[Cleanup]:
    """Everything a test starts is stopped after it."""
    started = Cleanup()
    yield started
    await started.close()


async def sms_service(
    tmp_path: Path, cleanup: Cleanup, flags: tuple[str, ...], breaker: BreakerSettings | None
) -> tuple[Providers, Running]:
    """Providers with these flags and an SMS-only service."""
    providers = await start_providers(Stats(), flags=flags)
    cleanup.providers.append(providers)
    port = service_port()
    settings = rig_settings(tmp_path, providers, service_port=port, channels=SMS_ONLY)
    running = await start_rig_service(
        settings, providers, port=port,
        breakers={ChannelKind.SMS: breaker} if breaker is not None else None,
    )
    cleanup.services.append(running)
    return providers, running


async def post(running: Running, audience: str, channels: list[str]) -> tuple[str, dict[str, int]]:
    """Send the alert; its id and the deliveries it should make per channel."""
    resp = await running.post_alert({**ALERT, "audience": audience, "channels": channels})
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    return body["id"], body["audience"]["by_channel"]


def current(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (it moves with time)."""
    return breaker.state


class TestNoRetryStorm:
    """Half of all SMS requests fail: retries back off and the requests stay bounded."""

    async def test_half_the_requests_fail(
        self, tmp_path: Path, cleanup: Cleanup, report: Report
    ) -> None:
        """Each delivery needs two tries on average; the total stays under three per delivery.

        With a 50 % error rate the attempts per delivery are geometric (mean 2, variance 2), so
        for n deliveries the total is 2n +- 1.4 sqrt(n): 3n is more than 8 standard deviations
        away at n = 300. More than that would mean retries beyond need (a storm).
        """
        providers, running = await sms_service(
            tmp_path, cleanup, ("--sms-error-rate", "0.5", "--sms-seed", "7"), None
        )
        alert_id, expected = await post(running, "role:staff", ["sms"])
        doc = await running.wait_state(alert_id, timeout=120)
        sms = doc["channels"]["sms"]
        n = sms["total"]
        assert n == expected["sms"] > 250
        assert sms["queued"] == sms["sending"] == 0
        assert sms["accepted"] + sms["delivered"] + sms["failed"] == n
        assert sms["failed"] == 0, "a transient error may not fail a delivery before its deadline"
        requests = providers.twilio.requests
        report("sms_deliveries", n)
        report("sms_requests", requests)
        report("breaker_opened", running.service.engine.breakers[ChannelKind.SMS].opened)
        assert n < requests <= 3 * n
        assert providers.sandbox.stats.snapshot()["sms"] == {"received": n, "unique": n}


class TestOutage:
    """A provider that fails everything is probed, not hammered, and recovers by itself."""

    async def test_breaker_opens_probes_and_closes(
        self, tmp_path: Path, cleanup: Cleanup, report: Report
    ) -> None:
        """During the outage only probes reach the provider; after it, everything is sent."""
        breaker = BreakerSettings(failures=3, cooldown_s=0.2, max_cooldown_s=0.4, probe_size=2,
                                  fallback_after_s=3600)
        providers, running = await sms_service(
            tmp_path, cleanup, ("--sms-error-rate", "1.0"), breaker
        )
        state = running.service.engine.breakers[ChannelKind.SMS]
        alert_id, expected = await post(running, "role:staff", ["sms"])
        async with asyncio.timeout(20):
            while state.opened < 2:
                await asyncio.sleep(0.01)
        # A probe has failed since it opened; batches claimed before may still be out a while.
        await asyncio.sleep(0.5)
        before, opened_before = providers.twilio.requests, state.opened
        await asyncio.sleep(1.0)
        during = providers.twilio.requests - before
        probes = state.opened - opened_before + 1
        report("requests_while_open", during)
        assert during <= breaker.probe_size * probes, (during, probes)
        assert current(state) is not BreakerState.CLOSED
        providers.twilio.error_rate = 0.0
        doc = await running.wait_state(alert_id, timeout=60)
        sms = doc["channels"]["sms"]
        assert sms["accepted"] + sms["delivered"] == sms["total"] == expected["sms"]
        assert current(state) is BreakerState.CLOSED
        assert providers.sandbox.stats.snapshot()["sms"]["unique"] == sms["total"]

    async def test_retry_after_is_honoured(self, tmp_path: Path, cleanup: Cleanup) -> None:
        """Every first request answered 429 with Retry-After: 1 s: no delivery is tried again
        sooner, and all go out once the provider accepts again."""
        quick = BreakerSettings(cooldown_s=0.2, max_cooldown_s=0.4)
        providers, running = await sms_service(
            tmp_path, cleanup, ("--sms-429-rate", "1.0", "--sms-retry-after", "1"), quick
        )
        alert_id, expected = await post(running, "role:neighbor", ["sms"])
        async with asyncio.timeout(20):
            while providers.twilio.requests < expected["sms"]:
                await asyncio.sleep(0.005)
        providers.twilio.rate_429 = 0.0
        doc = await running.wait_state(alert_id, timeout=30)
        assert doc["channels"]["sms"]["failed"] == 0
        rows = await running.service.db.fetchall(
            "SELECT delivery_id, status, at FROM receipts WHERE alert_id = ? AND channel = 'sms'"
            " AND status IN ('retry_scheduled', 'accepted') ORDER BY id",
            (alert_id,),
        )
        retried_at: dict[int, int] = {}
        gaps = []
        for row in rows:
            if row["status"] == "retry_scheduled":
                retried_at[row["delivery_id"]] = row["at"]
            elif row["delivery_id"] in retried_at:
                gaps.append(row["at"] - retried_at.pop(row["delivery_id"]))
        assert len(gaps) == expected["sms"] > 0
        assert min(gaps) >= 1000, min(gaps)


class TestProvidersGoAway:
    """The sandbox stops mid-alert and comes back on the same ports: nothing is lost."""

    async def test_sandbox_restarted_mid_alert(
        self, tmp_path: Path, cleanup: Cleanup, report: Report
    ) -> None:
        """E-mail and SMS keep their deliveries through the outage and finish after it."""
        stats = Stats()
        first = await start_providers(stats)
        cleanup.providers.append(first)
        port = service_port()
        settings = rig_settings(
            tmp_path, first, service_port=port, channels={"email.smtp": {}, "sms.twilio": {}}
        )
        quick = BreakerSettings(failures=3, cooldown_s=0.2, max_cooldown_s=0.5)
        running = await start_rig_service(
            settings, first, port=port,
            breakers={ChannelKind.EMAIL: quick, ChannelKind.SMS: quick},
        )
        cleanup.services.append(running)
        alert_id, expected = await post(running, "role:staff or role:faculty", ["email", "sms"])
        async with asyncio.timeout(30):
            while stats.snapshot().get("email", {}).get("received", 0) < expected["email"] / 3:
                await asyncio.sleep(0.005)
        await first.sandbox.stop()
        cleanup.providers.remove(first)
        at_stop = stats.snapshot()
        await asyncio.sleep(1.0)
        second = await start_providers(
            stats, port=first.sandbox.port, smtp_port=first.sandbox.smtp.port
        )
        cleanup.providers.append(second)
        doc = await running.wait_state(alert_id, timeout=90)
        after = stats.snapshot()
        duplicates = {}
        for kind in ("email", "sms"):
            counts = doc["channels"][kind]
            assert counts["failed"] == 0, (kind, counts)
            assert counts["accepted"] + counts["delivered"] == counts["total"] == expected[kind]
            assert after[kind]["unique"] == counts["total"], (kind, after[kind])
            duplicates[kind] = after[kind]["received"] - after[kind]["unique"]
        report("received_at_stop", at_stop)
        report("duplicates", duplicates)
        assert all(n <= BATCH_SIZE * CONCURRENCY for n in duplicates.values()), duplicates


@pytest.mark.heavy
class TestHeavyStorm:
    """The storm test on the whole campus, with the breaker's defaults."""

    async def test_half_the_requests_fail_whole_campus(
        self, tmp_path: Path, cleanup: Cleanup, report: Report
    ) -> None:
        """Every phone of the campus under a 50 % error rate: under three requests each."""
        providers, running = await sms_service(
            tmp_path, cleanup, ("--sms-error-rate", "0.5", "--sms-seed", "11"), None
        )
        alert_id, _ = await post(running, "all", ["sms"])
        doc = await running.wait_state(alert_id, timeout=170)
        n = doc["channels"]["sms"]["total"]
        assert doc["channels"]["sms"]["failed"] == 0
        report("sms_deliveries", n)
        report("sms_requests", providers.twilio.requests)
        assert n < providers.twilio.requests <= 3 * n
