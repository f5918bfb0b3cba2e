"""The desktop client's MQTT connection, on an asyncio loop in a thread of its own.

Tk wants the main thread; aiomqtt wants a running loop. The link runs the loop in a daemon
thread and talks to the window through two thread-safe queues: news in (`inbox`), acks out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import random
import secrets
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass

import aiomqtt
import structlog
from paho.mqtt.subscribeoptions import SubscribeOptions

from channels.devices.acks import AckState
from dispatcher.desktop.board import DEVICE_CLASS
from dispatcher.desktop.options import DesktopOptions

log = structlog.get_logger("clarion.desktop")

ONLINE = b"online"
OFFLINE = b"offline"
# After a reconnect the dispatcher may take a moment to put back what a restarted broker lost:
# a zone found empty is believed only after this long.
EMPTY_ZONE_GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class Connected:
    """The broker connection came up (True) or went away (False)."""

    up: bool


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """A message on the zone's active-alert topic (empty: the zone was cleared)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A message on the event stream: alerts, updates and cancels."""

    payload: bytes


News = Connected | ActiveAlert | AlertEvent


class AlertLink:
    """Keeps the connection up with backoff: presence with a Last Will, the zone's alert and
    the event stream in, acks out (kept while the broker is away and sent on reconnect)."""

    def __init__(self, options: DesktopOptions) -> None:
        self.options = options
        self.topics = options.topics
        self.inbox: queue.SimpleQueue[News] = queue.SimpleQueue()
        self._outbox: deque[bytes] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = 0
        self._heard_active = False

    @property
    def availability_topic(self) -> str:
        """This desktop's retained presence."""
        return self.topics.availability(DEVICE_CLASS, self.options.device_id)

    @property
    def sync_topic(self) -> str:
        """Its own marker topic: what comes back after the retained alert, if any."""
        return f"{self.topics.prefix}/device/{DEVICE_CLASS}/{self.options.device_id}/sync"

    @property
    def ack_topic(self) -> str:
        """Where this desktop acks."""
        return self.topics.ack(DEVICE_CLASS, self.options.device_id)

    def start(self) -> None:
        """Run the connection in its own thread."""
        self._thread = threading.Thread(target=self._main, name="desktop.link", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def send_ack(self, alert_id: str, state: AckState) -> None:
        """Queue an ack (from any thread); it goes out now, or once the broker is back."""
        body = json.dumps({"alert_id": alert_id, "state": state.value,
                           "ts": int(time.time() * 1000)}).encode()
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        loop.call_soon_threadsafe(self._queue_ack, body, wake)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say offline, disconnect and end the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the loop's side ----------------------------------------------------------------------

    def _queue_ack(self, body: bytes, wake: asyncio.Event) -> None:
        self._outbox.append(body)
        wake.set()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        stopping = self._stopping = asyncio.Event()
        self._ready.set()
        stopper = asyncio.create_task(stopping.wait())
        session = asyncio.create_task(self._keep_connected(wake))
        await asyncio.wait([stopper, session], return_when=asyncio.FIRST_COMPLETED)
        session.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session

    async def _keep_connected(self, wake: asyncio.Event) -> None:
        o = self.options
        delay = o.reconnect_min_s
        while True:
            try:
                async with self._client() as client:
                    await client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
                    await client.subscribe([
                        (self.topics.active(o.zone), SubscribeOptions(qos=1)),
                        (self.topics.event, SubscribeOptions(qos=1)),
                        (self.sync_topic, SubscribeOptions(qos=1)),
                    ])
                    # The broker sends a retained alert before anything published after the
                    # subscribe: a marker that comes back first means the zone holds none
                    # (it was withdrawn while we were away, its cancel event missed).
                    marker = secrets.token_hex(8).encode()
                    await client.publish(self.sync_topic, marker, qos=1)
                    delay = o.reconnect_min_s
                    self.inbox.put(Connected(True))
                    log.info("desktop.connected", host=o.host, port=o.port, zone=o.zone,
                             device_id=o.device_id)
                    try:
                        await self._serve(client, wake, marker)
                    except asyncio.CancelledError:
                        # Stopping: say offline ourselves; a clean disconnect sends no Will.
                        with contextlib.suppress(aiomqtt.MqttError):
                            await client.publish(self.availability_topic, OFFLINE, qos=1,
                                                 retain=True, timeout=2.0)
                        raise
            except aiomqtt.MqttError as exc:
                self.inbox.put(Connected(False))
                log.warning("desktop.disconnected", host=o.host, port=o.port, error=str(exc),
                            retry_in_s=round(delay, 2))
            except Exception as exc:
                # A fault of ours must not leave the desk deaf for good: log it and reconnect.
                self.inbox.put(Connected(False))
                log.error("desktop.link_fault", error=type(exc).__name__, detail=str(exc),
                          retry_in_s=round(delay, 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, o.reconnect_max_s)

    async def _serve(self, client: aiomqtt.Client, wake: asyncio.Event, marker: bytes) -> None:
        reader = asyncio.create_task(self._read(client, marker))
        writer = asyncio.create_task(self._write(client, wake))
        try:
            done, _ = await asyncio.wait([reader, writer], return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in (reader, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await task

    async def _read(self, client: aiomqtt.Client, marker: bytes) -> None:
        active = self.topics.active(self.options.zone)
        self._session += 1
        self._heard_active = False
        async for message in client.messages:
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
            topic = message.topic.value
            if topic == active:
                self._heard_active = True
                self.inbox.put(ActiveAlert(payload))
            elif topic == self.topics.event:
                self.inbox.put(AlertEvent(payload))
            elif topic == self.sync_topic and payload == marker and not self._heard_active:
                asyncio.get_running_loop().call_later(
                    EMPTY_ZONE_GRACE_S, self._empty_if_still_silent, self._session)

    def _empty_if_still_silent(self, session: int) -> None:
        if session == self._session and not self._heard_active:
            self.inbox.put(ActiveAlert(b""))

    async def _write(self, client: aiomqtt.Client, wake: asyncio.Event) -> None:
        while True:
            while self._outbox:
                # The ack leaves the queue only once the broker has it.
                await client.publish(self.ack_topic, self._outbox[0], qos=1)
                self._outbox.popleft()
            wake.clear()
            await wake.wait()

    def _client(self) -> aiomqtt.Client:
        o = self.options
        tls_context = ssl.create_default_context(cafile=o.tls_ca_file) if o.tls else None
        return aiomqtt.Client(
            o.host,
            o.port,
            username=o.username,
            password=o.password,
            identifier=o.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.availability_topic, OFFLINE, qos=1, retain=True),
            keepalive=o.keepalive_s,
            tls_context=tls_context,
        )
