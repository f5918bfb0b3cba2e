"""One normal form of a text before any rule reads it, with a map back to the original.

Every rule reads the NFKC form of a text with the Unicode format characters (category Cf:
the soft hyphen, zero-width spaces and joiners, direction marks) removed, so that a name
split by soft hyphens reads as the name and full-width letters as plain ones. A violation's span
is found in that form and moved back to the offsets of the text the dispatcher wrote.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text in normal form and, for every one of its characters, where it came from."""

    text: str
    # origin[i] is the offset in the original of the character that produced text[i];
    # origin[len(text)] is the original's length, so an end offset maps too.
    origin: tuple[int, ...]

    @property
    def changed(self) -> bool:
        """True when the normal form differs from the original."""
        return len(self.origin) != len(self.text) + 1 or any(
            o != i for i, o in enumerate(self.origin)
        )

    def start(self, index: int) -> int:
        """The original offset of a span that starts at index in the normal form."""
        return self.origin[min(max(index, 0), len(self.text))]

    def end(self, index: int) -> int:
        """The original offset of a span that ends at index in the normal form."""
        if index <= 0:
            return self.origin[0]
        if index >= len(self.text):
            return self.origin[len(self.text)]
        # Just after the original character that produced the span's last character: a
        # character NFKC expanded ("ﬁ" to "fi") is covered whole.
        return self.origin[index - 1] + 1


def normalize(text: str) -> Normalized:
    """NFKC, format characters removed, one original offset per resulting character."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":
            continue
        folded = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        for piece in folded:
            out.append(piece)
            origin.append(index)
    # Composition across characters ("e" + combining acute) is what NFKC adds to the
    # per-character pass; apply it where it changes nothing in length, so the map holds.
    joined = "".join(out)
    composed = unicodedata.normalize("NFKC", joined)
    if composed != joined and len(composed) == len(joined):
        joined = composed
    origin.append(len(text))
    return Normalized(joined, tuple(origin))
