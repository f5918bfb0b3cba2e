"""The public snapshot: what may be shown to anyone, chosen and rendered once per change.

Only the public words of an alert get in (headline, text, instruction, kind, severity,
times, the drill flag): never its audience, zones, channels, counts or who sent it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dispatcher.alerting.rendering import derive_headline
from dispatcher.cap.format import assess
from dispatcher.domain import AlertKind, AlertState, ChannelKind, Mode
from dispatcher.store.alerts import AlertRecord, Supersession

JSON_MEDIA_TYPE = "application/json"
# Renderings whose text carries no channel prefix, best first, for template-only alerts.
_PLAIN_TEXT_FROM = (ChannelKind.PUSH, ChannelKind.SIGNAGE, ChannelKind.PA, ChannelKind.EMAIL)
# The most urgent kinds first: the banner shows the first alert of the feed.
_KIND_ORDER = {
    AlertKind.EMERGENCY: 0,
    AlertKind.TIMELY_WARNING: 1,
    AlertKind.ADVISORY: 2,
    AlertKind.ALL_CLEAR: 3,
}


@dataclass(frozen=True, slots=True)
class PublicText:
    """An alert's public words in one language."""

    headline: str
    text: str
    instruction: str


@dataclass(frozen=True, slots=True)
class PublicAlert:
    """An alert as the public sees it; nothing about whom it reached or how."""

    id: str
    kind: AlertKind
    severity: str
    mode: Mode
    sent_ms: int
    expires_ms: int
    updates: str | None
    language: str
    texts: dict[str, PublicText]

    @property
    def drill(self) -> bool:
        """True for drills and tests: shown as such, never as real."""
        return self.mode is not Mode.LIVE

    def text_in(self, language: str) -> PublicText:
        """The words in a language, else in the alert's own language."""
        return self.texts.get(language) or self.texts[self.language]


@dataclass(frozen=True, slots=True)
class Representation:
    """One rendered body with its strong validator."""

    body: bytes
    etag: str
    content_type: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Representation:
        """A body and its ETag: the SHA-256 of the bytes, so it changes exactly with them."""
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', content_type)


@dataclass(frozen=True, slots=True)
class PublicState:
    """What the public sees at a moment: active alerts, most urgent first, and the latest
    all clear (when no alert came after it)."""

    active: tuple[PublicAlert, ...]
    all_clear: PublicAlert | None
    valid_until_ms: int | None = None

    @property
    def status(self) -> str:
        """`active`, `all_clear` or `none`."""
        if self.active:
            return "active"
        return "all_clear" if self.all_clear is not None else "none"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state and every public rendering of it, built once and served from memory."""

    state: PublicState
    feed: Representation
    pages: dict[str, Representation] = field(default_factory=dict)
    atom: Representation | None = None


def public_alert(record: AlertRecord) -> PublicAlert:
    """The public part of a stored alert."""
    req = record.request
    text = req.text or ""
    if not text:
        for kind in _PLAIN_TEXT_FROM:
            by_language = record.rendered.get(kind)
            # The page carries the full text: a channel's text derived from it is not it.
            if by_language and not any(m.derived for m in by_language.values()):
                text = next(iter(by_language.values())).text
                break
    texts = {
        req.language: PublicText(
            headline=(req.headline or derive_headline(text)).strip(),
            text=text.strip(),
            instruction=(req.instruction or "").strip(),
        )
    }
    for language, tr in req.translations.items():
        if language != req.language:
            texts[language] = PublicText(
                headline=(tr.headline or derive_headline(tr.text)).strip(),
                text=tr.text.strip(),
                instruction=(tr.instruction or "").strip(),
            )
    grade = assess(record.kind, text, headline=req.headline, instruction=req.instruction,
                   template=req.template)
    return PublicAlert(
        id=record.id,
        kind=record.kind,
        severity=grade.severity,
        mode=record.mode,
        sent_ms=record.created_at,
        expires_ms=record.expires_at,
        updates=record.references_id,
        language=req.language,
        texts=texts,
    )


def _group(mode: Mode) -> bool:
    # A live all clear clears live alerts; a drill's or test's clears drills and tests.
    return mode is Mode.LIVE


@dataclass(frozen=True, slots=True)
class InForce:
    """The alerts in force, most urgent first, and the latest all clear still in force."""

    active: list[AlertRecord]
    all_clear: AlertRecord | None


def in_force(
    records: Iterable[AlertRecord], supersessions: Iterable[Supersession], now_ms: int
) -> InForce:
    """Alerts not cancelled, not expired, not replaced by an update and not cleared by an all
    clear; and the latest all clear still in force. The public page and the console's list of
    active alerts both show this."""
    superseded = {s.references_id for s in supersessions if s.references_id is not None}
    cleared_up_to: dict[bool, tuple[int, str]] = {}
    for s in supersessions:
        if s.kind is AlertKind.ALL_CLEAR and s.references_id is None:
            # An all clear naming no alert ends every earlier one of its group.
            mark = (s.created_at, s.id)
            cleared_up_to[_group(s.mode)] = max(cleared_up_to.get(_group(s.mode), mark), mark)
    live = [
        r for r in records
        if r.state is not AlertState.CANCELLED and r.expires_at > now_ms
    ]
    active = [
        r for r in live
        if r.kind is not AlertKind.ALL_CLEAR
        and r.id not in superseded
        and (r.created_at, r.id) > cleared_up_to.get(_group(r.mode), (-1, ""))
    ]
    clears = [r for r in live if r.kind is AlertKind.ALL_CLEAR]
    latest_clear = max(clears, key=lambda r: (r.created_at, r.id), default=None)
    if latest_clear is not None and any(
        (r.created_at, r.id) > (latest_clear.created_at, latest_clear.id) for r in active
    ):
        # A new alert since: the old all clear no longer describes the campus.
        latest_clear = None
    active.sort(key=lambda r: (_KIND_ORDER[r.kind], r.mode is not Mode.LIVE, -r.created_at))
    return InForce(active, latest_clear)


def select(
    records: Iterable[AlertRecord], supersessions: Iterable[Supersession], now_ms: int
) -> PublicState:
    """Choose what is shown: the alerts `in_force`."""
    chosen = in_force(records, supersessions, now_ms)
    latest_clear = chosen.all_clear
    shown = [*chosen.active, *([latest_clear] if latest_clear is not None else [])]
    return PublicState(
        active=tuple(public_alert(r) for r in chosen.active),
        all_clear=public_alert(latest_clear) if latest_clear is not None else None,
        valid_until_ms=min((r.expires_at for r in shown), default=None),
    )


def iso_time(ms: int) -> str:
    """UTC, seconds precision, with a Z."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_json(alert: PublicAlert) -> dict[str, Any]:
    """One alert in the public feed."""
    own = alert.texts[alert.language]
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "severity": alert.severity.lower(),
        "mode": alert.mode.value,
        "drill": alert.drill,
        "headline": own.headline,
        "text": own.text,
        "instruction": own.instruction,
        "language": alert.language,
        "translations": {
            language: {"headline": t.headline, "text": t.text, "instruction": t.instruction}
            for language, t in sorted(alert.texts.items())
            if language != alert.language
        },
        "sent": iso_time(alert.sent_ms),
        "expires": iso_time(alert.expires_ms),
        "updates": alert.updates,
    }


def feed_json(state: PublicState, *, institution: str, page_url: str) -> bytes:
    """The body of /public/alerts.json; the same state always gives the same bytes."""
    document = {
        "institution": institution,
        "page": page_url,
        "status": state.status,
        "alerts": [alert_json(a) for a in state.active],
        "all_clear": alert_json(state.all_clear) if state.all_clear is not None else None,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_snapshot(
    state: PublicState,
    *,
    institution: str,
    page_url: str,
    pages: dict[str, bytes] | None = None,
    atom: bytes | None = None,
) -> Snapshot:
    """Every representation of a state, each with its ETag."""
    return Snapshot(
        state=state,
        feed=Representation.of(
            feed_json(state, institution=institution, page_url=page_url), JSON_MEDIA_TYPE
        ),
        pages={lang: Representation.of(body, "text/html") for lang, body in (pages or {}).items()},
        atom=Representation.of(atom, "application/atom+xml") if atom is not None else None,
    )
