"""CAP 1.2 (OASIS Common Alerting Protocol): render an alert as CAP, read an upstream CAP alert."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as defused

from dispatcher.alerting.request import MAX_TEXT, AlertRequest, Translation
from dispatcher.domain import AlertKind, Mode

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_READABLE_NS = (CAP_NS, "urn:oasis:names:tc:emergency:cap:1.1")
CAP_MEDIA_TYPE = "application/cap+xml"
ZONE_GEOCODE = "clarion-zone"
KIND_PARAMETER = "clarion-kind"
TEXT_PARAMETER = "clarion-text"

_STATUS = {Mode.LIVE: "Actual", Mode.DRILL: "Exercise", Mode.TEST: "Test"}
_MODE = {"Actual": Mode.LIVE, "Exercise": Mode.DRILL, "Test": Mode.TEST}
_EVENT = {
    AlertKind.EMERGENCY: "Emergency Notification",
    AlertKind.TIMELY_WARNING: "Timely Warning",
    AlertKind.ADVISORY: "Campus Advisory",
    AlertKind.ALL_CLEAR: "All Clear",
}
# (urgency, severity, certainty): a confirmed emergency is Observed by Clery's definition.
_GRADING = {
    AlertKind.EMERGENCY: ("Immediate", "Severe", "Observed"),
    AlertKind.TIMELY_WARNING: ("Expected", "Moderate", "Likely"),
    AlertKind.ADVISORY: ("Future", "Minor", "Possible"),
    AlertKind.ALL_CLEAR: ("Past", "Minor", "Observed"),
}
_DEFAULT_CATEGORY = {
    AlertKind.EMERGENCY: "Safety",
    AlertKind.TIMELY_WARNING: "Security",
    AlertKind.ADVISORY: "Safety",
    AlertKind.ALL_CLEAR: "Safety",
}
# First match wins, so the more specific hazards come first.
_CATEGORY_WORDS: tuple[tuple[str, str], ...] = (
    ("CBRNE", r"chemical|hazmat|hazardous material|radiation|radiological|nuclear|biological"
              r"|explosive|bomb|suspicious package"),
    ("Security", r"shoot\w*|gunman|gunfire|shots? fired|armed|weapon|gun|knife|lockdown|intruder"
                 r"|attack\w*|robbery|assault|burglary|theft|stalking|homicide|suspect|hostage"
                 r"|threat|police activity|crime"),
    ("Fire", r"fire|smoke|arson|wildfire|burning"),
    ("Met", r"tornado|storm|thunder\w*|lightning|hurricane|blizzard|snow|ice|icy|weather|wind"
            r"|heat|flood\w*|hail"),
    ("Geo", r"earthquake|landslide|tsunami|sinkhole"),
    ("Health", r"outbreak|disease|measles|meningitis|covid|influenza|illness|health|norovirus"),
    ("Env", r"air quality|pollution|contamina\w*|boil water|spill"),
    ("Infra", r"power outage|outage|water main|utility|utilities|elevator|network"),
    ("Transport", r"road closed|closure|traffic|shuttle|bus|parking"),
    ("Rescue", r"rescue|missing person"),
)
_RESPONSE_WORDS: tuple[tuple[str, str], ...] = (
    ("Evacuate", r"evacuat\w*|leave the building|get out"),
    ("Shelter", r"shelter|lock\s?down|stay inside|stay indoors|remain indoors"
                r"|lock (?:the |your )?doors?"),
    ("Avoid", r"avoid|stay away|keep away|do not enter"),
    ("Prepare", r"prepare|be ready|get ready"),
    ("Monitor", r"monitor|stay tuned|watch for"),
)
_FORBIDDEN_ID = re.compile(r"[\s,<&]")
_CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_LANG = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")


@dataclass(frozen=True, slots=True)
class CapArea:
    """One CAP area: a description, optional (lat, lon) polygons and the zone it stands for.

    CAP polygons have no holes, so an area with a zone cut out of it is several polygons.
    """

    description: str
    polygon: tuple[tuple[float, float], ...] = ()
    zone_id: str = ""
    extra_polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()

    @property
    def polygons(self) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Every polygon of the area, the first one first."""
        return tuple(p for p in (self.polygon, *self.extra_polygons) if p)


@dataclass(frozen=True, slots=True)
class CapReference:
    """An earlier CAP message, written `sender,identifier,sent`."""

    sender: str
    identifier: str
    sent: datetime

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True, slots=True)
class Assessment:
    """How CAP grades an alert: what it is about and how urgent, severe and certain it is."""

    category: str
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CapInfo:
    """One `<info>` block of a CAP alert as read."""

    language: str
    categories: tuple[str, ...]
    event: str
    response_types: tuple[str, ...]
    urgency: str
    severity: str
    certainty: str
    expires: datetime | None
    headline: str
    description: str
    instruction: str
    web: str
    parameters: dict[str, str] = field(default_factory=dict)
    areas: tuple[CapArea, ...] = ()
    event_codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CapAlert:
    """A CAP alert as read, before it becomes a campus alert request."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[str, ...]
    note: str
    infos: tuple[CapInfo, ...]


AreaLike = CapArea | tuple[str, Sequence[tuple[float, float]]]


def cap_time(moment: datetime) -> str:
    """A CAP date-time: seconds precision and an explicit `+hh:mm` offset (UTC as +00:00)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("CAP times need a timezone: pass an aware datetime")
    return moment.replace(microsecond=0).isoformat()


def cap_status(mode: Mode) -> str:
    """CAP status for a mode: Actual, Exercise for drills, Test for technical tests."""
    return _STATUS[mode]


def cap_msg_type(kind: AlertKind, references: str | None, *, cancelled: bool = False) -> str:
    """CAP msgType: Cancel when withdrawn, Update for updates and all-clears, else Alert."""
    if cancelled:
        return "Cancel"
    if references or kind is AlertKind.ALL_CLEAR:
        return "Update"
    return "Alert"


def assess(
    kind: AlertKind,
    text: str = "",
    *,
    headline: str | None = None,
    instruction: str | None = None,
    template: str | None = None,
) -> Assessment:
    """Category, event, urgency, severity, certainty and response types for an alert."""
    about = " ".join(p for p in (template and template.replace("_", " "), headline, text) if p)
    category = _first_match(_CATEGORY_WORDS, about.lower()) or _DEFAULT_CATEGORY[kind]
    urgency, severity, certainty = _GRADING[kind]
    if kind is AlertKind.ALL_CLEAR:
        responses: tuple[str, ...] = ("AllClear",)
    else:
        todo = " ".join(p for p in (instruction, text) if p).lower()
        responses = tuple(
            name for name, words in _RESPONSE_WORDS if re.search(rf"\b(?:{words})\b", todo)
        )
    event = template.replace("_", " ").strip().title() if template else _EVENT[kind]
    return Assessment(category, event, urgency, severity, certainty, responses)


def _first_match(table: tuple[tuple[str, str], ...], text: str) -> str | None:
    for name, words in table:
        if re.search(rf"\b(?:{words})\b", text):
            return name
    return None


def headline_of(text: str) -> str:
    """A headline from a short text: its first sentence, at most 80 characters."""
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".")
    return first if len(first) <= 80 else first[:79].rstrip() + "…"


def render_cap(
    request: AlertRequest,
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    expires: datetime | None = None,
    default_expires_s: int = 3600,
    cancelled: bool = False,
    references: Sequence[CapReference] = (),
    areas: Sequence[AreaLike] = (),
    web: str | None = None,
    sender_name: str | None = None,
    texts: Mapping[str, str] | None = None,
) -> bytes:
    """The alert as a CAP 1.2 document (UTF-8 bytes), elements in the schema's order.

    `texts` gives the rendered short text per language when the request names a template
    instead of a text; `expires` defaults to `sent` plus the request's expires_in.
    """
    for name, value in (("identifier", identifier), ("sender", sender)):
        if not value or _FORBIDDEN_ID.search(value):
            raise ValueError(f"CAP {name} {value!r} must be non-empty, without spaces, ',' '<' '&'")
    sent_text = cap_time(sent)
    sent = sent.replace(microsecond=0)
    if expires is None:
        seconds = request.expires_in or default_expires_s
        expires = datetime.fromtimestamp(sent.timestamp() + seconds, tz=sent.tzinfo)
    expires_text = cap_time(expires)

    root = ET.Element("alert", {"xmlns": CAP_NS})
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", sent_text)
    _sub(root, "status", cap_status(request.mode))
    _sub(root, "msgType", cap_msg_type(request.kind, request.references, cancelled=cancelled))
    _sub(root, "scope", "Public")
    if request.drill is not None:
        _sub(root, "note", request.drill.description)
    if references:
        _sub(root, "references", " ".join(str(r) for r in references))

    shown_areas = [_area(a) for a in areas]
    parts = _parts(request, texts or {})
    # Graded once, from the alert's own language, so every info block agrees.
    first = parts[0][1]
    grade = assess(
        request.kind, first.text, headline=first.headline, instruction=first.instruction,
        template=request.template,
    )
    for lang, part in parts:
        info = ET.SubElement(root, "info")
        _sub(info, "language", lang)
        _sub(info, "category", grade.category)
        _sub(info, "event", grade.event)
        for response in grade.response_types:
            _sub(info, "responseType", response)
        _sub(info, "urgency", grade.urgency)
        _sub(info, "severity", grade.severity)
        _sub(info, "certainty", grade.certainty)
        _sub(info, "expires", expires_text)
        if sender_name:
            _sub(info, "senderName", sender_name)
        _sub(info, "headline", part.headline or headline_of(part.text))
        _sub(info, "description", part.description or part.text)
        if part.instruction:
            _sub(info, "instruction", part.instruction)
        link = request.web or web
        if link:
            _sub(info, "web", link)
        _parameter(info, KIND_PARAMETER, request.kind.value)
        if part.description and part.description != part.text:
            _parameter(info, TEXT_PARAMETER, part.text)
        for area in shown_areas:
            _render_area(info, area)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


@dataclass(frozen=True, slots=True)
class _Part:
    text: str
    headline: str | None
    instruction: str | None
    description: str | None


def _parts(request: AlertRequest, texts: Mapping[str, str]) -> list[tuple[str, _Part]]:
    fallback = request.text or request.headline or request.description or _EVENT[request.kind]
    main = _Part(
        texts.get(request.language) or fallback,
        request.headline, request.instruction, request.description,
    )
    out = [(request.language, main)]
    for lang, tr in request.translations.items():
        if lang == request.language:
            continue
        out.append((lang, _Part(texts.get(lang) or tr.text, tr.headline, tr.instruction,
                                tr.description)))
    return out


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text
    return child


def _parameter(info: ET.Element, name: str, value: str) -> None:
    param = ET.SubElement(info, "parameter")
    _sub(param, "valueName", name)
    _sub(param, "value", value)


def _area(area: AreaLike) -> CapArea:
    if isinstance(area, CapArea):
        return area
    description, polygon = area
    return CapArea(description, tuple((float(lat), float(lon)) for lat, lon in polygon))


def _render_area(info: ET.Element, area: CapArea) -> None:
    node = ET.SubElement(info, "area")
    _sub(node, "areaDesc", area.description or area.zone_id or "Campus")
    for polygon in area.polygons:
        points = [p for p in polygon if math.isfinite(p[0]) and math.isfinite(p[1])]
        if len(set(points)) >= 3:
            if points[0] != points[-1]:
                points.append(points[0])
            _sub(node, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in points))
    if area.zone_id:
        geocode = ET.SubElement(node, "geocode")
        _sub(geocode, "valueName", ZONE_GEOCODE)
        _sub(geocode, "value", area.zone_id)


# --- reading -------------------------------------------------------------------------------


def read_cap(xml: bytes) -> CapAlert:
    """Read a CAP 1.2 (or 1.1) alert; ValueError says what is missing or malformed."""
    if not xml.strip():
        raise ValueError("CAP document is empty")
    # Entities and DTDs are how XML bombs get in; CAP has no use for either. The check runs
    # in the parser, so no encoding of the document can hide a declaration from it.
    try:
        root = defused.fromstring(xml, forbid_dtd=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise ValueError("CAP document must not contain a DTD or entity declarations") from None
    except ET.ParseError as exc:
        raise ValueError(f"CAP document is not well-formed XML: {exc}") from None
    ns = _namespace(root.tag)
    if ns not in _READABLE_NS or _local(root.tag) != "alert":
        raise ValueError(f"not a CAP alert: root element is {root.tag!r}")
    q = _Reader(root, ns)
    sent = _parse_time(q.required(root, "sent"), "sent")
    infos = tuple(_read_info(q, node, i) for i, node in enumerate(q.all(root, "info")))
    references = tuple((q.text(root, "references") or "").split())
    return CapAlert(
        identifier=q.required(root, "identifier"),
        sender=q.required(root, "sender"),
        sent=sent,
        status=q.required(root, "status"),
        msg_type=q.required(root, "msgType"),
        scope=q.required(root, "scope"),
        references=references,
        note=q.text(root, "note") or "",
        infos=infos,
    )


def _read_info(q: _Reader, node: ET.Element, index: int) -> CapInfo:
    where = f"info[{index}]"
    expires_text = q.text(node, "expires")
    parameters = {}
    for param in q.all(node, "parameter"):
        name, value = q.text(param, "valueName"), q.text(param, "value")
        if name:
            parameters[name] = value or ""
    event_codes = {}
    for code in q.all(node, "eventCode"):
        name, value = q.text(code, "valueName"), q.text(code, "value")
        if name and value:
            event_codes[name] = value
    areas = []
    for area in q.all(node, "area"):
        zone = ""
        geocodes = []
        for geocode in q.all(area, "geocode"):
            name, value = q.text(geocode, "valueName") or "", q.text(geocode, "value") or ""
            if name.lower() == ZONE_GEOCODE:
                zone = value
            elif name and value:
                geocodes.append((name, value))
        polygons = [
            _parse_polygon(p.text, where)
            for p in q.all(area, "polygon") if p.text and p.text.strip()
        ]
        areas.append(CapArea(
            q.text(area, "areaDesc") or "", polygons[0] if polygons else (), zone,
            tuple(polygons[1:]), tuple(geocodes),
        ))
    categories = tuple(c.text.strip() for c in q.all(node, "category") if c.text)
    if not categories:
        raise ValueError(f"CAP {where}: category is required")
    return CapInfo(
        language=q.text(node, "language") or "en-US",
        categories=categories,
        event=q.required(node, "event", where),
        response_types=tuple(r.text.strip() for r in q.all(node, "responseType") if r.text),
        urgency=q.required(node, "urgency", where),
        severity=q.required(node, "severity", where),
        certainty=q.required(node, "certainty", where),
        expires=_parse_time(expires_text, f"{where}.expires") if expires_text else None,
        headline=q.text(node, "headline") or "",
        description=q.text(node, "description") or "",
        instruction=q.text(node, "instruction") or "",
        web=q.text(node, "web") or "",
        parameters=parameters,
        areas=tuple(areas),
        event_codes=event_codes,
    )


class _Reader:
    """Namespace-aware lookups on one CAP document."""

    def __init__(self, root: ET.Element, ns: str) -> None:
        self.root = root
        self.prefix = f"{{{ns}}}" if ns else ""

    def all(self, parent: ET.Element, tag: str) -> list[ET.Element]:
        return parent.findall(self.prefix + tag)

    def text(self, parent: ET.Element, tag: str) -> str | None:
        found = parent.find(self.prefix + tag)
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def required(self, parent: ET.Element, tag: str, where: str = "alert") -> str:
        value = self.text(parent, tag)
        if value is None:
            raise ValueError(f"CAP {where}: {tag} is required")
        return value


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_time(text: str, where: str) -> datetime:
    if not _CAP_TIME.match(text):
        raise ValueError(f"CAP {where}: {text!r} is not a date-time with a +hh:mm offset")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"CAP {where}: {text!r} is not a valid date-time") from None


def _parse_polygon(text: str, where: str) -> tuple[tuple[float, float], ...]:
    try:
        points = tuple(
            (float(lat), float(lon))
            for lat, lon in (pair.split(",") for pair in text.split())
        )
    except ValueError:
        shown = text[:40]
        raise ValueError(f"CAP {where}: polygon {shown!r} is not 'lat,lon lat,lon ...'") from None
    return points


def parse_cap(
    xml: bytes,
    *,
    now: datetime | None = None,
    zones_of: Callable[[Sequence[tuple[float, float]]], Sequence[str] | None] | None = None,
) -> dict[str, Any]:
    """An upstream CAP alert (county, NWS) as a campus alert request dict, still to be validated.

    The kind comes from Clarion's own `clarion-kind` parameter when present, else from
    severity and urgency; the text from headline and instruction; the mode from status.
    Cancels, acks, errors, system messages and drafts are refused: they are not alerts.
    An area names its campus zone by geocode; an area with polygons only selects the zones
    its polygons overlap (`zones_of`: None for a polygon around the whole campus), and one
    that overlaps no zone is refused rather than widened to the whole campus.
    """
    return request_from_cap(read_cap(xml), now=now, zones_of=zones_of)


def request_from_cap(
    alert: CapAlert,
    *,
    now: datetime | None = None,
    zones_of: Callable[[Sequence[tuple[float, float]]], Sequence[str] | None] | None = None,
) -> dict[str, Any]:
    """A CAP alert already read (from XML, or from the NWS API's GeoJSON) as a request dict;
    the rules of `parse_cap`."""
    now = now or datetime.now(UTC)
    mode = _MODE.get(alert.status)
    if mode is None:
        raise ValueError(f"CAP status {alert.status!r} is not an alert to relay")
    if alert.msg_type not in ("Alert", "Update"):
        raise ValueError(
            f"CAP msgType {alert.msg_type!r} is not an alert: cancel the campus alert instead"
        )
    if not alert.infos:
        raise ValueError("CAP alert has no info block")
    main = _main_info(alert.infos)
    language = _language(main.language)
    kind = _kind_of(main)

    request: dict[str, Any] = {"kind": kind.value, "mode": mode.value, "language": language}
    request.update(_texts(main, own=KIND_PARAMETER in main.parameters))
    if main.web and len(main.web) <= 500:
        request["web"] = main.web
    translations: dict[str, Any] = {}
    for info in alert.infos:
        code = _language(info.language)[:2]
        if info is main or code == language[:2] or code in translations:
            continue
        texts = _texts(info, own=KIND_PARAMETER in info.parameters)
        translations[code] = {k: v for k, v in texts.items() if k in Translation.model_fields}
    if translations:
        request["translations"] = translations
    if main.expires is not None:
        left = math.ceil((main.expires - now).total_seconds())
        if left <= 0:
            raise ValueError(f"CAP alert expired at {cap_time(main.expires)}")
        request["expires_in"] = max(60, min(left, 7 * 86400))
    zones: list[str] | None = list(dict.fromkeys(a.zone_id for a in main.areas if a.zone_id))
    for area in main.areas:
        if area.zone_id or not area.polygons or zones_of is None or zones is None:
            continue
        found: list[str] = []
        for polygon in area.polygons:
            inside = zones_of(polygon)
            if inside is None:  # the whole campus: nothing narrows the audience
                zones = None
                break
            found.extend(inside)
        else:
            if not found:
                raise ValueError(
                    f"CAP area {area.description!r}: its polygon overlaps no campus zone"
                )
            zones.extend(z for z in found if z not in zones)
    if zones:
        request["zones"] = zones[:100]
    if alert.references:
        parts = alert.references[-1].split(",")
        if len(parts) == 3 and parts[1]:
            request["references"] = parts[1][:100]
    if mode is not Mode.LIVE:
        request["drill"] = {"description": alert.note or main.headline or main.event}
    return request


def _main_info(infos: Sequence[CapInfo]) -> CapInfo:
    for info in infos:
        if info.language.lower().startswith("en"):
            return info
    return infos[0]


def _language(code: str) -> str:
    parts = code.replace("_", "-").split("-")
    base = parts[0].lower()[:2]
    if len(parts) > 1 and len(parts[1]) == 2 and parts[1].isalpha():
        candidate = f"{base}-{parts[1].upper()}"
        if _LANG.match(candidate):
            return candidate
    return base if _LANG.match(base) else "en"


def _kind_of(info: CapInfo) -> AlertKind:
    own = info.parameters.get(KIND_PARAMETER)
    if own in {k.value for k in AlertKind}:
        return AlertKind(own)
    if "AllClear" in info.response_types:
        return AlertKind.ALL_CLEAR
    if info.severity in ("Extreme", "Severe") and info.urgency in ("Immediate", "Expected"):
        return AlertKind.EMERGENCY
    return AlertKind.ADVISORY


def _texts(info: CapInfo, *, own: bool) -> dict[str, str]:
    """text, headline, instruction, description of one info, clipped to the request's limits."""
    out: dict[str, str] = {}
    if own:
        text = info.parameters.get(TEXT_PARAMETER) or info.description
    else:
        joined = ". ".join(p.rstrip(". ") for p in (info.headline, info.instruction) if p)
        text = (joined + ".") if joined else info.description
    text = text or info.event
    out["text"] = text[:MAX_TEXT]
    if info.headline and not (own and info.headline == headline_of(out["text"])):
        out["headline"] = info.headline[:200]
    if info.instruction:
        out["instruction"] = info.instruction[:MAX_TEXT]
    if info.description and not (own and info.description == out["text"]):
        out["description"] = info.description[:MAX_TEXT]
    return out


def main_info(alert: CapAlert) -> CapInfo | None:
    """The info block a campus alert is made from: the first in English, else the first."""
    return _main_info(alert.infos) if alert.infos else None
