"""The ceiling: the same messages blasted at the same sandbox by bare clients, no engine at all.

SMS are the Twilio Messages API's form POSTs and push the Apprise `json://` POSTs, both over
one aiohttp session; email goes over a pool of aiosmtplib connections, many recipients per
transaction as the channel does; devices get one QoS 1 publish per zone over aiomqtt. No
store, no receipts, no retries: what is left is the cost of the wire and of the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiohttp
import aiomqtt
import aiosmtplib

ALERT_HEADER = "X-Clarion-Alert"


@dataclass(frozen=True, slots=True)
class Targets:
    """Where one fan-out goes: the sandbox's endpoints and every address."""

    sandbox_url: str
    smtp_host: str
    smtp_port: int
    mqtt_host: str
    mqtt_port: int
    account_sid: str
    auth_token: str
    messaging_service_sid: str
    sender: str
    phones: Sequence[str]
    emails: Sequence[str]
    push_ids: Sequence[str]
    zones: Sequence[str]
    devices: int
    mqtt_prefix: str = "clarion/v1"

    @property
    def messages(self) -> int:
        """Deliveries of one fan-out (devices counted one each, as the engine counts them)."""
        return len(self.phones) + len(self.emails) + len(self.push_ids) + self.devices


@dataclass
class BlastResult:
    """How long each kind took and how many were answered with success."""

    messages: int
    seconds: float = 0.0
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    seconds_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Messages handed over per second, all kinds together."""
        return self.messages / self.seconds if self.seconds else 0.0


async def _pool(items: Iterable[str], workers: int, send: Callable[[str], Awaitable[bool]],
                deadline: float) -> tuple[int, int]:
    """Run `send` over the items with a fixed number of workers; (succeeded, failed)."""
    queue = iter(items)
    ok = bad = 0

    async def worker() -> None:
        nonlocal ok, bad
        for item in queue:
            if time.monotonic() > deadline:
                bad += 1
                continue
            if await send(item):
                ok += 1
            else:
                bad += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return ok, bad


async def blast(
    targets: Targets,
    *,
    text: str,
    alert_id: str,
    http_connections: int = 64,
    smtp_connections: int = 8,
    recipients_per_message: int = 100,
    timeout_s: float = 600.0,
) -> BlastResult:
    """Send every message once, all kinds at the same time; bounded by `timeout_s`."""
    result = BlastResult(targets.messages)
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()

    async def timed(kind: str, work: Awaitable[tuple[int, int]]) -> None:
        ok, bad = await work
        result.sent[kind], result.failed[kind] = ok, bad
        result.seconds_by_kind[kind] = time.perf_counter() - started

    connector = aiohttp.TCPConnector(limit=http_connections)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        await asyncio.gather(
            timed("sms", _sms(http, targets, text, http_connections // 2, deadline)),
            timed("push", _push(http, targets, text, alert_id, http_connections // 2, deadline)),
            timed("email", _email(targets, text, alert_id, smtp_connections,
                                  recipients_per_message, deadline)),
            timed("devices", _devices(targets, text, alert_id)),
        )
    result.seconds = time.perf_counter() - started
    return result


def _sms(http: aiohttp.ClientSession, t: Targets, text: str, workers: int,
         deadline: float) -> Awaitable[tuple[int, int]]:
    url = f"{t.sandbox_url}/2010-04-01/Accounts/{t.account_sid}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{t.account_sid}:{t.auth_token}".encode()).decode()
    headers = {"Authorization": auth}

    async def send(phone: str) -> bool:
        form = {"To": phone, "Body": text, "MessagingServiceSid": t.messaging_service_sid,
                "ValidityPeriod": "600"}
        try:
            async with http.post(url, data=form, headers=headers) as resp:
                await resp.read()
                return resp.status == 201
        except (aiohttp.ClientError, TimeoutError):
            return False

    return _pool(t.phones, max(1, workers), send, deadline)


def _push(http: aiohttp.ClientSession, t: Targets, text: str, alert_id: str, workers: int,
          deadline: float) -> Awaitable[tuple[int, int]]:
    headers = {ALERT_HEADER: alert_id}
    body = json.dumps({"version": "1.0", "title": "Emergency", "message": text, "type": "failure"})

    async def send(push_id: str) -> bool:
        try:
            async with http.post(f"{t.sandbox_url}/push/{push_id}", data=body,
                                 headers={**headers, "Content-Type": "application/json"}) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    return _pool(t.push_ids, max(1, workers), send, deadline)


async def _email(t: Targets, text: str, alert_id: str, connections: int, per_message: int,
                 deadline: float) -> tuple[int, int]:
    chunks = [list(t.emails[i : i + per_message]) for i in range(0, len(t.emails), per_message)]
    message = EmailMessage()
    message["From"] = t.sender
    message["To"] = "undisclosed-recipients:;"
    message["Subject"] = "Emergency"
    message[ALERT_HEADER] = alert_id
    message.set_content(text)
    queue = iter(chunks)
    ok = bad = 0

    async def worker() -> None:
        nonlocal ok, bad
        smtp = aiosmtplib.SMTP(hostname=t.smtp_host, port=t.smtp_port, timeout=30)
        await smtp.connect()
        try:
            for chunk in queue:
                if time.monotonic() > deadline:
                    bad += len(chunk)
                    continue
                try:
                    refused, _reply = await smtp.send_message(message, recipients=chunk)
                except aiosmtplib.SMTPException:
                    bad += len(chunk)
                    continue
                ok += len(chunk) - len(refused)
                bad += len(refused)
        finally:
            smtp.close()

    await asyncio.gather(*(worker() for _ in range(max(1, min(connections, len(chunks))))))
    return ok, bad


async def _devices(t: Targets, text: str, alert_id: str) -> tuple[int, int]:
    if not t.zones:
        return 0, 0
    expires_ms = int(time.time() * 1000) + 600_000
    payload = json.dumps({
        "identifier": alert_id, "msgType": "Alert", "status": "Actual", "drill": False,
        "expires_ms": expires_ms, "headline": "Emergency", "text": text,
    }).encode()
    async with aiomqtt.Client(t.mqtt_host, t.mqtt_port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        # Not retained: the engine's own retained alert stays what the zone shows.
        await asyncio.gather(*(
            client.publish(f"{t.mqtt_prefix}/alert/active/{zone}", payload, qos=1)
            for zone in t.zones
        ))
    return t.devices, 0
