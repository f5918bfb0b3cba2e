"""What devices are sent: the CAP fields every class reads, and each class's own section."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from channels.devices.settings import DeviceSettings
from dispatcher.cap.format import assess, cap_msg_type, cap_status, cap_time
from dispatcher.domain import AlertContext, AlertKind, ChannelKind, Message, Mode

# Siren patterns: what a siren sounds for an alert.
PATTERN_ALERT = "alert"
PATTERN_ATTACK = "attack"
PATTERN_TEST = "test"
PATTERN_CANCEL = "cancel"
_ATTACK_WORDS = ("shooter", "gunman", "gunfire", "shots fired", "armed", "attack", "lockdown",
                 "lock down", "intruder", "hostage")

# How a desktop pop-up shows an alert: over everything for a live one, a marked smaller window
# for a drill or test, so nobody takes an exercise for the real thing.
WINDOW_FULL_SCREEN = "full_screen"
WINDOW_MARKED = "marked"

# How long a cancel stays on the event stream at least, for devices that reconnect late.
CANCEL_EVENT_MIN_MS = 3_600_000

# Ranks of what a zone shows: a weightier alert is not replaced by a lighter one.
RANK_DRILL = 1
RANK_LIVE = 4
_RANKS = {AlertKind.EMERGENCY: 4, AlertKind.ALL_CLEAR: 4, AlertKind.TIMELY_WARNING: 3,
          AlertKind.ADVISORY: 2}


def siren_pattern(alert: AlertContext, text: str = "") -> str:
    """The siren pattern: test for drills and tests, cancel for all-clears, attack or alert."""
    if alert.drill:
        return PATTERN_TEST
    if alert.kind is AlertKind.ALL_CLEAR:
        return PATTERN_CANCEL
    lowered = text.lower()
    if any(word in lowered for word in _ATTACK_WORDS):
        return PATTERN_ATTACK
    return PATTERN_ALERT


def rank(alert: AlertContext) -> int:
    """How weighty the alert is on a zone's retained topic."""
    # A drill never pushes a live alert off a sign; an advisory never hides an emergency.
    if alert.drill:
        return RANK_DRILL
    return _RANKS[alert.kind]


def iso_time(ms: int) -> str:
    """Milliseconds since the epoch as a CAP time."""
    return cap_time(datetime.fromtimestamp(ms / 1000, tz=UTC))


def common_payload(alert: AlertContext) -> dict[str, Any]:
    """The CAP fields every device class reads, from the alert and its first rendering."""
    first_lang, first = next(iter(alert.messages.items()), ("en", Message(text="")))
    cap = alert.cap
    headline = cap.headline or first.title or first.text[:80]
    grade = assess(
        alert.kind, first.text, headline=headline, instruction=cap.instruction or None,
        template=cap.template or None,
    )
    payload: dict[str, Any] = {
        "identifier": alert.alert_id,
        "sender": cap.sender,
        "sent": iso_time(alert.now_ms),
        "status": cap_status(alert.mode),
        "msgType": cap_msg_type(alert.kind, alert.references),
        "kind": alert.kind.value,
        "mode": alert.mode.value,
        "drill": alert.drill,
        "category": grade.category,
        "event": grade.event,
        "urgency": grade.urgency,
        "severity": grade.severity,
        "certainty": grade.certainty,
        "responseType": list(grade.response_types),
        "headline": headline,
        "instruction": cap.instruction,
        "description": cap.description,
        "text": first.text,
        "language": first_lang,
        "expires": iso_time(alert.expires_ms),
        "expires_ms": alert.expires_ms,
        "references": alert.references,
        "zones": list(alert.zones),
    }
    others = {lang: {"headline": m.title, "text": m.text}
              for lang, m in alert.messages.items() if lang != first_lang}
    if others:
        payload["translations"] = others
    return payload


def class_section(
    kind: ChannelKind, alert: AlertContext, settings: DeviceSettings
) -> dict[str, Any]:
    """What one device class does with the alert: pattern, sign text or speech."""
    message = next(iter(alert.messages.values()), Message(text=""))
    if kind is ChannelKind.SIREN:
        return {"pattern": siren_pattern(alert, f"{message.title} {message.text}")}
    if kind is ChannelKind.SIGNAGE:
        banner = ""
        if alert.drill:
            banner = settings.test_banner if alert.mode is Mode.TEST else settings.drill_banner
        return {
            "title": message.title or alert.cap.headline,
            "text": message.text,
            "instruction": alert.cap.instruction,
            "banner": banner,
        }
    if kind is ChannelKind.DESKTOP:
        banner = ""
        if alert.drill:
            banner = settings.test_banner if alert.mode is Mode.TEST else settings.drill_banner
        return {
            "title": message.title or alert.cap.headline,
            "text": message.text,
            "instruction": alert.cap.instruction,
            "description": alert.cap.description,
            "banner": banner,
            "window": WINDOW_MARKED if alert.drill else WINDOW_FULL_SCREEN,
            "ack_required": True,
        }
    # The renderer's PA speech already carries the drill preamble in the alert's language;
    # any other text gets ours, so no speaker ever announces a drill as real.
    speech = message.speech
    if not speech:
        speech = message.text
        if alert.drill and not speech.lower().startswith(settings.drill_preamble.lower()):
            speech = f"{settings.drill_preamble} {speech}"
    return {"speech": speech, "repeat": 1 if alert.drill else 2}


def zone_payload(
    kind: ChannelKind, alert: AlertContext, zone: str, settings: DeviceSettings
) -> dict[str, Any]:
    """A zone's active-alert payload with one class's section."""
    payload = common_payload(alert)
    payload["zone"] = zone
    payload[kind.value] = class_section(kind, alert, settings)
    return payload


def cancel_event(alert: AlertContext, zones: list[str]) -> dict[str, Any]:
    """The event that announces an alert's withdrawal from these zones."""
    return {
        "identifier": alert.alert_id,
        "msgType": "Cancel",
        "status": cap_status(alert.mode),
        "kind": alert.kind.value,
        "mode": alert.mode.value,
        "drill": alert.drill,
        "sent": iso_time(alert.now_ms),
        "references": alert.alert_id,
        "zones": zones,
        ChannelKind.SIREN.value: {"pattern": PATTERN_CANCEL},
    }
