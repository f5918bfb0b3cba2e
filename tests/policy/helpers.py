"""Shared helpers of the policy tests: lint a request the way `clarion lint` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dispatcher.alerting.lint import lint_one
from dispatcher.alerting.rendering import render_alert
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind
from dispatcher.policy import Verdict, evaluate
from dispatcher.settings import Settings, load_settings

HERE = Path(__file__).resolve().parent
# The labelled examples published with the policy contract (shared/policy-examples.jsonl
# of the design documents), copied unchanged.
EXAMPLES = HERE / "data" / "examples.jsonl"
# The labelled examples of names published later (shared/policy-examples-names.jsonl: names
# without cues, possessives, a team position, a sought suspect, an official, places), copied
# unchanged.
EXAMPLES_NAMES = HERE / "data" / "examples_names.jsonl"
FAMILIES = {"confidentiality", "actionable", "brevity"}

_SETTINGS: list[Settings] = []


def settings() -> Settings:
    """The embedded default settings, read once."""
    if not _SETTINGS:
        _SETTINGS.append(load_settings())
    return _SETTINGS[0]


def lint(text: str, kind: str = "timely_warning", **extra: Any) -> dict[str, Any]:
    """The lint verdict (contract JSON) of one message."""
    return lint_one({"kind": kind, "text": text, **extra}, settings())


def rules(text: str, kind: str = "timely_warning", **extra: Any) -> set[str]:
    """The rule ids a message breaks."""
    return {v["rule"] for v in lint(text, kind, **extra)["violations"]}


def families(text: str, kind: str = "timely_warning", **extra: Any) -> set[str]:
    """The contract families (confidentiality, actionable, brevity) a message breaks."""
    return {r.split(".")[0] for r in rules(text, kind, **extra)} & FAMILIES


def judge(request: AlertRequest, **kwargs: Any) -> Verdict:
    """Render every channel and evaluate, with the embedded settings."""
    s = settings()
    channels = request.channels or list(ChannelKind)
    rendered = render_alert(request, channels, s.rendering, limits=s.policy)
    return evaluate(request, rendered, s.policy, **kwargs)


def load_cases(path: Path) -> list[dict[str, Any]]:
    """A JSON Lines file of labelled cases."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
