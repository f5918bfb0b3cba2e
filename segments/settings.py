"""Config for the campus directory and named segments."""

from __future__ import annotations

from pydantic import Field

from dispatcher.credentials import SettingsModel


class DirectorySettings(SettingsModel):
    """Where the campus data lives (paths relative to the config file) and the named segments."""

    people: str = "campus/people.csv"
    devices: str = "campus/devices.csv"
    import_on_start: bool = Field(
        default=True, description="load the people and devices files into an empty store"
    )
    segments: dict[str, str] = Field(default_factory=dict)
