"""The MQTT topic tree under one prefix (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic tree under one prefix."""

    prefix: str

    def active(self, zone: str) -> str:
        """The retained active alert of a zone."""
        return f"{self.prefix}/alert/active/{topic_level(zone)}"

    @property
    def active_filter(self) -> str:
        """Every zone's active alert."""
        return f"{self.prefix}/alert/active/+"

    @property
    def event(self) -> str:
        """The stream of alerts, updates and cancels."""
        return f"{self.prefix}/alert/event"

    def availability(self, device_class: str, device_id: str) -> str:
        """A device's retained presence."""
        return f"{self.prefix}/device/{device_class}/{topic_level(device_id)}/availability"

    @property
    def availability_filter(self) -> str:
        """Every device's presence."""
        return f"{self.prefix}/device/+/+/availability"

    def ack(self, device_class: str, device_id: str) -> str:
        """Where a device acknowledges."""
        return f"{self.prefix}/device/{device_class}/{topic_level(device_id)}/ack"

    @property
    def ack_filter(self) -> str:
        """Every device's acks."""
        return f"{self.prefix}/device/+/+/ack"

    @property
    def status(self) -> str:
        """Clarion's own retained presence."""
        return f"{self.prefix}/dispatcher/status"

    def device_of(self, topic: str) -> tuple[str, str, str] | None:
        """(class, device_id, leaf) for a device topic, else None."""
        head = f"{self.prefix}/device/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return parts[0], parts[1], parts[2]

    def zone_of(self, topic: str) -> str | None:
        """The zone of an active-alert topic, else None."""
        head = f"{self.prefix}/alert/active/"
        if topic.startswith(head) and "/" not in topic[len(head):]:
            return topic[len(head):]
        return None


def topic_level(value: str) -> str:
    """A name made safe as one topic level: no separators or wildcards."""
    cleaned = "".join("_" if c in "/+#\x00" else c for c in value.strip())
    return cleaned or "_"
