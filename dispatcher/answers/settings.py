"""The `[answers]` config: escalation defaults by kind and the answer-page links."""

from __future__ import annotations

from pydantic import Field, SecretStr

from dispatcher.access.credentials import SettingsModel
from dispatcher.domain import AlertKind


def _escalation() -> dict[AlertKind, int]:
    return {AlertKind.EMERGENCY: 300, AlertKind.TIMELY_WARNING: 1800, AlertKind.ADVISORY: 0,
            AlertKind.ALL_CLEAR: 0}


class AnswerSettings(SettingsModel):
    """Hearing back: when people without an answer are asked again, and the answer links."""

    escalate_after_s: dict[AlertKind, int] = Field(
        default_factory=_escalation,
        description="by kind: ask people without an answer again after this long (0: never), "
        "when the request's `ask` names no delay",
    )
    max_rounds: int = Field(
        default=3, ge=0, le=10, description="escalation rounds at most (one more channel each)"
    )
    link_secret: SecretStr | None = Field(
        default=None,
        description="key that signs answer-page links (also link_secret_file / _env); "
        "default: a key made once and kept in the store",
    )
    help_text: str = Field(
        default="Campus alerts. Reply 1 if safe, 2 if you need help. Emergency: call 911. "
        "Reply STOP to stop.",
        description="the answer to an SMS HELP or INFO with no open question",
    )
