"""The service's configuration: one TOML file, validated at start with errors naming the key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator

from dispatcher.credentials import SettingsModel
from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.policy.settings import PolicySettings, RenderingSettings
from segments.settings import DirectorySettings

TOKEN_ENV = "CLARION_API_TOKEN"


class ConfigError(Exception):
    """The config file cannot be used; the message names the file and every bad key."""


class ServiceSettings(SettingsModel):
    """Where the HTTP API listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=0, le=65535)
    public_url: str = Field(
        default="",
        description="URL the outside world uses for this service (callbacks); default host:port",
    )
    max_body_bytes: int = Field(default=65536, ge=1024)
    sender: str = Field(default="alerts@example.edu", description="CAP sender and email origin")
    institution: str = "Example University"

    def base_url(self) -> str:
        """The public URL, derived from host and port when not configured."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


class StoreSettings(SettingsModel):
    """The durable store: SQLite file (embedded default) or a PostgreSQL URL."""

    url: str = "sqlite:///var/clarion.db"
    lease_s: float = Field(default=30.0, gt=0, description="how long a claimed batch stays claimed")
    retention_days: int = Field(default=7 * 365, ge=1)


class TokenSettings(SettingsModel):
    """An API token: stored as its SHA-256, never in clear."""

    name: str
    role: str = Field(default="dispatcher", pattern="^(admin|dispatcher|drill|viewer)$")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    segments: list[str] = Field(default_factory=list, description="scopes; empty means any")


class AuthSettings(SettingsModel):
    """Who may call the API."""

    token: SecretStr | None = Field(
        default=None, description=f"admin token; also from ${TOKEN_ENV}"
    )
    tokens: list[TokenSettings] = Field(default_factory=list)
    override_roles: list[str] = Field(default_factory=lambda: ["admin"])


def _default_expiry() -> dict[AlertKind, int]:
    return {
        AlertKind.EMERGENCY: 3600,
        AlertKind.TIMELY_WARNING: 86400,
        AlertKind.ADVISORY: 86400,
        AlertKind.ALL_CLEAR: 3600,
    }


def _default_channels() -> dict[AlertKind, list[ChannelKind]]:
    every = list(ChannelKind)
    people = [ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.EMAIL]
    return {
        AlertKind.EMERGENCY: every,
        AlertKind.TIMELY_WARNING: people,
        AlertKind.ADVISORY: [ChannelKind.EMAIL, ChannelKind.PUSH],
        AlertKind.ALL_CLEAR: every,
    }


class DispatchSettings(SettingsModel):
    """How the engine fans out."""

    expires_s: dict[AlertKind, int] = Field(default_factory=_default_expiry)
    default_channels: dict[AlertKind, list[ChannelKind]] = Field(default_factory=_default_channels)
    enqueue_batch: int = Field(default=500, ge=1, le=10000)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    poll_s: float = Field(default=0.5, gt=0, description="how often idle workers look for work")
    shutdown_grace_s: float = Field(default=10.0, ge=0)


class LoggingSettings(SettingsModel):
    """Structured logs on stderr."""

    level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    json_lines: bool = True


class Settings(SettingsModel):
    """The whole configuration."""

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    rendering: RenderingSettings = Field(default_factory=RenderingSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    drills: dict[str, Any] = Field(default_factory=dict)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from channels.registry import validate_channel_settings

        return {name: validate_channel_settings(name, raw) for name, raw in value.items()}

    def templates_dir(self) -> Path:
        """Alert templates: beside the config file when it has them, else the embedded ones."""
        local = self.base_dir / "templates"
        return local if local.is_dir() else config_dir() / "templates"

    def resolve(self, path: str | Path) -> Path:
        """A data path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def config_dir() -> Path:
    """The folder holding the embedded default config and the example campus."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_config", here.parent / "config"):
        if (candidate / "clarion.toml").is_file():
            return candidate
    raise ConfigError(f"the embedded config is missing (looked in {here / '_config'})")


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate a config file; with no path, the embedded default."""
    path = path or config_dir() / "clarion.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw["base_dir"] = path.resolve().parent
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid configuration\n{problems}") from None
    token = os.environ.get(TOKEN_ENV)
    if token:
        auth = settings.auth.model_copy(update={"token": SecretStr(token)})
        settings = settings.model_copy(update={"auth": auth})
    return settings
