"""The sandbox's `/stats`: counts per kind, and with `arrival_times` when each kind arrived."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib
import pytest_asyncio

from channels.sandbox import push as push_plugin
from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sandbox.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, MESSAGES_PATH

ALERT = "alert-stats-1"


async def started(arrival_times: bool) -> Sandbox:
    """A sandbox on free ports with the Twilio and push plugins, as `clarion sandbox` sets them."""
    parser = argparse.ArgumentParser()
    twilio_plugin.add_arguments(parser)
    push_plugin.add_arguments(parser)
    args = parser.parse_args([])
    box = Sandbox(port=0, smtp_port=0, arrival_times=arrival_times)
    await twilio_plugin.attach(box, args)
    await push_plugin.attach(box, args)
    await box.start()
    return box


@pytest_asyncio.fixture
async def timed() -> AsyncIterator[Sandbox]:
    """The sandbox with arrival times in `/stats`."""
    box = await started(arrival_times=True)
    yield box
    await box.stop()


@pytest_asyncio.fixture
async def plain() -> AsyncIterator[Sandbox]:
    """The sandbox as the other tests start it: counts only."""
    box = await started(arrival_times=False)
    yield box
    await box.stop()


async def get_stats(http: aiohttp.ClientSession, box: Sandbox) -> dict[str, Any]:
    """GET /stats."""
    async with http.get(f"{box.url}/stats") as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def send_sms(http: aiohttp.ClientSession, box: Sandbox, to: str) -> None:
    """One message through the Messages API, in Twilio's form encoding."""
    url = box.url + MESSAGES_PATH.format(account_sid=DEFAULT_ACCOUNT_SID)
    form = {"To": to, "From": "+15550000001", "Body": "Evacuate building A"}
    auth = {"Authorization": aiohttp.encode_basic_auth(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}
    async with http.post(url, data=form, headers=auth) as resp:
        assert resp.status == 201, await resp.text()


async def send_email(box: Sandbox, to: str) -> None:
    """One message to the SMTP relay."""
    msg = EmailMessage()
    msg["From"] = "alerts@campus.example"
    msg["To"] = to
    msg["Subject"] = "Emergency"
    msg["X-Clarion-Alert"] = ALERT
    msg.set_content("Evacuate building A")
    await aiosmtplib.send(msg, hostname=box.host, port=box.smtp.port, start_tls=False)


async def send_push(http: aiohttp.ClientSession, box: Sandbox, recipient: str) -> None:
    """One notification as push.apprise posts it to a gateway."""
    payload = {
        "version": "1.0",
        "title": "Emergency",
        "message": "Evacuate building A",
        "type": "info",
        "attachments": [],
        "alert_id": ALERT,
        "drill": False,
    }
    headers = {"X-Clarion-Alert": ALERT, "Content-Type": "application/json"}
    async with http.post(
        f"{box.url}/push/{recipient}", data=json.dumps(payload), headers=headers
    ) as resp:
        assert resp.status == 200, await resp.text()


class TestArrivalTimes:
    """`first_at` / `last_at` per kind: wall clock, epoch seconds, null before any arrival."""

    async def test_sms_email_push_stamped_within_the_test(self, timed: Sandbox) -> None:
        """Each kind's first and last arrival fall inside the test's own window, in order."""
        async with aiohttp.ClientSession() as http:
            before = await get_stats(http, timed)
            assert before == {
                kind: {"received": 0, "unique": 0, "first_at": None, "last_at": None}
                for kind in ("email", "push", "sms", "voice")
            }
            start = time.time()
            await send_sms(http, timed, "+15555550100")
            await send_email(timed, "pat@campus.example")
            await send_push(http, timed, "P1")
            await send_push(http, timed, "P2")
            end = time.time()
            stats = await get_stats(http, timed)
        assert set(stats) == {"email", "push", "sms", "voice"}
        for kind, count in (("sms", 1), ("email", 1), ("push", 2)):
            entry = stats[kind]
            assert entry["received"] == entry["unique"] == count, (kind, entry)
            assert isinstance(entry["first_at"], float), (kind, entry)
            assert isinstance(entry["last_at"], float), (kind, entry)
            assert start <= entry["first_at"] <= entry["last_at"] <= end, (kind, entry)
        # In the order they were sent: each kind arrived before the next was sent.
        assert stats["sms"]["last_at"] <= stats["email"]["first_at"]
        assert stats["email"]["last_at"] <= stats["push"]["first_at"]

    async def test_null_for_a_kind_that_received_nothing(self, timed: Sandbox) -> None:
        """A kind nothing arrived for has null times and zero counts."""
        async with aiohttp.ClientSession() as http:
            start = time.time()
            await send_sms(http, timed, "+15555550100")
            stats = await get_stats(http, timed)
        assert stats["sms"]["received"] == 1
        assert start <= stats["sms"]["first_at"] == stats["sms"]["last_at"] <= time.time()
        for kind in ("email", "push", "voice"):
            assert stats[kind] == {"received": 0, "unique": 0, "first_at": None, "last_at": None}

    async def test_reset_forgets_the_times(self, timed: Sandbox) -> None:
        """POST /stats/reset: times back to null; the next arrival starts them again."""
        async with aiohttp.ClientSession() as http:
            await send_push(http, timed, "P1")
            first = (await get_stats(http, timed))["push"]["first_at"]
            async with http.post(f"{timed.url}/stats/reset") as resp:
                assert resp.status == 200
            assert (await get_stats(http, timed))["push"] == {
                "received": 0, "unique": 0, "first_at": None, "last_at": None
            }
            await send_push(http, timed, "P1")
            again = (await get_stats(http, timed))["push"]
        assert again["received"] == again["unique"] == 1
        assert again["first_at"] == again["last_at"] >= first

    async def test_without_arrival_times_stats_is_unchanged(self, plain: Sandbox) -> None:
        """Off (the default): `/stats` is the counts alone, only the kinds that arrived."""
        async with aiohttp.ClientSession() as http:
            assert await get_stats(http, plain) == {}
            await send_sms(http, plain, "+15555550100")
            await send_push(http, plain, "P1")
            await send_push(http, plain, "P1")
            stats = await get_stats(http, plain)
        assert stats == {
            "push": {"received": 2, "unique": 1},
            "sms": {"received": 1, "unique": 1},
        }


class TestStats:
    """`Stats` itself: `snapshot()` keeps its shape; times are kept per kind, not per message."""

    def test_snapshot_is_counts_only(self) -> None:
        """Declared kinds and times never show in `snapshot()`."""
        stats = Stats()
        stats.declare("sms", "siren")
        assert stats.snapshot() == {}
        stats.record("sms", "a1", "+15555550100")
        stats.record("sms", "a1", "+15555550100")
        assert stats.snapshot() == {"sms": {"received": 2, "unique": 1}}

    def test_first_and_last_per_kind(self) -> None:
        """First stays the first arrival; last moves with each; duplicates count as arrivals."""
        stats = Stats(keep=0)
        start = time.time()
        for n in range(1000):
            stats.record("email", "a1", f"p{n % 10}@campus.example")
        end = time.time()
        doc = stats.timed_snapshot()["email"]
        assert doc["received"] == 1000
        assert doc["unique"] == 10
        first, last = doc["first_at"], doc["last_at"]
        assert isinstance(first, float)
        assert isinstance(last, float)
        assert start <= first <= last <= end
        assert stats.messages == []
        # Two stamps per kind, whatever the number of messages.
        assert len(stats._first_at) == len(stats._last_at) == 1
