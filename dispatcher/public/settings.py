"""The `[public]` section: the public alert page, its feed and the website banner."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from dispatcher.access.credentials import SettingsModel
from dispatcher.clock import time_zone

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class PublicSettings(SettingsModel):
    """What the open, no-sign-in surfaces under /public/ serve, and to whom."""

    page_url: str = Field(
        default="",
        description="the public page's address as people reach it (an alert's 'more "
        "information' link); default: service.public_url + /public/",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="the campus web sites (scheme://host[:port]) whose pages may read "
        "/public/alerts.json from a browser (CORS); none by default",
    )
    max_age_s: int = Field(
        default=5, ge=0, le=10,
        description="how long browsers and caches may keep the feed; at most 10 s so a new "
        "alert shows within 10 s",
    )
    refresh_s: float = Field(
        default=5.0, gt=0, le=60,
        description="with a shared (PostgreSQL) store: how often the snapshot is rebuilt "
        "anyway, for alerts that other nodes changed",
    )
    timezone: str | None = Field(
        default=None, description="times on the page are shown in this zone; default: "
        "drills.timezone",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path or slash"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            time_zone(value)
        return value

    def page(self, base_url: str) -> str:
        """The public page's address."""
        return self.page_url or f"{base_url.rstrip('/')}/public/"
