"""Finding people's names in an alert: context cues, a name lexicon and the campus gazetteer.

A capitalized word is not a name by itself: alerts are full of buildings named after people
("Johnson Hall"), streets ("Martin Luther King Jr. Blvd"), offices ("Campus Police") and
headers ("Timely Warning"). A candidate earns a score from what surrounds it (a title such as
"Ms.", a role such as "student" or "her roommate", an apposition such as ", a freshman,", a
predicate such as "was robbed") and from the lexicon (a known given name followed by a known
surname). Places, offices, officials in their role and suspects are set aside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache

from dispatcher.policy.lexicon import GIVEN_WEIGHT, SURNAME_WEIGHT, Gazetteer, Lexicon
from dispatcher.policy.text import Token, fold, sentences, tokenize
from dispatcher.policy.vocabulary import (
    ALERT_WORDS,
    LINKING_VERBS,
    LOCATION_PREPOSITIONS,
    MONTH_NAMES,
    NAME_PARTICLES,
    NAME_SUFFIXES,
    NAMING_WORDS,
    OFFICIAL_TITLES,
    ORGANIZATION_WORDS,
    PERSON_ROLES,
    PERSON_TITLES,
    PLACE_PREFIXES,
    PLACE_SUFFIXES,
    SUSPECT_CUES,
    VICTIM_PREDICATES,
    word_set,
)

THRESHOLD = 2.0
TITLE_SCORE = 3.0
ROLE_SCORE = 2.0
APPOSITION_SCORE = 2.0
PREDICATE_SCORE = 2.0
POSSESSIVE_SCORE = 1.0
INITIAL_SCORE = 1.5
PAIR_SCORE = 0.5
SHAPE_SCORE = 0.3
SENTENCE_START_PENALTY = 1.0

_APPOSITION = re.compile(
    r"^\s*(?:,\s*(?:(?:a|an|the|age|aged|who|whose|un|una|quien)\b|de\s+\d{1,2}|\d{1,2}\b)"
    r"|\(\s*(?:\d{1,2}\b|age|id\b|student|estudiante))",
    re.IGNORECASE,
)
_SUSPECT_AFTER = re.compile(
    # An apposition may come between: "Marcus Webb, 29, was arrested", "Jared Flynn, 35, of
    # Dover, is wanted", "Raúl Mendoza, sospechoso del robo".
    r"^(?:\s*,\s*(?:\d{1,2}|a \d{1,2}-year-old[^,.;]{0,30}|of [^,.;]{1,30}|age[sd]? \d{1,2}"
    r"|de \d{1,2} a[ñn]os)(?=\s*,))*"
    r"(?:\W*(?:who\s+)?(?:was|is|has been|were|had been)\s+(?:arrested|charged|wanted|detained|"
    r"apprehended|taken into custody|sought|cited|being sought|the suspect|a suspect|"
    r"suspected)|\W*(?:who\s+)?(?:fled|is wanted|wanted|sought|suspected|the suspect|a suspect)"
    r"\b|\W*(?:quien\s+)?(?:fue|ha sido|es)\s+(?:arrestad|detenid|buscad|el sospechoso|"
    r"la sospechosa)|\W*(?:el |la )?(?:sospechos[oa]|buscad[oa]|arrestad[oa]|detenid[oa])\b)",
    re.IGNORECASE,
)


# Harm only a person suffers: tells "Marcus Hill was robbed" from "Jordan Hall was burglarized".
HARMED = word_set(
    "robbed assaulted attacked injured hurt killed struck approached harassed threatened "
    "followed stalked groped stabbed shot beaten punched raped kidnapped abducted told said "
    "asaltado asaltada agredido agredida atacado atacada herido herida"
)
# What a person owns and a place does not: "Jenna Park's car" is hers, not the park's.
BELONGINGS = word_set(
    "car vehicle truck bike bicycle scooter phone wallet purse bag backpack laptop computer "
    "room apartment dorm suite office desk locker mailbox keys home house family lab door "
    "laboratory studio"
)
_PERSON_APPOSITION = re.compile(
    r"^\s*,\s*(?:a|an|the|un|una)?\s*(?:\d{1,2}\b|\d{1,2}-year-old|freshman|sophomore|junior|"
    r"senior|first-year|student|graduate|employee|staff|resident|member|professor|estudiante)",
    re.IGNORECASE,
)


class Cls(StrEnum):
    """What one capitalized token is, for the purpose of finding names."""

    NAME = "name"
    TITLE = "title"
    OFFICIAL = "official"
    ROLE = "role"
    PLACE = "place"
    BREAK = "break"


class Role(StrEnum):
    """Whom a name found in an alert belongs to, as far as the text tells."""

    PERSON = "person"
    SUSPECT = "suspect"
    OFFICIAL = "official"


@dataclass(frozen=True, slots=True)
class NameHit:
    """A probable person's name, its span, score and the cues that made it one."""

    text: str
    start: int
    end: int
    score: float
    cues: tuple[str, ...]
    role: Role


def _base(token: Token) -> str:
    key = token.key
    for suffix in ("'s", "'"):
        if key.endswith(suffix) and len(key) > len(suffix) + 1:
            return key[: -len(suffix)]
    return key


def _possessive(token: Token) -> bool:
    return token.key.endswith("'s") or (token.key.endswith("s'") and len(token.key) > 3)


class NameFinder:
    """Finds the names of people in a text; see the module docstring for how."""

    def __init__(self, lexicon: Lexicon, gazetteer: Gazetteer) -> None:
        self.lexicon = lexicon
        self.gazetteer = gazetteer

    def find(self, text: str) -> list[NameHit]:
        """Every probable name of a person, with its role (person, suspect or official)."""
        hits: list[NameHit] = []
        for sentence in sentences(text):
            for hit in _sentence_hits(self, sentence.text):
                hits.append(replace(hit, start=hit.start + sentence.start,
                                    end=hit.end + sentence.start))
        return hits

    def in_sentence(self, sentence: str) -> tuple[NameHit, ...]:
        """The names in one sentence, spans relative to it."""
        return tuple(self._in_sentence(sentence, tokenize(sentence)))

    def _classify(self, tokens: list[Token], shouting: bool, text: str = "") -> list[Cls | None]:
        """A class for every capitalized token (None for lowercase words)."""
        keys = [_base(t) for t in tokens]
        raw = [t.key for t in tokens]
        out: list[Cls | None] = [None] * len(tokens)
        index = 0
        while index < len(tokens):
            # A place's own possessive ("Trader Joe's") and a place in the possessive
            # ("Carver Hall's lobby") both match.
            length = (
                self.gazetteer.match(raw, index) or self.gazetteer.match(keys, index)
                if tokens[index].capitalized else 0
            )
            if length:
                out[index : index + length] = [Cls.PLACE] * length
                index += length
                continue
            token, key = tokens[index], keys[index]
            if not (token.capitalized or token.initial):
                if self._lowercase_name(tokens, keys, out, index, text):
                    out[index] = Cls.NAME
                index += 1
                continue
            if any(c.isdigit() for c in token.text):
                # "A00123456", "B12": an identifier or a lot, never a name.
                out[index] = Cls.BREAK
                index += 1
                continue
            if _camel(token.text) and not self._known(key) and not self._joined_names(token):
                # "SafeWalk", "RaveGuardian": a program or a service, not a person.
                out[index] = Cls.PLACE
                index += 1
                continue
            after_title = index > 0 and out[index - 1] is Cls.TITLE
            if token.initial:
                out[index] = Cls.NAME
            elif key in PERSON_TITLES:
                out[index] = Cls.TITLE
            elif after_title and key not in PLACE_SUFFIXES and key not in ORGANIZATION_WORDS:
                # "Ms. Ford", "Dr. Rivers": after an honorific comes a name, whatever it is.
                out[index] = Cls.NAME
            elif key in OFFICIAL_TITLES:
                out[index] = Cls.OFFICIAL
            elif key in PERSON_ROLES or (key.rstrip("s") in PERSON_ROLES and key != "ras"):
                out[index] = Cls.ROLE
            elif key in PLACE_SUFFIXES or key in ORGANIZATION_WORDS:
                out[index] = Cls.PLACE
            elif key in ALERT_WORDS and self._surname_after_given(tokens, out, index):
                # "Emily Ford", "Grace Gold": a word of descriptions (a car make, a colour) is a
                # surname right after a given name.
                out[index] = Cls.NAME
            elif (
                key in ALERT_WORDS
                or key in SUSPECT_CUES
                or token.number
                or len(token.text) == 1
                or ((token.upper or shouting) and not self._known(key))
            ):
                # Header words, numbers, lone letters, and shouted words that are no name.
                out[index] = Cls.BREAK
            else:
                out[index] = Cls.NAME
            index += 1
        return out

    def _lowercase_name(
        self, tokens: list[Token], keys: list[str], classes: list[Cls | None], index: int,
        text: str = "",
    ) -> bool:
        """A name written in lower case right after a cue: "victim jennifer smith",
        "reported by aisha". A given name that is only a name, or a surname after one; or
        any word that is no common word, when a person's apposition follows it ("reported by
        chidinma, who lives there")."""
        if index == 0:
            return False
        key, before = keys[index], keys[index - 1]
        joined = not text or not text[tokens[index - 1].end : tokens[index].start].strip()
        if classes[index - 1] is Cls.NAME and not tokens[index - 1].capitalized and joined:
            return (
                bool(self.lexicon.surname_weight(key)) or self._described(tokens, index, text)
                or self._unknown_word(tokens, index)
            ) and key not in _LOWER_STOP
        if self._strong_lower_cue(tokens, keys, index, text):
            # "a junior named arpi hakobyan", "the victim is tuyet mai hoang", "the assaulted
            # student, nayagaq charles,", "the room of anahera wihongi": whatever the word.
            return self._unknown_word(tokens, index) or (
                self.lexicon.given_weight(key) >= GIVEN_WEIGHT and key not in _LOWER_STOP
            )
        cue = before in _LOWER_CUES or (_is_role(before) and not tokens[index - 1].capitalized)
        named = any(k in _NAMED_AS for k in keys[max(0, index - 6) : index])
        if before in {"as", "como"} and not named and any(
            k in _REPORTED_AS for k in keys[max(0, index - 4) : index]
        ):
            # "reported by police as tamar levi": a known name in lower case.
            return key not in _LOWER_STOP | _LOWER_WORDS and (
                self.lexicon.given_weight(key) >= GIVEN_WEIGHT
                or self.lexicon.surname_weight(key) >= SURNAME_WEIGHT
            )
        if before in {"as", "como"} and named:
            # "named by friends as kwesi mensah": a name, whatever its case.
            seeking = any(k in _SEEKING for k in keys[:index])
            return not seeking and key not in _LOWER_STOP | _LOWER_WORDS and len(key) > 1
        if not cue or len(key) <= 2 or key in _LOWER_STOP or key in _LOWER_WORDS:
            return False
        if before in _LOWER_HONORIFICS:
            # "ms. nwachukwu": after an honorific comes a name, whatever it is.
            return True
        return self.lexicon.given_weight(key) >= GIVEN_WEIGHT or self._described(
            tokens, index, text
        )

    def _unknown_word(self, tokens: list[Token], index: int) -> bool:
        """A lower-case word that is no everyday word: a name where a cue says one stands."""
        key = tokens[index].key
        return (
            len(key) > 2 and key.isalpha() and key not in self.lexicon.words
            and key not in _LOWER_STOP and key not in _LOWER_WORDS
            and not key.endswith(("ing", "ed", "ly"))
        )

    def _strong_lower_cue(
        self, tokens: list[Token], keys: list[str], index: int, text: str
    ) -> bool:
        """Words after which a person's name stands, whatever its case."""
        before = keys[index - 1]
        if before in {"named", "llamado", "llamada"}:
            return True
        two = keys[index - 2] if index > 1 else ""
        if before in {"is", "was", "es", "era"} and (two in PERSON_ROLES or two in _HARM_NOUNS):
            return True
        if before == "of" and two in BELONGINGS and index + 1 < len(tokens) and (
            self._unknown_word(tokens, index + 1)
        ):
            return True
        gap = text[tokens[index - 1].end : tokens[index].start] if text else ""
        return gap.strip() == "," and any(
            _is_role(k) for k in keys[max(0, index - 3) : index]
        ) and index + 1 < len(tokens) and self._unknown_word(tokens, index + 1)

    @staticmethod
    def _described(tokens: list[Token], index: int, text: str) -> bool:
        """A person's apposition right after the word: ", who", ", a resident", ", 19,"."""
        return bool(text) and (
            _LOWER_APPOSITION.match(text[tokens[index].end :]) is not None
            or (index + 1 < len(tokens) and not tokens[index + 1].capitalized
                and _LOWER_APPOSITION.match(text[tokens[index + 1].end :]) is not None
                and tokens[index + 1].key not in _LOWER_STOP | _LOWER_WORDS)
        )

    def _surname_after_given(
        self, tokens: list[Token], classes: list[Cls | None], index: int
    ) -> bool:
        """True when a capitalized known surname follows a given name with one space."""
        if index < 1 or classes[index - 1] is not Cls.NAME:
            return False
        before, token = tokens[index - 1], tokens[index]
        return (
            token.start - before.end == 1
            and not token.upper
            and self.lexicon.given_weight(_base(before)) >= GIVEN_WEIGHT
            and bool(self.lexicon.surname_weight(_base(token)))
        )

    def _joined_names(self, token: Token) -> bool:
        """ "MaryBeth", "JoAnn": two given names written as one."""
        parts = [fold(p) for p in re.findall(r"[A-Z][a-z']*", token.text)]
        return len(parts) == 2 and all(self.lexicon.given_weight(p) for p in parts)

    def _known(self, key: str) -> bool:
        return key in self.lexicon.given or bool(self.lexicon.surname_weight(key))

    def _in_sentence(self, text: str, tokens: list[Token]) -> list[NameHit]:
        letters = [c for t in tokens for c in t.text if c.isalpha()]
        shouting = bool(letters) and sum(c.isupper() for c in letters) > 0.8 * len(letters)
        classes = self._classify(tokens, shouting, text)
        self._mark_places(text, tokens, classes)
        hits: list[NameHit] = []
        index = 0
        while index < len(tokens):
            if classes[index] is not Cls.NAME:
                index += 1
                continue
            end = index + 1
            while end < len(tokens) and self._continues(text, tokens, classes, end):
                end += 1
            # A run never ends on a particle ("Juan de").
            while end - 1 > index and tokens[end - 1].key in NAME_PARTICLES:
                end -= 1
            hit = self._score(text, tokens, classes, index, end)
            if hit is not None:
                hits.append(hit)
            index = end
        return self._listed(text, tokens, classes, hits)

    def _listed(
        self, text: str, tokens: list[Token], classes: list[Cls | None], hits: list[NameHit]
    ) -> list[NameHit]:
        """A given name joined to a person's name is a person too: "Luis and Maria Gonzalez"."""
        people = {h.start for h in hits if h.role is Role.PERSON}
        taken = [(h.start, h.end) for h in hits]
        for index in range(len(tokens) - 2):
            token = tokens[index]
            if (
                classes[index] is Cls.NAME
                and tokens[index + 1].key in {"and", "y", "&"}
                and tokens[index + 2].start in people
                and self.lexicon.given_weight(_base(token)) >= GIVEN_WEIGHT
                and not any(a <= token.start < b for a, b in taken)
            ):
                hits.append(self._hit(text, [token], THRESHOLD, ["listed"], Role.PERSON))
        return sorted(hits, key=lambda h: h.start)

    @staticmethod
    def _continues(text: str, tokens: list[Token], classes: list[Cls | None], index: int) -> bool:
        gap = text[tokens[index - 1].end : tokens[index].start]
        if _possessive(tokens[index - 1]):
            return False
        if gap.strip() and not (
            # Gulnara "Gula" Abdrakhmanova: a nickname in quotes inside a name.
            _NICKNAME_GAP.fullmatch(gap) and classes[index] is Cls.NAME
            and classes[index - 1] is Cls.NAME
        ):
            return False
        if classes[index] is Cls.NAME:
            return True
        key = tokens[index].key
        if key in NAME_SUFFIXES and tokens[index].capitalized:
            return True
        # "Juan de la Cruz": a lowercase particle joins when a name part follows it.
        if key in NAME_PARTICLES and not tokens[index].capitalized:
            nxt = index + 1
            while nxt < len(tokens) and tokens[nxt].key in NAME_PARTICLES:
                nxt += 1
            return nxt < len(tokens) and classes[nxt] is Cls.NAME
        return False

    def _mark_places(self, text: str, tokens: list[Token], classes: list[Cls | None]) -> None:
        """Name-like words joined to a place word ("Lee Hall", "Lot G", "the Smith library")."""
        for index, token in enumerate(tokens):
            key = token.key
            if self._surname_not_place(text, tokens, classes, index):
                continue
            if classes[index] is Cls.PLACE or (
                classes[index] is None and key in PLACE_SUFFIXES and index > 0
            ):
                # Back over the name-like words before a suffix: "Martin Luther King Jr. Blvd".
                back = index - 1
                # "Prof. Ibrahim's lab", "Jenna's office": the lab is the owner's, a person's.
                owned = classes[index] is None and back >= 0 and _possessive(tokens[back])
                while not owned and back >= 0 and _joined(text, tokens, back) and (
                    classes[back] in (Cls.NAME, Cls.TITLE, Cls.PLACE)
                    or (tokens[back].key in NAME_SUFFIXES | NAME_PARTICLES and back > 0)
                ):
                    if classes[back] is Cls.TITLE and not self._suffix_is_place(tokens, index):
                        break
                    classes[back] = Cls.PLACE
                    back -= 1
            if classes[index] in (Cls.PLACE, Cls.NAME) and key in PLACE_PREFIXES:
                classes[index] = Cls.PLACE
                ahead = index + 1
                while ahead < len(tokens) and _joined(text, tokens, ahead - 1) and (
                    classes[ahead] is Cls.NAME or len(tokens[ahead].text) <= 2
                ):
                    if tokens[ahead].key in ALERT_WORDS and len(tokens[ahead].text) > 1:
                        break
                    classes[ahead] = Cls.PLACE
                    ahead += 1

    def _surname_not_place(
        self, text: str, tokens: list[Token], classes: list[Cls | None], index: int
    ) -> bool:
        """ "her boyfriend, Marcus Hill," and "student Jordan Hall": a place word that is
        also a surname, after a given name, with a role or title just before."""
        if index < 1 or not tokens[index].capitalized or _base(tokens[index]) not in PLACE_SUFFIXES:
            return False
        if not self.lexicon.surname_weight(_base(tokens[index])):
            return False
        first = tokens[index - 1]
        if classes[index - 1] is not Cls.NAME or not self.lexicon.given_weight(_base(first)):
            return False
        if _base(first) in self.lexicon.distinct:
            # "Jimin Park", "Minh Young": a given name that is only a name makes the word
            # after it a surname.
            classes[index] = Cls.NAME
            return True
        if index + 1 < len(tokens) and tokens[index + 1].key in PLACE_SUFFIXES:
            return False
        keys = [_base(t) for t in tokens[max(0, index - 4) : index - 1]]
        after = [t.key for t in tokens[index + 1 : index + 4]]
        while after and after[0] in LINKING_VERBS:
            after = after[1:]
        # "Ella Wright and Zoe Hill": a list that began with a full name goes on with names.
        listed = (
            index >= 4
            and tokens[index - 2].key in {"and", "y", "&"}
            and classes[index - 3] is Cls.NAME
            and classes[index - 4] is Cls.NAME
            and bool(self.lexicon.surname_weight(_base(tokens[index - 3])))
        )
        described = listed or (bool(after) and after[0] in HARMED) or (
            _possessive(tokens[index]) and bool(after) and after[0] in BELONGINGS
        )
        if (keys and keys[-1] in PERSON_TITLES) or _role_before(keys) or described or (
            _PERSON_APPOSITION.match(text[tokens[index].end :])
        ):
            classes[index] = Cls.NAME
            return True
        return False

    @staticmethod
    def _suffix_is_place(tokens: list[Token], index: int) -> bool:
        """After "Dr." a street suffix still makes a place ("Dr. Martin Luther King Jr. Drive")."""
        return tokens[index].key in {"drive", "dr", "blvd", "boulevard", "avenue", "ave", "street",
                                     "st", "road", "rd", "way", "parkway", "hall", "library",
                                     "center", "building", "park"}

    def _score(
        self, text: str, tokens: list[Token], classes: list[Cls | None], start: int, end: int
    ) -> NameHit | None:
        run = tokens[start:end]
        parts = [t for t in run if t.key not in NAME_PARTICLES and t.key not in NAME_SUFFIXES]
        if not parts and len(run) == 1 and run[0].capitalized:
            parts = run  # "Ben", "Van", "Del": a particle written alone is a name.
        initials = [t for t in parts if t.initial]
        names = [t for t in parts if not t.initial]
        cues: list[str] = []
        score = 0.0
        before = tokens[max(0, start - 4) : start]
        before_keys = [_base(t) for t in before]
        prev = before_keys[-1] if before_keys else ""
        prev_class = classes[start - 1] if start > 0 else None

        if prev in MONTH_NAMES or (names and _base(names[0]) in MONTH_NAMES and len(names) == 1
                                   and end < len(tokens) and tokens[end].number):
            return None
        if prev in {"dear", "estimada", "estimado", "estimados", "estimadas", "querida",
                    "querido"}:
            # "Dear Loyola Community": whom the message greets.
            return None
        if end < len(tokens) and tokens[end].key in _THING_AFTER and not _possessive(run[-1]):
            # "Washington plate BXY9231", "the Caz Limo bus services", "Uber app": what
            # follows makes the words a state's plate or a business, not a person.
            return None
        after = text[run[-1].end :]
        # "The officer who was shot, Sgt. Nizhoni Begay,": an official who was harmed is a
        # victim first.
        harmed = _HARMED_BEFORE.search(text[max(0, run[0].start - 90) : run[0].start]) is not None
        # Roles: a title ("Ms."), an official ("Officer"), a suspect cue, or a role noun.
        if not harmed and (self._official_after(after) or (
            prev not in PERSON_TITLES and _official_before(text, tokens, start)
        ) or _staff_named(text, run[0].start)):
            return self._hit(text, run, score, cues, Role.OFFICIAL)
        if harmed or _harm_before(before_keys):
            # "Among the injured is Angalgaq Kanrilak", "Wounded: Tamuna Kvaratskhelia".
            score += ROLE_SCORE
            cues.append("harmed")
        if prev in PERSON_TITLES and (prev_class in (Cls.TITLE, None)):
            score += TITLE_SCORE
            cues.append("title")
        if _suspect_before(tokens, start) or _SUSPECT_AFTER.match(after):
            return self._hit(text, run, score, cues, Role.SUSPECT)
        if _role_before(before_keys) and not (
            # "Select Student Home": a capitalized role word and an everyday word are a label.
            before and before[-1].capitalized and len(run) == 1
            and _base(run[0]) in self.lexicon.words
        ):
            score += ROLE_SCORE
            cues.append("role")
        elif (prev in _PERSON_AFTER or before_keys[-2:] == ["according", "to"]) and (
            self._introduced(run, names) or self._unlisted_by(run, before_keys, after)
        ):
            # "reported by Minh", "walking with Aisha", "reported by Maricel Dela Cruz": a
            # lone given name, or a run of name words, after a word that introduces a person.
            score += ROLE_SCORE
            cues.append("person_cue")
        elif (
            prev == "by" and len(run) == 1 and len(before_keys) > 1
            and before_keys[-2] in _REPORTED | _GOES and not run[0].upper
        ):
            # "called by Bayarmaa", "reported by Thandiwe": who reported is a person here
            # (an office is written with its office word: "reported by Campus Safety"); so is
            # whoever "goes by" a name.
            score += ROLE_SCORE
            cues.append("reported_by")
        elif _owned_before(before_keys) and (
            (2 <= len(names) <= 4 and all(_NAME_SHAPE.fullmatch(t.text) for t in names))
            or self._introduced(run, names)
        ):
            # "belongs to Wiremu Tane", "a car owned by Ana Lima": an owner is a person.
            score += ROLE_SCORE
            cues.append("owner")
        elif self._apposed(text, tokens, start, end) and (
            len(names) >= 2 or _PREDICATE_AFTER.match(text[run[-1].end :])
            or (len(names) == 1 and self.lexicon.given_weight(_base(names[0])) >= GIVEN_WEIGHT)
        ):
            # "One of the students whose room was burglarized, Siosaia Tupou, lost a laptop":
            # a name set off by commas after a phrase about a person.
            score += ROLE_SCORE
            cues.append("apposed")
        elif (
            prev == "with" and len(run) == 1 and len(before_keys) > 1
            and before_keys[-2] in _WITH_VERBS and not run[0].upper
        ):
            # "walking with Kalani", "was with Tavita": company kept is a person.
            score += ROLE_SCORE
            cues.append("with_person")
        elif _identified_before(before_keys, tokens, start):
            # "the victim was identified by the family as Taini Redcloud".
            score += ROLE_SCORE
            cues.append("identified")
        if (
            _possessive(run[-1]) and end < len(tokens) and tokens[end].key in RELATIONS
            and "role" not in cues
        ):
            # "Kaur's roommate", "Adaeze's boyfriend": only a person has a roommate.
            score += ROLE_SCORE
            cues.append("relation")
        if not run[0].capitalized and "role" not in cues:
            # A name in lower case was only taken for one after a cue ("reported by kofi").
            score += ROLE_SCORE
            cues.append("lower_case")
        # Fail safe: a full name (a known given name or surname with another capitalized word,
        # or initials with a word) is a person's unless something above said otherwise.
        full = self._full_name(names, initials)
        located = (
            not cues
            and not full
            and not _PERSON_APPOSITION.match(after)
            and not _WHO_AFTER.match(after)
            and not (_possessive(run[-1]) and end < len(tokens) and tokens[end].key in BELONGINGS)
            and (
                prev in LOCATION_PREPOSITIONS
                or (prev in {"the", "el", "la"} and len(before_keys) > 1
                    and before_keys[-2] in LOCATION_PREPOSITIONS)
            )
        )
        if located:
            return None
        # What follows: an apposition, a possessive, or a predicate of harm or of reporting.
        if _APPOSITION.match(after) and _apposition_of_person(after):
            score += APPOSITION_SCORE
            cues.append("apposition")
        if _possessive(run[-1]):
            score += POSSESSIVE_SCORE
            cues.append("possessive")
            if end < len(tokens) and (
                tokens[end].key in BELONGINGS
                or (tokens[end].capitalized and tokens[end].key in ALERT_WORDS)
            ):
                # "Megan's laptop": what is owned says whose it is.
                score += POSSESSIVE_SCORE
                cues.append("belonging")
        if self._predicate(tokens, end):
            score += PREDICATE_SCORE
            cues.append("predicate")
        # The lexicon.
        lex = self.lexicon
        if len(names) == 1:
            key = _base(names[0])
            weight = max(lex.given_weight(key), lex.surname_weight(key))
            if initials:
                first_is_initial = run[0].initial
                weight = (lex.surname_weight(key) if first_is_initial else lex.given_weight(key))
                if weight:
                    weight += INITIAL_SCORE
                    cues.append("initial")
            score += weight
            if weight:
                cues.append("lexicon")
            if (
                not initials and _sentence_start(text, run[0]) and "title" not in cues
                and "belonging" not in cues and "relation" not in cues
            ):
                score -= SENTENCE_START_PENALTY
        elif len(names) >= 2:
            first = lex.given_weight(_base(names[0]))
            last = lex.surname_weight(_base(names[-1]))
            score += first + last
            if first and last:
                score += PAIR_SCORE
            if first or last:
                cues.append("lexicon")
            elif not _sentence_start(text, run[0]):
                score += SHAPE_SCORE
        if full:
            score = max(score, THRESHOLD)
            cues.append("full_name")
        if score < THRESHOLD:
            return None
        return self._hit(text, run, score, cues, Role.PERSON)

    @staticmethod
    def _apposed(text: str, tokens: list[Token], start: int, end: int) -> bool:
        """A run between commas with a person's role word among the eight words before it."""
        if not text[: tokens[start].start].rstrip().endswith(","):
            return False
        if not text[tokens[end - 1].end :].lstrip().startswith(","):
            return False
        window = [_base(t) for t in tokens[max(0, start - 8) : start]]
        return any(
            key in PERSON_ROLES or key.rstrip("s") in PERSON_ROLES or key in _PERSON_HEADS
            or key in _OCCUPATIONS for key in window
        )

    def _introduced(self, run: list[Token], names: list[Token]) -> bool:
        """A run after "by" or "with" that is a person's: a lone known given name, or two to
        four name words of which one is a known given name or surname ("Maricel Dela Cruz");
        "with Parkland Auto Licensing" has none."""
        lex = self.lexicon
        if len(run) == 1:
            return lex.given_weight(_base(run[0])) >= GIVEN_WEIGHT
        if not 2 <= len(names) <= 4:
            return False
        return any(
            lex.given_weight(_base(t)) >= GIVEN_WEIGHT or lex.surname_weight(_base(t))
            >= SURNAME_WEIGHT for t in names
        )

    def _unlisted_by(self, run: list[Token], before_keys: list[str], after: str) -> bool:
        """ "shared by Yerlan Abenov and another student": after a passive verb and "by", two
        words shaped as names, none an everyday word, are a person's whatever lists hold it.
        A business named by two such words after "by" is taken for a person too: the
        confidentiality check errs on the side of the victim, and the override exists."""
        return (
            len(run) <= 2 and len(before_keys) > 1 and before_keys[-1] == "by"
            and before_keys[-2].endswith("ed") and before_keys[-2] not in _BY_ORGANIZATION
            and all(_NAME_SHAPE.fullmatch(t.text) and _base(t) not in self.lexicon.words
                    for t in run)
            and not re.match(r"\s*[A-Z0-9]", after)
        )

    def _full_name(self, names: list[Token], initials: list[Token]) -> bool:
        """A known given name first or a known surname last, with another capitalized word
        ("Kevin Miller", "Omar Haddad's", "Priya Raman"); or initials with a word
        ("J. Whitfield", "K.L. Anders"). Words that are also everyday words count only in pairs
        ("Will Rose" is no full name by itself; "Will Jackson" is)."""
        lex = self.lexicon
        if len(names) >= 2:
            first = lex.given_weight(_base(names[0]))
            last = lex.surname_weight(_base(names[-1]))
            return first >= GIVEN_WEIGHT or last >= SURNAME_WEIGHT
        if len(names) == 1 and initials:
            letters = "".join(t.key for t in initials)
            return letters not in _NOT_INITIALS
        return False

    @staticmethod
    def _official_after(after: str) -> bool:
        """ "Angela Ruiz, Dean of Students," and "Kevin Miller, the university's director of
        housing": an apposition that gives an official's title."""
        if not after.lstrip().startswith(","):
            return False
        for token in tokenize(after)[:5]:
            key = token.key
            if key in OFFICIAL_TITLES:
                return True
            if key in _NOT_OFFICIAL or key in PERSON_ROLES or key in VICTIM_PREDICATES:
                return False
        return False

    @staticmethod
    def _predicate(tokens: list[Token], end: int) -> bool:
        """ "was robbed", "reported", "told police", "fue asaltada" right after the name."""
        following = [t.key for t in tokens[end : end + 4]]
        if not following:
            return False
        if following[0] in VICTIM_PREDICATES:
            return True
        index = 0
        while index < len(following) and following[index] in LINKING_VERBS | {"not", "no"}:
            index += 1
        return 0 < index < len(following) and following[index] in VICTIM_PREDICATES

    @staticmethod
    def _hit(text: str, run: list[Token], score: float, cues: list[str], role: Role) -> NameHit:
        start, end = run[0].start, run[-1].end
        word = text[start:end]
        for suffix in ("'s", "\u2019s"):
            if word.endswith(suffix):
                word, end = word[: -len(suffix)], end - len(suffix)
        return NameHit(word, start, end, round(score, 2), tuple(cues), role)


# Nouns that make the capitalized words before them a thing: a plate's state, a business.
_THING_AFTER = word_set(
    "plate plates tag tags bus buses shuttle shuttles taxi cab cabs app apps store stores "
    "shop restaurant cafe pharmacy bank station market hotel services service company "
    "dealership garage lot staff employees personnel workers crews crew officers deputies"
)
# People one has: after a name in the possessive they make it a person's ("Kaur's roommate").
RELATIONS = word_set(
    "roommate roommates suitemate suitemates housemate boyfriend girlfriend partner husband "
    "wife fiance fiancee friend friends mother father mom dad parents parent sister brother "
    "son daughter family cousin aunt uncle classmate classmates teammate teammates "
    "coworker coworkers colleague neighbor neighbour advisor companion roommate's"
)
# Words that say who a name belongs to across a few words: "identified by the family as".
_IDENTIFIED = word_set("identified identificado identificada known")
# Verbs after which "with" introduces the person one was with: "walking with Kalani".
_WITH_VERBS = word_set(
    "was were walking walked talking talked speaking spoke arguing argued staying stayed "
    "living lived traveling travelling met meeting sitting sat studying hanging out home "
    "along together"
)
# Verbs after which "by" introduces who reported or found something.
_REPORTED = word_set(
    "reported called contacted notified discovered found witnessed observed seen alerted "
    "noticed spotted heard recognized recognised approached rescued helped "
    "reportado reportada llamado encontrado encontrada"
)


# A name's shape: a capital, then letters, with hyphens or apostrophes between such parts
# ("Wiremu", "Eze-Okafor", "O'Neil"); not "Rent-A-Car".
# "a student who goes by Moana": what a person is called.
_GOES = word_set("goes went")
_NAME_SHAPE = re.compile(
    r"[A-Z\u00c0-\u00de\u0100-\u024f][a-z\u00df-\u00ff\u0100-\u024f]+"
    r"(?:['\u2019-][A-Z\u00c0-\u00de\u0100-\u024f]?[a-z\u00df-\u00ff\u0100-\u024f]+)*(?:'s)?"
)


# Nouns for a person, beyond the roles: "The person who pulled the alarm, Hamid Rezaei,".
_PERSON_HEADS = word_set(
    "person persons people individual individuals man men woman women caller callers driver "
    "drivers owner owners clerk clerks customer customers passenger pedestrian worker workers "
    "visitor visitors guest guests scholar scholars injured hurt runner runners jogger "
    "joggers cyclist cyclists hiker hikers swimmer swimmers skater rider riders"
)
# A one-word apposition followed by its predicate: ", Kalani, is at the hospital".
_PREDICATE_AFTER = re.compile(
    r"^\s*,\s*(?:who\s+)?(?:is|was|were|are|has|had|remains|remained|suffered|sustained|"
    r"told|said|reported|lost|lives|lived|called|ran|fled|was not|is not)\b",
    re.IGNORECASE,
)
# ", who": what follows a person's name, not a place's.
_WHO_AFTER = re.compile(r"^\s*,\s*(?:who|whom|whose|quien|quienes)\b", re.IGNORECASE)


# What a person has, before "of" and their name (an office of a unit is left out).
_HELD = word_set(
    "home house apartment room car vehicle truck bike bicycle scooter locker belonging "
    "belongings property residence dorm suite door"
)


def _owned_before(before_keys: list[str]) -> bool:
    """ "belongs to", "registered to", "owned by", "driven by" just before a name."""
    if len(before_keys) < 2:
        return False
    prev, verb = before_keys[-1], before_keys[-2]
    if prev == "of" and (verb in _HELD or verb.rstrip("s") in _HELD):
        # "Homes of Jovana Markovic, Arben Hoxha and ...": whose home or car it was.
        return True
    return (prev == "to" and verb in {"belongs", "belonged", "belonging", "registered"}) or (
        prev == "by" and verb in {"owned", "driven", "rented", "leased", "registered"}
    )


def _identified_before(before_keys: list[str], tokens: list[Token], start: int) -> bool:
    """ "identified (by the family) as X": a name given for a person; not when a suspect cue
    comes first ("the suspect was identified by police as ...")."""
    if len(before_keys) > 1 and before_keys[-1] in {"is", "was", "es"} and before_keys[-2] in {
        "name", "nombre"
    }:
        # "whose name is Thandiwe".
        return True
    if not before_keys or before_keys[-1] not in {"as", "como"}:
        return False
    for token in reversed(tokens[max(0, start - 8) : start - 1]):
        key = _base(token)
        if key in _SEEKING:
            return False
        if key in _IDENTIFIED:
            return not any(_base(t) in _SEEKING for t in tokens[: start])
    return False


# Words after which a lone given name is a person: "reported by Minh", "with Aisha".
_PERSON_AFTER = word_set("by with con por")
# Words after which a name may be written in lower case ("victim jennifer smith").
_LOWER_CUES = word_set(
    "by with victim complainant survivor witness roommate named mr mrs ms mx dr prof "
    "assaulted attacked robbed stabbed shot struck threatened grabbed harassed punched"
)
_LOWER_HONORIFICS = word_set("mr mrs ms mx dr prof")
_NAMED_AS = word_set("named identified identificado identificada")
_REPORTED_AS = word_set("reported listed known")
# Lower-case words that are names in the lists and ordinary words in a sentence.
_LOWER_STOP = word_set(
    "and or the a an of in on at to for from was is were has had her his their our your "
    "will may can so it this that all police campus student students walking walked near "
    "long young un una uno unos unas el la los las de del para por con sin mas muy"
)


# Everyday words that may follow "by", "with" or "victim" before an apposition: "reported
# by someone, who", "with friends, who".
_LOWER_WORDS = word_set(
    "someone somebody anyone anybody everyone everybody nobody others other friends friend "
    "family phone email text mail herself himself themselves itself person people man woman "
    "men women male female individual individuals group groups officer officers staff "
    "security neighbors neighbours witnesses residents roommates another multiple several "
    "two three four five unknown known local nearby walking jogging running driving car "
    "vehicle bike bicycle foot hand force gun knife weapon approximately about over around"
)
# After a word in lower case: an apposition that says it is a person.
_LOWER_APPOSITION = re.compile(
    r"^\s*(?:,\s*(?:who|whom|whose|an?|age[sd]?|\d{1,2})\b|\(\s*\d{1,2}\b)", re.IGNORECASE
)


def _camel(word: str) -> bool:
    """A word with a capital inside after a lowercase run that is no name prefix
    ("SafeWalk", not "McDonald", "LaToya", "DeShawn", "MacArthur", "O'Brien")."""
    match = re.match(r"^([A-Z][a-z]+)[A-Z]", word)
    return match is not None and match.group(1).lower() not in _NAME_PREFIXES


_NAME_PREFIXES = frozenset(
    {"mc", "mac", "de", "la", "le", "di", "da", "du", "van", "von", "st", "del", "des", "al",
     "el", "ben", "abu", "fitz", "ter", "ten", "ja", "ke", "ta", "ra", "sha", "ty", "jo"}
)


# Letters that are abbreviations, not a person's initials ("U.S. Army", "D.C. Police").
_NOT_INITIALS = frozenset({"us", "dc", "uk", "eu", "un", "am", "pm", "ny", "la", "nj", "pa"})

# Words that end an apposition before any official's title could come: "Kevin Miller, who
# told the officer", "Kevin Miller, 19, and the officer".
_NOT_OFFICIAL = word_set(
    "who whose whom that which was is were has had and or but with y o quien que con"
)
# Words between an official's title and the name: "Dean of Students Angela Ruiz", "jefa de
# policía Marta Rivas", "Vice President for Student Affairs Karen Liu".
_OFFICE_WORDS = word_set("of for the and de del la los las y") | ORGANIZATION_WORDS

# Cues that the name which follows is the person the police are looking for.
_SEEKING = SUSPECT_CUES | word_set(
    "seeking seek seeks searching looking hunting warrant warrants arrest arresting "
    "buscan busca buscando busqueda arresto orden"
)
# Words between such a cue and the name: "looking for", "a warrant has been issued for",
# "the suspect, identified as", "busca a".
_SEEKING_GAP = word_set(
    "for as a an the identified named is was are has have been issued out of by police "
    "investigators officers detectives later "
    "a al el la por como identificado identificada de"
)


# Whom to ask, and whom the sender thanks: staff named by their work, not victims.
_CONTACT_BEFORE = re.compile(
    r"(?:\b(?:contact|call|e-?mail|email|reach out to|ask|refer (?:[^.;:]{0,60}?)to|"
    r"(?:questions?|concerns?|inquiries)(?:[^.;:]{0,60}?)\bto|directed to)\s+"
    r"(?:(?:[A-Z][\w'\u2019.&-]*|and|or|&|,)\s*){0,8})$"
)
_THANKS = re.compile(
    r"\b(?:grateful|thank|thanks|thanked|appreciate|appreciation|gratitude|kudos|credit to|"
    r"congratulat\w*|recogni[sz]e)\b",
    re.IGNORECASE,
)
_HARM_WORDS = re.compile(
    r"\b(?:victim|assault\w*|robbed|robbery|shot|stabbed|injur\w*|hurt|attack\w*|harass\w*|"
    r"stalk\w*|threat\w*|missing|died|killed|hospital\w*)\b",
    re.IGNORECASE,
)


def _apposition_of_person(after: str) -> bool:
    """ "Kim, a junior," and "Kim, who lives ...", not "At UW Tacoma, the active threat drill":
    after an article, a person's word within four words."""
    match = re.match(r"\s*,\s*(?:a|an|the|un|una)\s+((?:[\w'-]+\s*){1,4})", after, re.IGNORECASE)
    if match is None:
        return True
    words = [fold(w) for w in re.findall(r"[\w'-]+", match.group(1))]
    return any(
        _is_role(w) or w in _PERSON_HEADS or w.rstrip("s") in _PERSON_HEADS
        or re.fullmatch(r"\d{1,2}(?:-year-old)?|year-old", w) is not None for w in words
    )


def _staff_named(text: str, at: int) -> bool:
    """ "please contact Rick Roberts at 2507", "questions to Eric Guiser", "I'm grateful to
    David Potvin and Wayne Green who oversaw ...": someone to ask or to thank."""
    line_start = max(text.rfind(".", 0, at), text.rfind("\n", 0, at)) + 1
    clause = text[line_start:at]
    if _HARM_WORDS.search(clause):
        return False
    return _CONTACT_BEFORE.search(clause) is not None or _THANKS.search(clause) is not None


def _official_before(text: str, tokens: list[Token], start: int) -> bool:
    """An official's title just before the name, over office words ("Chief Maria Delgado",
    "Dean of Students Angela Ruiz", "Campus Police Sgt. Alicia Moreno")."""
    index = start - 1
    steps = 0
    while index >= 0 and steps < 6:
        token = tokens[index]
        gap = text[token.end : tokens[index + 1].start].strip()
        # Only the name itself may stand in apposition: "the Title IX Coordinator, Jane Doe".
        if gap and not (gap == "," and steps == 0):
            return False
        key = _base(token)
        if key in OFFICIAL_TITLES:
            return True
        # A role word right before the name is a cue of a person ("Student Anna Kim"); further
        # back it is part of an office ("Vice President for Student Affairs Karen Liu").
        if not (key in _OFFICE_WORDS or (token.capitalized and (steps or key not in PERSON_ROLES))):
            return False
        index -= 1
        steps += 1
    return False


def _suspect_before(tokens: list[Token], start: int) -> bool:
    """A suspect cue that governs the name: "looking for Tyler Grant", "arrested Cody
    Ramsey", "the suspect, identified as Jared Flynn"; not "arrested for assaulting Kevin"."""
    index = start - 1
    steps = 0
    while index >= 0 and steps < 6:
        key = _base(tokens[index])
        if key in _SEEKING:
            return True
        if key not in _SEEKING_GAP:
            return False
        index -= 1
        steps += 1
    return False


_ROLE_GAP = frozenset(
    {
        "de", "cuarto", "named", "called", "identified", "as", "the", "a", "an", "el", "la",
        "un", "una", "llamado", "llamada", "fellow",
    }
)


def _is_role(key: str) -> bool:
    return (
        key in PERSON_ROLES or key.rstrip("s") in PERSON_ROLES or key in NAMING_WORDS
        or key in _OCCUPATIONS or key.rstrip("s") in _OCCUPATIONS
    )


# Jobs and memberships that name a person when a name follows: "staff member Jesus Cruz".
_OCCUPATIONS = word_set(
    "member librarian technician lecturer instructor coach nurse custodian janitor cashier "
    "athlete player worker assistant intern researcher"
)
# Verbs before "by" that an organization does: "sponsored by Lyft", "managed by Aramark".
_BY_ORGANIZATION = word_set(
    "sponsored hosted provided operated powered managed organized presented funded issued "
    "published posted announced offered supported conducted cancelled canceled closed "
    "affected caused required approved signed authorized"
)
# Harm just before a name: "Among the injured is", "Wounded:", "the victims were".
_HARM_NOUNS = word_set("injured wounded killed dead deceased hurt victim victims casualties")
_NICKNAME_GAP = re.compile(r"\s*[\"\u201c\u201d']\s*|\s+\(\s*|\s*\)\s+")
_HARMED_BEFORE = re.compile(
    r"\bwho (?:was|were|had been|has been|got) (?:shot|stabbed|injured|wounded|hurt|killed|"
    r"assaulted|attacked|struck|hit|robbed|beaten)\b[^.;:]*,\s*(?:\w+\.?\s+)?$",
    re.IGNORECASE,
)


_ORG_NOUNS = word_set(
    "department office program programme company group organization organisation business "
    "service services website site app account agency firm center centre club team unit "
    "initiative campaign system platform fund foundation committee"
)


def _harm_before(keys: list[str]) -> bool:
    """ "Wounded: X" (the harm word right before), "Among the injured is X"."""
    if not keys:
        return False
    if keys[-1] in _HARM_NOUNS:
        return True
    return keys[-1] in {"is", "are", "was", "were", "include", "includes", "included"} and any(
        k in _HARM_NOUNS for k in keys[-3:-1]
    )


def _role_before(keys: list[str]) -> bool:
    """A role noun right before a name ("student Anna Kim", "the victim, Sarah", "her roommate
    Jessica"); only articles and naming words may come between."""
    for back in range(1, min(3, len(keys)) + 1):
        key = keys[-back]
        if key in NAMING_WORDS and len(keys) > back and keys[-back - 1] in _ORG_NOUNS:
            # "a department called Disability Resources": an office's name.
            return False
        if _is_role(key):
            return True
        if key not in _ROLE_GAP:
            return False
    return False


@lru_cache(maxsize=4096)
def _sentence_hits(finder: NameFinder, sentence: str) -> tuple[NameHit, ...]:
    """Renderings repeat the same sentences across channels: judge each sentence once."""
    return finder.in_sentence(sentence)


def _sentence_start(text: str, token: Token) -> bool:
    """True when the token opens its sentence (capitalized for that reason alone)."""
    before = text[: token.start].rstrip()
    return not before or before[-1] in ".!?:;\n\"'(["


def _joined(text: str, tokens: list[Token], index: int) -> bool:
    """True when only spaces (or a dot of an abbreviation) separate a token from the next:
    "Kevin Miller, West Hall" is a name, then a place."""
    return not text[tokens[index].end : tokens[index + 1].start].strip()
