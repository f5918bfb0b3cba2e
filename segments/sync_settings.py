"""Config for keeping the directory current: the safety brake, LDAP / Active Directory sync and
the student-system exports read on a schedule (`[directory.safety_brake]`, `[directory.ldap]`,
`[directory.exports.NAME]`)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator

from dispatcher.access.credentials import SettingsModel

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_COLUMN = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")
# Directory columns an LDAP attribute or an export column may not fill: roles and groups come
# from group membership (LDAP) or the export's own role, and ids of the map are its keys.
_NOT_MAPPED = frozenset({"zone", "class", "group"})


def _default_ldap_attributes() -> dict[str, str]:
    return {
        "id": "uid", "first_name": "givenName", "last_name": "sn", "email": "mail",
        "phone": "mobile", "language": "preferredLanguage",
    }


def _check_columns(value: dict[str, str]) -> dict[str, str]:
    for column, theirs in value.items():
        if not _COLUMN.match(column) or column in _NOT_MAPPED:
            raise ValueError(
                f"{column!r} is not a directory column (lowercase letters, digits, '_' or '-';"
                " not zone, class or group)"
            )
        if not theirs.strip():
            raise ValueError(f"{column!r}: name the source's attribute or column")
    if "id" not in value:
        raise ValueError("map the directory's 'id' column")
    return value


class SafetyBrakeSettings(SettingsModel):
    """An import that would change or remove more than this share of the people it concerns
    is held until a person confirms it (a truncated export never empties the directory)."""

    max_change_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="largest share (0-1) of the people of an import's roles that it may change"
        " or remove without a person's confirmation; 1 turns the brake off",
    )


class LdapSettings(SettingsModel):
    """People and group membership read from LDAP or Active Directory (`ldap3`, paged)."""

    enabled: bool = Field(default=False, description="sync on the schedule below")
    url: str = Field(
        default="ldaps://ad.example.edu",
        pattern=r"^ldaps?://[^/\s]+/?$",
        description="ldap://host:port or ldaps://host:port",
    )
    start_tls: bool = Field(default=False, description="upgrade an ldap:// connection to TLS")
    ca_file: str = Field(default="", description="CA bundle for the server's certificate")
    bind_dn: str = Field(default="", description="the service account (empty: anonymous)")
    bind_password: SecretStr | None = Field(
        default=None, description="its password (or bind_password_file / bind_password_env)"
    )
    base_dn: str = Field(default="", description="where people are searched (subtree)")
    filter: str = Field(
        default="(objectClass=person)",
        description="which entries are people; for AD leave out disabled accounts with"
        " (!(userAccountControl:1.2.840.113556.1.4.803:=2))",
    )
    page_size: int = Field(default=500, ge=1, le=5000, description="entries per paged search")
    timeout_s: float = Field(default=30.0, gt=0, description="connect and per-answer timeout")
    attributes: dict[str, str] = Field(
        default_factory=_default_ldap_attributes,
        description="directory column = LDAP attribute (id = \"sAMAccountName\" for AD);"
        " other names become attributes usable in segments",
    )
    member_of: str = Field(
        default="memberOf",
        description="the people's attribute listing their groups' DNs (empty: not read)",
    )
    group_base_dn: str = Field(
        default="",
        description="also search groups here and read their members (OpenLDAP groupOfNames)",
    )
    group_filter: str = Field(
        default="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
        "(objectClass=group))"
    )
    group_member: str = Field(default="member", description="a group's attribute of members")
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="group (its cn or whole DN) = directory role, the first that matches wins",
    )
    default_role: str = Field(
        default="",
        description="role of people in no group of `roles` (empty: they are skipped)",
    )
    groups: bool = Field(
        default=True, description="every group of a person becomes a directory group"
    )
    remove_missing: bool = Field(
        default=True,
        description="remove people of the mapped roles who are no longer in LDAP",
    )
    every_s: float = Field(
        default=3600.0, ge=60.0, description="seconds between syncs while enabled"
    )

    @model_validator(mode="after")
    def _enabled_needs_a_base(self) -> LdapSettings:
        if self.enabled and not self.base_dn:
            raise ValueError("an enabled LDAP sync needs base_dn (where people are searched)")
        return self

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for column in ("role", "groups"):
            if column in value:
                raise ValueError(f"{column!r} comes from group membership: map it in `roles`")
        return _check_columns(value)

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        for role in value.values():
            if not _NAME.match(role):
                raise ValueError(f"role {role!r} must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("default_role")
    @classmethod
    def _default_role(cls, value: str) -> str:
        if value and not _NAME.match(value):
            raise ValueError(f"role {value!r} must be lowercase letters, digits, '-' or '_'")
        return value


class ExportSettings(SettingsModel):
    """A student or HR system's flat file (Banner, Workday, PeopleSoft) read on a schedule."""

    path: str = Field(
        description="a CSV file read whenever it changes, or a folder whose new .csv (and .txt)"
        " files are each imported once and then moved to its done/ folder (relative to the"
        " config)"
    )
    role: str | None = Field(default=None, description="the role of everyone in the file")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="directory column = the export's header; only these columns are read"
        " (empty: the file uses the directory's own column names)",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    remove_missing: bool = Field(
        default=True, description="remove people of the file's roles who are not in it"
    )
    every_s: float = Field(default=300.0, ge=1.0, description="seconds between looks")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_columns(value) if value else value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"role {value!r} must be lowercase letters, digits, '-' or '_'")
        return value
