"""Words, clauses and sentences of an alert, each with its character span."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

# Abbreviations that keep their dot inside a token (and do not end a sentence).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "dra", "prof", "sr", "sra", "srta", "jr", "st", "ave",
        "blvd", "rd", "ln", "ct", "pl", "pkwy", "hwy", "mt", "ft", "lt", "sgt", "det", "ofc",
        "capt", "cpl", "cmdr", "rev", "apt", "rm", "ste", "no", "num", "approx", "av", "vs",
        "etc", "dept", "univ", "bldg", "e.g", "i.e", "a.m", "p.m", "u.s", "mtro", "lic", "ing",
        # Months before a day ("Sept. 27"): a date goes on.
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip

# Nouns that take a letter as their name ("Lot B", "Zone C", "Building D").
LETTERED = frozenset(
    {
        "lot", "zone", "section", "wing", "level", "area", "side", "entrance", "exit", "door",
        "floor", "building", "gate", "route", "tower", "unit", "garage", "deck", "parking", "hall",
        "lote", "zona", "edificio", "puerta", "nivel", "estacionamiento", "ala", "torre", "plan",
        "phase", "shift", "team", "quad", "court", "field", "stairwell", "elevator", "dock",
    }
)  # fmt: skip

_WORD = re.compile(
    r"[^\W\d_](?:[\w'\u2019\-]*[^\W_])?|\d+(?:[.,:/\-]\d+)*(?:[a-zA-Z]{1,2})?"
)


@dataclass(frozen=True, slots=True)
class Token:
    """A word or number, with its span in the text it came from."""

    text: str
    start: int
    end: int

    @property
    def key(self) -> str:
        """Lowercase, accents removed, trailing dot dropped: the form word lists use."""
        return fold(self.text.rstrip("."))

    @property
    def capitalized(self) -> bool:
        """Starts with a capital letter (the shape of a proper noun)."""
        return self.text[:1].isupper()

    @property
    def upper(self) -> bool:
        """Written in capitals throughout (a header word, or a shouted name)."""
        letters = [c for c in self.text if c.isalpha()]
        return len(letters) > 1 and all(c.isupper() for c in letters)

    @property
    def initial(self) -> bool:
        """A single capital letter with a dot, as in "Emily R."."""
        return len(self.text) == 2 and self.text[0].isupper() and self.text[1] == "."

    @property
    def number(self) -> bool:
        """Starts with a digit."""
        return self.text[:1].isdigit()


@cache
def fold(word: str) -> str:
    """Lowercase without accents, so "María" and "MARIA" look up the same."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\u2019", "'")


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Words and numbers; abbreviations and initials keep their dot."""
    tokens: list[Token] = []
    for match in _WORD.finditer(text):
        start, end = match.start(), match.end()
        word = match.group()
        if end < len(text) and text[end] == "." and (
            fold(word) in ABBREVIATIONS or (len(word) == 1 and word.isalpha())
        ):
            end += 1
            word += "."
        tokens.append(Token(word, start + offset, end + offset))
    return tokens


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of text: a sentence or a clause."""

    text: str
    start: int
    end: int


_BREAKS = re.compile(r"[.!?;:\n]")


def _ends_sentence(text: str, index: int) -> bool:
    """True when the character at index closes a sentence."""
    char = text[index]
    if char in "!?;\n":
        return True
    if char == ":":
        return index + 1 >= len(text) or text[index + 1].isspace()
    if char != ".":
        return False
    if index + 1 < len(text) and not text[index + 1].isspace():
        return False
    before = re.search(r"([\w.]+)$", text[:index])
    if before is None:
        return True
    word = before.group(1)
    if re.fullmatch(r"(?:[A-Z]\.)*[A-Z]", word):
        # "Emily R. was seen" and "Emily R. Smith" go on; "near Lot B. Walk with others" ends:
        # the letter there names a lot, a zone or a building, not a person.
        after = text[index + 1 :].lstrip()
        if not after or not after[0].isupper():
            return not after
        noun = re.search(r"(\w+)\s+\w\.$", text[: index + 1])
        return noun is not None and fold(noun.group(1)) in LETTERED
    if "." in word and text[index + 1 :].lstrip()[:1].islower():
        # "a Ph.D. student", "a U.S. citizen": a dotted abbreviation before a lowercase word.
        return False
    return fold(word) not in ABBREVIATIONS


def sentences(text: str) -> list[Span]:
    """Sentences and labelled parts ("Suspect: ..."), split at . ! ? ; : and line breaks."""
    out: list[Span] = []
    start = 0
    for mark in _BREAKS.finditer(text):
        index = mark.start()
        if _ends_sentence(text, index):
            _add(out, text, start, index + 1)
            start = index + 1
    _add(out, text, start, len(text))
    return out


def _add(out: list[Span], text: str, start: int, end: int) -> None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if not stripped:
        return
    lead = len(chunk) - len(chunk.lstrip())
    begin = start + lead
    out.append(Span(stripped, begin, begin + len(stripped)))


_CLAUSE_BREAK = re.compile(
    r",\s*(?:and|or|then|but|y|o|e|luego)\s+|\s+(?:and|or|then|but|y|o|e|luego)\s+|[,()\u2014\u2013]|\s-\s",
    re.IGNORECASE,
)


def clauses(text: str) -> list[Span]:
    """Sentences cut further at commas, dashes and coordinating conjunctions."""
    out: list[Span] = []
    for sentence in sentences(text):
        start = 0
        body = sentence.text
        for match in _CLAUSE_BREAK.finditer(body):
            _add(out, text, sentence.start + start, sentence.start + match.start())
            start = match.end()
        _add(out, text, sentence.start + start, sentence.start + len(body))
    # Trailing sentence punctuation is not part of a clause's words.
    trimmed = [(c, c.text.rstrip(".!?;:")) for c in out]
    return [Span(text_, c.start, c.start + len(text_)) for c, text_ in trimmed]


def words(text: str) -> list[Token]:
    """Tokens that carry letters or digits, for word budgets."""
    return [t for t in (Token(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text))
            if any(c.isalnum() for c in t.text)]
