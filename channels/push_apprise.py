"""`push.apprise`: any Apprise URL per person or group, one receipt per target."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, urlsplit

import structlog
from apprise import Apprise, AppriseAsset
from apprise.manager_plugins import NotificationManager
from apprise.result import AppriseResultStatus, NotifyResult
from pydantic import Field

from channels.base import Channel, ChannelSettings, ReceiptSink
from channels.errors import is_transient_http
from dispatcher.domain import Batch, ChannelKind, Outcome, Receipt

log = structlog.get_logger("clarion.channel.push")

ALERT_HEADER = "X-Clarion-Alert"
# Apprise's webhook plugins turn `+Name=value` URL arguments into request headers.
HEADER_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
# Apprise's HTTP plugins log failures as "...error=<status>."; the result keeps those logs.
_HTTP_STATUS = re.compile(r"error=(\d{3})\b")


class AppriseSettings(ChannelSettings):
    """`[channels."push.apprise"]`: how many targets are in flight and how long each may take."""

    concurrency: int = Field(default=32, ge=1, le=256, description="targets sent at once")
    batch_size: int = Field(default=200, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, description="connect and read timeout per target")
    alert_header: bool = Field(
        default=True, description=f"add {ALERT_HEADER} to json://, form:// and xml:// targets"
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One target's fate, before it becomes a receipt."""

    outcome: Outcome
    detail: str = ""


def target_url(address: str, alert_id: str, *, alert_header: bool = True) -> str:
    """The Apprise URL to notify: the address, carrying the alert id where the scheme allows."""
    scheme = address.partition("://")[0].lower()
    if not alert_header or scheme not in HEADER_SCHEMES:
        return address
    sep = "&" if urlsplit(address).query else "?"
    return f"{address}{sep}+{ALERT_HEADER}={quote(alert_id, safe='')}"


def classify(result: NotifyResult) -> _Outcome:
    """Accepted, retry (timeouts, connection errors, 429/5xx) or failed (other 4xx)."""
    if result.status is AppriseResultStatus.SUCCESS:
        return _Outcome(Outcome.ACCEPTED, result.name)
    if result.status is AppriseResultStatus.TIMEOUT:
        return _Outcome(Outcome.RETRY, f"{result.name}: timed out")
    statuses = [int(m.group(1)) for e in result.logs() for m in _HTTP_STATUS.finditer(e.message)]
    if statuses:
        status = statuses[-1]
        outcome = Outcome.RETRY if is_transient_http(status) else Outcome.FAILED
        return _Outcome(outcome, f"{result.name}: HTTP {status}")
    # No status: connection errors and the like, which a later attempt may get through.
    return _Outcome(Outcome.RETRY, f"{result.name}: not sent")


class ApprisePush(Channel):
    """Push through Apprise: each target in a worker thread, our own pool bounding them."""

    name: ClassVar[str] = "push.apprise"
    kind: ClassVar[ChannelKind] = ChannelKind.PUSH
    settings_model: ClassVar[type[ChannelSettings]] = AppriseSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, AppriseSettings)
        self.settings: AppriseSettings = settings
        self._asset = AppriseAsset(
            async_mode=False,  # each target already has a thread of ours
            storage_mode="memory",
            secure_logging=True,
            # A service deadline makes Apprise hand the call to its own small shared pool;
            # without one it runs in our thread, bounded by the socket timeouts set per target.
            service_timeout=0,
            result_log_disk_size=0,
        )
        self._pool: ThreadPoolExecutor | None = None

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Load Apprise's plugins off the loop, so the first alert does not wait for them."""
        await asyncio.get_running_loop().run_in_executor(
            self._threads(),
            NotificationManager().load_modules,  # type: ignore[no-untyped-call]
        )

    async def close(self) -> None:
        """Stop the worker threads once their sends finish."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.concurrency, thread_name_prefix="clarion-push"
            )
        return self._pool

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Notify every target; a failed target is a receipt, never an exception."""
        loop = asyncio.get_running_loop()
        pool = self._threads()
        alert = batch.alert
        # Targets still queued after one timeout_s are not started: together with the
        # socket timeouts this keeps the batch within the engine's limit (3 x timeout_s),
        # past which it would count the accepted ones as unsent and send them again.
        start_by = time.monotonic() + self.settings.timeout_s
        futures = []
        for delivery in batch.deliveries:
            message = alert.message(delivery.language)
            url = target_url(
                delivery.address, alert.alert_id, alert_header=self.settings.alert_header
            )
            futures.append(
                loop.run_in_executor(pool, self._notify, url, message.title, message.text, start_by)
            )
        # Cancelling the batch cancels the targets not yet started.
        outcomes = await asyncio.gather(*futures)
        receipts = []
        for delivery, done in zip(batch.deliveries, outcomes, strict=True):
            if done.outcome is not Outcome.ACCEPTED:
                log.info(
                    "push.send_failed",
                    channel=self.name,
                    alert_id=alert.alert_id,
                    delivery_id=delivery.id,
                    recipient=delivery.tag,
                    outcome=str(done.outcome),
                    detail=done.detail,
                )
            receipts.append(Receipt(delivery.id, done.outcome, done.detail))
        return receipts

    def _notify(self, url: str, title: str, body: str, start_by: float) -> _Outcome:
        """One target, in a worker thread: Apprise's calls block."""
        if time.monotonic() > start_by:
            return _Outcome(Outcome.RETRY, "not started: push workers busy")
        plugin = Apprise.instantiate(url, asset=self._asset)
        if plugin is None:
            return _Outcome(Outcome.FAILED, "not a usable Apprise URL")
        # Our limiter governs pace; Apprise's per-instance wait would serialize a burst.
        plugin.request_rate_per_sec = 0
        plugin.socket_connect_timeout = min(
            plugin.socket_connect_timeout, self.settings.timeout_s / 2
        )
        plugin.socket_read_timeout = self.settings.timeout_s
        with Apprise(plugin, asset=self._asset).notify(body=body, title=title) as result:
            found = result.results
            if not found:
                return _Outcome(Outcome.FAILED, f"not sent ({result.status.name.lower()})")
            return classify(found[0])
