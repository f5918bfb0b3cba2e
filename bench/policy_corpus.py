"""The message policy on alerts campuses published (tests/policy/real/): what it would block.

    python -m bench.policy_corpus [--split tune|holdout|all] [--show]

Every alert and every variant (a real alert with one identifying detail added) goes through
`dispatcher.alerting.lint.lint_one`, the code behind `clarion lint`, with the embedded default
config.
A family counts as flagged on a message when one of its violations blocks the send (severity
`error`); warnings are counted apart. Prints, per split, precision and recall per family against
the labels, and the issue's targets: live emergencies blocked for their wording, confidentiality
recall on the variants, clean real alerts flagged, and real timely warnings whose safety tip or
way to report is recognised. `--show` lists the misses of the tune split; the held-out split is
scored, never shown, so it is never tuned on.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.alerting.lint import lint_one
from dispatcher.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "policy" / "real"
FAMILIES = ("confidentiality", "actionable", "brevity")
REQUEST_KEYS = {"kind", "mode", "text", "language", "references"}


def load(name: str) -> list[dict[str, Any]]:
    """A JSON Lines file of the real corpus."""
    lines = (REAL / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Judged:
    """One labelled message and what the policy said."""

    case: dict[str, Any]
    verdict: dict[str, Any]
    real: bool

    @property
    def blocking(self) -> set[str]:
        """The families with a violation that blocks the send."""
        return {v["rule"].split(".")[0] for v in self.verdict["violations"]
                if v["severity"] == "error"}

    @property
    def warned(self) -> set[str]:
        """The families with a warning only."""
        return {v["rule"].split(".")[0] for v in self.verdict["violations"]
                if v["severity"] == "warning"} - self.blocking


@dataclass
class Score:
    """Message-level counts of one family."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, expected: bool, found: bool, label: str) -> None:
        """Count one message."""
        if expected and found:
            self.tp += 1
        elif found:
            self.fp += 1
            self.misses.append(f"false flag: {label}")
        elif expected:
            self.fn += 1
            self.misses.append(f"missed: {label}")
        else:
            self.tn += 1

    @staticmethod
    def ratio(a: int, b: int) -> str:
        """a/b as a two-decimal fraction, or n/a."""
        return f"{a / b:.2f}" if b else "n/a"


def judge(settings: Settings, split: str) -> list[Judged]:
    """Lint every alert and variant of the split."""
    out = []
    for name, real in (("alerts.jsonl", True), ("variants.jsonl", False)):
        for case in load(name):
            if split != "all" and case["split"] != split:
                continue
            request = {k: v for k, v in case.items() if k in REQUEST_KEYS}
            out.append(Judged(case, lint_one(request, settings), real))
    return out


def report(judged: list[Judged], title: str, show: bool) -> str:
    """The numbers of one split as text."""
    lines = [f"== {title}: {sum(j.real for j in judged)} real alerts, "
             f"{sum(not j.real for j in judged)} variants =="]
    scores = {f: Score() for f in FAMILIES}
    for j in judged:
        label = f"{j.case['id']} ({j.case.get('added') or j.case['kind']}): {j.case['text'][:90]!r}"
        for family in FAMILIES:
            scores[family].add(family in j.case["expect"], family in j.blocking, label)
    lines.append(f"{'family':<16}{'tp':>4}{'fp':>4}{'fn':>4}{'tn':>5}{'precision':>11}{'recall':>8}")
    for family, s in scores.items():
        lines.append(f"{family:<16}{s.tp:>4}{s.fp:>4}{s.fn:>4}{s.tn:>5}"
                     f"{Score.ratio(s.tp, s.tp + s.fp):>11}{Score.ratio(s.tp, s.tp + s.fn):>8}")
    real = [j for j in judged if j.real]
    live = [j for j in real if j.case["kind"] == "emergency" and j.case["mode"] == "live"]
    wording = [j for j in live if not j.verdict["ok"] and "confidentiality" not in j.blocking]
    variants = [j for j in judged if not j.real]
    caught = [j for j in variants if "confidentiality" in j.blocking]
    clean = [j for j in real if not j.case["expect"]]
    flagged = [j for j in clean if j.blocking]
    # Timely warnings that carry a tip or a way to report (one cut before its tip does not).
    warnings = [j for j in real if j.case["kind"] == "timely_warning"
                and "actionable" not in j.case["expect"]]
    recognised = [j for j in warnings if "actionable" not in j.blocking]
    instructed = [j for j in live if "actionable" not in j.warned | j.blocking]
    derived = [j for j in real if j.verdict.get("derived")]
    lines += [
        f"live emergencies blocked for their wording: {len(wording)} of {len(live)}",
        f"confidentiality recall on real alerts with a detail added: {len(caught)}/{len(variants)}"
        f" = {Score.ratio(len(caught), len(variants))}",
        f"clean real alerts flagged (any blocking violation): {len(flagged)} of {len(clean)}"
        f" = {Score.ratio(len(flagged), len(clean))}",
        f"real timely warnings whose safety tip or way to report is recognised: "
        f"{len(recognised)}/{len(warnings)} = {Score.ratio(len(recognised), len(warnings))}",
        f"live emergencies whose instruction is recognised (no actionable warning either): "
        f"{len(instructed)}/{len(live)}",
        f"real alerts whose short channels carry a derived text: {len(derived)} of {len(real)}",
    ]
    if show:
        for family, s in scores.items():
            lines += [f"  {family} {m}" for m in s.misses]
        lines += [f"  blocked for wording: {j.case['id']}" for j in wording]
        lines += [f"  no instruction recognised: {j.case['id']}: {j.case['text'][:90]!r}"
                  for j in live if j not in instructed]
    return "\n".join(lines)


def main() -> None:
    """Print the report of each split asked for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tune", "holdout", "all", "both"), default="both")
    parser.add_argument("--show", action="store_true", help="list the misses of the tune split")
    args = parser.parse_args()
    settings = load_settings()
    splits = ("tune", "holdout") if args.split == "both" else (args.split,)
    for split in splits:
        print(report(judge(settings, split), split, args.show and split == "tune"))


if __name__ == "__main__":
    main()
