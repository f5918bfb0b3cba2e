"""Settings of the device channels, and which of them make one connection."""

from __future__ import annotations

from pydantic import Field, SecretStr

from channels.base import ChannelSettings
from dispatcher.access.credentials import reveal


class DeviceSettings(ChannelSettings):
    """Settings of `siren.mqtt`, `signage.mqtt` and `pa.mqtt`; equal connections share one bus."""

    host: str = "127.0.0.1"
    port: int = Field(default=8028, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    tls_ca_file: str | None = Field(default=None, description="CA bundle; default system CAs")
    prefix: str = Field(default="clarion/v1", min_length=1, pattern=r"^[^#+\s]+$")
    client_id: str = Field(
        default="", description="MQTT client id; default clarion-<host>-<pid>-<random>"
    )
    ack_timeout_s: float = Field(default=30.0, gt=0, description="no ack by then: not reached")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    connect_grace_s: float = Field(
        default=2.0, ge=0, description="how long a send waits for the broker before a retry"
    )
    drill_banner: str = Field(default="DRILL - THIS IS A TEST", min_length=1)
    test_banner: str = Field(default="TEST - THIS IS ONLY A TEST", min_length=1)
    drill_preamble: str = Field(default="This is a drill. This is only a drill.", min_length=1)
    batch_size: int = Field(default=500, ge=1, le=1000)
    timeout_s: float = Field(default=5.0, gt=0, description="wait for the broker's PUBACK")


def connection_key(settings: DeviceSettings) -> tuple[object, ...]:
    """What makes two channels' connections the same one: equal keys share a bus."""
    return (
        settings.host, settings.port, settings.username, reveal(settings.password),
        settings.tls, settings.tls_ca_file, settings.prefix, settings.client_id,
        settings.keepalive_s,
    )
