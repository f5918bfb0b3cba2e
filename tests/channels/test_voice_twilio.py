"""`voice.twilio` end to end: calls through the Calls API stand-in, TwiML, keys, call status."""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from defusedxml import ElementTree
from twilio.request_validator import RequestValidator

from channels.sandbox import twilio as twilio_plugin
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from channels.sandbox.stats import Stats
from channels.sandbox.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox
from channels.voice_twilio import (
    GATHER_PATH,
    STATUS_EVENTS,
    STATUS_PATH,
    TWIML_PATH,
    SpeechVoice,
    TwilioVoice,
    VoiceSettings,
    area_code,
    call_twiml,
    parse_call_status,
)
from dispatcher.alerting.rendering import render
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind, DeliveryState, Mode, Outcome, recipient_hash
from dispatcher.policy.settings import RenderingSettings
from tests.channels.conftest import RecordingSink
from tests.channels.contract.harness import Target, make_batch
from tests.conftest import SettingsFactory
from tests.support import AUTH, Running, start_service

TEXT = "Gas leak at North Hall. Evacuate the building now and stay clear of the area."
SPANISH = "Fuga de gas en North Hall. Evacúe el edificio ahora y aléjese de la zona."
WORDS = RenderingSettings()
PEOPLE = [
    # id, phone, language
    ("V001", "+16175550101", "en"),
    ("V002", "+16175550102", "es"),
    ("V003", "+12125550103", "en"),
    ("V004", "+12125550104", "en"),
    ("V005", "+13125550105", "en"),
]
HEADER = (
    "id,first_name,last_name,email,phone,push,role,building,campus,language,groups,channels,"
    "opt_out,quiet_hours,class_year,department"
)


def twiml(text: str) -> ElementTree.Element:
    """A TwiML document, parsed."""
    root: ElementTree.Element = ElementTree.fromstring(text)
    return root


def voice_message(mode: Mode = Mode.LIVE, language: str = "en", **fields: Any) -> Any:
    """The voice rendering of an alert."""
    request = AlertRequest.model_validate(
        {"kind": "emergency", "mode": mode, "text": TEXT, **fields}
    )
    return render(request, ChannelKind.VOICE, language, WORDS)


class TestTwiml:
    """The call's TwiML: spoken in the person's language, drill preamble, the keypad question."""

    def test_live_call_says_the_alert_then_asks_twice(self) -> None:
        """Two `<Gather numDigits=1>` holding the alert and the question, then goodbye."""
        message = voice_message()
        voice = SpeechVoice(language="en-US", voice="Polly.Joanna")
        root = twiml(call_twiml(message, voice, "https://x.example/g?d=1&a=A", goodbye="Bye."))
        gathers = root.findall("Gather")
        assert len(gathers) == 2
        for gather in gathers:
            assert gather.get("numDigits") == "1"
            assert gather.get("action") == "https://x.example/g?d=1&a=A"
            said = [s.text for s in gather.findall("Say")]
            assert said[0] is not None and said[0].startswith("Gas leak at North Hall")
            assert said[1] == "Press 1 if you are safe. Press 2 if you need help."
        for say in root.iter("Say"):
            assert (say.get("language"), say.get("voice")) == ("en-US", "Polly.Joanna")
        assert [c.tag for c in root][-2:] == ["Say", "Hangup"]
        assert "drill" not in ElementTree.tostring(root, encoding="unicode").lower()

    def test_drill_opens_and_closes_with_the_preamble(self) -> None:
        """A drill's speech starts and ends with "This is a drill"."""
        message = voice_message(Mode.DRILL)
        root = twiml(call_twiml(message, SpeechVoice(language="en-US"), "u", goodbye="Bye."))
        first = root.find("Gather/Say")
        assert first is not None and first.text is not None
        assert first.text.startswith("This is a drill.")
        assert first.text.endswith("This is only a drill.")
        assert first.get("voice") is None

    def test_spanish_speaks_spanish(self) -> None:
        """The person's language picks the words, the prompt and the `<Say>` language."""
        message = voice_message(
            language="es", translations={"es": {"text": SPANISH}}, mode=Mode.DRILL
        )
        settings = VoiceSettings.model_validate(_settings_raw("http://127.0.0.1:1"))
        root = twiml(call_twiml(message, settings.speech_voice("es"), "u", goodbye="Adiós."))
        says = list(root.iter("Say"))
        assert {s.get("language") for s in says} == {"es-US"}
        assert says[0].text is not None and says[0].text.startswith("Esto es un simulacro.")
        assert "Fuga de gas" in says[0].text
        assert says[1].text == "Marque 1 si está a salvo. Marque 2 si necesita ayuda."

    def test_speech_has_no_links_or_symbols(self) -> None:
        """Speech-friendly: no URL, abbreviations spelled out."""
        message = voice_message(text="Fire at 5 Main St. & Oak Ave. Leave now. See https://a.b/c")
        assert "http" not in message.speech and "&" not in message.speech
        assert "Main Street and Oak Avenue" in message.speech

    def test_unknown_language_keeps_its_code(self) -> None:
        """A language without a configured voice is spoken with its own code."""
        settings = VoiceSettings.model_validate(_settings_raw("http://127.0.0.1:1"))
        assert settings.speech_voice("de") == SpeechVoice(language="de")


class TestParts:
    """Area codes and call status mapping."""

    @pytest.mark.parametrize(
        ("number", "area"),
        [("+16175550101", "+1 617"), ("+12125550100", "+1 212"), ("+442079460000", "+44 20")],
    )
    def test_area_code(self, number: str, area: str) -> None:
        """NANP numbers by NPA, others by their national destination code."""
        assert area_code(number) == area

    @pytest.mark.parametrize(
        ("status", "outcome", "detail"),
        [
            ("ringing", Outcome.ACCEPTED, "ringing"),
            ("in-progress", Outcome.DELIVERED, "answered"),
            ("completed", Outcome.DELIVERED, "completed"),
            ("busy", Outcome.FAILED, "call busy"),
            ("no-answer", Outcome.FAILED, "call no-answer"),
            ("failed", Outcome.FAILED, "call failed"),
            ("canceled", Outcome.FAILED, "call canceled"),
        ],
    )
    def test_call_status(self, status: str, outcome: Outcome, detail: str) -> None:
        """Each CallStatus becomes an outcome with its reason."""
        event = parse_call_status({"CallSid": "CA1", "CallStatus": status}, {"d": "7", "a": "A"})
        assert event is not None
        assert (event.outcome, event.detail, event.delivery_id) == (outcome, detail, 7)

    def test_not_a_status(self) -> None:
        """No sid or an unknown status is no receipt."""
        assert parse_call_status({"CallStatus": "completed"}, {}) is None
        assert parse_call_status({"CallSid": "CA1", "CallStatus": "odd"}, {}) is None


# --- pacing, against the Calls API stand-in ---------------------------------------------------


def _settings_raw(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": DEFAULT_AUTH_TOKEN,
        "callers": [{"number": "+15555550101", "rate_per_second": 1000}],
        "api_base_url": url,
        "callback_base_url": url,
        "timeout_s": 5.0,
        **overrides,
    }


@pytest_asyncio.fixture
async def calls_api() -> AsyncIterator[tuple[TwilioSandbox, str]]:
    """The Calls API stand-in with a TwiML route that hangs up; nobody answers the status."""
    api = TwilioSandbox(stats=Stats(), callback_delay_s=0.001, call_answer_rate=0.0)
    app = web.Application()
    api.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield api, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await api.close()
    await runner.cleanup()


async def _place(api_url: str, numbers: list[str], **overrides: Any) -> list[Outcome]:
    channel = TwilioVoice(VoiceSettings.model_validate(_settings_raw(api_url, **overrides)))
    await channel.start(RecordingSink())
    try:
        targets = [Target(f"P{i}", n) for i, n in enumerate(numbers)]
        receipts = await channel.send(make_batch(ChannelKind.VOICE, targets))
    finally:
        await channel.close()
    return [r.outcome for r in receipts]


class TestReconcile:
    """A call whose status callbacks were lost is settled by asking its Call resource."""

    async def test_ended_calls_are_read_back_by_sid(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """Nobody answers (the stand-in's calls end no-answer): the resources say so, a call
        still ringing is left out, and an unknown SID is failed as unknown."""
        api, url = calls_api
        channel = TwilioVoice(VoiceSettings.model_validate(_settings_raw(url)))
        await channel.start(RecordingSink())
        try:
            targets = [Target(f"P{i}", f"+1617555{i:04d}") for i in range(3)]
            receipts = await channel.send(make_batch(ChannelKind.VOICE, targets))
            sids = [r.provider_ref for r in receipts]
            async with asyncio.timeout(10):
                while not all(c.done.is_set() for c in api.calls):
                    await asyncio.sleep(0.01)
            answers = await channel.reconcile([*sids, "CA" + "0" * 32])
        finally:
            await channel.close()
        assert [answers[s].outcome for s in sids] == [Outcome.FAILED] * 3
        assert all("no-answer" in answers[s].detail for s in sids)
        assert "unknown to the provider" in answers["CA" + "0" * 32].detail


class TestPacing:
    """Calls into one area code are spaced; other area codes do not wait behind them."""

    async def test_area_codes_interleave_and_each_is_spaced(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """Three calls each to 617 and 212, listed 617 first, at 5 calls/s per area code:
        the calls alternate between the area codes, and no area code gets two calls closer
        together than its pace allows."""
        api, url = calls_api
        boston = [f"+1617555{i:04d}" for i in range(3)]
        new_york = [f"+1212555{i:04d}" for i in range(3)]
        outcomes = await _place(url, boston + new_york, area_code_rate_per_second=5)
        assert outcomes == [Outcome.ACCEPTED] * 6
        areas = [area_code(c.to) for c in api.calls]
        assert Counter(areas) == {"+1 617": 3, "+1 212": 3}
        # However slow the machine, a call to 212 goes before 617's second one.
        assert set(areas[:2]) == {"+1 617", "+1 212"}
        for prefix in range(1, 7):
            seen = Counter(areas[:prefix])
            assert abs(seen["+1 617"] - seen["+1 212"]) <= 1, areas
        for area in ("+1 617", "+1 212"):
            times = [c.arrived for c in api.calls if area_code(c.to) == area]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= 0.8 / 5, (area, gaps)

    async def test_without_the_area_limit_one_area_code_gets_a_burst(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """The limit is what spaces them: off, six calls to one area code all go at once."""
        api, url = calls_api
        outcomes = await _place(url, [f"+1617555{i:04d}" for i in range(6)],
                                area_code_rate_per_second=0, concurrency=6)
        assert outcomes == [Outcome.ACCEPTED] * 6
        assert len(api.calls) == 6

    async def test_each_calling_number_keeps_its_own_pace(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """Two numbers at 5 calls/s each share the calls; neither goes faster than its pace."""
        api, url = calls_api
        callers = [
            {"number": "+15555550101", "rate_per_second": 5},
            {"number": "+15555550102", "rate_per_second": 5},
        ]
        numbers = [f"+1{300 + i}5550100" for i in range(6)]
        outcomes = await _place(url, numbers, callers=callers, area_code_rate_per_second=0)
        assert outcomes == [Outcome.ACCEPTED] * 6
        assert Counter(c.from_ for c in api.calls) == {"+15555550101": 3, "+15555550102": 3}
        for number in ("+15555550101", "+15555550102"):
            times = [c.arrived for c in api.calls if c.from_ == number]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= 0.8 / 5, (number, gaps)

    async def test_pace_longer_than_the_batch_may_wait_retries_the_rest(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """Calls the pace cannot place in time are retried later, not held past the limit."""
        api, url = calls_api
        numbers = [f"+1617555{i:04d}" for i in range(4)]
        outcomes = await _place(url, numbers, area_code_rate_per_second=1, timeout_s=0.4)
        assert outcomes[0] is Outcome.ACCEPTED
        assert Outcome.RETRY in outcomes
        assert len(api.calls) == outcomes.count(Outcome.ACCEPTED)


class TestErrors:
    """What the Calls API answers becomes the receipt, read from the response itself."""

    async def test_429_carries_its_retry_after(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """A 429's Retry-After rides on the receipt; a 21211 fails with its code."""
        api, url = calls_api
        api.retry_after_s = 9
        api.script("+16175550000", "429")
        api.script("+16175550001", "21211")
        channel = TwilioVoice(VoiceSettings.model_validate(_settings_raw(url)))
        await channel.start(RecordingSink())
        try:
            targets = [Target("P0", "+16175550000"), Target("P1", "+16175550001")]
            busy, invalid = await channel.send(make_batch(ChannelKind.VOICE, targets))
        finally:
            await channel.close()
        assert (busy.outcome, busy.retry_after_s) == (Outcome.RETRY, 9.0)
        assert busy.detail == "twilio 20429 (too many requests), HTTP 429"
        assert (invalid.outcome, invalid.retry_after_s) == (Outcome.FAILED, None)
        assert invalid.detail == "twilio 21211 (invalid To number), HTTP 400"
        assert api.calls == []

    async def test_call_form_as_twilio_documents_it(
        self, calls_api: tuple[TwilioSandbox, str]
    ) -> None:
        """The stand-in got the callback URLs and every status event as repeated fields."""
        api, url = calls_api
        assert await _place(url, ["+16175550002"]) == [Outcome.ACCEPTED]
        (call,) = api.calls
        assert call.events == STATUS_EVENTS
        assert call.url.startswith(f"{url}{TWIML_PATH}?d=")
        assert call.status_callback.startswith(f"{url}{STATUS_PATH}?d=")


# --- the service: TwiML, keys and status through the real routes -------------------------------


class VoiceStack:
    """The service with voice.twilio at the Calls API stand-in, calling back to the service."""

    def __init__(self, api: TwilioSandbox, run: Running, public: str) -> None:
        self.api = api
        self.run = run
        self.public = public

    async def alert(self, **fields: Any) -> str:
        """Post an alert on the voice channel; its id."""
        body = {"kind": "emergency", "text": TEXT, "channels": ["voice"], **fields}
        response = await self.run.post_alert(body)
        assert response.status == 202, await response.text()
        alert_id: str = (await response.json())["id"]
        return alert_id

    async def calls_done(self, alert_id: str, count: int) -> None:
        """Wait for `count` calls of the alert to end."""
        async with asyncio.timeout(20):
            while len([c for c in self.api.calls if c.alert_id == alert_id]) < count:
                await asyncio.sleep(0.02)
            for call in self.api.calls:
                await call.done.wait()

    async def deliveries(self, alert_id: str) -> dict[str, dict[str, Any]]:
        """The alert's voice deliveries by person id (the API shows them hashed)."""
        response = await self.run.client.get(
            f"/v1/alerts/{alert_id}/deliveries?channel=voice", headers=AUTH
        )
        assert response.status == 200
        by_hash = {d["recipient"]: d for d in (await response.json())["items"]}
        return {pid: by_hash[recipient_hash(pid)] for pid, _, _ in PEOPLE
                if recipient_hash(pid) in by_hash}

    async def receipts(self) -> int:
        """Receipts recorded so far."""
        found: int = await self.run.service.db.fetchval("SELECT COUNT(*) FROM receipts")
        return found

    async def signed_post(self, path: str, query: str, params: dict[str, str],
                          token: str = DEFAULT_AUTH_TOKEN) -> tuple[int, str]:
        """POST to a voice route as Twilio would, signed with `token`."""
        url = f"{self.public}{path}?{query}"
        signature = RequestValidator(token).compute_signature(url, params)
        response = await self.run.client.post(
            f"{path}?{query}", data=params, headers={"X-Twilio-Signature": signature}
        )
        return response.status, await response.text()


@pytest_asyncio.fixture
async def voice(make_settings: SettingsFactory, tmp_path: Path) -> AsyncIterator[VoiceStack]:
    """Five people with phones in three area codes (one speaking Spanish) and e-mail, which
    a call that fails for good falls back to."""
    people = tmp_path / "people.csv"
    rows = [
        f"{pid},Test,Person{pid[-1]},{pid.lower()}@campus.example,{phone},,staff,"
        f"science-center,main,{lang},,,,,,"
        for pid, phone, lang in PEOPLE
    ]
    people.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    box = Sandbox(port=0, smtp_port=0)
    api = TwilioSandbox(stats=box.stats, callback_delay_s=0.005)
    api.attach(box.app)
    await box.start()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    settings = make_settings(
        channels={"voice.twilio": {
            "api_base_url": box.url,
            "callers": [{"number": "+15555550101", "rate_per_second": 1000}],
            "area_code_rate_per_second": 0,
            "fallback": "email",
        }},
        service={"port": port, "public_url": public},
        directory={"people": str(people), "devices": str(tmp_path / "none.csv")},
    )
    run = await start_service(settings, port=port)
    try:
        yield VoiceStack(api, run, public)
    finally:
        await run.client.close()
        await api.close()
        await box.stop()


class TestCalls:
    """Calls through the service: TwiML per person, status as receipts, counted per alert."""

    async def test_drill_calls_speak_each_persons_language(self, voice: VoiceStack) -> None:
        """Every person is called once; each answered call's TwiML came from the service,
        signed, in their language with the drill preamble; answered calls are delivered."""
        alert_id = await voice.alert(
            mode="drill", translations={"es": {"text": SPANISH}}, language="en"
        )
        await voice.calls_done(alert_id, len(PEOPLE))
        calls = {c.to: c for c in voice.api.calls}
        assert set(calls) == {phone for _, phone, _ in PEOPLE}
        for _, phone, lang in PEOPLE:
            call = calls[phone]
            assert call.twiml_status == 200
            assert call.language == ("es-US" if lang == "es" else "en-US")
            opening = "Esto es un simulacro." if lang == "es" else "This is a drill."
            assert call.spoken[0].startswith(opening), call.spoken
            assert call.statuses and all(code == 204 for _, code in call.statuses)
        doc = await voice.run.wait_state(alert_id)
        async with asyncio.timeout(10):
            while doc["channels"]["voice"]["delivered"] < len(PEOPLE):
                await asyncio.sleep(0.05)
                doc = await (await voice.run.client.get(f"/v1/alerts/{alert_id}",
                                                        headers=AUTH)).json()
        assert doc["channels"]["voice"]["total"] == len(PEOPLE)

    async def test_unanswered_and_busy_calls_fail_with_the_reason(self, voice: VoiceStack) -> None:
        """busy and no-answer end the delivery failed, saying which; the rest are delivered."""
        voice.api.call_fate("+16175550101", "busy")
        voice.api.call_fate("+12125550103", "no-answer")
        alert_id = await voice.alert()
        await voice.calls_done(alert_id, len(PEOPLE))
        async with asyncio.timeout(10):
            while True:
                found = await voice.deliveries(alert_id)
                states = Counter(d["state"] for d in found.values())
                if states == {"delivered": 3, "failed": 2}:
                    break
                await asyncio.sleep(0.05)
        assert found["V001"]["detail"] == "call busy"
        assert found["V003"]["detail"] == "call no-answer"
        doc = await (await voice.run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
        assert doc["channels"]["voice"]["failed"] == 2
        assert doc["channels"]["voice"]["delivered"] == 3
        # The two it could not reach fall back to e-mail.
        assert doc["channels"]["email"]["total"] == 2

    async def test_status_only_moves_forward(self, voice: VoiceStack) -> None:
        """After `completed`, a late `ringing` or `no-answer` changes nothing."""
        alert_id = await voice.alert()
        await voice.calls_done(alert_id, len(PEOPLE))
        async with asyncio.timeout(10):
            while (await voice.deliveries(alert_id))["V004"]["state"] != "delivered":
                await asyncio.sleep(0.05)
        delivery = (await voice.deliveries(alert_id))["V004"]
        call = next(c for c in voice.api.calls if c.to == "+12125550104")
        query = f"d={delivery['id']}&a={alert_id}"
        for status in ("ringing", "no-answer", "busy"):
            code, _ = await voice.signed_post(
                STATUS_PATH, query, {"CallSid": call.sid, "CallStatus": status}
            )
            assert code == 204
        after = (await voice.deliveries(alert_id))["V004"]
        assert after["state"] == DeliveryState.DELIVERED.value
        assert after["detail"] == delivery["detail"]

    async def test_forged_callbacks_are_refused_and_nothing_recorded(
        self, voice: VoiceStack
    ) -> None:
        """Unsigned, wrongly signed, or signed for another URL: 403 on all three routes, no
        TwiML given, no receipt written, the delivery unchanged."""
        voice.api.call_fate("+16175550101", "busy")  # ends failed: a forged "completed" would show
        alert_id = await voice.alert()
        await voice.calls_done(alert_id, len(PEOPLE))
        async with asyncio.timeout(10):
            while (await voice.deliveries(alert_id))["V001"]["state"] != "failed":
                await asyncio.sleep(0.05)
        # Every receipt is in once the alert is done (the busy call's e-mail fallback too).
        await voice.run.wait_state(alert_id)
        delivery = (await voice.deliveries(alert_id))["V001"]
        before = await voice.receipts()
        query = f"d={delivery['id']}&a={alert_id}"
        params = {"CallSid": "CA" + "f" * 32, "CallStatus": "completed", "Digits": "2"}
        for path in (TWIML_PATH, GATHER_PATH, STATUS_PATH):
            code, body = await voice.signed_post(path, query, params, token="not-the-token")
            assert code == 403 and "<Say" not in body
            unsigned = await voice.run.client.post(f"{path}?{query}", data=params)
            assert unsigned.status == 403
            # Signed right, but for another delivery than the one asked about.
            url = f"{voice.public}{path}?d=999999&a={alert_id}"
            signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, params)
            moved = await voice.run.client.post(
                f"{path}?{query}", data=params, headers={"X-Twilio-Signature": signature}
            )
            assert moved.status == 403
        assert await voice.receipts() == before
        assert (await voice.deliveries(alert_id))["V001"]["state"] == "failed"

    async def test_twiml_of_an_unknown_delivery_hangs_up(self, voice: VoiceStack) -> None:
        """A signed request naming no voice delivery is told to hang up, and says nothing."""
        code, body = await voice.signed_post(TWIML_PATH, "d=999999&a=A-none", {"CallSid": "CA1"})
        assert code == 200
        root = twiml(body)
        assert [c.tag for c in root] == ["Hangup"]


async def ask(voice: VoiceStack, alert_id: str) -> None:
    """The alert asks "are you safe?" (in English and Spanish)."""
    service = voice.run.service
    now = service.clock.now_ms()
    await service.responses.ask(
        alert_id=alert_id, texts={"en": "Are you safe?", "es": "¿Está a salvo?"},
        options=["safe", "need_help"], escalate_after_s=0, max_rounds=0,
        asked_at_ms=now, closes_at_ms=now + 600_000,
    )


class TestKeys:
    """Keys pressed on a call are the person's answer: 1 safe, 2 need help."""

    async def test_keys_pressed_are_recorded_as_answers(self, voice: VoiceStack) -> None:
        """The full loop: the call asks, the stand-in's people press 2, 1 or nothing, and each
        key is that person's answer on voice.twilio; the caller is thanked."""
        voice.api.answering.clear()
        presses = {"+16175550101": "2", "+16175550102": "1", "+12125550103": "",
                   "+12125550104": "1", "+13125550105": "1"}
        for number, digits in presses.items():
            voice.api.call_fate(number, "completed", digits)
        alert_id = await voice.alert(translations={"es": {"text": SPANISH}})
        async with asyncio.timeout(20):
            while len(voice.api.calls) < len(PEOPLE):
                await asyncio.sleep(0.02)
        await ask(voice, alert_id)
        voice.api.answering.set()
        await voice.calls_done(alert_id, len(PEOPLE))
        store = voice.run.service.responses.store
        answers = {pid: await store.answer(alert_id, pid) for pid, _, _ in PEOPLE}
        assert {pid: (a.option, a.channel) if a else None for pid, a in answers.items()} == {
            "V001": ("need_help", "voice"),
            "V002": ("safe", "voice"),
            "V003": None,
            "V004": ("safe", "voice"),
            "V005": ("safe", "voice"),
        }
        calls = {c.to: c for c in voice.api.calls}
        assert calls["+16175550101"].reply == ["Thank you. Your answer has been recorded."]
        assert calls["+16175550102"].reply == ["Gracias. Su respuesta quedó registrada."]
        assert "¿Está a salvo?" in calls["+16175550102"].spoken
        assert "Are you safe?" in calls["+12125550104"].spoken
        tally = await voice.run.service.responses.tally(alert_id)
        assert (tally.total.safe, tally.total.need_help) == (3, 1)

    async def test_without_a_question_no_key_is_asked(self, voice: VoiceStack) -> None:
        """An alert that asks nothing is said twice, with no keypad question and no answer."""
        alert_id = await voice.alert()
        await voice.calls_done(alert_id, len(PEOPLE))
        for call in voice.api.calls:
            assert call.twiml_status == 200 and call.digits == ""
            assert len(call.spoken) == 3 and call.spoken[0] == call.spoken[1]
            assert not any("Press 1" in s for s in call.spoken)
        assert await voice.run.service.responses.store.answer(alert_id, "V001") is None

    async def test_another_key_asks_again_and_records_nothing(self, voice: VoiceStack) -> None:
        """A key that means nothing gets the question again; the signed 2 after it counts."""
        voice.api.answering.clear()
        alert_id = await voice.alert()
        async with asyncio.timeout(20):
            while len(voice.api.calls) < len(PEOPLE):
                await asyncio.sleep(0.02)
        await ask(voice, alert_id)
        delivery = (await voice.deliveries(alert_id))["V003"]
        query = f"d={delivery['id']}&a={alert_id}"
        code, body = await voice.signed_post(GATHER_PATH, query, {"CallSid": "CA1", "Digits": "9"})
        assert code == 200
        gather = twiml(body).find("Gather")
        assert gather is not None and gather.get("numDigits") == "1"
        assert [s.text for s in gather.findall("Say")] == [
            "Press 1 if you are safe. Press 2 if you need help."
        ]
        store = voice.run.service.responses.store
        assert await store.answer(alert_id, "V003") is None
        code, body = await voice.signed_post(GATHER_PATH, query, {"CallSid": "CA1", "Digits": "2"})
        assert code == 200 and "Thank you" in body
        found = await store.answer(alert_id, "V003")
        assert found is not None and found.option == "need_help"
        voice.api.answering.set()


async def test_sandbox_plugin_takes_the_voice_knobs() -> None:
    """`clarion sandbox` flags set who answers, presses a key and needs help."""
    parser = argparse.ArgumentParser()
    twilio_plugin.add_arguments(parser)
    box = Sandbox(port=0, smtp_port=0)
    args = parser.parse_args(["--voice-answer-rate", "0.5", "--voice-help-rate", "0.25",
                              "--voice-busy-rate", "0.1", "--voice-press-rate", "0.75"])
    api = await twilio_plugin.attach(box, args)
    try:
        assert (api.call_answer_rate, api.call_help_rate, api.call_busy_rate,
                api.call_press_rate) == (
            0.5, 0.25, 0.1, 0.75
        )
        calls = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Calls.json"
        assert box.endpoints["twilio_calls"] == calls
        assert "voice" in box.stats.timed_snapshot()
    finally:
        await api.close()


class TestCancel:
    """A cancelled alert stops its calls that still ring."""

    async def test_cancel_stops_ringing_calls(self, voice: VoiceStack) -> None:
        """Calls ringing when the alert is cancelled are canceled: nobody hears the alert, the
        deliveries end failed "call canceled", and no fallback is queued."""
        voice.api.answering.clear()
        alert_id = await voice.alert()
        async with asyncio.timeout(20):
            while len(voice.api.calls) < len(PEOPLE):
                await asyncio.sleep(0.02)
        response = await voice.run.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH,
                                               json={"reason": "sent in error"})
        assert response.status == 200
        voice.api.answering.set()
        await voice.calls_done(alert_id, len(PEOPLE))
        for call in voice.api.calls:
            assert call.canceled.is_set() and call.spoken == [] and call.twiml_status == 0
            assert ("canceled", 204) in call.statuses
        async with asyncio.timeout(10):
            while True:
                found = await voice.deliveries(alert_id)
                if all(d["state"] == "failed" for d in found.values()):
                    break
                await asyncio.sleep(0.05)
        assert {d["detail"] for d in found.values()} == {"call canceled"}
        total = await voice.run.service.db.fetchval(
            "SELECT COUNT(*) FROM deliveries WHERE alert_id = ?", (alert_id,)
        )
        assert total == len(PEOPLE)

    async def test_answered_call_of_a_cancelled_alert_says_nothing(
        self, voice: VoiceStack
    ) -> None:
        """An answered call whose alert is cancelled meanwhile gets TwiML that hangs up."""
        alert_id = await voice.alert()
        await voice.calls_done(alert_id, len(PEOPLE))
        delivery = (await voice.deliveries(alert_id))["V002"]
        response = await voice.run.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH)
        assert response.status == 200
        code, body = await voice.signed_post(
            TWIML_PATH, f"d={delivery['id']}&a={alert_id}", {"CallSid": "CA1"}
        )
        assert code == 200 and [c.tag for c in twiml(body)] == ["Hangup"]
