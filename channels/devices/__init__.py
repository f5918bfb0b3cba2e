"""Sirens, signage, PA speakers and desktop pop-ups over MQTT: the active alert retained per
zone, acks, presence.

The four channels share one `DeviceBus` (one MQTT 5 connection) when their connection
settings agree; the composition root makes the buses (`DeviceBuses`). Topics (prefix default
`clarion/v1`):

    <prefix>/alert/active/<zone>                       retained, QoS 1, expiry = alert expiry
    <prefix>/alert/event                               every alert, update and cancel
    <prefix>/device/<class>/<device_id>/availability   retained online/offline (device LWT)
    <prefix>/device/<class>/<device_id>/ack            {"alert_id", "state", "ts"}
    <prefix>/dispatcher/status                         retained online/offline (our LWT)

The parts, one job each: `topics` (the tree), `payload` (what devices are sent), `session`
(the connection), `zones` (what each retained topic shows), `events` (the event stream),
`acks` (acks and their timeouts), `presence` (devices and availability), `bus` (the parts on
one connection), `channel` (the four channels) and `buses` (one bus per connection).
"""

from __future__ import annotations

from channels.devices.acks import ACK_BURST, AckState, AckTracker
from channels.devices.bus import DeviceBus
from channels.devices.buses import DeviceBuses
from channels.devices.channel import (
    DesktopChannel,
    DeviceChannel,
    PaChannel,
    SignageChannel,
    SirenChannel,
)
from channels.devices.payload import (
    PATTERN_ALERT,
    PATTERN_ATTACK,
    PATTERN_CANCEL,
    PATTERN_TEST,
    WINDOW_FULL_SCREEN,
    WINDOW_MARKED,
    class_section,
    common_payload,
    siren_pattern,
)
from channels.devices.presence import Availability, DevicePresence, DeviceRegistry
from channels.devices.session import MqttSession
from channels.devices.settings import DeviceSettings
from channels.devices.topics import Topics, topic_level

__all__ = [
    "ACK_BURST",
    "PATTERN_ALERT",
    "PATTERN_ATTACK",
    "PATTERN_CANCEL",
    "PATTERN_TEST",
    "WINDOW_FULL_SCREEN",
    "WINDOW_MARKED",
    "AckState",
    "AckTracker",
    "Availability",
    "DesktopChannel",
    "DeviceBus",
    "DeviceBuses",
    "DeviceChannel",
    "DevicePresence",
    "DeviceRegistry",
    "DeviceSettings",
    "MqttSession",
    "PaChannel",
    "SignageChannel",
    "SirenChannel",
    "Topics",
    "class_section",
    "common_payload",
    "siren_pattern",
    "topic_level",
]
