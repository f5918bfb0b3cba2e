"""Config for the campus directory, named segments and the delivery preferences policy."""

from __future__ import annotations

import re

import phonenumbers
from pydantic import Field, field_validator, model_validator

from dispatcher.access.credentials import SettingsModel
from dispatcher.clock import time_zone
from dispatcher.domain import AlertKind, ChannelKind
from segments.expression import check_named_segments
from segments.sync_settings import ExportSettings, LdapSettings, SafetyBrakeSettings

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _mandatory_kinds() -> list[AlertKind]:
    return [AlertKind.EMERGENCY, AlertKind.TIMELY_WARNING, AlertKind.ALL_CLEAR]


class DirectorySettings(SettingsModel):
    """Where the campus data lives (paths relative to the config file), named segments, policy."""

    people: str = "campus/people.csv"
    devices: str = "campus/devices.csv"
    buildings: str = Field(
        default="campus/buildings.csv",
        description="building id, name, campus, lat, lon and (optional) street address"
    )
    zones: str = Field(default="zones.geojson", description="GeoJSON Polygon features (id, name)")
    import_on_start: bool = Field(
        default=True, description="load the people and devices files into an empty store"
    )
    segments: dict[str, str] = Field(
        default_factory=dict, description="named segments: name = expression"
    )
    roles: list[str] = Field(
        default_factory=lambda: ["student", "staff", "faculty", "parent", "neighbor"],
        description="roles a segment may name even while no one holds them",
    )
    default_region: str = Field(default="US", description="region for phone numbers without +")
    default_language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    timezone: str = Field(default="America/New_York", description="clock for quiet hours")
    mandatory_kinds: list[AlertKind] = Field(
        default_factory=_mandatory_kinds,
        description="alert kinds that ignore quiet hours, and opt-outs of mandatory roles",
    )
    mandatory_roles: list[str] = Field(
        default_factory=lambda: ["student", "staff", "faculty"],
        description="roles enrolled by the institution; opt-in lists keep their opt-outs",
    )
    quiet_channels: list[ChannelKind] = Field(
        default_factory=lambda: [ChannelKind.SMS, ChannelKind.PUSH],
        description="channels that stay silent during a person's quiet hours",
    )
    optional_channels: int = Field(
        default=0,
        ge=0,
        le=3,
        description="alerts that are not mandatory use this many of a person's channels, "
        "in the person's order (0: every channel they accept)",
    )

    safety_brake: SafetyBrakeSettings = Field(default_factory=SafetyBrakeSettings)
    ldap: LdapSettings = Field(default_factory=LdapSettings)
    exports: dict[str, ExportSettings] = Field(
        default_factory=dict, description="student-system exports read on a schedule, by name"
    )

    @field_validator("exports")
    @classmethod
    def _export_names(cls, value: dict[str, ExportSettings]) -> dict[str, ExportSettings]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"export {name!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        time_zone(value)
        return value

    @field_validator("roles", "mandatory_roles")
    @classmethod
    def _role_names(cls, value: list[str]) -> list[str]:
        for role in value:
            if not _NAME.match(role):
                raise ValueError(f"role {role!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("quiet_channels")
    @classmethod
    def _person_channels(cls, value: list[ChannelKind]) -> list[ChannelKind]:
        for channel in value:
            if channel.is_device:
                raise ValueError(f"{channel} is a device channel; quiet hours apply to people")
        return value

    @model_validator(mode="after")
    def _segments_parse(self) -> DirectorySettings:
        # The settings refuse a named segment that cannot be used.
        check_named_segments(self.segments)
        return self
