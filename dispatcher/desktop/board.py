"""What a desktop pop-up shows: decided from the zone's retained alert and the event stream."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from channels.devices.acks import AckState

DEVICE_CLASS = "desktop"
DRILL_BANNER = "DRILL - THIS IS A TEST"
TEST_BANNER = "TEST - THIS IS ONLY A TEST"


class Window(StrEnum):
    """How an alert is shown."""

    FULL_SCREEN = "full_screen"  # a live alert: over everything, until acknowledged
    MARKED = "marked"  # a drill or test: a smaller window with the drill banner
    NOTICE = "notice"  # an all clear: a small window that says the danger is over


@dataclass(frozen=True, slots=True)
class PopUp:
    """One alert as the window shows it."""

    alert_id: str
    kind: str
    drill: bool
    window: Window
    title: str
    text: str
    instruction: str = ""
    description: str = ""
    banner: str = ""
    references: str | None = None
    expires_ms: int = 0

    def concerns(self, alert_id: str | None) -> bool:
        """True when alert_id is this alert or the one it updates."""
        return alert_id is not None and alert_id in (self.alert_id, self.references)


@dataclass(frozen=True, slots=True)
class Change:
    """What the window does after a message: show a pop-up, clear it, and which acks to send."""

    show: PopUp | None = None
    clear: bool = False
    acks: tuple[tuple[str, AckState], ...] = ()

    @property
    def nothing(self) -> bool:
        """True when the window stays as it is and no ack goes out."""
        return self.show is None and not self.clear and not self.acks


def pop_up_from(payload: bytes, now_ms: int) -> PopUp | None:
    """The pop-up of an active-alert payload; None when malformed or already expired."""
    try:
        data = json.loads(payload)
        alert_id = str(data["identifier"])
        expires_ms = int(data.get("expires_ms") or 0)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(data, dict) or (expires_ms and expires_ms <= now_ms):
        return None
    section: Any = data.get(DEVICE_CLASS)
    section = section if isinstance(section, dict) else {}
    # The drill flag and the CAP status both count: an exercise is never shown as real,
    # whatever else the payload says.
    drill = bool(data.get("drill")) or data.get("status") in ("Exercise", "Test")
    kind = str(data.get("kind") or "")
    if kind == "all_clear" and not drill:
        window = Window.NOTICE
    else:
        window = Window.MARKED if drill else Window.FULL_SCREEN
    banner = str(section.get("banner") or "")
    if drill and not banner:
        banner = TEST_BANNER if data.get("status") == "Test" else DRILL_BANNER
    title = str(section.get("title") or data.get("headline") or "")
    if banner and title.startswith(banner):
        # The banner has a strip of its own above and below; the heading need not repeat it.
        title = title[len(banner):].lstrip(" :-")
    references = data.get("references")
    return PopUp(
        alert_id=alert_id,
        kind=kind,
        drill=drill,
        window=window,
        title=title,
        text=str(section.get("text") or data.get("text") or ""),
        instruction=str(section.get("instruction") or data.get("instruction") or ""),
        description=str(section.get("description") or data.get("description") or ""),
        banner=banner,
        references=references if isinstance(references, str) else None,
        expires_ms=expires_ms,
    )


@dataclass(slots=True)
class AlertBoard:
    """The pop-up on screen, and the acks sent for each alert, so none is shown twice."""

    zone: str
    showing: PopUp | None = None
    sent: dict[str, list[AckState]] = field(default_factory=dict)

    def on_active(self, payload: bytes, now_ms: int) -> Change:
        """The zone's active-alert topic said something: a new alert, the same again, or clear."""
        if not payload:
            # An empty retained message: the alert was withdrawn from the zone.
            return self._clear()
        popup = pop_up_from(payload, now_ms)
        if popup is None:
            return Change()
        if popup.alert_id in self.sent:
            # Seen before (a reconnect, a restart of the broker): its acks are repeated, in
            # case they were lost with the connection. It is shown again only when it went
            # away unacknowledged and is back: it is still the zone's alert.
            repeat = tuple((popup.alert_id, s) for s in self.sent[popup.alert_id])
            back = (AckState.ACKNOWLEDGED not in self.sent[popup.alert_id]
                    and (self.showing is None or self.showing.alert_id != popup.alert_id))
            if not back:
                return Change(acks=repeat)
            self.showing = popup
            return Change(show=popup, acks=repeat)
        self.showing = popup
        return Change(show=popup, acks=(self._ack(popup.alert_id, AckState.RECEIVED),))

    def on_event(self, payload: bytes) -> Change:
        """The event stream said something: a cancel (or all clear) of what is shown clears it."""
        if self.showing is None:
            return Change()
        try:
            data = json.loads(payload)
            msg_type = str(data.get("msgType") or "")
            kind = str(data.get("kind") or "")
            identifier = data.get("identifier")
            references = data.get("references")
            zones = data.get("zones") or []
        except (ValueError, TypeError, AttributeError, RecursionError):
            return Change()
        if zones and self.zone not in zones:
            return Change()
        ends = msg_type == "Cancel" or kind == "all_clear"
        if ends and (self.showing.concerns(references) or (
                msg_type == "Cancel" and self.showing.concerns(identifier))):
            return self._clear()
        return Change()

    def displayed(self, alert_id: str) -> Change:
        """The window of alert_id is on screen."""
        return Change(acks=(self._ack(alert_id, AckState.DISPLAYED),))

    def acknowledged(self, alert_id: str) -> Change:
        """Its person pressed the button: the window goes."""
        if self.showing is not None and self.showing.alert_id == alert_id:
            self.showing = None
        return Change(clear=True, acks=(self._ack(alert_id, AckState.ACKNOWLEDGED),))

    def _ack(self, alert_id: str, state: AckState) -> tuple[str, AckState]:
        states = self.sent.setdefault(alert_id, [])
        if state not in states:
            states.append(state)
        return alert_id, state

    def _clear(self) -> Change:
        if self.showing is None:
            return Change()
        self.showing = None
        return Change(clear=True)
