"""Nothing private leaves the store: one alert over every channel, and everything Clarion wrote
or answered (logs, metrics, API responses, MQTT payloads) is scanned for the directory's phone
numbers, e-mail addresses, push targets and names, and for the tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from importlib import import_module
from pathlib import Path

import aiomqtt
import phonenumbers
import pytest
import pytest_asyncio

from channels.sandbox import cli as sandbox_cli
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from dispatcher.observability import configure_logging
from dispatcher.settings import Settings, config_dir
from tests.conftest import ALL_CHANNELS, DEVICE_CHANNELS, Stack
from tests.support import AUTH, TOKEN, own_config, point_push_at, start_service
from tests.test_every_channel import EVERY, settled


@pytest.fixture(
    params=[
        "info",
        "debug",
    ]
)
def logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Every log line of the run (Clarion's and its libraries'), at info and at debug level."""
    stream = io.StringIO()
    configure_logging(request.param)
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


@pytest_asyncio.fixture
async def stack(tmp_path: Path, small_people: Path) -> AsyncIterator[Stack]:
    """Every channel against the whole sandbox in this process, on the small campus."""
    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["sandbox", "--port", "0", "--smtp-port", "0",
                              "--mqtt-port", str(free_port()), "--sms-callback-delay", "0.01"])
    box = Sandbox(port=0, smtp_port=0)
    plugins = {name: await import_module(name).attach(box, args) for name in sandbox_cli.PLUGINS}
    await box.start()
    raw = own_config(tmp_path)
    raw["directory"]["people"] = str(small_people)
    raw["channels"]["email.smtp"].update({"port": box.smtp.port, "security": "none"})
    raw["channels"]["sms.twilio"].update({
        "api_base_url": box.url,
        "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 5000}],
    })
    for name in DEVICE_CHANNELS:
        raw["channels"][name].update({"port": args.mqtt_port, "ack_timeout_s": 5.0})
    raw["channels"] = {k: v for k, v in raw["channels"].items() if k in ALL_CHANNELS}
    raw["base_dir"] = config_dir()
    run = await start_service(Settings.model_validate(raw))
    await point_push_at(run.service.db, box.url)
    try:
        yield Stack(box, plugins, run)
    finally:
        await run.client.close()
        await box.stop()


@pytest_asyncio.fixture
async def mqtt_payloads(logs: io.StringIO, stack: Stack) -> AsyncIterator[list[bytes]]:
    """Every message published under clarion/v1/ while the test runs (topic and payload)."""
    seen: list[bytes] = []
    port = int(stack.run.service.settings.channels["siren.mqtt"]["port"])
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("clarion/v1/#", qos=1)
            ready.set()
            async for message in client.messages:
                payload = message.payload
                raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
                seen.append(message.topic.value.encode() + b" " + bytes(raw))

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    yield seen
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def phone_forms(e164: str) -> set[str]:
    """The ways a stored number could be written out."""
    number = phonenumbers.parse(e164)
    national = str(number.national_number)
    return {
        e164,
        e164.lstrip("+"),
        national,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        f"{national[:3]}-{national[3:6]}-{national[6:]}",
        e164.replace("+", "%2B"),
    }


class TestNoLeaks:
    """A full alert leaves no contact detail, name or token anywhere outside the store."""

    async def test_every_channel_run_is_clean(
        self, logs: io.StringIO, stack: Stack, mqtt_payloads: list[bytes]
    ) -> None:
        """Logs, metrics, every GET, and MQTT carry none of the directory's private data."""
        run = stack.run
        resp = await run.post_alert(
            {
                "kind": "emergency",
                "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
                "channels": EVERY,
            }
        )
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        doc = await settled(stack, alert_id)
        assert all(doc["channels"][k]["total"] > 0 for k in EVERY)

        answers: list[str] = []
        for path in (
            f"/v1/alerts/{alert_id}",
            f"/v1/alerts/{alert_id}/events",
            f"/v1/alerts/{alert_id}/cap",
            "/v1/feeds/cap",
            "/v1/devices",
            "/v1/approvals",
            "/metrics",
            "/healthz",
            "/v1/alerts/nobody@example.edu",
        ):
            answers.append(await (await run.client.get(path, headers=AUTH)).text())
        after = 0
        while True:
            page = await (await run.client.get(
                f"/v1/alerts/{alert_id}/deliveries?limit=1000&after={after}", headers=AUTH
            )).json()
            answers.append(str(page))
            if page["next"] is None:
                break
            after = page["next"]
        # Refusals and errors are written too: a bad token, a bad body.
        answers.append(await (await run.client.post(
            "/v1/alerts", json={"kind": "emergency"}, headers=AUTH)).text())
        answers.append(await (await run.client.get(
            "/v1/alerts/x", headers={"Authorization": "Bearer not-the-token"})).text())
        await asyncio.sleep(0.2)

        people = await run.service.db.fetchall(
            "SELECT first_name, last_name, email, phone, push FROM people"
        )
        secrets = {TOKEN, "sandbox-token"}
        needles: set[str] = set()
        names: set[str] = set()
        for p in people:
            if p["email"]:
                needles.add(p["email"].lower())
            if p["phone"]:
                needles |= phone_forms(p["phone"])
            if p["push"]:
                needles.add(p["push"])
            if p["first_name"] and p["last_name"]:
                names.add(f"{p['first_name']} {p['last_name']}")
            if len(p["last_name"]) >= 5:
                names.add(p["last_name"])
        name_pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(names))) + r")\b")

        sources = {
            "logs": logs.getvalue(),
            "responses": "\n".join(answers),
            "mqtt": b"\n".join(mqtt_payloads).decode("utf-8", "replace"),
        }
        assert sources["logs"] and sources["mqtt"] and "alert.accepted" in sources["logs"]
        found: list[tuple[str, str]] = []
        for where, text in sources.items():
            lowered = text.lower()
            found += [(where, n) for n in needles if n.lower() in lowered]
            found += [(where, s) for s in secrets if s in text]
            found += [(where, m.group()) for m in name_pattern.finditer(text)]
        assert not found, sorted(set(found))[:20]
