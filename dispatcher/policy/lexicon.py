"""The bundled name lexicon and the gazetteer of campus places."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dispatcher.policy.text import fold, tokenize

DATA = Path(__file__).resolve().parent / "data"

# Weights a name detector gives to a lexicon hit: full for a name that is only a name,
# reduced for a name that is also an everyday word ("Rose", "Hall", "Will").
GIVEN_WEIGHT = 1.0
GIVEN_AMBIGUOUS = 0.4
SURNAME_WEIGHT = 1.0
SURNAME_AMBIGUOUS = 0.5


def _read(name: str) -> frozenset[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Given names and surnames (US Census public-domain lists, the names of many cultures
    from public frequency rankings, and a curated supplement)."""

    given: frozenset[str]
    surnames: frozenset[str]
    everyday: frozenset[str]
    # Given names that are only names wherever they stand ("Jimin", "Oluwaseun"): beside
    # them a word that is also a place word or a common word ("Park", "Young") is a surname.
    distinct: frozenset[str] = frozenset()

    def given_weight(self, key: str) -> float:
        """How much a word looks like a given name, 0 when it is none."""
        if key not in self.given:
            return 0.0
        return GIVEN_AMBIGUOUS if key in self.everyday else GIVEN_WEIGHT

    def surname_weight(self, key: str) -> float:
        """How much a word looks like a surname, 0 when it is none."""
        parts = [p for p in key.replace("'", "-").split("-") if p]
        if not parts:
            return 0.0
        # Hyphenated surnames ("Garcia-Lopez") count when every part is a surname.
        weights = [self._one_surname(p) for p in parts]
        return min(weights) if all(weights) else 0.0

    def _one_surname(self, key: str) -> float:
        for candidate in (key, key.removeprefix("mc"), key.removeprefix("o")):
            if candidate in self.surnames:
                return SURNAME_AMBIGUOUS if candidate in self.everyday else SURNAME_WEIGHT
        return 0.0


def _world() -> tuple[frozenset[str], frozenset[str]]:
    """The given names and surnames of names_world.txt."""
    given: set[str] = set()
    surnames: set[str] = set()
    for line in (DATA / "names_world.txt").read_text(encoding="utf-8").splitlines():
        head, _, names = line.partition(":")
        if head == "given":
            given.update(names.split())
        elif head == "surname":
            surnames.update(names.split())
    return frozenset(given), frozenset(surnames)


@cache
def lexicon() -> Lexicon:
    """The lexicon shipped under dispatcher/policy/data, read once."""
    world_given, world_surnames = _world()
    everyday = _read("common_words.txt")
    census = _read("given_names.txt")
    return Lexicon(
        given=census | world_given,
        surnames=_read("surnames.txt") | world_surnames,
        everyday=everyday,
        # Only the names the census lists lack: "Madison Park" stays a park.
        distinct=frozenset(world_given - census - everyday),
    )


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Place names of this campus as folded word sequences, longest first."""

    names: dict[str, tuple[tuple[str, ...], ...]]

    @classmethod
    def of(cls, places: Iterable[str]) -> Gazetteer:
        """A gazetteer from place names ("Johnson Hall", "north-hall", "MLK Jr. Blvd")."""
        seqs = {
            tuple(t.key for t in tokenize(p.replace("-", " ").replace("_", " ")))
            for p in [*places, *_bundled_places()]
        }
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for seq in sorted((s for s in seqs if s), key=len, reverse=True):
            by_first.setdefault(seq[0], []).append(seq)
        return cls({k: tuple(v) for k, v in by_first.items()})

    def holds(self, words: str) -> bool:
        """True when the words are one of the campus's place names or addresses, whole."""
        keys = [t.key for t in tokenize(words.replace("-", " "))]
        return bool(keys) and self.match(keys, 0) == len(keys)

    def match(self, keys: list[str], index: int) -> int:
        """Length of the longest place name starting at keys[index], 0 when none."""
        for seq in self.names.get(keys[index], ()):
            if tuple(keys[index : index + len(seq)]) == seq:
                return len(seq)
        return 0


@cache
def _bundled_places() -> tuple[str, ...]:
    return tuple(sorted(_read("places.txt")))


@cache
def _directory_places(path: Path, mtime: float) -> frozenset[str]:
    del mtime  # part of the cache key: a changed file is read again
    found: set[str] = set()
    # Bad bytes in one row are the importer's to reject; here they only must not stop a start.
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        # A buildings file names its buildings; people and devices files give building ids.
        named = "name" in columns and not columns & {"first_name", "class"}
        for row in reader:
            slug = row.get("building") or ""
            if slug:
                found.add(slug.replace("-", " ").replace("_", " ").title())
            if named and row.get("name"):
                found.add(row["name"])
            if named and row.get("address"):
                # The campus's own street addresses are places, never a residence to hide.
                found.add(row["address"])
    return frozenset(found)


def directory_places(paths: Iterable[Path]) -> frozenset[str]:
    """Building names from the directory's CSV files (a `building` column of ids such as
    "carver-hall", or the `name` and `address` columns of a buildings file)."""
    found: set[str] = set()
    for path in paths:
        if path.is_file():
            found |= _directory_places(path.resolve(), path.stat().st_mtime)
    return frozenset(found)


def folded(words: Iterable[str]) -> frozenset[str]:
    """Fold a list of words once for look-ups."""
    return frozenset(fold(w) for w in words)

