"""SMS encoding: GSM-7 and UCS-2 segment counting, and normalization toward GSM-7."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# GSM 03.38 basic character set (the escape character itself is not text).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs an escape plus the character, two septets.
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM_SINGLE = 160
GSM_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

# Typographic characters dispatchers paste from word processors, and their plain forms.
TYPOGRAPHIC = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
    "\u00a0": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\ufeff": "",
}


class Encoding(StrEnum):
    """How an SMS travels: 7-bit GSM alphabet or 16-bit UCS-2."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsCount:
    """An SMS body measured as the network bills it."""

    encoding: Encoding
    units: int
    segments: int
    starts: tuple[int, ...]

    def capacity(self, segments: int) -> int:
        """Units that fit in that many segments of this encoding."""
        single, part = (
            (GSM_SINGLE, GSM_PART) if self.encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
        )
        return single if segments <= 1 else part * segments


def is_gsm(char: str) -> bool:
    """True when the character exists in GSM-7 (basic or extension table)."""
    return char in GSM_BASIC or char in GSM_EXTENDED


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character has a GSM-7 code, else UCS-2."""
    return Encoding.GSM7 if all(is_gsm(c) for c in text) else Encoding.UCS2


def _units(char: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if char in GSM_EXTENDED else 1
    return 2 if ord(char) > 0xFFFF else 1


def count(text: str) -> SmsCount:
    """Segments exactly as carriers split them: no escape pair or surrogate pair is cut."""
    encoding = encoding_of(text)
    costs = [_units(c, encoding) for c in text]
    total = sum(costs)
    single, part = (
        (GSM_SINGLE, GSM_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    )
    if not text:
        return SmsCount(encoding, 0, 0, ())
    if total <= single:
        return SmsCount(encoding, total, 1, (0,))
    starts = [0]
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > part:
            starts.append(index)
            used = 0
        used += cost
    return SmsCount(encoding, total, len(starts), tuple(starts))


def _fold_char(char: str) -> str:
    """The closest GSM-7 spelling of one character, or the character when there is none."""
    if is_gsm(char):
        return char
    if char in TYPOGRAPHIC:
        return TYPOGRAPHIC[char]
    decomposed = unicodedata.normalize("NFKD", char)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    if base and all(is_gsm(c) for c in base):
        return base
    lowered = {"ç": "c", "Ç": "C"}.get(char)
    return lowered if lowered is not None else char


def normalize_punctuation(text: str) -> str:
    """Curly quotes, dashes, ellipses and odd spaces in their plain GSM-7 forms."""
    return "".join(TYPOGRAPHIC.get(c, c) for c in text)


def to_gsm(text: str) -> str:
    """The text with every character that has a GSM-7 look-alike replaced by it.

    Accented letters outside GSM-7 (á, í, ó, ú) lose their accent: in an SMS, a Spanish alert
    in two GSM-7 segments beats the same alert in five UCS-2 ones. Characters with no
    look-alike (emoji, most non-Latin scripts) stay, and the message goes out in UCS-2.
    """
    return "".join(_fold_char(c) for c in text)


def forcing_ucs2(text: str) -> list[tuple[int, str]]:
    """Positions and characters that make a text UCS-2."""
    return [(i, c) for i, c in enumerate(text) if not is_gsm(c)]
