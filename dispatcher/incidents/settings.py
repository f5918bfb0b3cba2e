"""The `[incidents]` section: the private-field key, who may read them, the log's calendar."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from dispatcher.access.credentials import SettingsModel
from dispatcher.clock import time_zone

_ROLES = ("admin", "dispatcher", "drill", "viewer")


class IncidentSettings(SettingsModel):
    """Incidents and the daily crime log."""

    key: SecretStr | None = Field(
        default=None,
        description="Fernet key sealing victim and reporter details (also key_file, key_env); "
        "when unset, one is generated into generated_key_path on first start",
    )
    generated_key_path: Path | None = Field(
        default=None,
        description="where the generated key is kept; default beside the SQLite store "
        "(./var/incidents.key for PostgreSQL, where several nodes must share a configured key)",
    )
    private_roles: list[str] = Field(
        default_factory=lambda: ["admin"],
        description="roles that may read victim and reporter details (every read is audited)",
    )
    decide_roles: list[str] = Field(
        default_factory=lambda: ["admin", "dispatcher"],
        description="roles that may close a timely-warning decision",
    )
    timezone: str | None = Field(default=None, description="default: drills.timezone")
    holidays: list[date] = Field(
        default_factory=list, description="days that are not business days for the log's deadline"
    )
    entry_business_days: int = Field(
        default=2, ge=0, le=30,
        description="business days after the report by which an entry must be in the log",
    )
    decision_overdue_s: int = Field(
        default=4 * 3600, ge=60,
        description="an open timely-warning decision older than this is listed as overdue",
    )
    public_days: int = Field(
        default=60, ge=1, le=366, description="days of the log on each public page"
    )
    example_file: str = Field(
        default="campus/incidents.json",
        description="example incidents seeded into an empty store (relative to the config)",
    )
    seed_example: bool = True

    @field_validator("private_roles", "decide_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in _ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(_ROLES)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            time_zone(value)
        return value
