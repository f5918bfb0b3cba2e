"""`[console]`: the operator console's own settings, among them `[console.oidc]` (campus SSO)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from dispatcher.access.credentials import SettingsModel

# The API's roles (dispatcher.access.auth.Role, which this module cannot import: auth reads
# settings).
_ROLE_NAMES = ("admin", "dispatcher", "drill", "viewer")


class OidcSettings(SettingsModel):
    """`[console.oidc]`: sign-in through the campus identity provider (off by default)."""

    enabled: bool = False
    issuer: str = Field(
        default="", description="the provider's issuer URL; discovery is at "
        "<issuer>/.well-known/openid-configuration"
    )
    client_id: str = ""
    client_secret: SecretStr | None = Field(
        default=None, description="the console's client secret (or client_secret_file/_env)"
    )
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    role_claim: str = Field(
        default="groups", description="the ID token claim whose values map to roles"
    )
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="claim value -> console role (admin, dispatcher, drill, viewer)",
    )
    default_role: str | None = Field(
        default=None,
        description="role for people no mapping matches; none (the default) refuses them",
    )
    button_label: str = "Sign in with campus SSO"
    timeout_s: float = Field(default=10.0, gt=0, description="each call to the provider")
    leeway_s: int = Field(default=60, ge=0, le=600, description="clock skew allowed on expiry")

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, role in value.items():
            if role not in _ROLE_NAMES:
                raise ValueError(f"{claim!r}: unknown role {role!r} "
                                 f"(roles: {', '.join(_ROLE_NAMES)})")
        return value

    @field_validator("default_role")
    @classmethod
    def _known_default(cls, value: str | None) -> str | None:
        if value is not None and value not in _ROLE_NAMES:
            raise ValueError(f"unknown role {value!r} (roles: {', '.join(_ROLE_NAMES)})")
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> OidcSettings:
        if self.enabled:
            missing = [k for k in ("issuer", "client_id") if not getattr(self, k)]
            if missing:
                raise ValueError(f"enabled needs {', '.join(missing)}")
            if "openid" not in self.scopes:
                raise ValueError("scopes must include openid")
        return self



class SignInSettings(SettingsModel):
    """`[console.sign_in]`: how many failed sign-ins, counted in the store by every node."""

    per_user: int = Field(
        default=5, ge=1, description="tries of one account name per window before it waits"
    )
    per_address: int = Field(
        default=0, ge=0,
        description="tries from one client address per window; 0: no address limit (people "
        "behind one proxy or NAT share an address: set service.trusted_proxies first)",
    )
    window_s: int = Field(default=900, ge=1, description="the window the tries are counted in")


class ConsoleSettings(SettingsModel):
    """The console: its sign-in limits and its optional campus single sign-on."""

    sign_in: SignInSettings = Field(default_factory=SignInSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
