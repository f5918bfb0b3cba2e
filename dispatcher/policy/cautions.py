"""Warnings that do not block a send: thin suspect descriptions, victim-blaming phrasing, and
all-clears that do not say which alert they clear."""

from __future__ import annotations

import re

from dispatcher.domain import AlertKind
from dispatcher.policy.text import fold, sentences, tokenize
from dispatcher.policy.verdict import Severity, Violation
from dispatcher.policy.vocabulary import RACE_WORDS, SEX_WORDS, word_set

_DESCRIPTION_CUE = re.compile(
    r"\b(?:suspects?|described as|offenders?|perpetrators?|assailants?|attackers?|"
    r"sospechos[oa]s?|descrit[oa] como)\b\s*(?:is|are|was|were|es|son|fue|:)?",
    re.IGNORECASE,
)
# Words that carry no description: articles, verbs of being, hedges.
_FILLER = word_set(
    "a an the is are was were as described only unknown adult adults possibly likely "
    "approximately suspect suspects and one two both of with who also un una el la los las es "
    "son fue era descrito descrita como y de sospechoso sospechosa sospechosos"
)
_BLAMING = re.compile(
    r"\b(?:was|were|had been|appeared|estaba)\s+(?:heavily\s+|very\s+)?(?:drunk|intoxicated|"
    r"drinking|under the influence|high|impaired|ebri[oa]|borrach[oa]|intoxicad[oa])\b"
    r"|\b(?:had been|was)\s+drinking\b"
    r"|\b(?:was|were) walking alone\b|\bcaminaba sol[oa]\b"
    r"|\b(?:dressed|dressing)\s+(?:provocatively|in revealing)|\brevealing (?:clothes|clothing|"
    r"outfit)|\bprovocative(?:ly)?\b|\bropa provocativa\b"
    r"|\bleft\s+(?:her|his|their|the)\s+(?:\w+\s+)?(?:door|room|car|window|apartment|dorm|"
    r"bike|laptop|belongings|phone|drink)s?\s+(?:unlocked|open|unattended)"
    r"|\bshould (?:not|never) have\b|\bshould have known\b|\binvited (?:him|her|the suspect)\b"
    r"|\bwent (?:home|back) with\b|\baccepted a ride\b|\bput (?:herself|himself|themselves) "
    r"(?:at risk|in danger)\b|\b(?:careless|carelessly|reckless)\b"
    r"|\bfailed to (?:lock|secure)\b",
    re.IGNORECASE,
)
_VICTIM = re.compile(
    r"\b(?:victim|complainant|survivor|she|he|her|his|the student|the woman|the man|"
    r"v[ií]ctima|ella|la estudiante|el estudiante)\b",
    re.IGNORECASE,
)
_DESCRIPTION_END = re.compile(r"[.;!?\n](?:\s|$)|$")
_CLEARS = re.compile(r"^\W*all[- ]clear\b|\ball[- ]clear\s*:", re.IGNORECASE)


def race_sex_only(text: str) -> list[Violation]:
    """A suspect description made only of race and sex fits too many people to help."""
    out = []
    for cue in _DESCRIPTION_CUE.finditer(text):
        stop = _DESCRIPTION_END.search(text, cue.end())
        end = stop.start() if stop else len(text)
        keys = [fold(t.text.rstrip(".")) for t in tokenize(text[cue.end() : end])]
        content = [k for k in keys if k not in _FILLER]
        races = [k for k in content if k in RACE_WORDS]
        sexes = [k for k in content if k in SEX_WORDS]
        if races and sexes and len(races) + len(sexes) == len(content):
            out.append(Violation(
                "description.race_sex_only",
                "A suspect description of only race and sex fits too many people to help "
                "and invites profiling. Add clothing, height, build, age or a vehicle, or "
                "leave the description out.",
                cue.start(), end, Severity.WARNING))
    return out


def victim_blaming(text: str) -> list[Violation]:
    """Phrases that put the blame on the victim (drinking, walking alone, clothing...)."""
    out = []
    for sentence in sentences(text):
        for m in _BLAMING.finditer(sentence.text):
            lead = sentence.text[: m.start()]
            if not _VICTIM.search(lead) and not re.search(r"\b(?:should|left)\b", m.group()):
                continue
            out.append(Violation(
                "tone.victim_blaming",
                "This reads as blaming the victim. Describe what the offender did and give "
                "safety tips addressed to everyone instead.",
                sentence.start + m.start(), sentence.start + m.end(), Severity.WARNING))
    return out


def all_clear_unlinked(kind: AlertKind, text: str, references: str | None) -> list[Violation]:
    """An all-clear should name the alert it clears (the request's `references`)."""
    if references:
        return []
    if kind is AlertKind.ALL_CLEAR or (kind is AlertKind.EMERGENCY and _CLEARS.search(text)):
        hint = "" if kind is AlertKind.ALL_CLEAR else " and send it as kind all_clear"
        return [Violation(
            "reference.all_clear_unlinked",
            f"This all-clear does not reference the alert it clears: set `references` to that "
            f"alert's id{hint}, so records and devices link the two.",
            severity=Severity.WARNING)]
    return []
