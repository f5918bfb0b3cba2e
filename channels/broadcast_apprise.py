"""`broadcast.apprise`: the alert on the campus's own accounts and rooms (Microsoft Teams,
Slack, Mastodon, X, Facebook pages, Discord, Telegram, e-mail lists), through Apprise's plugins.

A broadcast target is a destination of the institution, not a person: it is named in the
config with its Apprise URL (a secret: it holds the service's tokens, so it may come from a
file or an environment variable) and the alert kinds it takes. Every alert of those kinds that
goes out on the broadcast channel gets one delivery per target, which the store knows by the
target's name only, so a target has a receipt on the alert's page, in `GET /v1/alerts/{id}`
and in the Clery record like every delivery, and the engine's retries, urgency order and
drill handling. The text is the alert's broadcast rendering: checked by the message policy
with every other rendering, and marked "[DRILL] THIS IS A TEST" in a drill or a test.

Apprise sends each target with its own plugin (`Apprise.notify`, in a bounded pool of worker
threads, as `push.apprise` does for its non-gateway addresses); it reports success, a timeout
or a failure, not the service's status, so a failure is tried again and the engine's bound on
attempts ends one that never gets through. A campus system reached through Apprise's own
JSON, form or XML webhook (`json://`, `form://`, `xml://` and their https forms) is told the
alert's id in an `X-Clarion-Alert` header, as `push.apprise` tells it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Final, TypeVar

import structlog
from apprise import Apprise, AppriseAsset
from pydantic import Field, SecretStr, model_validator

from channels.base import GAVE_WAY, Channel, ChannelSettings, ReceiptSink
from channels.breaker import BreakerSettings, independent_breaker
from channels.pacing import GiveWay, UrgentSlots
from channels.push_apprise import classify, target_url
from dispatcher.access.credentials import SettingsModel, reveal
from dispatcher.domain import (
    AlertContext,
    AlertKind,
    Batch,
    ChannelKind,
    Delivery,
    Outcome,
    Receipt,
)

log = structlog.get_logger("clarion.channel.broadcast")

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_T = TypeVar("_T")


def _live_kinds() -> list[AlertKind]:
    return [AlertKind.EMERGENCY, AlertKind.TIMELY_WARNING, AlertKind.ALL_CLEAR]


class BroadcastTarget(SettingsModel):
    """`[[channels."broadcast.apprise".targets]]`: one account, room or list."""

    name: str = Field(pattern=NAME_PATTERN, description="shown in receipts and records")
    url: SecretStr = Field(description="the Apprise URL; or url_file / url_env")
    kinds: list[AlertKind] = Field(
        default_factory=_live_kinds, description="the alert kinds posted to this target"
    )


class BroadcastSettings(ChannelSettings):
    """`[channels."broadcast.apprise"]`: the targets, threads and time per target."""

    batch_size: int = Field(default=20, ge=1, le=1000)
    timeout_s: float = Field(default=15.0, gt=0, description="time Apprise has per target")
    threads: int = Field(default=8, ge=1, le=64, description="targets in Apprise's hands")
    targets: list[BroadcastTarget] = Field(default_factory=list)
    breaker: BreakerSettings = Field(
        default_factory=lambda: independent_breaker(),
        description="off unless configured: each target is a service of its own",
    )

    @model_validator(mode="after")
    def _unique(self) -> BroadcastSettings:
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError("target names must be unique")
        return self


class AppriseBroadcast(Channel):
    """Posts to the configured targets through Apprise, one delivery per target and alert."""

    name: ClassVar[str] = "broadcast.apprise"
    kind: ClassVar[ChannelKind] = ChannelKind.BROADCAST
    settings_model: ClassVar[type[ChannelSettings]] = BroadcastSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, BroadcastSettings)
        self.settings: BroadcastSettings = settings
        self._targets = {t.name: t for t in settings.targets}
        self._asset = AppriseAsset(
            storage_mode="memory", secure_logging=True, result_log_disk_size=0
        )
        self._pool: ThreadPoolExecutor | None = None
        # Targets holding or awaiting a thread, in the order of urgency.
        self._threads = UrgentSlots(settings.threads, self.right_of_way)

    def destinations(self, kind: AlertKind, /) -> Sequence[str]:
        """The targets that take alerts of this kind."""
        return [t.name for t in self.settings.targets if kind in t.kinds]

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Load Apprise's plugins off the loop, before the first alert needs them."""
        await self._in_thread(Apprise(asset=self._asset).details)

    async def close(self) -> None:
        """Stop the worker threads once their sends finish."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Post to every target of the batch; a failed target is a receipt."""
        # Targets still waiting after one timeout_s are not started, so the batch stays
        # within the engine's limit (3 x timeout_s).
        start_by = time.monotonic() + self.settings.timeout_s
        done = await asyncio.gather(
            *(self._deliver(batch.alert, d, start_by) for d in batch.deliveries)
        )
        for delivery, receipt in zip(batch.deliveries, done, strict=True):
            if receipt.outcome not in (Outcome.ACCEPTED, Outcome.DEFERRED):
                log.info(
                    "broadcast.send_failed", channel=self.name, alert_id=batch.alert.alert_id,
                    delivery_id=delivery.id, target=delivery.address,
                    outcome=str(receipt.outcome), detail=receipt.detail,
                )
        return done

    async def _deliver(self, alert: AlertContext, delivery: Delivery, start_by: float) -> Receipt:
        target = self._targets.get(delivery.address)
        if target is None:
            return Receipt(delivery.id, Outcome.FAILED, "target no longer configured")
        message = alert.message(delivery.language)
        if not message.text:
            return Receipt(delivery.id, Outcome.FAILED, "empty message")
        try:
            await self._threads.acquire(alert.rank)
        except GiveWay:
            return Receipt(delivery.id, Outcome.DEFERRED, GAVE_WAY)
        try:
            url = target_url(reveal(target.url), alert.alert_id)
            outcome, detail = await self._in_thread(
                self._notify, url, message.title, message.text, start_by
            )
        finally:
            self._threads.release()
        return Receipt(delivery.id, outcome, detail)

    def _notify(self, url: str, title: str, body: str, start_by: float) -> tuple[Outcome, str]:
        """One target, in a worker thread: Apprise's calls block."""
        if time.monotonic() > start_by:
            return Outcome.RETRY, "not started: broadcast workers busy"
        # A new Apprise object per post: Apprise paces repeated sends of one object.
        notifier = Apprise(asset=self._asset)
        if not notifier.add(url):
            return Outcome.FAILED, "not a usable Apprise URL"
        with notifier.notify(body=body, title=title, timeout=self.settings.timeout_s) as result:
            found = classify(result)
        return found.outcome, found.detail

    async def _in_thread(self, call: Callable[..., _T], *args: Any) -> _T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.threads, thread_name_prefix="clarion-broadcast"
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    def describe(self) -> dict[str, object]:
        """Settings as they may be shown: each target's URL masked."""
        shown = super().describe()
        shown["targets"] = [
            {"name": t.name, "url": "***", "kinds": [k.value for k in t.kinds]}
            for t in self.settings.targets
        ]
        return shown
