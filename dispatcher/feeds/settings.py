"""The `[feeds]` config: upstream feeds (`[feeds.<name>]`) and the relay rules (`[feeds.rules]`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from dispatcher.access.credentials import SettingsModel
from dispatcher.domain import ChannelKind

# CAP's scales, least first: a threshold keeps what is at least as high.
SEVERITY = ("Unknown", "Minor", "Moderate", "Severe", "Extreme")
URGENCY = ("Unknown", "Past", "Future", "Expected", "Immediate")
CERTAINTY = ("Unknown", "Unlikely", "Possible", "Likely", "Observed")

# SAME event codes of tests and demonstrations: never relayed as live, whatever the status says.
TEST_SAME_CODES = frozenset({"RMT", "RWT", "DMO", "NPT"})


class FeedKind(StrEnum):
    """The wire format of an upstream feed."""

    NWS = "nws"
    CAP_ATOM = "cap-atom"
    CAP_RSS = "cap-rss"


class Action(StrEnum):
    """What a rule does with a matching upstream alert."""

    SEND = "send"
    PROPOSE = "propose"
    IGNORE = "ignore"


class FeedSource(SettingsModel):
    """One upstream feed, polled on its own schedule."""

    url: str = Field(min_length=1, description="the feed's URL; for nws, the API's base URL")
    kind: FeedKind = FeedKind.CAP_ATOM
    interval_s: float = Field(default=60.0, gt=0, description="seconds between polls")
    points: list[str] = Field(
        default_factory=list, description="nws: 'lat,lon' points, polled at /alerts/active?point="
    )
    zones: list[str] = Field(
        default_factory=list, description="nws: forecast or county zones, /alerts/active/zone/ID"
    )
    enabled: bool = True
    timeout_s: float = Field(
        default=10.0, gt=0, description="the whole fetch, redirects and body included"
    )
    max_backoff_s: float = Field(default=600.0, gt=0, description="longest pause after failures")
    user_agent: str = Field(
        default="Clarion (alerts@example.edu)",
        description="the NWS API asks every client to name itself and a contact",
    )


class Rule(SettingsModel):
    """The action for one event name or SAME code, with the channels it goes out on."""

    action: Action
    channels: list[ChannelKind] | None = Field(
        default=None, description="channel kinds; default the alert kind's channels"
    )
    exclude_zones: list[str] = Field(
        default_factory=list, description="campus zones never included for this event"
    )


class Rules(SettingsModel):
    """`[feeds.rules]`: per event name or SAME code, and the thresholds every relay meets."""

    default: Action = Field(default=Action.IGNORE, description="for events no rule names")
    min_severity: str = Field(default="Unknown", pattern="^(" + "|".join(SEVERITY) + ")$")
    min_urgency: str = Field(default="Unknown", pattern="^(" + "|".join(URGENCY) + ")$")
    min_certainty: str = Field(default="Unknown", pattern="^(" + "|".join(CERTAINTY) + ")$")
    repeat_window_s: int = Field(
        default=1800, ge=0, description="repeats of an event for the same area are suppressed"
    )
    repeat_exempt: list[str] = Field(
        default_factory=lambda: ["Tornado Warning", "TOR"],
        description="events always relayed, even as repeats",
    )
    campus_geocodes: list[str] = Field(
        default_factory=list,
        description="'SAME:042101' or 'UGC:PAZ071': an area with one of them covers the campus",
    )
    events: dict[str, Rule] = Field(
        default_factory=dict, description="by event name ('Tornado Warning') or SAME code ('TOR')"
    )

    def rule_for(self, event: str, same: str) -> tuple[str, Rule]:
        """The rule for an event, by SAME code first, then by name; the default otherwise."""
        for key in (same, event):
            if key and key in self.events:
                return key, self.events[key]
        lowered = {k.lower(): (k, r) for k, r in self.events.items()}
        if event.lower() in lowered:
            return lowered[event.lower()]
        return "default", Rule(action=self.default)


class FeedsSettings(SettingsModel):
    """Upstream alert feeds and the rules for relaying them."""

    enabled: bool = Field(default=True, description="poll the feeds below")
    first_poll_delay_s: float = Field(
        default=2.0, ge=0, description="pause after start before the first poll"
    )
    rules: Rules = Field(default_factory=Rules)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="origins ('https://alerts.example.gov') besides each feed's own that its "
        "redirects and linked CAP documents may be fetched from; nothing else is fetched",
    )
    max_body_bytes: int = Field(
        default=5_000_000, ge=1024, description="largest feed or linked document read"
    )
    sources: dict[str, FeedSource] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _named_feeds(cls, data: Any) -> Any:
        """`[feeds.<name>]` tables are feeds; `rules` and `enabled` are settings."""
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {"sources": dict(data.get("sources", {}))}
        for key, value in data.items():
            if key in ("enabled", "rules", "first_poll_delay_s", "allowed_hosts",
                       "max_body_bytes"):
                out[key] = value
            elif key != "sources":
                out["sources"][key] = value
        return out
