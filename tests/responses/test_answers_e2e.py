"""Hearing back end to end: SMS replies through the signed inbound webhook, STOP, the answer
page's single-use tokens, and escalation on a controllable clock."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from channels.sandbox.server import Sandbox
from dispatcher.api.answers import INBOUND_PATH
from dispatcher.api.app import build_app
from dispatcher.clock import Clock
from dispatcher.service import Service
from tests.conftest import SettingsFactory, Stack
from tests.support import AUTH, point_push_at

PHONE = "+12025550100"  # P000002 in the example campus
ASK = {"kind": "emergency", "mode": "drill", "audience": "id:P000002",
       "text": "Drill: shelter in place in the nearest building now. Stay away from windows.",
       "ask": {"question": "Are you safe?"}}


SANDBOX_TOKEN = "sandbox-token"  # the sandbox's published auth token


def signed(service: Service, params: dict[str, str], token: str = SANDBOX_TOKEN) -> str:
    url = service.settings.service.base_url() + INBOUND_PATH
    return str(RequestValidator(token).compute_signature(url, params))


async def inbound(client: TestClient, service: Service, body: str, *,
                  forged: bool = False) -> Any:
    params = {"From": PHONE, "To": "22395", "Body": body, "MessageSid": "SM" + "1" * 32,
              "AccountSid": "AC" + "0" * 32}
    signature = signed(service, params, "not-the-token" if forged else SANDBOX_TOKEN)
    return await client.post(INBOUND_PATH, data=params,
                             headers={"X-Twilio-Signature": signature})


async def sent_alert(client: TestClient, body: dict[str, Any]) -> str:
    resp = await client.post("/v1/alerts", json=body, headers=AUTH)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def sms_rows(service: Service, alert_id: str) -> list[Any]:
    async with asyncio.timeout(20):
        while True:
            rows = await service.db.fetchall(
                "SELECT state, detail FROM deliveries WHERE alert_id = ? AND channel = 'sms'",
                (alert_id,),
            )
            if rows and all(r["state"] not in ("queued", "sending") for r in rows):
                return rows
            await asyncio.sleep(0.05)


class TestSmsReplies:
    """Replies through Twilio's signed inbound webhook."""

    async def test_reply_recorded_and_forgery_refused(self, stack: Stack) -> None:
        """A signed "2" marks the person need-help; a forged one is 403 and records nothing."""
        client, service = stack.run.client, stack.run.service
        alert_id = await sent_alert(client, ASK)
        await sms_rows(service, alert_id)
        texts = [m.body for m in stack.plugins["channels.sandbox.twilio"].sent if m.to == PHONE]
        assert any("Reply 1 SAFE, 2 HELP" in t and "Are you safe?" in t for t in texts)
        forged = await inbound(client, service, "1", forged=True)
        assert forged.status == 403
        assert await service.responses.store.answer_count(alert_id) == 0
        resp = await inbound(client, service, "2")
        assert resp.status == 200
        assert "NEED HELP" in await resp.text()
        doc = await (await client.get(f"/v1/alerts/{alert_id}/responses", headers=AUTH)).json()
        assert (doc["need_help"], doc["safe"], doc["no_answer"]) == (1, 0, 0)
        assert [p["person_id"] for p in doc["need_help_people"]] == ["P000002"]
        audited = await service.db.fetchval(
            "SELECT COUNT(*) FROM audit WHERE action = 'responses.need_help_read'"
        )
        assert audited == 1
        await inbound(client, service, "si")
        doc = await (await client.get(f"/v1/alerts/{alert_id}/responses", headers=AUTH)).json()
        assert (doc["need_help"], doc["safe"]) == (0, 1)
        history = await service.responses.store.history(alert_id, "P000002")
        assert [h.option for h in history] == ["need_help", "safe"]
        await stack.run.wait_state(alert_id)
        events = await client.get(f"/v1/alerts/{alert_id}/events", headers=AUTH)
        first = (await events.content.readuntil(b"\n\n")).decode()
        data = json.loads(first.split("data: ", 1)[1])
        counts = {k: data["responses"][k] for k in ("safe", "need_help", "no_answer", "total")}
        assert counts == {"safe": 1, "need_help": 0, "no_answer": 0, "total": 1}
        assert sum(c["safe"] for c in data["responses"]["by_building"].values()) == 1
        assert data["responses"]["by_zone"]
        # Delivery is over (the final state event), and the stream goes on with the answers.
        final = (await events.content.readuntil(b"\n\n")).decode()
        assert final.startswith("event: done"), final
        await inbound(client, service, "2")
        async with asyncio.timeout(10):
            later = (await events.content.readuntil(b"\n\n")).decode()
        events.close()
        assert later.startswith("event: responses"), later
        assert json.loads(later.split("data: ", 1)[1])["need_help"] == 1
        record = await (await client.get(f"/v1/alerts/{alert_id}/record", headers=AUTH)).json()
        answered = record["responses"]
        assert (answered["need_help"], answered["total"]) == (1, 1)
        assert answered["time_to_90_percent_s"] is not None
        # The yearly report carries them too, in each of its forms.
        year = datetime.now(UTC).year
        rows = list(csv.DictReader(io.StringIO(await (await client.get(
            f"/v1/reports/clery?year={year}&format=csv", headers=AUTH)).text())))
        row = next(r for r in rows if r["alert_id"] == alert_id)
        assert (row["answers_safe"], row["answers_need_help"], row["answers_none"]) == (
            "0", "1", "0")
        assert float(row["answered_90_percent_s"]) >= 0
        page = await (await client.get(f"/v1/reports/clery?year={year}&format=html",
                                       headers=AUTH)).text()
        assert "0 safe · 1 need help · 0 no answer" in page

    async def test_stop_suppresses_later_sms(self, stack: Stack) -> None:
        """After STOP, the next alert sends no SMS to that number; START lifts it."""
        client, service = stack.run.client, stack.run.service
        resp = await inbound(client, service, "STOP")
        assert resp.status == 200 and "<Message>" not in await resp.text()
        alert_id = await sent_alert(client, ASK)
        rows = await sms_rows(service, alert_id)
        assert [(r["state"], r["detail"]) for r in rows] == [("suppressed", "sms_opt_out")]
        assert not [m for m in stack.plugins["channels.sandbox.twilio"].sent if m.to == PHONE]
        await inbound(client, service, "START")
        again = await sent_alert(client, {**ASK, "text": ASK["text"] + " Update."})
        assert [r["state"] for r in await sms_rows(service, again)] != ["suppressed"]


class TestSandboxAnswers:
    """The sandbox's simulated people answer through the signed inbound webhook."""

    async def test_simulated_reply_arrives_in_the_tally(self, stack: Stack) -> None:
        """With answer rate 1 and no help share, the one person asked answers safe."""
        client = stack.run.client
        twilio = stack.plugins["channels.sandbox.twilio"]
        twilio.answer_rate, twilio.answer_delay_s, twilio.need_help_rate = 1.0, 0.1, 0.0
        alert_id = await sent_alert(client, ASK)
        async with asyncio.timeout(20):
            while True:
                doc = await (await client.get(f"/v1/alerts/{alert_id}/responses",
                                              headers=AUTH)).json()
                if doc["safe"] == 1:
                    break
                await asyncio.sleep(0.05)
        assert [(to, status) for to, _, status in twilio.answers_sent] == [(PHONE, 200)]

    async def test_simulated_push_tap_arrives_in_the_tally(self, stack: Stack) -> None:
        """A person with push taps the answer link in the notification: page, then button."""
        client = stack.run.client
        push = stack.plugins["channels.sandbox.push"]
        push.click_rate, push.click_delay_s, push.need_help_rate = 1.0, 0.1, 1.0
        person = await stack.run.service.db.fetchval(
            "SELECT id FROM people WHERE push IS NOT NULL AND push != '' ORDER BY id LIMIT 1")
        assert person
        alert_id = await sent_alert(client, {**ASK, "audience": f"id:{person}",
                                             "channels": ["push"]})
        async with asyncio.timeout(20):
            while True:
                doc = await (await client.get(f"/v1/alerts/{alert_id}/responses",
                                              headers=AUTH)).json()
                if doc["need_help"] == 1:
                    break
                await asyncio.sleep(0.05)
        assert push.clicks == [("need_help", 200)]


class SteppedClock(Clock):
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@pytest_asyncio.fixture
async def stepped(
    make_settings: SettingsFactory, sandbox: Sandbox
) -> AsyncIterator[tuple[TestClient, Service, SteppedClock]]:
    """The e-mail-and-push service on a clock the test moves, pushing to its own sandbox."""
    clock = SteppedClock()
    service = await Service.open(make_settings(channels={"email.smtp": {}, "push.apprise": {}}),
                                 clock=clock)
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    await point_push_at(service.db, sandbox.url)
    yield client, service, clock
    await client.close()


async def link_of(service: Service, alert_id: str, person: str) -> str:
    expires = await service.db.fetchval("SELECT expires_at FROM alerts WHERE id = ?", (alert_id,))
    url = await service.responses.link_for("", alert_id, person, int(expires))
    return url


class TestAnswerPage:
    """The per-person answer link: one tap, once, before it expires, for its own alert."""

    async def test_one_tap_then_reuse_other_alert_and_expiry_refused(
        self, stepped: tuple[TestClient, Service, SteppedClock]
    ) -> None:
        """GET shows buttons; POST records; reuse 409; another alert's or expired link 403."""
        client, service, clock = stepped
        body = {**ASK, "audience": "id:P000001", "kind": "advisory",
                "channels": ["email"]}
        first = await sent_alert(client, body)
        second = await sent_alert(client, {**body, "text": body["text"] + " Update."})
        link = await link_of(service, first, "P000001")
        page = await client.get(link)
        assert page.status == 200
        html = await page.text()
        assert "Are you safe?" in html and 'value="need_help"' in html
        assert await service.responses.store.answer_count(first) == 0  # opening uses nothing
        other = link.replace(f"/{first}/", f"/{second}/")
        assert (await client.post(other, data={"option": "safe"})).status == 403
        tap = await client.post(link, data={"option": "need_help"})
        assert tap.status == 200
        counted = await service.responses.store.answer(first, "P000001")
        assert counted is not None and (counted.option, counted.channel) == ("need_help", "link")
        assert (await client.post(link, data={"option": "safe"})).status == 409
        late = await link_of(service, second, "P000001")
        clock.offset_ms = 2 * 86400 * 1000
        assert (await client.post(late, data={"option": "safe"})).status == 403
        assert await service.responses.store.answer(second, "P000001") is None

    async def test_email_carries_the_persons_link(
        self, stepped: tuple[TestClient, Service, SteppedClock], sandbox: Any
    ) -> None:
        """The e-mail sent has this person's own answer link in it."""
        client, service, _ = stepped
        alert_id = await sent_alert(client, {**ASK, "audience": "id:P000001",
                                             "channels": ["email"]})
        want = await link_of(service, alert_id, "P000001")
        async with asyncio.timeout(20):
            while True:
                mails = sandbox.stats.of("email", alert_id)
                if mails:
                    break
                await asyncio.sleep(0.05)
        found = re.findall(r"/public/answer/\S+", mails[0].text)
        assert want in [f.rstrip(".") for f in found]


class TestEscalation:
    """No answer after escalate_after_s: asked again on the next channel; an answer stops it."""

    async def test_next_channel_after_delay_and_answer_stops(
        self, stepped: tuple[TestClient, Service, SteppedClock]
    ) -> None:
        """An advisory on e-mail only escalates to push for the silent; not for one who answered."""
        client, service, clock = stepped
        body = {**ASK, "kind": "advisory", "audience": "id:P000004 or id:P000005",
                "channels": ["email"], "ask": {"question": "Are you safe?",
                                               "escalate_after_s": 60}}
        alert_id = await sent_alert(client, body)
        async with asyncio.timeout(20):
            while await service.db.fetchval(
                "SELECT resolved_at FROM alerts WHERE id = ?", (alert_id,)
            ) is None:
                await asyncio.sleep(0.02)
        await service.engine.sweep()
        rows = await service.db.fetchall(
            "SELECT recipient, channel FROM deliveries WHERE alert_id = ? ORDER BY recipient",
            (alert_id,),
        )
        assert {r["channel"] for r in rows} == {"email"}
        await service.responses.record_answer(alert_id=alert_id, person_id="P000004",
                                              option="safe", channel="email")
        await service.engine.sweep()  # not due yet
        assert await service.db.fetchval(
            "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND channel != 'email'",
            (alert_id,)) == 0
        clock.offset_ms = 61_000
        await service.engine.sweep()
        rows = await service.db.fetchall(
            "SELECT recipient, channel FROM deliveries WHERE alert_id = ? AND channel != 'email'",
            (alert_id,),
        )
        assert [(r["recipient"], r["channel"]) for r in rows] == [("P000005", "push")]
        tally = await service.responses.tally(alert_id)
        assert (tally.total.safe, tally.total.no_answer, tally.escalation_rounds) == (1, 1, 1)
