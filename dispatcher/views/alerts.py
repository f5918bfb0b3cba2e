"""An alert's status and its deliveries, as `GET /v1/alerts/{id}` and the console show them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from channels.base import Channel
from channels.devices import DeviceChannel, DevicePresence
from dispatcher.domain import ChannelKind, DeliveryState, recipient_hash
from dispatcher.observability import redact_text
from dispatcher.store.alerts import AlertRecord
from dispatcher.store.ledger import DeliveryLedger
from dispatcher.store.pauses import AlertPauses
from dispatcher.store.users import ConsoleReads
from dispatcher.views.model import ReadModel

# The fractions of an alert's deliveries whose arrival times the console shows.
PERCENTILES = (0.5, 0.9, 0.99)
# Receipts of broadcast targets and webhook subscribers shown per channel: more than a campus
# configures.
MAX_DESTINATIONS = 200


class DevicePresenceView(ReadModel):
    """A device as its channel last heard it."""

    id: str
    device_class: str = Field(alias="class")
    zone: str | None
    state: str
    last_seen: str | None
    last_seen_ms: int | None

    @classmethod
    def of(cls, presence: DevicePresence) -> DevicePresenceView:
        """The view of one device's presence."""
        return cls.model_validate(presence.as_json())


class WaitingBehind(ReadModel):
    """A channel of this alert waiting now behind a more urgent alert."""

    alert_id: str
    since: int


class DestinationReceipt(ReadModel):
    """The receipt of one broadcast target or webhook subscriber, by its configured name (an
    account or system of the institution, not a person)."""

    channel: str
    name: str
    state: str
    attempts: int
    detail: str | None
    updated_at: int


class AlertStatus(ReadModel):
    """What `GET /v1/alerts/{id}` returns: state, audience and per-channel delivery counts."""

    id: str
    kind: str
    mode: str
    state: str
    audience: dict[str, Any]
    channels: dict[str, dict[str, int]]
    created_at: int
    sending_at: int | None
    done_at: int | None
    expires_at: int
    references: str | None
    content_version: int
    devices_offline: dict[str, list[DevicePresenceView]]
    # Channels that wait now behind a more urgent alert (a drill behind a live emergency).
    waiting_behind: dict[str, WaitingBehind]
    # One receipt per broadcast target and webhook subscriber the alert went to.
    destinations: list[DestinationReceipt] = Field(default_factory=list)


class DeliveryItem(ReadModel):
    """One delivery; the recipient only as a stable hash, the provider's detail redacted."""

    id: int
    channel: str
    recipient: str
    role: str
    language: str
    state: str
    attempts: int
    provider_ref: str | None
    detail: str | None
    updated_at: int


class DeliveryPage(ReadModel):
    """A page of an alert's deliveries and the cursor of the next page (None at the end)."""

    items: list[DeliveryItem]
    next: int | None


class DeliveryTiming(ReadModel):
    """When each fraction of the alert's deliveries had arrived, and how long after sending."""

    total: int
    delivered: int
    at: dict[str, int | None]
    after_s: dict[str, float | None]


class FailedDelivery(ReadModel):
    """A failed delivery: the recipient only as a stable hash, the reason redacted."""

    channel: str
    recipient: str
    detail: str
    attempts: int
    at: int


class AlertViews:
    """Builds an alert's status and delivery pages from the store and the device channels."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        pauses: AlertPauses,
        reads: ConsoleReads,
        channels: Mapping[ChannelKind, Channel],
    ) -> None:
        self._ledger = ledger
        self._pauses = pauses
        self._reads = reads
        self._channels = channels

    async def status(self, record: AlertRecord) -> AlertStatus:
        """The alert's status now: two reads (counts, pauses), one more per broadcast or
        webhook channel it went out on, and what the devices said."""
        counts = await self._ledger.counts(record.id)
        offline = {
            kind.value: [DevicePresenceView.of(p) for p in channel.offline_in(record.zones)]
            for kind, channel in self._channels.items()
            if kind in record.channels and isinstance(channel, DeviceChannel)
        }
        pauses = await self._pauses.of(record.id)
        destinations = [
            DestinationReceipt(
                channel=r["channel"], name=r["recipient"], state=r["state"],
                attempts=r["attempts"],
                detail=redact_text(r["detail"]) if r["detail"] else None,
                updated_at=r["updated_at"],
            )
            for kind in record.channels
            if kind.is_institutional and kind in self._channels
            for r in await self._ledger.page(
                record.id, after=0, limit=MAX_DESTINATIONS, channel=kind
            )
        ]
        return AlertStatus(
            id=record.id,
            kind=record.kind.value,
            mode=record.mode.value,
            state=record.state.value,
            audience=record.audience_counts,
            channels=counts,
            created_at=record.created_at,
            sending_at=record.sending_at,
            done_at=record.done_at,
            expires_at=record.expires_at,
            references=record.references_id,
            content_version=record.content_version,
            devices_offline={k: v for k, v in offline.items() if v},
            waiting_behind={
                p.channel.value: WaitingBehind(alert_id=p.behind_alert_id, since=p.started_at)
                for p in pauses if p.ended_at is None
            },
            destinations=destinations,
        )

    async def deliveries(
        self,
        alert_id: str,
        *,
        after: int,
        limit: int,
        channel: ChannelKind | None = None,
        state: DeliveryState | None = None,
    ) -> DeliveryPage:
        """Deliveries after a cursor, in id order, at most `limit`."""
        rows = await self._ledger.page(
            alert_id, after=after, limit=limit, channel=channel, state=state
        )
        items = [
            DeliveryItem(
                id=r["id"],
                channel=r["channel"],
                recipient=recipient_hash(r["recipient"]),
                role=r["role"],
                language=r["language"],
                state=r["state"],
                attempts=r["attempts"],
                provider_ref=r["provider_ref"],
                detail=redact_text(r["detail"]) if r["detail"] else None,
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
        return DeliveryPage(items=items, next=items[-1].id if len(items) == limit else None)

    async def timing(self, record: AlertRecord) -> DeliveryTiming:
        """When half, nine tenths and nearly all of the deliveries had arrived."""
        found = await self._reads.delivered_at(record.id, PERCENTILES)
        started = record.sending_at or record.created_at
        return DeliveryTiming(
            total=found["total"],
            delivered=found["delivered"],
            at=found["at"],
            after_s={
                k: (round((v - started) / 1000, 1) if v is not None else None)
                for k, v in found["at"].items()
            },
        )

    async def failures(self, alert_id: str) -> list[FailedDelivery]:
        """The alert's failed deliveries, newest first."""
        return [
            FailedDelivery(
                channel=r["channel"],
                recipient=recipient_hash(r["recipient"]),
                detail=redact_text(r["detail"]) if r["detail"] else "no reason given",
                attempts=r["attempts"],
                at=r["updated_at"],
            )
            for r in await self._reads.failure_reasons(alert_id)
        ]
