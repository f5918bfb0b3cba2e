"""The labelled corpora: the published examples, our own cases and the held-out sets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.helpers import EXAMPLES, EXAMPLES_NAMES, FAMILIES, HERE, lint, load_cases

PUBLISHED = [EXAMPLES, EXAMPLES_NAMES]
OWN = [
    HERE / "cases.jsonl",
    HERE / "cases_names.jsonl",
    HERE / "holdout.jsonl",
    HERE / "holdout2.jsonl",
    HERE / "holdout3.jsonl",
    # Written before the fail-safe name rules and scored once at the end of that work
    # (confidentiality 36/0/0, actionable 10/2/0); a regression set from then on.
    HERE / "holdout4.jsonl",
]
CORPORA = PUBLISHED + OWN
# holdout5.jsonl is left out on purpose: written after the fail-safe name rules and scored
# once then; scored once more after the rules for real alerts (names of many cultures, the
# normal form, ID formats: 41 of 42 exact; confidentiality 15 found, 0 false, 1 missed;
# actionable 4/0/0). It stays held out.


def _all() -> list[Any]:
    out = []
    for path in CORPORA:
        if not path.is_file():
            continue
        for number, case in enumerate(load_cases(path), start=1):
            out.append(pytest.param(case, id=f"{path.stem}:{number}"))
    return out


@pytest.mark.parametrize("case", _all())
def test_expected_families(case: dict[str, Any]) -> None:
    """Every labelled message gives exactly its expected families, warnings included."""
    verdict = lint(**{k: v for k, v in case.items() if k != "expect"})
    got = {v["rule"].split(".")[0] for v in verdict["violations"]} & FAMILIES
    assert got == set(case["expect"]), verdict["violations"]


def test_corpus_is_large_and_bilingual() -> None:
    """Our own cases number at least 60, Spanish among them, clean and flagged both."""
    own = [c for p in OWN for c in load_cases(p)]
    assert len(own) >= 60
    assert sum(1 for c in own if c.get("language") == "es") >= 15
    assert sum(1 for c in own if not c["expect"]) >= 30
    for family in FAMILIES:
        assert any(family in c["expect"] for c in own)


def test_published_examples_present() -> None:
    """The published examples ship with the tests, every one of them."""
    assert len(load_cases(EXAMPLES)) == 14
    assert len(load_cases(EXAMPLES_NAMES)) == 6


def test_precision_and_recall_per_family() -> None:
    """Message-level precision and recall of each family over our own corpora."""
    counts = {f: [0, 0, 0] for f in FAMILIES}  # true positives, false positives, misses
    for path in OWN:
        for case in load_cases(path):
            verdict = lint(**{k: v for k, v in case.items() if k != "expect"})
            got = {v["rule"].split(".")[0] for v in verdict["violations"]}
            for family in FAMILIES:
                expected = family in case["expect"]
                found = family in got
                counts[family][0] += expected and found
                counts[family][1] += found and not expected
                counts[family][2] += expected and not found
    for family, (tp, fp, fn) in counts.items():
        assert tp >= 3, family
        assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.95, (family, tp, fp, fn)
