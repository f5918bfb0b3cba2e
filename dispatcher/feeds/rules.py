"""The relay decision: one upstream CAP alert and what is known of its thread → what to do.

`decide` is pure: the relay gives it the alert, the thread's state, the last relay of the same
event and area, the campus geometry (as a function) and the time, and carries out its answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dispatcher.cap.format import CapAlert, CapInfo, main_info
from dispatcher.feeds.settings import (
    CERTAINTY,
    SEVERITY,
    TEST_SAME_CODES,
    URGENCY,
    Action,
    Rule,
    Rules,
)
from dispatcher.store.feeds import FeedEvent, FeedThread, ThreadState

ZonesOf = Callable[[Sequence[tuple[float, float]]], Sequence[str] | None]


class Outcome(StrEnum):
    """What was done with an upstream message."""

    SENT = "sent"
    PROPOSED = "proposed"
    UPDATED = "updated"
    CLEARED = "cleared"
    IGNORED = "ignored"
    SUPPRESSED = "suppressed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one message: the outcome, why, and for a relay the campus zones
    (None: the whole campus) and the rule that matched."""

    outcome: Outcome
    reason: str
    zones: tuple[str, ...] | None = None
    rule: Rule | None = None
    added_zones: tuple[str, ...] | None = None


def same_code(info: CapInfo) -> str:
    """The SAME event code of an info block ('TOR'), or ''."""
    return info.event_codes.get("SAME", "").strip().upper()


def area_key(info: CapInfo) -> str:
    """A stable digest of where an alert is: its polygons and geocodes."""
    parts = sorted(
        repr((tuple(p for poly in a.polygons for p in poly), tuple(sorted(a.geocodes))))
        for a in info.areas
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def instruction_key(info: CapInfo) -> str:
    """A digest of what people are told to do (times in headlines do not count)."""
    return hashlib.sha256(" ".join(info.instruction.split()).encode()).hexdigest()[:16]


def campus_zones(
    info: CapInfo, zones_of: ZonesOf, campus_geocodes: Sequence[str]
) -> tuple[bool, tuple[str, ...] | None]:
    """Whether the alert's area reaches the campus, and which zones (None: all of it).

    An area with polygons reaches the zones its polygons overlap; one without polygons (NWS
    zone alerts) reaches the whole campus when one of its geocodes is the campus's.
    """
    wanted = {c.strip().upper() for c in campus_geocodes}
    found: list[str] = []
    whole = False
    for area in info.areas:
        if area.polygons:
            for polygon in area.polygons:
                inside = zones_of(polygon)
                if inside is None:
                    whole = True
                else:
                    found.extend(z for z in inside if z not in found)
        elif any(f"{n}:{v}".upper() in wanted for n, v in area.geocodes):
            whole = True
    if whole:
        return True, None
    return bool(found), tuple(sorted(found)) if found else ()


def _at_least(value: str, floor: str, scale: tuple[str, ...]) -> bool:
    rank = scale.index(value) if value in scale else 0
    return rank >= scale.index(floor)


def decide(
    alert: CapAlert,
    *,
    thread: FeedThread | None,
    repeat: FeedEvent | None,
    rules: Rules,
    zones_of: ZonesOf,
    now: datetime,
) -> Decision:
    """What to do with one upstream message, in the order the safety rules are listed."""
    info = main_info(alert)
    same = same_code(info) if info is not None else ""
    if alert.status != "Actual":
        return Decision(Outcome.IGNORED, f"status {alert.status}: never relayed as live")
    if same in TEST_SAME_CODES:
        return Decision(Outcome.IGNORED, f"SAME {same} is a test or demonstration, "
                                         "never relayed as live (even under status Actual)")
    if alert.msg_type == "Cancel":
        if thread is not None and thread.state is ThreadState.ACTIVE:
            return Decision(Outcome.CLEARED, "upstream cancelled")
        if thread is not None and thread.state is ThreadState.PROPOSED:
            return Decision(Outcome.CLEARED, "upstream cancelled before the proposal was sent")
        return Decision(Outcome.IGNORED, "cancel of an alert that was not relayed")
    if alert.msg_type not in ("Alert", "Update"):
        return Decision(Outcome.IGNORED, f"msgType {alert.msg_type} is not an alert")
    if info is None:
        return Decision(Outcome.IGNORED, "no info block")
    if info.expires is not None and info.expires <= now:
        if thread is not None and thread.state in (ThreadState.ACTIVE, ThreadState.PROPOSED):
            return Decision(Outcome.CLEARED, "upstream alert expired")
        return Decision(Outcome.IGNORED, f"expired at {info.expires.isoformat()}: never sent")
    rule_name, rule = rules.rule_for(info.event, same)
    if rule.action is Action.IGNORE:
        return Decision(Outcome.IGNORED, f"rule {rule_name}: ignore")
    for value, floor, scale, name in (
        (info.severity, rules.min_severity, SEVERITY, "severity"),
        (info.urgency, rules.min_urgency, URGENCY, "urgency"),
        (info.certainty, rules.min_certainty, CERTAINTY, "certainty"),
    ):
        if not _at_least(value, floor, scale):
            return Decision(Outcome.IGNORED, f"{name} {value} is below {floor}")
    reaches, zones = campus_zones(info, zones_of, rules.campus_geocodes)
    if not reaches:
        return Decision(Outcome.IGNORED, "the alert's area misses the campus")
    if zones is not None and rule.exclude_zones:
        zones = tuple(z for z in zones if z not in rule.exclude_zones)
        if not zones:
            return Decision(Outcome.IGNORED, "the alert reaches only excluded zones")
    if thread is not None and thread.state in (ThreadState.ACTIVE, ThreadState.PROPOSED):
        same_area = thread.area_key == area_key(info)
        if same_area and thread.instruction_key == instruction_key(info):
            return Decision(Outcome.SUPPRESSED,
                            "update changes only timestamps or expiry: not re-sent", zones, rule)
        added: tuple[str, ...] | None
        if thread.zones is None:
            added = ()
        elif zones is None:
            added = None
        else:
            added = tuple(z for z in zones if z not in thread.zones)
        what = "area" if not same_area else "instructions"
        return Decision(Outcome.UPDATED, f"update changes the {what}", zones, rule, added)
    if thread is not None:
        return Decision(Outcome.IGNORED, f"an update of an upstream alert that was "
                                         f"{thread.state.value}")
    exempt = {e.lower() for e in rules.repeat_exempt}
    if repeat is not None and info.event.lower() not in exempt and same.lower() not in exempt:
        return Decision(
            Outcome.SUPPRESSED,
            f"repeat of {info.event} for the same area within {rules.repeat_window_s // 60} min"
            f" (upstream {repeat.message_key})", zones, rule,
        )
    if rule.action is Action.PROPOSE:
        return Decision(Outcome.PROPOSED, f"rule {rule_name}: propose", zones, rule)
    return Decision(Outcome.SENT, f"rule {rule_name}: send", zones, rule)
