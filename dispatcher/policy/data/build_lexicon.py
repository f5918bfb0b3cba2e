"""Rebuild the name lexicon shipped beside this script from public-domain sources.

Sources (all public domain):
- US Census Bureau, 1990 name frequency files (dist.male.first, dist.female.first, dist.all.last),
  as shipped in the `names` package on PyPI (sdist, folder names/).
- given_names_extra.txt and surnames_extra.txt beside this script: names common on US campuses
  today that the 1990 files miss (curated by hand).
- Debian's wamerican-small word list (/usr/share/dict) and common_words_extra.txt (Spanish,
  curated): names that are also everyday words ("Hall", "Rose", "Will", "Flores") are written
  to common_words.txt so the detector weighs them less. (The Spanish word list is not used: it
  carries many given names in lowercase.)

Usage: python build_lexicon.py CENSUS_DIR [DICT_DIR]
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SURNAME_LIMIT = 30000  # covers about 90 % of the population in the 1990 file


def fold(word: str) -> str:
    """Lowercase without accents, the form the detector looks names up in."""
    decomposed = unicodedata.normalize("NFKD", word.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def census(path: Path, limit: int | None = None) -> list[str]:
    """The names of one census frequency file, most frequent first."""
    out: list[str] = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if parts:
            out.append(fold(parts[0]))
        if limit is not None and len(out) >= limit:
            break
    return out


def extra(name: str) -> list[str]:
    """A curated supplement, one name a line, '#' comments allowed."""
    lines = (HERE / name).read_text(encoding="utf-8").splitlines()
    return [fold(x) for x in lines if x.strip() and not x.startswith("#")]


def words(path: Path) -> set[str]:
    """Lowercase entries of a dictionary word list: everyday words, not proper nouns."""
    if not path.is_file():
        return set()
    text = path.read_text(encoding="utf-8", errors="ignore")
    return {fold(w) for w in text.split() if w[:1].islower() and "'" not in w}


def main(census_dir: Path, dict_dir: Path) -> None:
    """Write given_names.txt, surnames.txt and common_words.txt."""
    given = census(census_dir / "dist.female.first") + census(census_dir / "dist.male.first")
    given += extra("given_names_extra.txt")
    surnames = census(census_dir / "dist.all.last", SURNAME_LIMIT) + extra("surnames_extra.txt")
    given_set, surname_set = sorted(set(given)), sorted(set(surnames))
    everyday = words(dict_dir / "american-english-small") | set(extra("common_words_extra.txt"))
    common = sorted((set(given_set) | set(surname_set)) & everyday)
    for name, items in (
        ("given_names.txt", given_set),
        ("surnames.txt", surname_set),
        ("common_words.txt", common),
    ):
        (HERE / name).write_text("\n".join(items) + "\n", encoding="utf-8")
        print(f"{name}: {len(items)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/dict"))
