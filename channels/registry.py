"""Every channel by its name; the name is also its config key, metric label and log field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from channels.base import Channel, ChannelSettings
from channels.devices import DesktopChannel, PaChannel, SignageChannel, SirenChannel
from channels.email_smtp import SmtpEmail
from channels.push_apprise import ApprisePush
from channels.sms_twilio import TwilioSms
from channels.voice_twilio import TwilioVoice
from dispatcher.domain import ChannelKind

if TYPE_CHECKING:
    from channels.devices.buses import DeviceBuses

# Listed by class, not by a string to import, so the import graph shows every channel.
CHANNEL_CLASSES: tuple[type[Channel], ...] = (
    SmtpEmail,
    TwilioSms,
    TwilioVoice,
    ApprisePush,
    SirenChannel,
    SignageChannel,
    PaChannel,
    DesktopChannel,
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
    sections: dict[str, dict[str, Any]], *, buses: DeviceBuses | None = None
) -> dict[ChannelKind, Channel]:
    """Instantiate the enabled channels, one per kind; device channels get their connection
    from `buses` (equal connection settings share one), or each opens its own without it."""
    built: dict[ChannelKind, Channel] = {}
    for name, raw in sections.items():
        cls = channel_class(name)
        settings: ChannelSettings = cls.settings_model.model_validate(raw)
        if not settings.enabled:
            continue
        if cls.kind in built:
            raise ValueError(f"channels.{name}: a channel for {cls.kind} is already configured")
        if buses is not None and cls.kind.is_device:
            built[cls.kind] = buses.channel(cls, settings)
        else:
            built[cls.kind] = cls(settings)
    return built
