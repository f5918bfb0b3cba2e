"""Every channel by its name; the name is also its config key, metric label and log field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from channels.base import Channel, ChannelSettings
from channels.broadcast_apprise import AppriseBroadcast
from channels.devices import DesktopChannel, PaChannel, SignageChannel, SirenChannel
from channels.email_smtp import SmtpEmail
from channels.failover import FAILOVER_CLASSES, DrainReader, ProviderFailover, nothing_drained
from channels.push_apprise import ApprisePush
from channels.sms_telnyx import TelnyxSms
from channels.sms_twilio import TwilioSms
from channels.voice_twilio import TwilioVoice
from channels.webhook_signed import SignedWebhooks
from dispatcher.domain import ChannelKind

if TYPE_CHECKING:
    from channels.devices.buses import DeviceBuses

# Listed by class, not by a string to import, so the import graph shows every channel.
CHANNEL_CLASSES: tuple[type[Channel], ...] = (
    SmtpEmail,
    TwilioSms,
    TelnyxSms,
    TwilioVoice,
    ApprisePush,
    SirenChannel,
    SignageChannel,
    PaChannel,
    DesktopChannel,
    AppriseBroadcast,
    SignedWebhooks,
)
CHANNELS: dict[str, type[Channel]] = {cls.name: cls for cls in CHANNEL_CLASSES}


def channel_class(name: str) -> type[Channel]:
    """The class registered under a name."""
    try:
        return CHANNELS[name]
    except KeyError:
        known = ", ".join(sorted(CHANNELS))
        raise ValueError(f"unknown channel {name!r} (known: {known})") from None


def validate_channel_settings(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Check one `[channels."<name>"]` section against its channel's settings model."""
    model = channel_class(name).settings_model
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(section)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"channels.{name}: {problems}") from None
    return raw


def build_channels(
    sections: dict[str, dict[str, Any]],
    *,
    buses: DeviceBuses | None = None,
    providers: Mapping[ChannelKind, Sequence[str]] | None = None,
    drained: DrainReader = nothing_drained,
) -> dict[ChannelKind, Channel]:
    """Instantiate the enabled channels, one per kind; device channels get their connection
    from `buses` (equal connection settings share one), or each opens its own without it.

    A kind with a provider order in `providers` (two or more enabled channels) becomes one
    failover channel over them, in that order, skipping the providers `drained` names.
    """
    order = {kind: list(names) for kind, names in (providers or {}).items() if names}
    grouped: dict[ChannelKind, dict[str, Channel]] = {}
    for name, raw in sections.items():
        cls = channel_class(name)
        settings: ChannelSettings = cls.settings_model.model_validate(raw)
        if not settings.enabled:
            continue
        same = grouped.setdefault(cls.kind, {})
        if same and cls.kind not in order:
            raise ValueError(
                f"channels.{name}: a channel for {cls.kind} is already configured"
                f" (list both in dispatch.providers.{cls.kind} for failover)"
            )
        if buses is not None and cls.kind.is_device:
            same[name] = buses.channel(cls, settings)
        else:
            same[name] = cls(settings)
    built: dict[ChannelKind, Channel] = {}
    for kind, same in grouped.items():
        names = order.get(kind)
        if names is None:
            (built[kind],) = same.values()
            continue
        missing = [n for n in names if n not in same]
        if missing or len(names) != len(set(names)):
            raise ValueError(
                f"dispatch.providers.{kind}: {', '.join(missing) or 'a name twice'}"
                " is not an enabled channel of that kind"
            )
        unlisted = sorted(set(same) - set(names))
        if unlisted:
            raise ValueError(f"dispatch.providers.{kind}: {', '.join(unlisted)} is not listed")
        failover = FAILOVER_CLASSES.get(kind)
        if len(names) == 1 or failover is None:
            if len(names) > 1:
                raise ValueError(f"dispatch.providers.{kind}: {kind} has no failover")
            built[kind] = same[names[0]]
            continue
        built[kind] = failover([same[n] for n in names], drained=drained)
    return built


def provider_channel(channels: Mapping[ChannelKind, Channel], name: str) -> Channel | None:
    """The channel of that name, alone or as one provider of its kind's failover channel."""
    for channel in channels.values():
        if channel.name == name:
            return channel
        if isinstance(channel, ProviderFailover):
            found = channel.provider(name)
            if found is not None:
                return found
    return None
