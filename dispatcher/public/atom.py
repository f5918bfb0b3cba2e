"""The Atom feed of active alerts (`GET /v1/feeds/cap`), as bytes from records already read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

from dispatcher.cap.format import CAP_MEDIA_TYPE, cap_time
from dispatcher.store.alerts import AlertRecord

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def atom_document(
    records: Sequence[AlertRecord], *, base_url: str, institution: str, updated_ms: int
) -> bytes:
    """Atom feed of the given alerts, newest first, each linking to its CAP; `updated_ms` is
    the feed's time when it has no entry."""
    base = base_url
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _text(feed, "id", f"{base}/v1/feeds/cap")
    _text(feed, "title", f"{institution} active alerts")
    newest = max((r.created_at for r in records), default=updated_ms)
    _text(feed, "updated", cap_time(_moment(newest)))
    ET.SubElement(feed, "link", {"rel": "self", "href": f"{base}/v1/feeds/cap",
                                 "type": ATOM_MEDIA_TYPE})
    author = ET.SubElement(feed, "author")
    _text(author, "name", institution)
    for record in records:
        entry = ET.SubElement(feed, "entry")
        _text(entry, "id", f"{base}/v1/alerts/{record.id}")
        req = record.request
        headline = req.headline or (req.text or "").split(". ")[0][:80] or record.kind.value
        marker = {"drill": "[DRILL] ", "test": "[TEST] "}.get(record.mode.value, "")
        _text(entry, "title", f"{marker}{headline}")
        _text(entry, "published", cap_time(_moment(record.created_at)))
        _text(entry, "updated", cap_time(_moment(record.created_at)))
        if req.text:
            _text(entry, "summary", req.text)
        ET.SubElement(entry, "category", {"term": record.kind.value})
        ET.SubElement(entry, "category", {"term": record.mode.value})
        ET.SubElement(entry, "link", {"rel": "alternate", "type": CAP_MEDIA_TYPE,
                                      "href": f"{base}/v1/alerts/{record.id}/cap"})
    ET.indent(feed)
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text
