"""Every channel by its name; the name is also its config key, metric label and log field."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from channels.base import Channel, ChannelSettings
from dispatcher.domain import ChannelKind

if TYPE_CHECKING:
    from channels.devices.buses import DeviceBuses

# name -> "module:Class"; imported on demand so a channel's library loads only when used.
CHANNELS: dict[str, str] = {
    "email.smtp": "channels.email_smtp:SmtpEmail",
    "sms.twilio": "channels.sms_twilio:TwilioSms",
    "voice.twilio": "channels.voice_twilio:TwilioVoice",
    "push.apprise": "channels.push_apprise:ApprisePush",
    "siren.mqtt": "channels.devices:SirenChannel",
    "signage.mqtt": "channels.devices:SignageChannel",
    "pa.mqtt": "channels.devices:PaChannel",
    "desktop.mqtt": "channels.devices:DesktopChannel",
}


def channel_class(name: str) -> type[Channel]:
    """The class registered under a name."""
    try:
        target = CHANNELS[name]
    except KeyError:
        known = ", ".join(sorted(CHANNELS))
        raise ValueError(f"unknown channel {name!r} (known: {known})") from None
    module, cls = target.split(":")
    found: type[Channel] = getattr(import_module(module), cls)
    return found


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
