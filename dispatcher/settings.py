"""The service's configuration: one TOML file, validated at start with errors naming the key."""

from __future__ import annotations

import os
import sys
import tomllib
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from channels.registry import validate_channel_settings
from dispatcher.access.credentials import SettingsModel
from dispatcher.answers.settings import AnswerSettings
from dispatcher.console.settings import ConsoleSettings
from dispatcher.domain import AlertKind, ChannelKind, Mode
from dispatcher.drills.schedule import DrillSettings
from dispatcher.feeds.settings import FeedsSettings
from dispatcher.incidents.settings import IncidentSettings
from dispatcher.policy.settings import PolicySettings, RenderingSettings
from dispatcher.public.settings import PublicSettings
from segments.settings import DirectorySettings

TOKEN_ENV = "CLARION_API_TOKEN"  # noqa: S105 - a variable name, not a token


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
    read_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="how long a client may take to send a request's headers, and its body",
    )
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client; from anyone else the header is ignored",
    )
    sender: str = Field(default="alerts@example.edu", description="CAP sender and email origin")
    institution: str = "Example University"
    uvloop: bool = Field(
        default=True, description="run on uvloop (libuv) rather than asyncio's own event loop"
    )

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

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: str = Field(default="dispatcher", pattern="^(admin|dispatcher|drill|viewer|scim)$")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    segments: list[str] = Field(
        default_factory=list,
        description="scopes: named segments this token may target; empty means any audience",
    )
    hmac_secret: SecretStr | None = Field(
        default=None,
        description="when set, every request with this token must carry an HMAC-SHA256 "
        "signature (X-Clarion-Timestamp, X-Clarion-Signature)",
    )
    rate_per_second: float | None = Field(
        default=None, ge=0, description="this token's request rate; default auth.rate_per_second"
    )
    rate_burst: int | None = Field(
        default=None, ge=1, description="this token's burst; default auth.rate_burst"
    )
    person: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="the person who holds it (their console user name, when they have one); "
        "the two-person rule compares people. Default: the token is a person of its own",
    )


class ApprovalSettings(SettingsModel):
    """Two-person approval: large live audiences need a second person before anything is sent."""

    enabled: bool = False
    min_audience: int = Field(
        default=1000, ge=1, description="alerts reaching this many recipients need approval"
    )
    modes: list[Mode] = Field(
        default_factory=lambda: [Mode.LIVE], description="alert modes approval applies to"
    )
    approver_roles: list[str] = Field(default_factory=lambda: ["admin", "dispatcher"])
    bypass_roles: list[str] = Field(
        default_factory=list,
        description="roles that may send at once in an emergency; every bypass is audited",
    )
    expires_s: int = Field(
        default=3600, ge=60, le=7 * 86400, description="how long a request waits for approval"
    )
    notify: list[str] = Field(
        default_factory=list,
        description="e-mail addresses told when an alert waits for approval (sent through "
        "the email.smtp channel's relay)",
    )

    @field_validator("notify")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address.strip("@") or any(c.isspace() for c in address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value

    @field_validator("approver_roles", "bypass_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if role not in _ROLES:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(_ROLES)})")
        return value


_ROLES = ("admin", "dispatcher", "drill", "viewer")


class AuthSettings(SettingsModel):
    """Who may call the API, how fast, and what needs a second person."""

    token: SecretStr | None = Field(
        default=None, description=f"admin token; also from ${TOKEN_ENV}"
    )
    token_person: str = Field(
        default="admin", min_length=1, max_length=100,
        description="the person who holds the admin token (by default the console's first "
        "administrator): they cannot approve what they sent with it",
    )
    tokens: list[TokenSettings] = Field(default_factory=list)
    override_roles: list[str] = Field(default_factory=lambda: ["admin"])
    need_help_roles: list[str] = Field(
        default_factory=lambda: ["admin", "dispatcher"],
        description="roles that may read who needs help, with building and contact details",
    )
    rate_per_second: float = Field(
        default=50.0, ge=0, description="sustained requests a second per token; 0: no limit"
    )
    rate_burst: int = Field(default=200, ge=1, description="requests a token may make at once")
    signature_window_s: int = Field(
        default=300, ge=5, le=3600,
        description="how far a signed request's timestamp may be from now, either way",
    )
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)

    @model_validator(mode="after")
    def _distinct_tokens(self) -> AuthSettings:
        names = [t.name for t in self.tokens]
        dupes = sorted({n for n in names if names.count(n) > 1} | {"admin-token"} & set(names))
        if dupes:
            # Names identify callers for rate limits, audit and the two-person rule.
            raise ValueError(f"token names must be distinct and not 'admin-token': {dupes}")
        digests = [t.sha256 for t in self.tokens]
        if len(set(digests)) != len(digests):
            raise ValueError("two tokens have the same sha256")
        return self


def _default_expiry() -> dict[AlertKind, int]:
    return {
        AlertKind.EMERGENCY: 3600,
        AlertKind.TIMELY_WARNING: 86400,
        AlertKind.ADVISORY: 86400,
        AlertKind.ALL_CLEAR: 3600,
    }


# Sound across campus only when an alert names it: never a kind's default.
CHOSEN_ONLY = (ChannelKind.SIREN, ChannelKind.PA)


def _default_channels() -> dict[AlertKind, list[ChannelKind]]:
    # Voice calls go out only when an alert asks for them (or as a fallback): calling every
    # phone is a decision for the alert, not a default. So are sirens and speakers.
    people = [ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.EMAIL]
    shown = [*people, ChannelKind.SIGNAGE, ChannelKind.DESKTOP]
    # Broadcast targets and webhook subscribers each name the kinds they take.
    institution = [ChannelKind.BROADCAST, ChannelKind.WEBHOOK]
    return {
        AlertKind.EMERGENCY: [*shown, *institution],
        AlertKind.TIMELY_WARNING: [*people, *institution],
        AlertKind.ADVISORY: [ChannelKind.EMAIL, ChannelKind.PUSH, *institution],
        AlertKind.ALL_CLEAR: [*shown, *institution],
    }


class DispatchSettings(SettingsModel):
    """How the engine fans out."""

    expires_s: dict[AlertKind, int] = Field(default_factory=_default_expiry)
    default_channels: dict[AlertKind, list[ChannelKind]] = Field(
        default_factory=_default_channels,
        description="the channels each kind of alert uses when it names none (the console's "
        "boxes, the API, the CLI, incidents and feeds); sirens and PA only when named",
    )
    enqueue_batch: int = Field(
        default=5000, ge=1, le=20000, description="most deliveries written to the outbox at once"
    )
    @field_validator("default_channels")
    @classmethod
    def _nothing_sounds_by_default(
        cls, value: dict[AlertKind, list[ChannelKind]]
    ) -> dict[AlertKind, list[ChannelKind]]:
        table = {**_default_channels(), **value}
        for kind, channels in table.items():
            loud = [c.value for c in channels if c in CHOSEN_ONLY]
            if loud:
                raise ValueError(f"{kind.value}: {', '.join(loud)} must be named by an alert, "
                                 "never a kind's default (they sound across campus)")
        return table

    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    poll_s: float = Field(default=0.5, gt=0, description="how often idle workers look for work")
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    yield_to_urgent: bool = Field(
        default=True,
        description="while a more urgent alert has work due or in flight on a channel, less"
        " urgent ones (timely warnings, advisories, drills and tests) wait on that channel and"
        " their batches not yet handed over give way; false: they only go after it in order",
    )
    reconcile_after_s: float = Field(
        default=300.0, gt=0,
        description="ask the provider about deliveries it accepted this long ago and said no"
        " more of (a status callback lost while the service was down)",
    )
    reconcile_within_s: float = Field(
        default=86400.0, gt=0,
        description="deliveries accepted longer ago than this are no longer asked about",
    )
    providers: dict[ChannelKind, list[str]] = Field(
        default_factory=dict,
        description="a channel kind's providers in the order tried, e.g. sms ="
        ' ["sms.twilio", "sms.telnyx"]: when one is down, drained, rate-limited or refuses a'
        " message for a reason of its own, the next one sends it",
    )


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
    drills: DrillSettings = Field(default_factory=DrillSettings)
    public: PublicSettings = Field(default_factory=PublicSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    feeds: FeedsSettings = Field(default_factory=FeedsSettings)
    answers: AnswerSettings = Field(default_factory=AnswerSettings)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _full_text_link(self) -> Settings:
        # A derived short text links to the public page, which carries the full text.
        if self.rendering.full_text_link:
            return self
        link = self.public.page(self.service.base_url())
        rendering = self.rendering.model_copy(update={"full_text_link": link})
        return self.model_copy(update={"rendering": rendering})

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
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


def settings_or_exit(path: Path | None = None) -> Settings:
    """For a command: the settings, or the config's problem on stderr and exit status 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


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
