"""Fallback channels: a person whose channel fails for good is tried once on its fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest_asyncio

from channels.breaker import BreakerSettings
from channels.sandbox.stats import Stats
from dispatcher.domain import ChannelKind
from tests.reliability.rig import (
    Providers,
    audience_of,
    people_with,
    rig_settings,
    service_port,
    start_providers,
    start_rig_service,
)
from tests.support import Running

ALERT = {
    "kind": "emergency",
    "text": "Water main break at the Library. Stay out of the building until further notice.",
}
# The example config's fallbacks: SMS to push, push to e-mail.
CHANNELS: dict[str, dict[str, Any]] = {
    "sms.twilio": {"fallback": "push"}, "push.apprise": {"fallback": "email"}, "email.smtp": {},
}
REACHABLE = "phone <> '' AND push <> '' AND email <> ''"

Rig = Callable[..., Awaitable[tuple[Providers, Running]]]


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Start providers and a service (SMS, push, e-mail with fallbacks); stopped at the end."""
    started: list[tuple[Providers, Running]] = []

    async def make(
        *, flags: tuple[str, ...] = (),
        breakers: Mapping[ChannelKind, BreakerSettings] | None = None,
    ) -> tuple[Providers, Running]:
        providers = await start_providers(Stats(), flags=flags)
        port = service_port()
        settings = rig_settings(tmp_path, providers, service_port=port, channels=CHANNELS)
        running = await start_rig_service(settings, providers, port=port, breakers=breakers)
        started.append((providers, running))
        return providers, running

    yield make
    for providers, running in reversed(started):
        await running.client.close()
        await providers.sandbox.stop()


async def send(running: Running, people: list[dict[str, Any]], channels: list[str]) -> str:
    """Send the alert to these people on these channels; its id."""
    resp = await running.post_alert({**ALERT, "audience": audience_of(people),
                                     "channels": channels})
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def deliveries(running: Running, alert_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(channel, person) -> state and receipt history."""
    rows = await running.service.db.fetchall(
        "SELECT id, channel, recipient, state FROM deliveries WHERE alert_id = ?", (alert_id,)
    )
    history = await running.service.ledger.receipts(r["id"] for r in rows)
    return {
        (r["channel"], r["recipient"]): {"state": r["state"], "receipts": history.get(r["id"], [])}
        for r in rows
    }


class TestPermanentFailures:
    """SMS refused for good goes to push; push refused for good goes to e-mail."""

    async def test_opted_out_sms_then_refused_push_end_in_email(self, rig: Rig) -> None:
        """21610 on SMS -> push; a 404 on that push -> e-mail; others keep their SMS only."""
        providers, running = await rig()
        people = await people_with(running, f"role = 'staff' AND {REACHABLE}", 4)
        first, second = people[0], people[1]
        providers.twilio.opted_out.update({first["phone"], second["phone"]})
        providers.push.script(second["id"], 404)
        alert_id = await send(running, people, ["sms"])
        doc = await running.wait_state(alert_id)
        assert doc["state"] == "done"
        chans = {k: (v["total"], v["accepted"] + v["delivered"], v["failed"])
                 for k, v in doc["channels"].items()}
        assert chans == {"sms": (4, 2, 2), "push": (2, 1, 1), "email": (1, 1, 0)}
        stats = providers.sandbox.stats
        assert {m.recipient for m in stats.of("push", alert_id)} == {first["id"]}
        assert {m.recipient for m in stats.of("email", alert_id)} == {second["email"]}
        found = await deliveries(running, alert_id)
        push = found[("push", first["id"])]["receipts"]
        assert push[0]["status"] == "fallback"
        assert push[0]["detail"].startswith("fallback from sms: twilio 21610")
        assert found[("sms", first["id"])]["receipts"][-1] == {
            **found[("sms", first["id"])]["receipts"][-1], "status": "fallback",
            "detail": "fell back to push",
        }
        email = found[("email", second["id"])]["receipts"]
        assert email[0]["detail"].startswith("fallback from push:")
        assert "HTTP 404" in email[0]["detail"]
        assert ("push", people[2]["id"]) not in found

    async def test_no_second_delivery_on_a_channel_already_used(self, rig: Rig) -> None:
        """A person already sent push for this alert gets no fallback push."""
        providers, running = await rig()
        people = await people_with(running, f"role = 'faculty' AND {REACHABLE}", 3)
        providers.twilio.opted_out.add(people[0]["phone"])
        alert_id = await send(running, people, ["sms", "push"])
        doc = await running.wait_state(alert_id)
        assert doc["channels"]["sms"]["failed"] == 1
        assert doc["channels"]["push"]["total"] == doc["channels"]["push"]["accepted"] == 3
        assert providers.sandbox.stats.snapshot()["push"] == {"received": 3, "unique": 3}

    async def test_fallback_keeps_the_persons_opt_out(self, rig: Rig) -> None:
        """A parent who opted out of push gets no push, even as a fallback; another one does."""
        providers, running = await rig()
        parents = await people_with(running, "role = 'parent' AND phone <> ''", 2)
        # Parents of the example campus have no push target: give them one.
        for parent, opt_out in zip(parents, ("push", ""), strict=True):
            await running.service.db.execute(
                "UPDATE people SET opt_out = ?, push = ? WHERE id = ?",
                (opt_out, f"json://127.0.0.1:{providers.sandbox.port}/push/{parent['id']}",
                 parent["id"]),
            )
            providers.twilio.opted_out.add(parent["phone"])
        alert_id = await send(running, parents, ["sms"])
        doc = await running.wait_state(alert_id)
        assert doc["channels"]["sms"]["failed"] == 2
        assert doc["channels"]["push"]["total"] == 1
        assert {m.recipient for m in providers.sandbox.stats.of("push")} == {parents[1]["id"]}

    async def test_undelivered_status_callback_falls_back(self, rig: Rig) -> None:
        """Twilio accepts, then calls back `undelivered` (30003): the person gets a push."""
        providers, running = await rig()
        people = await people_with(running, f"role = 'staff' AND {REACHABLE}", 2)
        providers.twilio.fate(people[0]["phone"], "undelivered", 30003)
        alert_id = await send(running, people, ["sms"])
        await running.wait_state(alert_id)
        async with asyncio.timeout(20):
            while True:
                found = await deliveries(running, alert_id)
                if found.get(("push", people[0]["id"]), {}).get("state") == "accepted":
                    break
                await asyncio.sleep(0.05)
        assert found[("sms", people[0]["id"])]["state"] == "failed"
        assert ("push", people[1]["id"]) not in found
        detail = found[("push", people[0]["id"])]["receipts"][0]["detail"]
        assert detail.startswith("fallback from sms: undelivered")


class TestOpenBreaker:
    """While SMS is down long enough, its waiting deliveries go to push instead."""

    async def test_outage_diverts_waiting_sms_to_push(self, rig: Rig) -> None:
        """Every SMS answered 500: the breaker opens and, past its wait, push takes over."""
        breaker = BreakerSettings(failures=2, cooldown_s=0.2, max_cooldown_s=0.4, probe_size=1,
                                  fallback_after_s=0.3)
        providers, running = await rig(flags=("--sms-error-rate", "1.0"),
                                       breakers={ChannelKind.SMS: breaker})
        people = await people_with(running, f"role = 'staff' AND {REACHABLE}", 20)
        alert_id = await send(running, people, ["sms"])
        doc = await running.wait_state(alert_id)
        assert doc["state"] == "done"
        assert doc["channels"]["sms"]["failed"] == 20
        assert doc["channels"]["push"]["accepted"] == doc["channels"]["push"]["total"] == 20
        assert running.service.engine.breakers[ChannelKind.SMS].opened >= 1
        found = await deliveries(running, alert_id)
        sms = found[("sms", people[0]["id"])]["receipts"]
        assert sms[-2]["detail"] == "not sent: sms.twilio unavailable (circuit open)"
        # Two whole batches before the breaker opened, then single-message probes only.
        assert providers.twilio.requests <= 2 * 20 + 10, providers.twilio.requests


async def settled_sms(running: Running, alert_id: str, people: list[dict[str, Any]]) -> None:
    """Wait (bounded) until each of these people's SMS is no longer queued, sending or only
    accepted: the provider's last word on it has been recorded."""
    async with asyncio.timeout(20):
        while True:
            found = await deliveries(running, alert_id)
            states = [found[("sms", p["id"])]["state"] for p in people]
            if all(s not in ("queued", "sending", "accepted") for s in states):
                return
            await asyncio.sleep(0.05)


class TestCarrierOptOut:
    """The carrier's word that a number opted out keeps every later SMS off it, whether the
    word comes with the send or in a status callback."""

    async def test_refused_send_and_status_callback_both_list_the_number(self, rig: Rig) -> None:
        """21610 on the send, and 21610 in an undelivered status callback, put the number on
        the opt-out list; another carrier failure does not. The next alert sends those two no
        SMS."""
        providers, running = await rig()
        people = await people_with(running, f"role = 'staff' AND {REACHABLE}", 4)
        refused, reported, undelivered, fine = (p["phone"] for p in people)
        providers.twilio.opted_out.add(refused)
        providers.twilio.fate(reported, "undelivered", 21610)
        providers.twilio.fate(undelivered, "undelivered", 30003)
        first = await send(running, people, ["sms"])
        await running.wait_state(first)
        await settled_sms(running, first, people)
        responses = running.service.responses
        assert await responses.opted_out([refused, reported, undelivered, fine]) == {
            refused, reported
        }
        sent_before = len(providers.twilio.sent)
        second = await send(running, people, ["sms"])
        await running.wait_state(second)
        found = await deliveries(running, second)
        states = [found[("sms", p["id"])]["state"] for p in people]
        assert states[:2] == ["suppressed", "suppressed"]
        assert "suppressed" not in states[2:]
        again = {m.to for m in providers.twilio.sent[sent_before:]}
        assert refused not in again and reported not in again
        assert {undelivered, fine} <= again
