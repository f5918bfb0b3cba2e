"""`webhook.signed` against a local campus system that checks every signature, as the
documented scheme says, before it answers."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import ValidationError

from channels.breaker import BreakerSettings, BreakerState, CircuitBreaker
from channels.sandbox.broker import free_port
from channels.webhook_signed import SignedWebhooks, WebhookSettings, signature, verify
from dispatcher.domain import AlertKind, ChannelKind, Mode, Outcome, Receipt
from dispatcher.store.database import open_database
from dispatcher.store.webhook_log import WebhookAttempt, WebhookLog
from dispatcher.webhooks_cli import cmd_list, cmd_log
from tests.channels.conftest import RecordingSink
from tests.channels.contract.harness import SilentServer, Target, make_batch, serve
from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]

SECRET = "whsec-campus-cad-0123456789abcdef"
OTHER_SECRET = "whsec-signage-fedcba9876543210"
CAP = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>\n'
)


@dataclass
class Received:
    """One post as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    valid: bool


@dataclass
class Receiver:
    """A campus system: checks the signature (its own code, from the docs), then answers as
    scripted, or 200."""

    secrets: dict[str, str]
    received: list[Received] = field(default_factory=list)
    script: dict[str, deque[int]] = field(default_factory=dict)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        name = request.match_info["name"]
        valid = _check(self.secrets[name], request.headers.get("Clarion-Signature", ""), body)
        self.received.append(Received(name, dict(request.headers), body, valid))
        if not valid:
            return web.Response(status=401, text="bad signature")
        queued = self.script.get(name)
        if queued:
            status = queued.popleft()
            return web.Response(status=status, headers={"Retry-After": "1"})
        return web.Response(status=204)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"


def _check(secret: str, header: str, body: bytes) -> bool:
    """The receiver's check, written from the documented scheme only."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or abs(time.time() - int(parts["t"])) > 300:
        return False
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The receiver on a free port."""
    got = Receiver({"cad": SECRET, "signage": OTHER_SECRET})
    app = web.Application()
    app.router.add_post("/hooks/{name}", got.handle)
    runner, got.port = await serve(app)
    yield got
    await runner.cleanup()


class AttemptsKept:
    """Where the channel writes its tries in these tests (the store's own is tested below)."""

    def __init__(self) -> None:
        self.kept: list[WebhookAttempt] = []

    async def record(self, attempts: Sequence[WebhookAttempt], /) -> None:
        self.kept.extend(attempts)


def subscribers(receiver: Receiver, **over: Any) -> list[dict[str, Any]]:
    return [
        {"name": "cad", "url": receiver.url("cad"), "secret": SECRET, "format": "json",
         "kinds": ["emergency", "all_clear"], **over},
        {"name": "signage", "url": receiver.url("signage"), "secret": OTHER_SECRET,
         "format": "cap"},
    ]


@pytest_asyncio.fixture
async def attempts() -> AttemptsKept:
    return AttemptsKept()


@pytest_asyncio.fixture
async def channel(receiver: Receiver, attempts: AttemptsKept) -> AsyncIterator[SignedWebhooks]:
    """The channel with both subscribers, its log and a CAP source."""

    async def cap(alert_id: str) -> bytes | None:
        return CAP

    made = SignedWebhooks(WebhookSettings.model_validate(
        {"timeout_s": 1.0, "subscribers": subscribers(receiver)}
    ))
    made.attach(log=attempts, cap=cap)
    await made.start(RecordingSink())
    yield made
    await made.close()


def to(*names: str) -> list[Target]:
    return [Target(n, n) for n in names]


class TestSettings:
    """Subscribers are checked when the config is read."""

    def test_short_secret_refused(self, receiver: Receiver) -> None:
        """A secret shorter than 16 characters is refused."""
        with pytest.raises(ValidationError, match="at least 16"):
            WebhookSettings.model_validate({"subscribers": subscribers(receiver, secret="short")})

    def test_secret_from_file(self, receiver: Receiver, tmp_path: Path) -> None:
        """The signing secret may come from a file, like every credential."""
        (tmp_path / "cad.secret").write_text(SECRET + "\n")
        raw = subscribers(receiver)[0]
        del raw["secret"]
        made = WebhookSettings.model_validate(
            {"subscribers": [{**raw, "secret_file": str(tmp_path / "cad.secret")}]}
        )
        assert made.subscribers[0].secret.get_secret_value() == SECRET

    def test_destinations_by_kind(self, receiver: Receiver) -> None:
        """cad takes emergencies and all clears; signage every kind."""
        made = SignedWebhooks(WebhookSettings.model_validate(
            {"subscribers": subscribers(receiver)}
        ))
        assert made.destinations(AlertKind.EMERGENCY) == ["cad", "signage"]
        assert made.destinations(AlertKind.ADVISORY) == ["signage"]

    def test_described_masked(self, receiver: Receiver) -> None:
        """Neither a URL nor a secret shows in the settings as described."""
        shown = repr(SignedWebhooks(WebhookSettings.model_validate(
            {"subscribers": subscribers(receiver)}
        )).describe())
        assert SECRET not in shown and "/hooks/cad" not in shown


class TestSignature:
    """The scheme: HMAC-SHA256 over `<t>.<body>`, a fresh timestamp, any one valid v1."""

    def test_round_trip(self) -> None:
        """A signature made now verifies; a changed body or another secret does not."""
        now = int(time.time())
        header = signature(SECRET, now, b'{"a":1}')
        assert verify(SECRET, header, b'{"a":1}', now=now)
        assert not verify(SECRET, header, b'{"a":2}', now=now)
        assert not verify(OTHER_SECRET, header, b'{"a":1}', now=now)

    def test_old_signature_refused(self) -> None:
        """A signature older than the tolerance is refused: a replay later fails."""
        then = int(time.time()) - 600
        header = signature(SECRET, then, b"x")
        assert not verify(SECRET, header, b"x", now=time.time())
        assert verify(SECRET, header, b"x", now=time.time(), tolerance_s=900)

    def test_rotation(self) -> None:
        """During a change of secret, one valid v1 among several is enough."""
        now = int(time.time())
        old = signature(OTHER_SECRET, now, b"x").rpartition("v1=")[2]
        header = f"{signature(SECRET, now, b'x')},v1={old}"
        assert verify(OTHER_SECRET, header, b"x", now=now)
        assert verify(SECRET, header, b"x", now=now)


    def test_documented_example(self) -> None:
        """The verification example in docs/webhooks.md accepts Clarion's signatures and
        refuses a changed body, another secret and an old timestamp."""
        doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
        found = re.search(r"```python\n(.*?)```", doc, re.S)
        assert found is not None
        scope: dict[str, Any] = {}
        # The documented code itself, as a reader would paste it.
        exec(compile(found.group(1), "docs/webhooks.md", "exec"), scope)  # noqa: S102
        check = scope["verify_clarion"]
        now = int(time.time())
        body = b'{"alert_id": "A-1", "text": "Evacuate North Hall now."}'
        header = signature(SECRET, now, body)
        assert check(SECRET, header, body)
        assert not check(SECRET, header, body + b" ")
        assert not check(OTHER_SECRET, header, body)
        assert not check(SECRET, signature(SECRET, now - 600, body), body)


class TestPosts:
    """What a subscriber receives, and the receipt and log entry of each post."""

    async def test_json_signed(
        self, channel: SignedWebhooks, receiver: Receiver, attempts: AttemptsKept
    ) -> None:
        """The JSON body carries the alert; the receiver's own check passes."""
        batch = make_batch(ChannelKind.WEBHOOK, to("cad"), alert_id="A-7")
        (receipt,) = await channel.send(batch)
        assert receipt.outcome is Outcome.ACCEPTED and receipt.detail == "HTTP 204"
        (got,) = receiver.received
        assert got.valid
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["Clarion-Alert"] == "A-7"
        assert got.headers["Clarion-Delivery"] == str(batch.deliveries[0].id)
        assert got.headers["Clarion-Attempt"] == "1"
        body = json.loads(got.body)
        assert body["alert_id"] == "A-7" and body["kind"] == "emergency"
        assert body["drill"] is False and body["text"].startswith("Gas leak at North Hall")
        assert body["zones"] == ["a", "b"]
        (kept,) = attempts.kept
        assert (kept.subscriber, kept.alert_id, kept.status, kept.outcome) == (
            "cad", "A-7", 204, "accepted"
        )

    async def test_cap_signed(self, channel: SignedWebhooks, receiver: Receiver) -> None:
        """A CAP subscriber gets the alert's CAP document, signed with its own secret."""
        (receipt,) = await channel.send(make_batch(ChannelKind.WEBHOOK, to("signage")))
        assert receipt.outcome is Outcome.ACCEPTED
        (got,) = receiver.received
        assert got.valid and got.body == CAP
        assert got.headers["Content-Type"] == "application/cap+xml"

    async def test_drill_marked(self, channel: SignedWebhooks, receiver: Receiver) -> None:
        """A drill's body says so twice: the flag and the text."""
        await channel.send(make_batch(ChannelKind.WEBHOOK, to("cad"), mode=Mode.DRILL))
        body = json.loads(receiver.received[0].body)
        assert body["drill"] is True and body["mode"] == "drill"
        assert body["text"].startswith("[DRILL] THIS IS A TEST")

    async def test_server_error_retried(
        self, channel: SignedWebhooks, receiver: Receiver, attempts: AttemptsKept
    ) -> None:
        """500 is a retry; its Retry-After is noted, not handed to the engine, which would
        hold every subscriber for it. The log keeps the status."""
        receiver.script["cad"] = deque([500])
        (receipt,) = await channel.send(make_batch(ChannelKind.WEBHOOK, to("cad")))
        assert receipt.outcome is Outcome.RETRY
        assert receipt.detail == "HTTP 500 (Retry-After 1 s)"
        assert receipt.retry_after_s is None
        assert [(a.status, a.outcome) for a in attempts.kept] == [(500, "retry")]

    def test_breaker_off_by_default(self, channel: SignedWebhooks) -> None:
        """One subscriber that is down never opens the channel's breaker for the others,
        where a person channel's default breaker would open."""
        ours = CircuitBreaker(channel.name, channel.settings.breaker)
        usual = CircuitBreaker("usual", BreakerSettings())
        for _ in range(300):
            down = [Receipt(1, Outcome.RETRY, "HTTP 503")]
            ours.record(down)
            usual.record(down)
        assert ours.opened == 0 and ours.state is BreakerState.CLOSED
        assert usual.opened == 1

    async def test_refused_fails(self, channel: SignedWebhooks, receiver: Receiver) -> None:
        """A 4xx other than 408/425/429 fails the delivery, naming the status."""
        receiver.script["cad"] = deque([410])
        (receipt,) = await channel.send(make_batch(ChannelKind.WEBHOOK, to("cad")))
        assert receipt.outcome is Outcome.FAILED and receipt.detail == "HTTP 410"

    async def test_one_failure_is_one_receipt(
        self, channel: SignedWebhooks, receiver: Receiver
    ) -> None:
        """cad's 503 does not touch signage's delivery."""
        receiver.script["cad"] = deque([503])
        receipts = await channel.send(make_batch(ChannelKind.WEBHOOK, to("cad", "signage")))
        assert [r.outcome for r in receipts] == [Outcome.RETRY, Outcome.ACCEPTED]

    async def test_nobody_listening(self, receiver: Receiver, attempts: AttemptsKept) -> None:
        """A refused connection is a retry, and neither the URL nor the secret shows."""
        dead = f"http://127.0.0.1:{free_port()}/hooks/cad"
        made = SignedWebhooks(WebhookSettings.model_validate(
            {"timeout_s": 1.0, "subscribers": subscribers(receiver, url=dead)}
        ))
        made.attach(log=attempts)
        try:
            (receipt,) = await made.send(make_batch(ChannelKind.WEBHOOK, to("cad")))
        finally:
            await made.close()
        assert receipt.outcome is Outcome.RETRY
        assert "127.0.0.1" not in receipt.detail and SECRET not in receipt.detail
        assert attempts.kept[0].status is None

    async def test_hangs(self, receiver: Receiver) -> None:
        """A system that never answers is a retry once the timeout passes."""
        silent = SilentServer()
        await silent.start()
        made = SignedWebhooks(WebhookSettings.model_validate({
            "timeout_s": 0.3,
            "subscribers": subscribers(receiver, url=f"http://127.0.0.1:{silent.port}/x"),
        }))
        try:
            (receipt,) = await made.send(make_batch(ChannelKind.WEBHOOK, to("cad")))
        finally:
            await made.close()
            await silent.stop()
        assert receipt.outcome is Outcome.RETRY and receipt.detail == "timed out"

    async def test_unknown_subscriber(self, channel: SignedWebhooks, receiver: Receiver) -> None:
        """A delivery for a subscriber no longer configured fails and posts nothing."""
        (receipt,) = await channel.send(make_batch(ChannelKind.WEBHOOK, to("gone")))
        assert receipt.outcome is Outcome.FAILED
        assert receiver.received == []


class TestTakeDown:
    """A cancelled alert is withdrawn from every subscriber of its kind, once each."""

    async def test_cancel_posted(
        self, channel: SignedWebhooks, receiver: Receiver, attempts: AttemptsKept
    ) -> None:
        """cad gets the JSON cancel event, signage the CAP Cancel; both signed and logged."""
        batch = make_batch(ChannelKind.WEBHOOK, to("cad"), alert_id="A-9")
        await channel.withdraw(batch.alert)
        by_name = {r.path: r for r in receiver.received}
        assert set(by_name) == {"cad", "signage"}
        assert all(r.valid for r in receiver.received)
        cad = by_name["cad"]
        assert cad.headers["Clarion-Event"] == "cancel" and "Clarion-Delivery" not in cad.headers
        body = json.loads(cad.body)
        assert (body["event"], body["alert_id"]) == ("cancel", "A-9")
        assert by_name["signage"].body == CAP
        assert {(a.subscriber, a.outcome, a.status) for a in attempts.kept} == {
            ("cad", "cancel_accepted", 204), ("signage", "cancel_accepted", 204)
        }

    async def test_only_its_kind(self, channel: SignedWebhooks, receiver: Receiver) -> None:
        """An advisory's cancel goes to signage only: cad does not take advisories."""
        batch = make_batch(ChannelKind.WEBHOOK, to("signage"), kind=AlertKind.ADVISORY)
        await channel.withdraw(batch.alert)
        assert [r.path for r in receiver.received] == ["signage"]


class TestLog:
    """The delivery log in the store, per subscriber, newest first."""

    async def test_record_and_read_sqlite(self, tmp_path: Path) -> None:
        """SQLite: attempts are read back per subscriber and alert, newest first."""
        await self._record_and_read(f"sqlite:///{tmp_path / 'log.db'}")

    async def test_record_and_read_postgres(self, pg_url: str) -> None:
        """PostgreSQL: the same, on its own migration."""
        await self._record_and_read(pg_url)

    async def _record_and_read(self, url: str) -> None:
        db = await open_database(url)
        try:
            log = WebhookLog(db)
            await log.record([
                WebhookAttempt("cad", "A-1", 1, 1, 1000, 500, "retry", "HTTP 500", 12),
                WebhookAttempt("signage", "A-1", 2, 1, 1000, 204, "accepted", "HTTP 204", 8),
                WebhookAttempt("cad", "A-1", 1, 2, 2000, None, "retry", "timed out", 1000),
                WebhookAttempt("cad", "A-2", 3, 1, 3000, 204, "accepted", "HTTP 204", 9),
            ])
            cad = await log.of("cad")
            assert [(a.alert_id, a.attempt, a.status) for a in cad] == [
                ("A-2", 1, 204), ("A-1", 2, None), ("A-1", 1, 500)
            ]
            assert [a.attempt for a in await log.of("cad", alert_id="A-1", limit=1)] == [2]
        finally:
            await db.close()


class TestCommand:
    """`clarion webhooks list` and `clarion webhooks log NAME` read the config and the store."""

    async def test_list_and_log(self, tmp_path: Path) -> None:
        """The list never shows a URL or secret; the log prints a subscriber's tries."""
        store = tmp_path / "clarion.db"
        config = tmp_path / "clarion.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{store}"\n'
            '[[channels."webhook.signed".subscribers]]\n'
            'name = "cad"\nurl = "https://cad.example.edu/hook"\n'
            f'secret = "{SECRET}"\nkinds = ["emergency"]\n'
        )
        db = await open_database(f"sqlite:///{store}")
        try:
            await WebhookLog(db).record([
                WebhookAttempt("cad", "A-1", 1, 1, 0, 503, "retry", "HTTP 503", 12),
                WebhookAttempt("cad", "A-1", 1, 2, 1000, 200, "accepted", "HTTP 200", 9),
            ])
        finally:
            await db.close()
        listed = io.StringIO()
        assert cmd_list(argparse.Namespace(config=config), listed) == 0
        assert listed.getvalue() == "cad\tjson\temergency\n"
        logged = io.StringIO()
        args = argparse.Namespace(config=config, name="cad", alert=None, limit=50)
        assert await asyncio.to_thread(cmd_log, args, logged) == 0
        lines = logged.getvalue().splitlines()
        assert lines == [
            "1970-01-01T00:00:01+00:00\tA-1\ttry 2\t200\taccepted\t9 ms\tHTTP 200",
            "1970-01-01T00:00:00+00:00\tA-1\ttry 1\t503\tretry\t12 ms\tHTTP 503",
        ]
        unknown = argparse.Namespace(config=config, name="nobody", alert=None, limit=50)
        assert cmd_log(unknown, io.StringIO()) == 2
