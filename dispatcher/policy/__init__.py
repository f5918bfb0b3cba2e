"""Message policy: brief, actionable, and free of anything that identifies a victim.

`evaluate(request, rendered, settings)` judges an alert request and each channel's rendering
and returns a `Verdict`: every `Violation` with its rule id ("confidentiality.name"), a plain
message, the character span and a severity (`error` blocks the send, `warning` does not).
"""

from __future__ import annotations

from dispatcher.policy.engine import evaluate, finder_for
from dispatcher.policy.lexicon import directory_places
from dispatcher.policy.verdict import Severity, Verdict, Violation

FAMILIES = ("confidentiality", "actionable", "brevity")

__all__ = [
    "FAMILIES",
    "Severity",
    "Verdict",
    "Violation",
    "directory_places",
    "evaluate",
    "finder_for",
]
