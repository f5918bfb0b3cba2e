"""Upstream feed formats: the NWS API's GeoJSON, and CAP in Atom or RSS, read into CAP alerts.

The NWS API (api.weather.gov, `application/geo+json`) gives each alert as a GeoJSON Feature
whose properties are CAP's fields; it becomes the same `CapAlert` that `dispatcher.cap.format` reads
from XML, so the relay rules see one shape. Atom and RSS feeds (a county, IPAWS-OPEN) carry
each CAP document inline in an entry or link to it; linked documents are fetched by the poller.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as defused

from dispatcher.cap.format import CapAlert, CapArea, CapInfo, read_cap

NWS_MEDIA_TYPE = "application/geo+json"
ATOM_NS = "http://www.w3.org/2005/Atom"
_CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
_CAP_LINK_TYPES = ("application/cap+xml", "application/xml", "text/xml")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of a feed: its CAP alert when inline, else the link to fetch it from."""

    entry_id: str
    alert: CapAlert | None = None
    link: str = ""
    source: bytes = b""


def read_nws(body: bytes) -> list[FeedEntry]:
    """The alerts of an NWS API answer (a FeatureCollection, or one Feature)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"NWS answer is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("NWS answer is not a GeoJSON object")
    features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if not isinstance(features, list):
        raise ValueError("NWS answer has no features list")
    entries = []
    for feature in features:
        alert = nws_alert(feature)
        entries.append(FeedEntry(alert.identifier, alert,
                                 source=json.dumps(feature, indent=1).encode()))
    return entries


def nws_alert(feature: Any) -> CapAlert:
    """One NWS API alert Feature as a CAP alert (coordinates there are lon, lat)."""
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise ValueError("NWS feature has no properties")
    p: Mapping[str, Any] = feature["properties"]

    def text(key: str) -> str:
        value = p.get(key)
        return value.strip() if isinstance(value, str) else ""

    def required(key: str) -> str:
        value = text(key)
        if not value:
            raise ValueError(f"NWS alert: {key} is required")
        return value

    identifier = required("id").removeprefix("urn:oid:")
    polygons = _nws_polygons(feature.get("geometry"))
    raw_geocode = p.get("geocode")
    geocode: dict[str, Any] = raw_geocode if isinstance(raw_geocode, dict) else {}
    codes = tuple(
        (name, str(value)) for name, values in geocode.items() if isinstance(values, list)
        for value in values
    )
    area = CapArea(text("areaDesc"), polygons[0] if polygons else (), "",
                   tuple(polygons[1:]), codes)
    event_codes = {
        name: str(values[0]) for name, values in (p.get("eventCode") or {}).items()
        if isinstance(values, list) and values
    }
    parameters = {
        name: str(values[0]) for name, values in (p.get("parameters") or {}).items()
        if isinstance(values, list) and values
    }
    expires = text("ends") or text("expires")
    info = CapInfo(
        language="en-US",
        categories=(text("category") or "Met",),
        event=required("event"),
        response_types=(text("response"),) if text("response") else (),
        urgency=text("urgency") or "Unknown",
        severity=text("severity") or "Unknown",
        certainty=text("certainty") or "Unknown",
        expires=_time(expires, "expires") if expires else None,
        headline=(parameters.get("NWSheadline") or text("headline")),
        description=text("description"),
        instruction=text("instruction"),
        web=text("web"),
        parameters=parameters,
        areas=(area,),
        event_codes=event_codes,
    )
    references = tuple(
        f"{r.get('sender', '')},{str(r.get('identifier', '')).removeprefix('urn:oid:')},"
        f"{r.get('sent', '')}"
        for r in (p.get("references") or []) if isinstance(r, dict)
    )
    return CapAlert(
        identifier=identifier,
        sender=text("sender") or "w-nws.webmaster@noaa.gov",
        sent=_time(required("sent"), "sent"),
        status=required("status"),
        msg_type=required("messageType"),
        scope="Public",
        references=references,
        note=text("note"),
        infos=(info,),
    )


def _nws_polygons(geometry: Any) -> list[tuple[tuple[float, float], ...]]:
    if not isinstance(geometry, dict):
        return []  # NWS zone-based alerts have no geometry: the geocodes say where
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    rings = [coords[0]] if kind == "Polygon" and coords else \
        [poly[0] for poly in coords if poly] if kind == "MultiPolygon" else []
    return [tuple((float(lat), float(lon)) for lon, lat in ring) for ring in rings]


def _time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"NWS alert: {where} {value!r} is not a date-time") from None
    if moment.tzinfo is None:
        raise ValueError(f"NWS alert: {where} {value!r} has no offset")
    return moment


def read_cap_feed(body: bytes) -> list[FeedEntry]:
    """The entries of a CAP Atom or RSS feed: inline CAP alerts read, links kept to fetch."""
    try:
        root = defused.fromstring(body, forbid_dtd=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise ValueError("feed must not contain a DTD or entity declarations") from None
    except ET.ParseError as exc:
        raise ValueError(f"feed is not well-formed XML: {exc}") from None
    if _local(root.tag) == "alert":  # a feed URL that answers one CAP document
        alert = read_cap(body)
        return [FeedEntry(alert.identifier, alert, source=body)]
    items = [e for e in root.iter() if _local(e.tag) in ("entry", "item")]
    entries = []
    for item in items:
        entry_id = _child_text(item, ("id", "guid")) or ""
        inline = next((e for e in item.iter() if _local(e.tag) == "alert"
                       and _namespace(e.tag) in _CAP_NAMESPACES), None)
        if inline is not None:
            source = ET.tostring(inline, encoding="utf-8")
            alert = read_cap(source)
            entries.append(FeedEntry(entry_id or alert.identifier, alert, source=source))
            continue
        link = _cap_link(item)
        if link:
            entries.append(FeedEntry(entry_id or link, link=link))
    return entries


def _cap_link(item: ET.Element) -> str:
    """An Atom link (CAP type first), an RSS enclosure, or an RSS link."""
    links = [e for e in item if _local(e.tag) in ("link", "enclosure")]
    for link in links:
        if link.get("type") in _CAP_LINK_TYPES and link.get("href" if _local(link.tag) == "link"
                                                           else "url"):
            return link.get("href") or link.get("url") or ""
    for link in links:
        href = link.get("href") or link.get("url") or (link.text or "").strip()
        if href:
            return href
    return ""


def _child_text(item: ET.Element, names: tuple[str, ...]) -> str | None:
    for child in item:
        if _local(child.tag) in names and child.text and child.text.strip():
            return child.text.strip()
    return None


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
