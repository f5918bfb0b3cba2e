"""Where a desktop client connects and who it is: command-line options over the config file."""

from __future__ import annotations

import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from channels.devices.settings import DeviceSettings
from channels.devices.topics import Topics, topic_level
from dispatcher.access.credentials import reveal

CHANNEL = "desktop.mqtt"
DEFAULT_ZONE = "campus"


class OptionsError(ValueError):
    """The config file or an option cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class DesktopOptions:
    """Everything the client needs to connect, listen to its zone and ack as itself."""

    host: str = "127.0.0.1"
    port: int = 8028
    prefix: str = "clarion/v1"
    zone: str = DEFAULT_ZONE
    device_id: str = ""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    speak: bool = False

    @property
    def topics(self) -> Topics:
        """The topic tree under the prefix."""
        return Topics(self.prefix.rstrip("/"))

    @property
    def client_id(self) -> str:
        """The MQTT client id: one per device, so a second copy takes over from the first."""
        return f"clarion-desktop-{self.device_id}"


def default_device_id() -> str:
    """The host name, made safe as a topic level."""
    return topic_level(socket.gethostname().split(".")[0].lower())


def load_options(
    config: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    prefix: str | None = None,
    zone: str | None = None,
    device_id: str | None = None,
    speak: bool = False,
) -> DesktopOptions:
    """The options: each given one over the config's `[channels."desktop.mqtt"]` section."""
    section: dict[str, Any] = {}
    if config is not None:
        try:
            with config.open("rb") as fh:
                raw = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise OptionsError(f"{config}: {exc}") from None
        found = raw.get("channels", {}).get(CHANNEL, {})
        if not isinstance(found, dict):
            raise OptionsError(f'{config}: [channels."{CHANNEL}"] is not a table')
        section = found
    try:
        settings = DeviceSettings.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise OptionsError(f'{config}: [channels."{CHANNEL}"]: {problems}') from None
    chosen_port = port if port is not None else settings.port
    if not 1 <= chosen_port <= 65535:
        raise OptionsError(f"--port {chosen_port}: not a port number")
    chosen_zone = (zone or DEFAULT_ZONE).strip().lower()
    return DesktopOptions(
        host=host or settings.host,
        port=chosen_port,
        prefix=prefix or settings.prefix,
        zone=topic_level(chosen_zone),
        device_id=topic_level(device_id) if device_id else default_device_id(),
        username=settings.username,
        password=reveal(settings.password) or None,
        tls=settings.tls,
        tls_ca_file=settings.tls_ca_file,
        keepalive_s=settings.keepalive_s,
        reconnect_min_s=settings.reconnect_min_s,
        reconnect_max_s=settings.reconnect_max_s,
        speak=speak,
    )
