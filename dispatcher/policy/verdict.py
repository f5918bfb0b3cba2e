"""What the policy says about a message: violations with spans, and the SMS measurements."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """`error` blocks the send; `warning` is shown and does not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem: a rule id ("family.detail"), a plain message and where it is.

    The span (`start`, `end`) is in the request's `text` when `channel` and `field` are None;
    in the request's `field` (such as "headline" or "translations.es.text") when only `field`
    is set; and in that channel's rendering (its `field`, "text" by default) when `channel` is
    set. `language` names the rendering's or translation's language.
    """

    rule: str
    message: str
    start: int | None = None
    end: int | None = None
    severity: Severity = Severity.ERROR
    channel: str | None = None
    language: str | None = None
    field: str | None = None
    overridden: bool = False
    # A neutral rewrite of the span ("a student"); "" means delete it; None when the rule
    # has none to offer.
    suggestion: str | None = None

    @property
    def family(self) -> str:
        """The part of the rule id before the first dot."""
        return self.rule.split(".", 1)[0]

    def matches(self, rule_or_family: str) -> bool:
        """True when an override naming this rule id or its family applies."""
        return self.rule == rule_or_family or self.rule.startswith(rule_or_family + ".")

    def at(self, **changes: Any) -> Violation:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The contract's shape, plus severity, channel, language, field and overridden, and
        the suggested rewrite of the span when the rule offers one."""
        out: dict[str, Any] = {
            "rule": self.rule,
            "message": self.message,
            "start": self.start,
            "end": self.end,
            "severity": self.severity.value,
            "channel": self.channel,
            "language": self.language,
            "field": self.field,
            "overridden": self.overridden,
        }
        if self.suggestion is not None:
            out["suggestion"] = self.suggestion
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every violation found, and the SMS segment count and encoding per language."""

    violations: tuple[Violation, ...] = ()
    segments: dict[str, int] = field(default_factory=dict)
    encoding: dict[str, str] = field(default_factory=dict)
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The short channels whose text was derived from a longer one, with that text (the
    # alert's own language).
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing blocks the send (warnings may remain)."""
        return not self.errors

    @property
    def clean(self) -> bool:
        """True when there is no violation at all, not even a warning."""
        return not self.violations

    @property
    def errors(self) -> tuple[Violation, ...]:
        """The violations that block the send."""
        return tuple(v for v in self.violations if v.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Violation, ...]:
        """The violations that do not block the send."""
        return tuple(v for v in self.violations if v.severity is Severity.WARNING)

    def families(self) -> set[str]:
        """The rule families present."""
        return {v.family for v in self.violations}

    def to_json(self) -> dict[str, Any]:
        """The lint contract: `{"ok", "violations", "segments"}` plus encoding, the derived
        short texts and languages."""
        out: dict[str, Any] = {
            "ok": self.ok,
            "violations": [v.to_json() for v in self.violations],
            "segments": dict(self.segments),
            "encoding": dict(self.encoding),
            "derived": dict(self.derived),
        }
        if self.languages:
            out["languages"] = {k: dict(v) for k, v in self.languages.items()}
        return out
