"""The alert request as it arrives (HTTP, CLI, scheduler): validated, unknown keys refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dispatcher.domain import AlertKind, ChannelKind, Mode

MAX_TEXT = 4000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class EmailText(_Strict):
    """An email's own subject and body."""

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20000)


class ChannelTexts(_Strict):
    """Per-channel overrides of the short text."""

    sms: str | None = Field(default=None, min_length=1, max_length=1600)
    email: EmailText | None = None
    push: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    signage: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    pa: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    voice: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)


class Translation(_Strict):
    """The alert's parts in another language (one CAP info block per language)."""

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    headline: str | None = Field(default=None, max_length=200)
    instruction: str | None = Field(default=None, max_length=MAX_TEXT)
    description: str | None = Field(default=None, max_length=MAX_TEXT)


class ConfirmedBy(_Strict):
    """Who confirmed the emergency (Clery Act record)."""

    name: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=200)


class Override(_Strict):
    """A decision to send despite named policy errors, with the reason on file."""

    rules: list[str] = Field(min_length=1)
    reason: str = Field(min_length=5, max_length=2000)


class DrillRecord(_Strict):
    """What the Clery records keep about a test or drill."""

    description: str = Field(min_length=1, max_length=2000)
    announced: bool = True
    procedures_publicized: bool = False


ANSWER_OPTIONS = ("safe", "need_help")


class Ask(_Strict):
    """A question the alert asks its people: "I'm safe" or "I need help", by any channel."""

    question: str | None = Field(
        default=None, min_length=1, max_length=300,
        description="the question in the alert's language; default by kind and language",
    )
    translations: dict[str, str] = Field(
        default_factory=dict, description="the question in other languages, by two-letter code"
    )
    options: list[str] = Field(default_factory=lambda: list(ANSWER_OPTIONS), min_length=1)
    escalate_after_s: int | None = Field(
        default=None, ge=0, le=86400,
        description="ask people with no answer again on their next channel after this long "
        "(0: never); default by kind",
    )

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: list[str]) -> list[str]:
        for option in value:
            if option not in ANSWER_OPTIONS:
                raise ValueError(f"option {option!r} is not one of {', '.join(ANSWER_OPTIONS)}")
        return list(dict.fromkeys(value))

    @field_validator("translations")
    @classmethod
    def _language_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code, text in value.items():
            if not code.isalpha() or len(code) != 2 or not code.islower():
                raise ValueError(f"question language {code!r} is not a two-letter code")
            if not text.strip() or len(text) > 300:
                raise ValueError(f"question in {code!r} must have 1 to 300 characters")
        return value


class AlertRequest(_Strict):
    """An emergency notification, timely warning, advisory or all-clear to send."""

    kind: AlertKind
    mode: Mode = Mode.LIVE
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    texts: ChannelTexts | None = None
    headline: str | None = Field(default=None, min_length=1, max_length=200)
    instruction: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    description: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    web: str | None = Field(default=None, max_length=500)
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    translations: dict[str, Translation] = Field(default_factory=dict)
    template: str | None = Field(default=None, min_length=1, max_length=100)
    fields: dict[str, str] = Field(default_factory=dict)
    audience: str = Field(default="all", min_length=1, max_length=2000)
    zones: list[str] = Field(default_factory=list, max_length=100)
    exclude_zones: list[str] = Field(default_factory=list, max_length=100)
    channels: list[ChannelKind] | None = Field(default=None, min_length=1)
    expires_in: int | None = Field(default=None, ge=60, le=7 * 86400)
    references: str | None = Field(default=None, min_length=1, max_length=100)
    confirmed_by: ConfirmedBy | None = None
    override: Override | None = None
    drill: DrillRecord | None = None
    delay_reason: str | None = Field(default=None, max_length=2000)
    ask: Ask | None = Field(
        default=None, description="a question people answer (safe / need help), by any channel"
    )
    incident: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="the incident (crime log) a timely warning is about; the alert is linked",
    )
    allow_empty_audience: bool = Field(
        default=False,
        description="send even when the audience resolves to no one (refused otherwise)",
    )
    widen: bool = Field(
        default=False,
        description="a follow-up (`references`) may reach people the alert it follows did "
        "not (refused otherwise)",
    )

    @field_validator("translations")
    @classmethod
    def _language_codes(cls, value: dict[str, Translation]) -> dict[str, Translation]:
        for code in value:
            if not code.isalpha() or len(code) != 2 or not code.islower():
                raise ValueError(f"translation language {code!r} is not a two-letter code")
        return value

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[ChannelKind] | None) -> list[ChannelKind] | None:
        return None if value is None else list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _has_text(self) -> AlertRequest:
        if self.text is None and self.template is None:
            raise ValueError("text is required (or a template with its fields)")
        if self.drill is not None and self.mode is Mode.LIVE:
            raise ValueError("drill details belong to mode 'drill' or 'test'")
        return self

    def fingerprint(self) -> str:
        """SHA-256 of the canonical request, for Idempotency-Key checks."""
        body = self.model_dump(mode="json")
        for flag in ("allow_empty_audience", "widen"):
            if not body[flag]:
                # The default leaves no trace, so requests stored before it keep their hash.
                del body[flag]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Every validation error as `{"field", "message"}`, in the request's own terms."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "enum":
            expected = err.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}" if expected else message
        out.append({"field": field, "message": message})
    return out


def parse_request(data: Any) -> AlertRequest:
    """Validate a decoded JSON body; raises ValidationError."""
    return AlertRequest.model_validate(data)
