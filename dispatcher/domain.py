"""Domain values shared by the engine, the channels and the audience resolver."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class AlertKind(StrEnum):
    """The kinds of alert Clarion sends; the first two are the Clery Act's."""

    EMERGENCY = "emergency"
    TIMELY_WARNING = "timely_warning"
    ADVISORY = "advisory"
    ALL_CLEAR = "all_clear"


class Mode(StrEnum):
    """Whether an alert is real, a drill (CAP Exercise) or a technical test (CAP Test)."""

    LIVE = "live"
    DRILL = "drill"
    TEST = "test"


class ChannelKind(StrEnum):
    """What a delivery travels on; device kinds come first in urgency."""

    SIREN = "siren"
    SIGNAGE = "signage"
    PA = "pa"
    DESKTOP = "desktop"
    SMS = "sms"
    PUSH = "push"
    VOICE = "voice"
    EMAIL = "email"
    BROADCAST = "broadcast"
    """The institution's own accounts and rooms (Teams, Slack, Mastodon...), not people."""
    WEBHOOK = "webhook"
    """Campus systems subscribed to signed webhooks (pop-ups, CAD, building management)."""

    @property
    def is_device(self) -> bool:
        """True for hardware reached over MQTT rather than a person's address."""
        return self in DEVICE_KINDS

    @property
    def is_institutional(self) -> bool:
        """True for destinations the channel's config names, not the audience's people."""
        return self in INSTITUTIONAL_KINDS

    @property
    def urgency(self) -> int:
        """Lower goes first: devices and webhooks, then SMS, push and broadcast targets, then
        voice calls, then email."""
        return _URGENCY[self]


DEVICE_KINDS = frozenset(
    {ChannelKind.SIREN, ChannelKind.SIGNAGE, ChannelKind.PA, ChannelKind.DESKTOP}
)
INSTITUTIONAL_KINDS = frozenset({ChannelKind.BROADCAST, ChannelKind.WEBHOOK})
_URGENCY = {
    ChannelKind.SIREN: 0,
    ChannelKind.SIGNAGE: 0,
    ChannelKind.PA: 0,
    ChannelKind.DESKTOP: 0,
    ChannelKind.SMS: 1,
    ChannelKind.PUSH: 1,
    ChannelKind.VOICE: 2,
    ChannelKind.EMAIL: 3,
    # Campus systems relay to screens and pop-ups: as soon as devices.
    ChannelKind.WEBHOOK: 0,
    ChannelKind.BROADCAST: 1,
}


class Precedence(IntEnum):
    """Order of urgency across alerts: a lower class goes first on every channel and sender."""

    LIVE_EMERGENCY = 0
    """Live emergencies, their updates and all clears."""
    LIVE_WARNING = 1
    """Live timely warnings."""
    ADVISORY = 2
    DRILL = 3
    """Drills and technical tests."""

    @classmethod
    def of(cls, kind: AlertKind, mode: Mode) -> Precedence:
        """The class of an alert of this kind and mode."""
        if mode is not Mode.LIVE:
            return cls.DRILL
        return _PRECEDENCE[kind]

    @classmethod
    def of_rank(cls, rank: int) -> Precedence:
        """The class a rank (see `urgency_rank`) belongs to."""
        return cls(min(max(rank // RANK_CLASS_SPAN, 0), cls.DRILL))


_PRECEDENCE = {
    AlertKind.EMERGENCY: Precedence.LIVE_EMERGENCY,
    AlertKind.ALL_CLEAR: Precedence.LIVE_EMERGENCY,
    AlertKind.TIMELY_WARNING: Precedence.LIVE_WARNING,
    AlertKind.ADVISORY: Precedence.ADVISORY,
}
# A rank is the class times this plus the alert's creation time in ms (within a class, the
# earlier alert first); ms since 1970 stay below it until the year 2286.
RANK_CLASS_SPAN = 10_000_000_000_000


def urgency_rank(kind: AlertKind, mode: Mode, created_ms: int) -> int:
    """One sortable number for an alert's place in the order of urgency: lower goes first."""
    return int(Precedence.of(kind, mode)) * RANK_CLASS_SPAN + max(0, created_ms)


class AlertState(StrEnum):
    """Life of an alert as the API reports it."""

    DISPATCHING = "dispatching"
    DONE = "done"
    CANCELLED = "cancelled"


class DeliveryState(StrEnum):
    """Life of one delivery (one recipient on one channel) in the outbox."""

    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Outcome(StrEnum):
    """What a channel says about one delivery after trying it."""

    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    DEFERRED = "deferred"
    """Not handed over: it gave way to a more urgent alert. Back to the queue at once, and
    the try does not count as an attempt."""


def recipient_hash(value: str) -> str:
    """A stable, non-reversible tag for a person or address, safe for logs and metrics."""
    return hashlib.sha256(("clarion:" + value).encode()).hexdigest()[:12]


# Where a rendering of an alert with a question puts the person's own answer-page link.
ANSWER_LINK = "{answer_link}"


@dataclass(frozen=True, slots=True)
class Message:
    """One alert rendered for one channel and language."""

    text: str
    title: str = ""
    subject: str = ""
    body: str = ""
    html: str = ""
    speech: str = ""
    # True when the text is shaped from a longer one (lead, instruction, link to the full
    # text on the public page) because the whole would not fit this channel.
    derived: bool = False

    @property
    def has_link(self) -> bool:
        """True when the rendering waits for a per-recipient answer link."""
        return ANSWER_LINK in self.text or ANSWER_LINK in self.body or ANSWER_LINK in self.html

    def with_link(self, url: str) -> Message:
        """The rendering with one person's answer link in place (or the link line dropped)."""
        if not self.has_link:
            return self

        def put(value: str, link: str) -> str:
            if link:
                return value.replace(ANSWER_LINK, link)
            return "\n".join(line for line in value.split("\n") if ANSWER_LINK not in line)

        safe = url.replace("&", "&amp;").replace('"', "&quot;")
        return Message(put(self.text, url), self.title, self.subject, put(self.body, url),
                       put(self.html, safe), self.speech, self.derived)


@dataclass(frozen=True, slots=True)
class CapInfo:
    """The CAP parts of an alert that channels show as given; empty when not given."""

    sender: str = ""
    headline: str = ""
    instruction: str = ""
    description: str = ""
    template: str = ""


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What every stage and channel knows about the alert it works on; read-only."""

    alert_id: str
    kind: AlertKind
    mode: Mode
    now_ms: int
    expires_ms: int
    """The alert's expiry, which is also the deadline of every delivery."""
    messages: dict[str, Message] = field(default_factory=dict)
    zones: tuple[str, ...] = ()
    references: str | None = None
    cap: CapInfo = field(default_factory=CapInfo)
    rank: int = 0
    """The alert's place in the order of urgency (`urgency_rank`): lower goes first."""

    @property
    def drill(self) -> bool:
        """True when no one may act on this alert as real."""
        return self.mode is not Mode.LIVE

    def message(self, language: str) -> Message:
        """The rendering for a language, falling back to the first one rendered."""
        found = self.messages.get(language)
        if found is not None:
            return found
        return next(iter(self.messages.values()))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recipient (or device) on one channel, as claimed from the outbox."""

    id: int
    recipient: str
    address: str
    language: str = "en"
    attempt: int = 1
    link: str = ""
    """The person's answer-page link when the alert asks a question (push and e-mail)."""

    @property
    def tag(self) -> str:
        """The recipient as logs may show it."""
        return recipient_hash(self.recipient)


@dataclass(frozen=True, slots=True)
class Batch:
    """Deliveries of one alert on one channel, sent together."""

    alert: AlertContext
    deliveries: tuple[Delivery, ...]

    def __len__(self) -> int:
        return len(self.deliveries)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A channel's word on one delivery: what happened and why."""

    delivery_id: int
    outcome: Outcome
    detail: str = ""
    provider_ref: str = ""
    retry_after_s: float | None = None
    opted_out: bool = False
    """The carrier says this recipient opted out of our messages on this channel (sent STOP
    to it): nothing more is sent to the address."""
    provider_fault: bool = False
    """The provider, not the recipient, refused it (an outage, a rate limit, the account or
    the sender suspended) and certainly sent nothing: another provider of the same kind may
    take it at once."""


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """What a provider says, when asked later, became of a delivery it accepted."""

    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LateReceipt:
    """A receipt that came after the send (a provider callback, a device ack), naming its
    delivery by id, by the provider's reference, or by alert and recipient."""

    channel: ChannelKind
    outcome: Outcome
    delivery_id: int | None = None
    provider_ref: str | None = None
    alert_id: str | None = None
    recipient: str | None = None
    detail: str = ""
    opted_out: bool = False
    """The carrier says this recipient opted out of our messages on this channel."""
