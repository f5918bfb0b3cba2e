"""Malformed and forged input: CAP documents, Twilio callbacks, MQTT acks, directory rows.

Each is rejected, logged and counted, and the service goes on working afterwards.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiomqtt
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from channels.devices import DeviceChannel
from channels.sandbox.broker import BrokerUnavailable, Mosquitto
from dispatcher.api.app import build_app
from dispatcher.domain import ChannelKind
from dispatcher.service import Service
from dispatcher.store.database import open_database
from tests.security.conftest import FIRE, SecureSettings, bearer, events
from tests.support import AUTH, Running, start_service

TWILIO_TOKEN = "sandbox-token"
CAP = "application/cap+xml"




async def counter(run: Running, source: str) -> float:
    """clarion_rejected_input_total for one source, from /metrics."""
    text = await (await run.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(f'clarion_rejected_input_total{{source="{source}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def still_serving(run: Running) -> None:
    """A good alert still goes through."""
    resp = await run.client.post("/v1/alerts", json=FIRE, headers=bearer("alice"))
    assert resp.status == 202, await resp.text()


# --- CAP -----------------------------------------------------------------------------------------

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">'
    '<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">'
    '<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">'
    '<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">'
    f']><alert xmlns="{CAP_NS}"><identifier>&lol7;</identifier></alert>'
)
MALFORMED_CAP = {
    "empty": b"",
    "not_xml": b"this is not xml",
    "truncated": f'<alert xmlns="{CAP_NS}"><identifier>x</ident'.encode(),
    "wrong_root": b'<feed xmlns="http://www.w3.org/2005/Atom"/>',
    "missing_fields": f'<alert xmlns="{CAP_NS}"><identifier>x</identifier></alert>'.encode(),
    "entity_bomb": BOMB.encode(),
    "entity_bomb_utf16": BOMB.replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    .encode("utf-16"),
    "external_entity": (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<alert xmlns="{CAP_NS}"><identifier>&x;</identifier></alert>'
    ).encode(),
    "deep": (f'<alert xmlns="{CAP_NS}">' + "<a>" * 5000 + "</a>" * 5000 + "</alert>").encode(),
    "binary": bytes(range(256)) * 4,
    "cancel": (
        f'<alert xmlns="{CAP_NS}"><identifier>x</identifier><sender>s@example.org</sender>'
        "<sent>2026-11-28T10:00:00-05:00</sent><status>Actual</status><msgType>Cancel</msgType>"
        "<scope>Public</scope><references>s,y,2026-11-28T09:00:00-05:00</references></alert>"
    ).encode(),
}


class TestMalformedCap:
    """CAP documents that are not alerts we can relay."""

    @pytest.mark.parametrize("name", sorted(MALFORMED_CAP))
    async def test_rejected_logged_counted(
        self, secure: Running, logs: io.StringIO, name: str
    ) -> None:
        """422 with a JSON error, an `http.rejected` log line, a count; no alert stored."""
        resp = await secure.client.post(
            "/v1/alerts", data=MALFORMED_CAP[name], headers={**AUTH, "Content-Type": CAP}
        )
        assert resp.status == 422, (name, resp.status, await resp.text())
        assert (await resp.json())["error"]
        assert await counter(secure, "cap") == 1
        rejected = events(logs, "http.rejected")
        assert rejected and rejected[-1]["route"] == "/v1/alerts" and rejected[-1]["status"] == 422
        assert await secure.service.db.fetchval("SELECT COUNT(*) FROM alerts") == 0
        await still_serving(secure)


# --- Twilio callbacks ----------------------------------------------------------------------------


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@pytest_asyncio.fixture
async def with_sms(secure_settings: SecureSettings) -> AsyncIterator[Running]:
    """The service with sms.twilio configured (its API never called here)."""
    run = await start_service(
        secure_settings(channels={"sms.twilio": {"api_base_url": "http://127.0.0.1:9"}})
    )
    yield run
    await run.client.close()


class TestForgedCallbacks:
    """Twilio status callbacks that Twilio did not sign record nothing."""

    @pytest.mark.parametrize("forgery", ["missing", "garbage", "other_token", "tampered"])
    async def test_forged(
        self, with_sms: Running, logs: io.StringIO, forgery: str
    ) -> None:
        """403, logged, counted under callback.twilio; no receipt stored."""
        base = with_sms.service.settings.service.base_url() + "/v1/callbacks/twilio"
        query = {"d": "1", "a": "A-1"}
        url = f"{base}?{urlencode(query)}"
        params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
        headers = {
            "missing": {},
            "garbage": {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
            "other_token": {"X-Twilio-Signature": twilio_signature(url, params, "someone-else")},
            "tampered": {"X-Twilio-Signature": twilio_signature(url, {**params,
                                                                        "MessageStatus": "sent"})},
        }[forgery]
        resp = await with_sms.client.post(
            f"/v1/callbacks/twilio?{urlencode(query)}", data=params, headers=headers
        )
        assert resp.status == 403
        assert "error" in await resp.json()
        assert await counter(with_sms, "callback.twilio") == 1
        assert events(logs, "callback.signature_invalid")
        assert events(logs, "http.refused")[-1]["route"] == "/v1/callbacks/twilio"
        assert await with_sms.service.db.fetchval("SELECT COUNT(*) FROM receipts") == 0
        await still_serving(with_sms)

    @pytest.mark.parametrize(
        "query",
        [
            {"d": "999999", "a": "A-1"},
            {"d": "x"},
            {},
            {"d": "²"},
            {"d": "9" * 40},
        ],
    )
    async def test_signed_but_unknown(self, with_sms: Running, query: dict[str, str]) -> None:
        """Signed callbacks naming no delivery are answered and recorded nowhere."""
        base = with_sms.service.settings.service.base_url() + "/v1/callbacks/twilio"
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        url = f"{base}?{qs}" if qs else base
        params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
        resp = await with_sms.client.post(
            f"/v1/callbacks/twilio{'?' + qs if qs else ''}", data=params,
            headers={"X-Twilio-Signature": twilio_signature(url, params)},
        )
        assert resp.status < 500, (query, resp.status)
        assert await with_sms.service.db.fetchval("SELECT COUNT(*) FROM receipts") == 0
        await still_serving(with_sms)


# --- MQTT acks -----------------------------------------------------------------------------------

MALFORMED_ACKS = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'{"state": "sounded"}',
    b'{"alert_id": 5, "state": "sounded"}',
    b'{"alert_id": "", "state": "sounded"}',
    b'{"alert_id": "x", "state": "exploded"}',
    b'{"alert_id": "' + b"x" * 300 + b'", "state": "received"}',
    b"\xff\xfe\x00garbage",
    b'{"alert_id": "x", "state": "received", "ts": ' + b"9" * 5000 + b"}",
]

DEEP_ACK = b"[" * 10_000 + b"]" * 10_000


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[Mosquitto]:
    """A mosquitto on a free port."""
    box = Mosquitto()
    try:
        await box.start()
    except BrokerUnavailable as exc:
        pytest.skip(f"needs mosquitto ({exc})")
    yield box
    await box.stop()


@pytest_asyncio.fixture
async def with_sirens(secure_settings: SecureSettings, broker: Mosquitto) -> AsyncIterator[Running]:
    """The service with sirens on the broker."""
    run = await start_service(
        secure_settings(channels={"siren.mqtt": {"port": broker.port, "ack_timeout_s": 30}})
    )
    channel = run.service.channels[ChannelKind.SIREN]
    assert isinstance(channel, DeviceChannel)
    assert await channel.bus.wait_connected(10)
    yield run
    await run.client.close()


ACK_TOPIC = "clarion/v1/device/siren/siren-north/ack"


def siren_bus(run: Running) -> Any:
    """The device bus the sirens use."""
    channel = run.service.channels[ChannelKind.SIREN]
    assert isinstance(channel, DeviceChannel)
    return channel.bus


async def until(predicate: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


class TestMalformedAcks:
    """Device acks that do not parse are dropped, logged and counted; the ack worker lives on."""

    async def _siren_alert(self, run: Running) -> str:
        resp = await run.client.post(
            "/v1/alerts", headers=AUTH, json={**FIRE, "channels": ["siren"], "zones": ["a"]}
        )
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["id"])

    async def _ack_and_wait(self, run: Running, client: aiomqtt.Client, alert_id: str) -> None:
        good = {"alert_id": alert_id, "state": "sounded", "ts": "2026-11-28T10:00:00Z"}
        await client.publish(ACK_TOPIC, json.dumps(good).encode(), qos=1)

        async def delivered() -> bool:
            doc = await (await run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)).json()
            return bool(doc["channels"]["siren"]["delivered"] == 1)

        await until(delivered)

    async def test_malformed_acks_then_a_good_one(
        self, with_sirens: Running, broker: Mosquitto, logs: io.StringIO
    ) -> None:
        """Every malformed ack is counted and logged (by size, never content); a good ack after
        them, and after one nested too deeply to parse, still marks the siren delivered."""
        bus = siren_bus(with_sirens)
        alert_id = await self._siren_alert(with_sirens)
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.publish(ACK_TOPIC, DEEP_ACK, qos=1)
            for payload in MALFORMED_ACKS:
                await client.publish(ACK_TOPIC, payload, qos=1)
            await client.publish("clarion/v1/device/toaster/t-1/ack", b"{}", qos=1)

            async def counted() -> bool:
                return bus.counters["malformed_acks"] >= len(MALFORMED_ACKS)

            await until(counted)
            await self._ack_and_wait(with_sirens, client, alert_id)
        assert bus.counters["malformed_topic"] >= 1
        logged = events(logs, "device.ack_malformed")
        assert len(logged) >= len(MALFORMED_ACKS)
        assert all(set(e) >= {"device_id", "size"} for e in logged)
        assert "garbage" not in logs.getvalue()
        await still_serving(with_sirens)

    async def test_deeply_nested_ack_is_counted(
        self, with_sirens: Running, broker: Mosquitto
    ) -> None:
        """An ack nested too deeply to parse is a malformed ack like the others."""
        bus = siren_bus(with_sirens)
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.publish(ACK_TOPIC, DEEP_ACK, qos=1)
            await client.publish(ACK_TOPIC, b"not json", qos=1)

            async def both() -> bool:
                return bus.counters["malformed_acks"] + bus.counters["message_errors"] >= 2

            await until(both)
        assert bus.counters["malformed_acks"] == 2


# --- directory rows ------------------------------------------------------------------------------

HEADER = ("id,first_name,last_name,email,phone,push,role,building,campus,language,groups,"
          "channels,opt_out,quiet_hours")
GOOD_ROWS = [
    "G1,Ada,Quill,ada.quill@example.edu,+12025550111,,student,north-hall,main,en,,,,",
    "G2,Bo,Reed,bo.reed@example.edu,,,staff,library,main,en,,,,",
]
BAD_ROWS = [
    ",No,Id,no.id@example.edu,,,student,north-hall,main,en,,,,",
    "B1,Bad,Mail,not-an-address,,,student,north-hall,main,en,,,,",
    "B2,Bad,Phone,,12,,student,north-hall,main,en,,,,",
    "B3,Bad,Role,b3@example.edu,,,Stu dent!,north-hall,main,en,,,,",
    "B4,Bad,Lang,b4@example.edu,,,student,north-hall,main,english please,,,,",
    "B5,Bad,Quiet,b5@example.edu,,,student,north-hall,main,en,,,,25:00-99:00",
    "B6,Too,Many,b6@example.edu,,,student,north-hall,main,en,,,,,extra,fields",
    "G1,Dup,Licate,dup@example.edu,,,student,north-hall,main,en,,,,",
    'B7,"Unclosed,quote@example.edu,,,student,north-hall,main,en,,,,',
]


class TestMalformedDirectoryRows:
    """A directory file with bad rows: those rows are rejected with reasons, the rest imported,
    and the service starts and sends."""

    async def test_service_starts_with_bad_rows(
        self, make_settings: Any, tmp_path: Path, logs: io.StringIO
    ) -> None:
        """The good people are imported, the bad ones are not, and the start logs how many."""
        await self._starts_and_sends(make_settings, tmp_path, logs, b"")

    async def test_service_starts_with_a_non_utf8_row(
        self, make_settings: Any, tmp_path: Path, logs: io.StringIO
    ) -> None:
        """A row that is not UTF-8 is rejected like any other bad row."""
        await self._starts_and_sends(
            make_settings, tmp_path, logs, b"B8,\xff\xfe,x,,,,student,,,en,,,,\n"
        )

    async def _starts_and_sends(
        self, make_settings: Any, tmp_path: Path, logs: io.StringIO, tail: bytes
    ) -> None:
        people = tmp_path / "people.csv"
        people.write_bytes("\n".join([HEADER, *GOOD_ROWS, *BAD_ROWS]).encode() + b"\n" + tail)
        settings = make_settings(directory={"people": str(people)})
        db = await open_database(settings.store.url)
        try:
            service = Service(settings, db)
        except BaseException:
            await db.close()
            raise
        run = Running(service, TestClient(TestServer(build_app(service), host="127.0.0.1")))
        await run.client.start_server()
        try:
            ids = {r["id"] for r in await run.service.db.fetchall("SELECT id FROM people")}
            assert ids == {"G1", "G2"}
            loaded = [e for e in events(logs, "directory.loaded") if e["kind"] == "people"]
            assert loaded and loaded[0]["added"] == 2
            assert loaded[0]["rejected"] >= len(BAD_ROWS) - 1
            assert "not-an-address" not in logs.getvalue()
            resp = await run.client.post("/v1/alerts", json=FIRE, headers=AUTH)
            assert resp.status == 202
            doc = await run.wait_state((await resp.json())["id"])
            assert doc["channels"]["email"]["accepted"] == 2
        finally:
            await run.client.close()

    async def test_every_bad_row_has_a_reason(self, tmp_path: Path, secure: Running) -> None:
        """The import report names each rejected row by line number."""
        from segments.directory import DirectoryImporter

        people = tmp_path / "more.csv"
        people.write_text("\n".join([HEADER, *GOOD_ROWS, *BAD_ROWS]) + "\n", encoding="utf-8")
        service = secure.service
        report = await DirectoryImporter(
            service.db, service.settings.directory, service.audience.campus
        ).import_people(people)
        rejected = {p.row for p in report.rejected}
        assert {4, 5, 6, 7, 8, 9, 10, 11} <= rejected, report.rejected
        assert all(p.reason for p in report.rejected)
