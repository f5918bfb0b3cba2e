"""Why a request was refused, as typed reasons; only `dispatcher/api` turns them into statuses.

Intake, approvals, the scheduler and the store raise these; the HTTP layer maps each class to
its status code in one table (`dispatcher/edge.py`), and the scheduler and the CLI read
the reason without knowing anything of HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: the field it is in and what is wrong."""

    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        """The problem as API bodies list it."""
        return {"field": self.field, "message": self.message}


class Refused(Exception):
    """A request that will not be carried out; the message says why in plain words."""

    # The `clarion_rejected_total` label counting this refusal, when it is counted.
    counted_as: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def summary(self) -> str:
        """One line for a log or a drill run's record."""
        return self.message


class Forbidden(Refused):
    """The caller's role or scopes do not allow this; `field` is the request field it is
    about (the audience, the override, the mode), when it is about one."""

    def __init__(
        self, message: str, *, counted_as: str = "role", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.counted_as = counted_as
        self.field = field


class Invalid(Refused):
    """The request is malformed or names something that does not exist."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("invalid request")
        self.problems = tuple(problems)

    @classmethod
    def one(cls, field: str, message: str) -> Invalid:
        """A request with a single problem."""
        return cls([Problem(field, message)])

    def summary(self) -> str:
        """The problems, field by field."""
        return "; ".join([self.message, *(f"{p.field}: {p.message}" for p in self.problems)])


class PolicyBreach(Refused):
    """The message breaks the alert policy; `violations` are the lint contract's entries."""

    counted_as = "policy"

    def __init__(self, violations: Sequence[dict[str, Any]]) -> None:
        super().__init__("the message breaks the alert policy")
        self.violations = list(violations)

    def summary(self) -> str:
        """The violated rules and their messages."""
        parts = [f"{v.get('rule', '')}: {v.get('message', '')}" for v in self.violations]
        return "; ".join([self.message, *parts])


class NotFound(Refused):
    """What the request refers to does not exist."""


class Conflict(Refused):
    """The request contradicts what is stored: a reused key, a decision already taken."""

    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


def located(exc: Refused) -> list[Problem]:
    """A refusal as field problems: what a form shows under each field (the policy's
    violations are located by their own spans, and are not listed here)."""
    if isinstance(exc, Invalid):
        return list(exc.problems)
    if isinstance(exc, PolicyBreach):
        return []
    field = exc.field if isinstance(exc, Forbidden) else None
    return [Problem(field or "(request)", exc.message)]
