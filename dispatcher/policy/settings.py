"""Config for the policy rules and the per-channel rendering."""

from __future__ import annotations

from pydantic import Field

from dispatcher.credentials import SettingsModel


class PolicySettings(SettingsModel):
    """Limits and allow lists the policy rules read."""

    sms_max_segments: int = Field(default=2, ge=1, le=10)
    word_budget: int = Field(default=60, ge=5)
    push_title_max: int = Field(default=65, ge=10)
    signage_headline_max: int = Field(default=80, ge=10)
    allow: list[str] = Field(
        default_factory=list,
        description="phone numbers, addresses and URLs the institution publishes",
    )
    places: list[str] = Field(
        default_factory=list, description="campus place names that contain a person's name"
    )


class RenderingSettings(SettingsModel):
    """How an alert is dressed for each channel."""

    sms_prefix: str = "UNIV ALERT:"
    drill_prefix: str = "[DRILL] THIS IS A TEST"
    test_prefix: str = "[TEST]"
    pa_drill_preamble: str = "This is a drill. This is only a drill."
    signage_drill_banner: str = "DRILL - THIS IS A TEST"
    web: str = ""
