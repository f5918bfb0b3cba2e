"""CAP routes: one alert as CAP 1.2, and an Atom feed of the active alerts for pollers."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from dispatcher.api.common import service_of
from dispatcher.cap import CAP_MEDIA_TYPE, CapReference, render_cap
from dispatcher.cap_areas import areas_for_zones
from dispatcher.domain import AlertState, ChannelKind
from dispatcher.public.atom import ATOM_MEDIA_TYPE, atom_document
from dispatcher.public.feed import PUBLIC_FEED
from dispatcher.public.routes import conditional
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord

routes = web.RouteTableDef()

# Renderings whose text carries no channel prefix, best first, for template-only alerts.
_PLAIN_TEXT_FROM = (ChannelKind.PUSH, ChannelKind.SIGNAGE, ChannelKind.PA, ChannelKind.EMAIL)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def cap_document(service: Service, record: AlertRecord) -> bytes:
    """The alert as CAP: Alert or Update, or the Cancel message once it was withdrawn."""
    settings = service.settings
    sender = settings.service.sender
    sent = _moment(record.created_at)
    identifier = record.id
    references: list[CapReference] = []
    if record.references_id:
        earlier = await service.alerts.get(record.references_id)
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


@routes.get("/v1/alerts/{id}/cap")
async def get_alert_cap(request: web.Request) -> web.Response:
    """The alert as a CAP 1.2 document."""
    service = service_of(request)
    alert_id = request.match_info["id"]
    record = await service.alerts.get(alert_id)
    if record is None:
        return web.json_response({"error": f"no alert {alert_id}"}, status=404)
    body = await cap_document(service, record)
    return web.Response(body=body, content_type=CAP_MEDIA_TYPE, charset="utf-8")


@routes.get("/v1/feeds/cap")
async def cap_feed(request: web.Request) -> web.Response:
    """Atom feed of the alerts active now, newest first, each linking to its CAP."""
    feed = request.app.get(PUBLIC_FEED)
    if feed is not None:
        # From memory, like /public/alerts.json: pollers cost no query and get 304s.
        feed.rebuild_if_expired()
        atom = feed.snapshot.atom
        if atom is not None:
            return conditional(request, atom, {"Cache-Control": "private, no-cache"})
    service = service_of(request)
    settings = service.settings
    now_ms = service.clock.now_ms()
    records = await service.alerts.active(now_ms)
    body = atom_document(records, base_url=settings.service.base_url(),
                         institution=settings.service.institution, updated_ms=now_ms)
    return web.Response(body=body, content_type=ATOM_MEDIA_TYPE, charset="utf-8")
