"""An alert as a CAP 1.2 document, as the API, the console and the feed publish it."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.cap.areas import areas_for_zones
from dispatcher.cap.format import CapReference, render_cap
from dispatcher.domain import AlertState, ChannelKind
from dispatcher.settings import Settings
from dispatcher.store.alerts import AlertRecord, AlertStore

# Renderings whose text carries no channel prefix, best first, for template-only alerts.
_PLAIN_TEXT_FROM = (ChannelKind.PUSH, ChannelKind.SIGNAGE, ChannelKind.PA, ChannelKind.EMAIL)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class CapDocuments:
    """Writes an alert's CAP document: Alert or Update, or the Cancel once it was withdrawn."""

    def __init__(self, settings: Settings, alerts: AlertStore) -> None:
        self._settings = settings
        self._alerts = alerts

    async def of_alert(self, alert_id: str) -> bytes | None:
        """The CAP document of an alert by id; None when there is no such alert."""
        record = await self._alerts.get(alert_id)
        return None if record is None else await self.document(record)

    async def document(self, record: AlertRecord) -> bytes:
        """The alert as CAP 1.2 (one read: the alert it updates, if any)."""
        settings = self._settings
        sender = settings.service.sender
        sent = _moment(record.created_at)
        identifier = record.id
        references: list[CapReference] = []
        if record.references_id:
            earlier = await self._alerts.get(record.references_id)
            if earlier is not None:
                references.append(CapReference(sender, earlier.id, _moment(earlier.created_at)))
        cancelled = record.state is AlertState.CANCELLED
        if cancelled:
            # A Cancel is a message of its own that points at the alert it withdraws.
            references = [CapReference(sender, record.id, sent)]
            identifier = f"{record.id}.cancel"
            sent = _moment(record.done_at or record.created_at)
        texts: dict[str, str] = {}
        if record.request.text is None:
            for kind in _PLAIN_TEXT_FROM:
                # A text shaped from a longer one is not the alert's text.
                if kind in record.rendered and not any(
                    m.derived for m in record.rendered[kind].values()
                ):
                    texts = {lang: m.text for lang, m in record.rendered[kind].items()}
                    break
        return render_cap(
            record.request,
            identifier=identifier,
            sender=sender,
            sent=sent,
            expires=_moment(record.expires_at),
            cancelled=cancelled,
            references=references,
            areas=areas_for_zones(record.zones, settings, record.exclude_zones),
            # The "more information" link: the public alert page unless another is configured.
            web=settings.rendering.web or settings.public.page(settings.service.base_url()),
            sender_name=settings.service.institution,
            texts=texts,
        )
