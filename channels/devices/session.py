"""The MQTT 5 connection: Last Will and status, reconnect with backoff, re-subscribe, publish."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import ssl
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from channels.devices.settings import DeviceSettings
from channels.devices.topics import Topics
from dispatcher.access.credentials import reveal
from dispatcher.clock import Clock

log = structlog.get_logger("clarion.channel.devices")

ONLINE = b"online"
OFFLINE = b"offline"


class MqttSession:
    """One MQTT 5 connection kept up for as long as it runs; says online/offline on `status`."""

    def __init__(
        self,
        settings: DeviceSettings,
        topics: Topics,
        *,
        client_id: str,
        clock: Clock,
        counters: Counter[str],
        on_message: Callable[[aiomqtt.Message], None],
        on_connected: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.client_id = client_id
        self._clock = clock
        self._counters = counters
        self._on_message = on_message
        self._on_connected = on_connected
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._closing = False

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait for the broker up to timeout_s; True when connected."""
        if self._connected.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        return self._connected.is_set()

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool, expires_ms: int | None
    ) -> bool:
        """QoS 1 publish that waits for the PUBACK; False when the broker is away or failed.

        With expires_ms the broker drops the message then (MQTT 5 message expiry); a message
        already expired counts as published, there being nothing left to deliver.
        """
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        properties = None
        if expires_ms is not None:
            seconds = math.ceil((expires_ms - self._clock.now_ms()) / 1000)
            if seconds <= 0:
                return True
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = seconds
        try:
            await client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        except aiomqtt.MqttError as exc:
            self._counters["publish_failed"] += 1
            log.warning("device.publish_failed", topic=topic, error=str(exc))
            return False
        return True

    def start(self) -> asyncio.Task[None]:
        """Run the connection in a task of its own, until `say_offline` and a cancel."""
        self._closing = False
        return asyncio.create_task(self.run(), name="devices.session")

    async def run(self) -> None:
        """Connect, and reconnect with jittered backoff whenever the connection drops."""
        delay = self.settings.reconnect_min_s
        while not self._closing:
            resync: asyncio.Task[None] | None = None
            try:
                client = self._make_client()
                async with client:
                    await client.subscribe([
                        (self.topics.availability_filter, SubscribeOptions(qos=1)),
                        (self.topics.ack_filter, SubscribeOptions(qos=1)),
                        # noLocal: our own publishes do not come back to us.
                        (self.topics.active_filter, SubscribeOptions(qos=1, noLocal=True)),
                    ])
                    await client.publish(self.topics.status, ONLINE, qos=1, retain=True)
                    self._client = client
                    self._connected.set()
                    delay = self.settings.reconnect_min_s
                    log.info("device.bus_connected", host=self.settings.host,
                             port=self.settings.port, client_id=self.client_id)
                    resync = asyncio.create_task(self._on_connected(), name="devices.resync")
                    async for message in client.messages:
                        try:
                            self._on_message(message)
                        except Exception as exc:
                            self._counters["message_errors"] += 1
                            log.error("device.message_failed", topic=message.topic.value,
                                      error=type(exc).__name__)
            except aiomqtt.MqttError as exc:
                self._counters["disconnects"] += 1
                log.warning("device.bus_disconnected", host=self.settings.host,
                            port=self.settings.port, error=str(exc), retry_in_s=round(delay, 2))
            except Exception as exc:
                # A fault of ours must not leave the devices without a connection for good.
                self._counters["faults"] += 1
                log.error("device.bus_fault", error=type(exc).__name__, detail=str(exc),
                          retry_in_s=round(delay, 2))
            finally:
                self._client = None
                self._connected.clear()
                if resync is not None:
                    resync.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await resync
            if self._closing:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def say_offline(self) -> None:
        """Before closing: retain offline on the status topic (the Last Will covers crashes)."""
        self._closing = True
        client = self._client
        if client is not None and self._connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topics.status, OFFLINE, qos=1, retain=True, timeout=2.0)

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        tls_context = None
        if s.tls:
            tls_context = ssl.create_default_context(cafile=s.tls_ca_file)
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=reveal(s.password) or None,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.topics.status, OFFLINE, qos=1, retain=True),
            keepalive=s.keepalive_s,
            timeout=s.timeout_s,
            tls_context=tls_context,
            max_inflight_messages=1000,
        )
        # A fan-out burst is expected; we bound concurrency ourselves.
        client.pending_calls_threshold = 100_000
        return client


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait until it has ended."""
    # Cancel again if swallowed: Python 3.11's wait_for (inside aiomqtt) can do that when a
    # connection completes at the same moment.
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
