"""confidentiality.*: nothing that identifies a victim, complainant or witness."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from dispatcher.domain import AlertKind
from dispatcher.policy.lexicon import lexicon
from dispatcher.policy.names import NameFinder, Role
from dispatcher.policy.rewrites import rewrite
from dispatcher.policy.settings import DEFAULT_ID_FORMATS
from dispatcher.policy.text import Span, fold, sentences
from dispatcher.policy.verdict import Severity, Violation

_PERSON_CUE = re.compile(
    r"\b(?:victim|victim's|complainant|survivor|resident|student|roommate|suitemate|"
    r"occupant|tenant|his|her|hers|their|she|he|him|lives|living|lived|whose|witness|"
    r"girlfriend|boyfriend|friend|personal|cell|home|v[ií]ctima|estudiante|residente|"
    r"su|vive|viv[ií]a|denunciante|compa[ñn]er[oa])\b",
    re.IGNORECASE,
)
_INSTITUTION_CUE = re.compile(
    r"\b(?:police|public safety|department|dept|office|center|centre|hotline|tip ?line|"
    r"line|dispatch|security|services|desk|university|college|campus|title ix|counseling|"
    r"polic[ií]a|seguridad|oficina|departamento|centro|l[ií]nea|universidad)\b",
    re.IGNORECASE,
)
_OFFICIAL = re.compile(
    r"\b(?:officer|detective|det\.|sergeant|sgt\.|lieutenant|lt\.|captain|chief|investigator|"
    r"coordinator|director|dean|oficial|agente|detective)(?!\w)",
    re.IGNORECASE,
)
_ROLE_MAILBOX = re.compile(
    r"^(?:police|safety|security|tips?|titleix|title9|dps|ups|ucpd|upd|cpd|info|alerts?|"
    r"help|report|reports|counseling|caps|dean|deanofstudents|housing|reslife|emergency|"
    r"ehs|facilities|it|support|contact|noreply|no-reply|webmaster|compliance|clery|"
    r"publicsafety|campuspolice|police-tips|policia|seguridad)[\w.+-]*$",
    re.IGNORECASE,
)

PHONE = re.compile(
    r"(?<![\w/-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}(?![\w-])"
    r"|(?<![\w/.-])\d{3}[-.]\d{4}(?![\w-])"
)
SSN = re.compile(
    r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])|\bSSN\b"
    # "Social Security number" is one; "the Social Security Administration" is an agency.
    r"|\bsocial security (?:number|no\b|#|card)",
    re.I,
)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_ID_NUMBER = re.compile(r"(?<![\w-])[A-Za-z]{0,2}\d{5,10}(?![\w-])")
_ID_CUE = re.compile(
    r"(?:\bID\b|\bI\.D\.|\bidentification\b|\bstudent (?:number|no\.?|#)|\bemployee "
    r"(?:number|no\.?|#|id)|\bbadge\b|\bbanner\b|\bemplid\b|\bnetid\b|\bcwid\b|\bmatr[ií]cula\b|"
    r"\bcarn[ée]t?\b|\bn[úu]mero de (?:estudiante|empleado)|\bstudent\b|\bestudiante\b"
    # An institution's own name for its ID: "NUID", "SUID", "PID", "UIN", "Panther ID".
    r"|\b(?-i:[A-Z]{1,5}ID|UIN|[A-Z]#)(?!\w)|\bcard (?:number|no\.?|#))"
    # "PID: 730123456", "ID no. 1234567": a colon or "no." right after the cue.
    r"(?:\s*(?::|no\.|num\.|#))?[^.;:]{0,20}$",
    re.IGNORECASE,
)
# A person's login or social media account: "netid jdoe42", "Instagram account @ama_serwaa".
_ACCOUNT = re.compile(
    r"\b(?:net ?id|user ?name|login|screen ?name|onyen|uniqname|pennkey|sunet ?id|cruz ?id|"
    r"kerberos(?: id)?|eid|(?:instagram|snapchat|twitter|tiktok|"
    r"facebook|venmo|discord|x)\s+(?:account|handle|username|profile|name)|handle)"
    r"\s*(?:is\s+|was\s+)?[:,(]?\s*(?P<account>@?[A-Za-z][\w.]{2,29}\d*)",
    re.IGNORECASE,
)
_NOT_ACCOUNTS = frozenset({
    "and", "or", "the", "to", "for", "is", "was", "are", "with", "from", "at", "on", "in",
    "of", "your", "my", "our", "their", "password",
})
_CASE_CUE = re.compile(
    r"\b(?:case|incident|report|reference|ref|caso|informe|reporte|file)\b[^.;]{0,12}$", re.I
)
_DATE = (
    r"(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+\d{4}|"
    r"\d{1,2}\s+(?:de\s+)?[a-záéíóú]+\s+(?:de\s+)?\d{4})"
)
DOB = re.compile(
    r"\b(?:DOB|D\.O\.B\.?|date of birth|birth ?date|birthday|born(?: on)?|fecha de nacimiento|"
    r"nacid[oa](?: el)?)\b[:\s]*(?:(?:is|was|es|fue|of|de)\s+)?" + _DATE,
    re.IGNORECASE,
)
_UNIT = re.compile(
    r"\b(?:room|rm\.?|apartment|apt\.?|unit|suite|ste\.?|habitaci[oó]n|cuarto|apartamento|"
    r"depto\.?|departamento|dormitorio)\s*(?:#|no\.?|number|n[úu]m(?:ero)?\.?)?\s*"
    r"(?:[A-Z]?-?\d{1,4}[A-Z]?)\b|(?<=Hall )#\s?\d{1,4}[A-Z]?\b"
    # "her room, 214 in Anderson Hall".
    r"|\b(?:room|apartment|suite|unit)(?:\s+(?:number|no\.?|#))?(?:,|:|\s+is|\s+was)\s+"
    r"(?:#\s?|number\s+)?\d{2,4}[A-Z]?\b"
    # "West Hall 1104": a residence building's name with a room number after it.
    r"|(?:(?<=Hall )|(?<=Tower )|(?<=Towers )|(?<=House )|(?<=Commons )|(?<=Village ))"
    r"\d{3,4}[A-Z]?\b",
    re.IGNORECASE,
)
_ORDINAL = (
    r"(?:\d{1,2}(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
    r"tenth|eleventh|twelfth|top|ground)"
)
_FLOOR = re.compile(
    rf"\b{_ORDINAL}[- ]floor\b|\bfloor \d{{1,2}}\b|\b(?:primer|segundo|tercer|cuarto|quinto|"
    r"sexto|s[eé]ptimo|octavo|noveno|d[eé]cimo)\s+piso\b|\bpiso \d{1,2}\b",
    re.IGNORECASE,
)
_STREET_SUFFIX = (
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Drive|Dr\.?|Lane|Ln\.?|"
    r"Court|Ct\.?|Way|Place|Pl\.?|Circle|Cir\.?|Terrace|Ter\.?|Parkway|Pkwy\.?|Highway|Hwy\.?|"
    r"Trail|Row|Square|Sq\.?|Pike|Alley)"
)
ADDRESS = re.compile(
    r"(?<![\w,-])(\d{1,6}[A-Z]?)\s+(?:[NSEW]\.?\s+|(?:North|South|East|West)\s+)?"
    r"(?:[A-Z][\w'.-]*\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,4}" + _STREET_SUFFIX + r"(?!\w)"
    r"(?:,?\s*(?:Apt\.?|Apartment|Unit|Suite|Ste\.?|#)\s*[\w-]+)?"
    r"|\b(?:Calle|Avenida|Av\.|Camino|Paseo)\s+(?:[A-Z][\w'.-]*\s+){1,3}(?:n[úu]m\.?\s*|#\s*)?"
    r"\d{1,6}\b(?:,?\s*(?:Apto\.?|Apartamento|Depto\.?|#)\s*[\w-]+)?"
)
_HAS_UNIT = re.compile(r"(?:Apt|Apartment|Unit|Suite|Ste|Apto|Apartamento|Depto|#)", re.I)
_RESIDENCE_CUE = re.compile(
    r"\b(?:home|house|residence|apartment|apt|lives|living|resides|resident|off-campus|"
    r"rental|dorm|casa|vivienda|domicilio|residencia|apartamento)\b",
    re.IGNORECASE,
)
_RESIDENTIAL = re.compile(
    r"\b(?:hall|halls|residence|dorm|dormitory|apartments?|village|tower|towers|house|"
    r"commons|suites|residencia|apartamentos?)\b",
    re.IGNORECASE,
)
_NON_RESIDENTIAL = re.compile(
    r"\b(?:library|center|centre|building|school|lab|laboratory|gym|stadium|union|"
    r"auditorium|classroom|lecture|office|store|bookstore|museum|clinic|hospital|garage|"
    r"biblioteca|edificio|centro|laboratorio|aula|oficina)\b",
    re.IGNORECASE,
)
_SINGULAR_PERSON = re.compile(
    r"\b(?:a|an|the|one|his|her|their|un|una|el|la|su)\s+(?:\w+\s+)?(?:student|resident|victim|"
    r"complainant|occupant|roommate|survivor|tenant|estudiante|residente|v[ií]ctima|inquilin[oa])\b"
    r"|\b(?:his|her|their|su|sus)\s+(?:room|apartment|unit|suite|floor|habitaci[oó]n|cuarto|"
    r"piso|apartamento)\b|\b(?:lives|lived|living|resides|vive|viv[ií]a)\b",
    re.IGNORECASE,
)

_GAP = r"(?:[^\w.;:!?]+[\w'\u2019]+){0,5}?[^\w.;:!?]+"
_CHOICE = re.compile(
    r"\b(?:decided|decides|chose|chosen|elected|opted|declined|refused|prefers|preferred)\s+"
    r"(?:not\s+)?to\s+(?:report|press|file|involve|pursue|prosecute|cooperate|contact|go to|"
    r"speak|talk|participate)\b"
    r"|\b(?:decidi[oó]|opt[oó]|eligi[oó]|prefiri[oó]|no quiso|no quiere|no desea|no dese[oó]|"
    r"se neg[oó] a)\s+(?:no\s+)?(?:denunciar|presentar|reportar|acudir|involucrar|cooperar)"
    r"|\b(?:wished|wishes|wants|wanted|did not|didn't|does not|doesn't|has not|hasn't|"
    r"have not|haven't|will not|won't|would not|wouldn't|is not|isn't|was not|wasn't|"
    r"unwilling|reluctant)\b" + _GAP + r"(?:to\s+)?(?:report(?:ing)?|press(?:ing)?|"
    r"fil(?:e|ing)|involv(?:e|ing)|pursu(?:e|ing)|prosecut(?:e|ion|ing)|cooperat(?:e|ing)|"
    r"contact(?:ing)?|speak(?:ing)?|talk(?:ing)?|go(?:ing)? to|participat(?:e|ing))\b"
    r"(?:[^\w.;:!?]+[\w'\u2019]+){0,4}?[^\w.;:!?]+(?:police|charges?|report|complaint|prosecution|"
    r"investigation|authorities|law enforcement|officers)\b"
    r"|\b(?:press(?:ed|ing)?|pursu(?:e|ed|ing)|presentar|present[oó])\s+(?:criminal\s+)?"
    r"(?:charges|cargos)\b"
    r"|\b(?:declined|refused|waived)\s+(?:prosecution|to prosecute)"
    r"|\b(?:is|was|has been|are)\s+(?:not\s+)?cooperating\s+with\s+(?:police|the investigation|"
    r"investigators|authorities)",
    re.IGNORECASE,
)
_GENERIC_SUBJECT = re.compile(
    r"\b(?:you|anyone|everyone|community members|those|if|may|can|please|usted|ustedes|"
    r"cualquier|quien|quienes)\b[^.;]*$",
    re.IGNORECASE,
)

# Identifying details of a person; three or more about one person point to that person.
_ATTRIBUTES: dict[str, re.Pattern[str]] = {
    "age": re.compile(
        r"\b\d{1,2}[- ]year[- ]old\b|\bage[sd]?\s+\d{1,2}\b|(?<=, )\d{2}(?=,)|"
        r"\bde \d{1,2} años\b|\b\d{1,2} años\b",
        re.IGNORECASE,
    ),
    "year": re.compile(
        r"\b(?:freshman|sophomore|junior|senior|first[- ]year|second[- ]year|third[- ]year|"
        r"fourth[- ]year|graduate student|grad student|doctoral student|phd student|"
        r"transfer student|exchange student|international student|visiting student|"
        r"class of \d{4}|primer año|segundo año|tercer año|cuarto año|"
        r"estudiante de posgrado)\b",
        re.IGNORECASE,
    ),
    "major": re.compile(
        r"\b\w+ major\b|\bmajoring in\b|\bstud(?:ying|ies) \w+|\bestudiante de (?!primer|segundo|"
        r"tercer|cuarto|posgrado)\w+|\bque estudia\b|\bcarrera de\b",
        re.IGNORECASE,
    ),
    "hometown": re.compile(
        r"\b(?:from|native of|originally from|oriund[oa] de|originari[oa] de)\s+"
        r"[A-Z][a-z]+\b(?:,?\s+(?:[A-Z]{2}\b|[A-Z][a-z]+\b))?"
        r"(?!\s+(?:Hall|Library|Center|Street|Building|Police|Avenue|Park|Lot))"
        r"(?<!Campus)(?<!Public)(?<!University)(?<!College)(?<!Department)(?<!Police)"
        r"(?<!Hall)(?<!Library)(?<!Center)(?<!Building)(?<!Street)(?<!Avenue)(?<!Park)"
        r"(?<!Lot)(?<!Union)(?<!Stadium)(?<!Station)(?<!Garage)(?<!Road)(?<!Drive)"
        r"|\bhometown\b|\binternational student from\b",
    ),
    "residence": re.compile(
        r"\b(?:lives|living|resides|vive)\s+(?:on|in|at|en)\b|\b(?:first|second|third|fourth|"
        r"fifth|sixth|\d{1,2}(?:st|nd|rd|th))[- ]floor\b|\bresident of\b",
        re.IGNORECASE,
    ),
    "group": re.compile(
        r"\b(?:member of|plays (?:on|for)|on the)\s+(?:the\s+)?[\w' ]{0,30}?(?:team|club|band|"
        r"fraternity|sorority|choir|orchestra|squad)\b|\b(?:athlete|player|cheerleader)\b|"
        r"\bmiembro del?\b",
        re.IGNORECASE,
    ),
}
_SEX = re.compile(r"\b(?:female|male|woman|man|mujer|hombre)\b", re.IGNORECASE)
# A place in a small group names one person: a team's position, a jersey number, the officer
# of a club. Sports and groups are listed so that "the captain of the team" is caught and
# "the fire captain" is not.
_SPORTS = (
    r"(?:soccer|football|basketball|baseball|softball|volleyball|lacrosse|hockey|field hockey|"
    r"ice hockey|rugby|tennis|swim(?:ming)?|diving|track|cross[- ]country|wrestling|rowing|"
    r"golf|water polo|gymnastics|cheer(?:leading)?|dance|fencing|squash|ultimate|esports)"
)
_GROUP_WORDS = (
    r"(?:team|squad|club|band|marching band|orchestra|choir|chorus|ensemble|crew|cast|troupe|"
    r"fraternity|sorority|chapter|council|student government|senate|association|society|"
    r"league|a cappella group|program)"
)
_POSITIONS = (
    r"(?:(?:co-?)?captain|goalkeeper|goalie|keeper|quarterback|point guard|shooting guard|"
    r"power forward|small forward|center fielder|centre forward|pitcher|catcher|shortstop|"
    r"first baseman|second baseman|third baseman|striker|midfielder|defender|fullback|"
    r"halfback|linebacker|wide receiver|running back|tight end|kicker|punter|setter|libero|"
    r"outside hitter|middle blocker|coxswain|drum major|lead singer|lead vocalist|soloist|"
    r"section leader|first chair|concertmaster|president|vice president|treasurer|secretary|"
    r"chair|chairman|chairwoman|founder|manager|head coach|assistant coach|coach|mascot|"
    r"anchor|leadoff hitter|closer|starter|guard|forward|center|winger|sprinter|swimmer|"
    r"diver|distance runner|runner|rower|hurdler|thrower|jumper|wrestler|gymnast|golfer)"
)
_CLASS_YEAR = (
    r"(?:freshman|freshmen|sophomore|junior|senior|first[- ]year|second[- ]year|third[- ]year|"
    r"fourth[- ]year|graduate student|grad student|transfer student)"
)
_SMALL_GROUP = re.compile(
    # "a sophomore on the soccer team", "a junior with the marching band".
    rf"\b{_CLASS_YEAR}\s+(?:[\w-]+\s+){{0,2}}?(?:on|of|in|with|for|from)\s+"
    rf"(?:the\s+|a\s+|our\s+)?[\w'\u2019 -]{{0,30}}?\b{_GROUP_WORDS}\b"
    rf"|\b{_CLASS_YEAR}\s+{_SPORTS}\s+(?:player|athlete|team member)\b"
    # "a junior who plays on the rugby club", "a senior who rows for the crew team".
    rf"|\b{_CLASS_YEAR}\s+(?:who|that)\s+(?:plays|played|competes|competed|swims|runs|rows|"
    rf"sings|dances|performs|is|was)\s+(?:on|for|with|in)\s+(?:the\s+|a\s+|our\s+)?"
    rf"[\w'\u2019 -]{{0,30}}?\b{_GROUP_WORDS}\b"
    # "a sophomore who wrestles for the Buckeyes": a sport's verb and a team's name.
    rf"|\b{_CLASS_YEAR}\s+(?:who|that)\s+(?:plays|wrestles|swims|runs|rows|dives|fences|"
    rf"golfs|skates|competes|pitches|sprints|throws|boxes|cheers)\s+(?:on|for|with)\s+"
    rf"(?:the\s+)?(?-i:[A-Z][\w'-]+)"
    rf"|\b(?:starting\s+|star\s+|senior\s+|freshman\s+)?{_POSITIONS}\s+(?:of|on|for|with|in)\s+"
    rf"(?:the\s+|a\s+|our\s+)?[\w'\u2019 -]{{0,30}}?\b{_GROUP_WORDS}\b"
    rf"|\b{_GROUP_WORDS}(?:'s|\u2019s)\s+(?:starting\s+|star\s+)?{_POSITIONS}\b"
    rf"|\b{_SPORTS}(?: team(?:'s|\u2019s)?)?\s+(?:starting\s+|star\s+)?{_POSITIONS}\b"
    r"|\b(?:jersey|uniform)\s*(?:number|no\.?|#)?\s*\d{1,3}\b"
    r"|\b(?:wears|wore|wearing)\s+(?:the\s+)?(?:number|no\.|#)\s*\d{1,3}\b"
    r"|\b(?:number|no\.|#)\s*\d{1,3}\s+(?:on|for|of)\s+(?:the\s+)?[\w' -]{0,30}?\bteam\b"
    r"|\b(?:capit[aá]n|capitana|portero|portera|arquero|arquera|delantero|delantera|"
    r"mediocampista|defensa|lanzador|lanzadora|receptor|receptora|colocador|colocadora|"
    r"presidente|presidenta|tesorero|tesorera|entrenador|entrenadora|mariscal de campo)\s+"
    r"(?:del|de la|de los|de las)\s+(?:equipo|club|banda|coro|orquesta|fraternidad|"
    r"hermandad|selecci[oó]n)\b"
    r"|\b(?:camiseta|jersey|dorsal|n[uú]mero)\s*(?:n[uú]mero\s*|#\s*)?\d{1,3}\s+del\s+equipo\b",
    re.IGNORECASE,
)
# A team named in a sentence about what happened to someone narrows the victim to a few.
_TEAM_MEMBER = re.compile(
    rf"\b(?:member of|plays (?:on|for)|player (?:on|for))\s+(?:the\s+|a\s+)?"
    rf"[\w'\u2019 -]{{0,30}}?\b{_GROUP_WORDS}\b"
    rf"|\b(?:an?|the)\s+(?:[\w'\u2019]+\s+){{0,2}}?{_SPORTS}\s+(?:player|athlete)\b"
    r"|\b(?:jugador|jugadora|integrante|miembro)\s+del\s+equipo\s+de\s+\w+",
    re.IGNORECASE,
)
_HARMED_OR_REPORTED = re.compile(
    r"\b(?:was|were|has been|had been|got|being)\s+(?:\w+\s+)?(?:robbed|assaulted|attacked|"
    r"injured|hurt|struck|approached|harassed|threatened|followed|stalked|groped|touched|"
    r"stabbed|shot|beaten|punched|grabbed|pushed|burglarized|mugged|drugged|fondled|"
    r"victimized|confronted|targeted)\b|\b(?:reported|told police|disclosed)\b"
    r"|\bfue\s+(?:\w+\s+)?(?:asaltad|agredid|atacad|herid|golpead|amenazad|acosad|robad)"
    r"|\b(?:denunci[oó]|report[oó])\b",
    re.IGNORECASE,
)

# A sentence that goes on about the people just mentioned: "Both are teaching assistants".
_ABOUT_THEM = re.compile(
    r"\s*(?:she|he|they|both|each|one of them|one of the (?:two|three) (?:students|victims)|"
    r"the (?:two|three) (?:students|victims|women|men))\s+(?:is|are|was|were)\b",
    re.IGNORECASE,
)
_VICTIM_WORD = re.compile(
    r"\b(?:victim|victims|complainant|survivor|target|v[ií]ctima)\b", re.IGNORECASE
)
_VICTIM_SIDE = re.compile(
    r"\b(?:victim|complainant|survivor|student|resident|she|he|woman|man|v[ií]ctima|"
    r"estudiante|residente|denunciante)\b",
    re.IGNORECASE,
)
_SUSPECT_SIDE = re.compile(
    r"\b(?:suspect|suspects|described as|offender|perpetrator|assailant|attacker|wearing|"
    r"sospechos[oa]s?|descrito como|descrita como)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Allowed:
    """What the institution publishes: phone numbers (by digits), addresses, domains."""

    digits: frozenset[str]
    emails: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def of(cls, entries: Iterable[str]) -> Allowed:
        """Sort the config's allow list into numbers, email addresses and domains."""
        digits, emails, domains = set(), set(), set()
        for raw in entries:
            entry = raw.strip()
            only = re.sub(r"\D", "", entry)
            if "@" in entry and not entry.startswith("@"):
                emails.add(entry.lower())
            elif entry.startswith("@"):
                domains.add(entry[1:].lower())
            elif len(only) >= 3 and len(only) >= len(re.sub(r"\s", "", entry)) - 6:
                digits.add(only[-10:])
        return cls(frozenset(digits), frozenset(emails), frozenset(domains))

    def phone(self, text: str) -> bool:
        """True for 911 and for numbers on the allow list (compared by their last digits)."""
        only = re.sub(r"\D", "", text)[-10:]
        if only in {"911", "988"}:
            return True
        return any(only == d or (len(only) == 7 and d.endswith(only)) for d in self.digits)

    def email(self, address: str) -> bool:
        """True for addresses and domains on the allow list."""
        lowered = address.lower()
        return lowered in self.emails or lowered.rsplit("@", 1)[-1] in self.domains


def _sentence_of(spans: list[Span], index: int) -> Span:
    for span in spans:
        if span.start <= index < span.end:
            return span
    return Span("", index, index)


def check(
    text: str,
    kind: AlertKind,
    finder: NameFinder,
    allowed: Allowed,
    language: str = "en",
    *,
    id_formats: tuple[str, ...] = DEFAULT_ID_FORMATS,
) -> list[Violation]:
    """Every confidentiality problem in one text, with spans in that text, each with a
    neutral rewrite of its span in the text's language. `id_formats` are the institution's
    own ID formats (regular expressions)."""
    out = []
    for v in _check(text, kind, finder, allowed, _id_formats(id_formats)):
        if v.family == "confidentiality" and v.start is not None and v.end is not None:
            words = rewrite(v.rule, text[v.start : v.end], language)
            if words and _opens_sentence(text, v.start):
                words = words[0].upper() + words[1:]
            v = v.at(suggestion=words)
        out.append(v)
    return out


def _opens_sentence(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?:;\n"


@lru_cache(maxsize=16)
def _id_formats(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching any of the institution's ID formats, as a whole token."""
    if not patterns:
        return None
    either = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(rf"(?<![\w-])(?:{either})(?![\w-])")


def _check(
    text: str, kind: AlertKind, finder: NameFinder, allowed: Allowed,
    id_formats: re.Pattern[str] | None,
) -> list[Violation]:
    found: list[Violation] = []
    spans = sentences(text)
    found += _names(text, finder)
    found += _numbers(text, spans, allowed, id_formats)
    found += _dates_of_birth(text)
    found += _units(text, spans, kind, finder)
    found += _addresses(text, spans, kind, finder)
    found += _reporting(text, spans)
    found += _identifying(text, spans, kind)
    found += _plates(text, spans)
    return sorted(_dedupe(found), key=lambda v: (v.start or 0, v.rule))


def _dedupe(found: list[Violation]) -> list[Violation]:
    """One violation per stretch of text: the first rule to claim a span keeps it."""
    kept: list[Violation] = []
    for v in found:
        overlap = any(
            k.start is not None and v.start is not None and k.end is not None
            and v.end is not None and k.start < v.end and v.start < k.end and k.rule == v.rule
            for k in kept
        )
        if not overlap:
            kept.append(v)
    return kept


# How a message closes before its sender signs: "Sincerely,", "Respectfully,", "- ".
_CLOSING = re.compile(
    r"(?:\b(?:sincerely|regards|best regards|respectfully|thank you|thanks|cordially|"
    r"atentamente|saludos|gracias)\s*[,.!]?|(?:^|\n)\s*(?:--?|\u2013|\u2014))\s*$",
    re.IGNORECASE,
)
# What follows a name in a signature block: a title or the office ("Chief of Police",
# "Director, Department of Public Safety", "University Police").
_SIGNATURE_AFTER = re.compile(
    r"^\s*(?:,|\n)\s*(?:the\s+)?(?:(?:interim|acting|assistant|associate|deputy|vice|senior|"
    r"executive)\s+)*(?:chief|director|dean|captain|lieutenant|sergeant|officer|president|"
    r"provost|chancellor|coordinator|manager|commissioner|vice president|department|office|"
    r"university|college|campus|police|public safety|emergency management|jefe|jefa|"
    r"director[a]?|decano|decana|polic[ií]a)\b",
    re.IGNORECASE,
)


# A closing line on a line of its own, after which only the signatures follow.
_SIGNED = re.compile(
    r"(?:^|\n)\s*(?:sincerely|regards|best regards|respectfully|cordially|atentamente|"
    r"saludos)\s*[,.!]?\s*\n(?:[^\n]{0,90}\n+){0,12}$",
    re.IGNORECASE,
)


def _signature_lines(rest: str) -> bool:
    """True when what is left is a few short lines (names and titles), up to 12, 600 chars."""
    lines = [x for x in rest.split("\n") if x.strip()]
    return len(rest) <= 600 and len(lines) <= 12 and all(len(x) <= 90 for x in lines)


def _signature(text: str, start: int, end: int) -> bool:
    """True for the sender's signature at the end of a message: a name after a closing line
    ("Sincerely,\nMaria Delgado") or on a line of its own followed by a title or office
    ("Maria Delgado\nChief of Police"), in the message's last lines."""
    line_start = text.rfind("\n", 0, start) + 1
    own_line = not text[line_start:start].strip(" -\u2013\u2014") or text[line_start:start].strip(
        ) in {"Chief", "Dean", "Director", "Captain", "Lt.", "Sgt.", "Officer", "Dr."}
    # Several senders may sign, one after another, each with a title ("Sincerely, / Gretchen
    # Ritter / Vice Chancellor / Andrew R. Gordon / Senior Vice President").
    if own_line and _signature_lines(text[line_start:]) and (
        _SIGNED.search(text[:start]) or _SIGNATURE_AFTER.match(text[end:])
    ):
        return True
    if text[end:].count("\n") > 3 or len(text) - end > 200:
        return False
    if _CLOSING.search(text[max(0, start - 40) : start]):
        return True
    return own_line and (_SIGNATURE_AFTER.match(text[end:]) is not None)


def _names(text: str, finder: NameFinder) -> list[Violation]:
    out = []
    for hit in finder.find(text):
        if hit.role is not Role.PERSON or _signature(text, hit.start, hit.end):
            continue
        # The span takes the honorific with it ("Ms. Garcia"): a rewrite replaces both.
        titled = _HONORIFIC.search(text[: hit.start]) if "title" in hit.cues else None
        named_at = titled.start() if titled else hit.start
        start, end = named_at, hit.end
        # A role word just before the name ("student Maria Lopez", "A student, Maria Lopez,")
        # belongs to the phrase: the rewrite replaces it too, never "student a student".
        role = _ROLE_BEFORE.search(text[:named_at])
        if role is not None:
            start = role.start()
            if "," in role.group() and text[end : end + 1] == ",":
                end += 1
        out.append(
            Violation(
                "confidentiality.name",
                f'"{text[named_at : hit.end]}" looks like the name of a person. Never name a '
                "victim, complainant or witness; describe the incident instead.",
                start,
                end,
            )
        )
    return out


# A person's role said just before their name, with its article: the identifying phrase
# starts there.
_ROLE_BEFORE = re.compile(
    r"(?:\b(?:a|an|the|one|our|un|una|el|la)\s+)?\b(?:(?:graduate|undergraduate|exchange)\s+)?"
    r"(?:students?|freshman|sophomore|junior|senior|undergraduate|employee|staff\s+member|"
    r"faculty\s+member|instructor|lecturer|resident|roommate|classmate|estudiante|alumn[oa]|"
    r"emplead[oa]|residente)"
    r"(?:\s*,)?\s+$",
    re.IGNORECASE,
)


_HONORIFIC = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Dra|Prof|Professor|Profesor|Profesora|Sr|Sra|Srta|Se[ñn]or|"
    r"Se[ñn]ora|Se[ñn]orita|Doctor|Doctora|Coach|Rev|Reverend|Don|Do[ñn]a)\.?\s+$",
    re.IGNORECASE,
)


def _numbers(
    text: str, spans: list[Span], allowed: Allowed, id_formats: re.Pattern[str] | None
) -> list[Violation]:
    out: list[Violation] = []
    taken: list[tuple[int, int]] = []
    for m in SSN.finditer(text):
        out.append(Violation(
            "confidentiality.ssn",
            "A Social Security number must never appear in an alert.", m.start(), m.end()))
        taken.append(m.span())
    for m in id_formats.finditer(text) if id_formats is not None else ():
        # The institution's own ID shape needs no cue; a case or report number may share it.
        if _CASE_CUE.search(text[max(0, m.start() - 40) : m.start()]):
            continue
        out.append(Violation(
            "confidentiality.id_number",
            "This has the shape of the institution's student or employee IDs "
            "(policy.id_formats); an ID identifies a person, remove it.", m.start(), m.end()))
        taken.append(m.span())
    for m in _ID_NUMBER.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()]
        if _ID_CUE.search(before) and not _CASE_CUE.search(before):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            label = re.search(r"(?:\bID|I\.D\.|number|no\.|#)\s*[:#]?\s*$", before, re.I)
            start = m.start() - (len(before) - label.start()) if label else m.start()
            out.append(Violation(
                "confidentiality.id_number",
                "Student and employee ID numbers identify a person; remove it.",
                start, m.end()))
            taken.append((start, m.end()))
    for m in _ACCOUNT.finditer(text):
        sentence = _sentence_of(spans, m.start())
        at = m.start() - sentence.start
        account = m.group("account")
        if _side(sentence.text, at) == "suspect" or (
            not re.search(r"[@\d_.]", account)
            and (fold(account) in lexicon().words or fold(account) in _NOT_ACCOUNTS
                 or not account.islower())
        ):
            # A login is no everyday word: "ONYEN mkapule" names one, "your NetID and
            # password" none.
            continue
        out.append(Violation(
            "confidentiality.account",
            "A login or a social media account identifies its owner; remove it.",
            m.start("account"), m.end("account")))
    for m in PHONE.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in taken) or allowed.phone(m.group()):
            continue
        sentence = _sentence_of(spans, m.start())
        before = text[sentence.start : m.start()]
        cue = _PERSON_CUE.search(before)
        institutional_at = max(
            (found.start() for found in _INSTITUTION_CUE.finditer(before)), default=None
        )
        personal_at = cue.start() if cue else None
        official = _OFFICIAL.search(before)
        if personal_at is None and institutional_at is None and official is not None:
            # "contact Det. Lisa Moreno at 555-0101": an official's line, not a private one.
            institutional_at = official.start()
        if personal_at is None and institutional_at is None and _named_before(before):
            personal_at = len(before)
        if personal_at is not None and not (
            institutional_at is not None and institutional_at > personal_at
        ):
            out.append(Violation(
                "confidentiality.phone",
                "This looks like a private phone number. Give only the institution's "
                "published numbers (or 911).", m.start(), m.end()))
        else:
            out.append(Violation(
                "contact.unlisted",
                f"{m.group()} is not on the allow list of published numbers (policy.allow). "
                "If it is the institution's own line, add it there; if it is a person's, "
                "remove it.", m.start(), m.end(), Severity.WARNING))
    for m in EMAIL.finditer(text):
        address = m.group()
        if allowed.email(address):
            continue
        local = address.split("@", 1)[0]
        sentence = _sentence_of(spans, m.start())
        lead = text[sentence.start : m.start()]
        personal = _PERSON_CUE.search(lead)
        official = _OFFICIAL.search(lead)
        if (_ROLE_MAILBOX.match(local) or official) and not personal:
            out.append(Violation(
                "contact.unlisted",
                f"{address} is not on the allow list (policy.allow). If it is an office's "
                "address, add it there.", m.start(), m.end(), Severity.WARNING))
        else:
            out.append(Violation(
                "confidentiality.email",
                "This looks like a person's email address. Give only the institution's "
                "published addresses.", m.start(), m.end()))
    return out


def _named_before(before: str) -> bool:
    """A capitalized first-and-last name shape just before a number ("call Jane Roe at")."""
    return re.search(r"\b[A-Z][a-z]+ [A-Z][a-z]+(?:'s)? (?:at|on|al|en)\s*$", before) is not None


def _dates_of_birth(text: str) -> list[Violation]:
    return [
        Violation(
            "confidentiality.date_of_birth",
            "A date of birth identifies a person; remove it (an approximate age is enough "
            "for a suspect).", m.start(), m.end())
        for m in DOB.finditer(text)
    ]


# "lives in Pritchard 3042", "the room entered, Watson 417, belongs to a student": a building's
# name with a room number, where the sentence says someone lives or has a room there.
_BUILDING_ROOM = re.compile(
    r"\b(?!(?:Highway|Route|Interstate|Suite|Exit|Gate|Lot|Spring|Summer|Fall|Winter|"
    r"January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Building|Room|Apartment|Unit)\b)[A-Z][a-z]{2,}\s+\d{3,4}[A-Z]?\b(?!\s*(?:-|am|pm|a\.m|p\.m))"
)
_LIVES_OR_ROOM = re.compile(
    r"\b(?:lives|living|lived|resides|stays|staying|room|rooms|dorm)\b", re.IGNORECASE
)


def _units(text: str, spans: list[Span], kind: AlertKind, finder: NameFinder) -> list[Violation]:
    out = []
    for m in _BUILDING_ROOM.finditer(text):
        number = int(re.sub(r"\D", "", m.group().split()[-1]))
        if 1900 <= number <= 2099:
            continue  # a year
        body = _sentence_of(spans, m.start()).text
        if _LIVES_OR_ROOM.search(body) and _SINGULAR_PERSON.search(body):
            out.append(Violation(
                "confidentiality.residence_unit",
                f'"{m.group()}" points to the people who live there. Name the building '
                "(or the area) without room, floor or unit numbers.",
                m.start(), m.end()))
    crime = kind is AlertKind.TIMELY_WARNING
    for pattern, is_floor in ((_UNIT, False), (_FLOOR, True)):
        for m in pattern.finditer(text):
            sentence = _sentence_of(spans, m.start())
            body = sentence.text
            tied = bool(_SINGULAR_PERSON.search(body)) or any(
                h.role is Role.PERSON for h in finder.find(body)
            )
            if is_floor and re.search(r"\b\w+[- ]floor (?:resident|student|room)", body, re.I):
                tied = True
            residential = bool(_RESIDENTIAL.search(body)) and not _NON_RESIDENTIAL.search(
                text[max(sentence.start, m.start() - 30) : m.start()]
            )
            if tied or (crime and not is_floor and residential):
                out.append(Violation(
                    "confidentiality.residence_unit",
                    f'"{m.group()}" points to the people who live there. Name the building '
                    "(or the area) without room, floor or unit numbers.",
                    m.start(), m.end()))
    return out


def _addresses(
    text: str, spans: list[Span], kind: AlertKind, finder: NameFinder
) -> list[Violation]:
    out = []
    for m in ADDRESS.finditer(text):
        if finder.gazetteer.holds(m.group()):
            continue
        if _BUILDING_BEFORE.search(text[max(0, m.start() - 60) : m.start()]) and not (
            _HAS_UNIT.search(m.group()[len(m.group(1) or "") :]) if m.group(1) else False
        ):
            # "Simpson Residence Hall (6333 N. Winthrop Avenue)": a named building's address.
            continue
        sentence = _sentence_of(spans, m.start())
        unit = _HAS_UNIT.search(m.group()[len(m.group(1) or "") :]) if m.group(1) else None
        residence = _RESIDENCE_CUE.search(sentence.text) or _SINGULAR_PERSON.search(sentence.text)
        # An address whose own words name a place no one lives in ("150 Stadium Place",
        # "200 Library Way") is public, whoever the sentence is about.
        public = _NON_RESIDENTIAL.search(m.group()) is not None or (
            # "occurred outside of 514 Euclid Ave.": the street in front, not a home.
            _OUTSIDE_OF.search(text[max(0, m.start() - 30) : m.start()]) is not None
            and not _HOME_CUE.search(sentence.text)
        )
        # In a timely warning, an address is taken for a residence when the crime is one
        # against a person or a home; "vehicle thefts occurred at 614 South Crouse Avenue"
        # says where property was taken.
        personal = kind is AlertKind.TIMELY_WARNING and _PERSONAL_CRIME.search(text) is not None
        if unit or (not public and (residence or personal)):
            number = m.group(1) or ""
            hint = (
                f' Say "the {int(number) // 100 * 100} block of ..." instead.'
                if number.isdigit() else " Give the block or a nearby landmark instead."
            )
            out.append(Violation(
                "confidentiality.street_address",
                f'"{m.group()}" is the exact address of a residence.{hint}',
                m.start(), m.end()))
    return out


_HOME_CUE = re.compile(
    r"\b(?:home|house|residence|apartment|apt|lives|living|resides|dorm|casa|vive)\b",
    re.IGNORECASE,
)
_OUTSIDE_OF = re.compile(
    r"\b(?:outside(?: of)?|in front of|across (?:the street )?from|near|next to|behind|"
    r"at the corner of|corner of|frente a|cerca de)\s*$",
    re.IGNORECASE,
)
# Crimes against a person or a home: a timely warning's address then points to people.
_PERSONAL_CRIME = re.compile(
    r"(?i)\b(?:sexual|rape|raped|fondl\w*|assault\w*|stalk\w*|domestic|dating violence|"
    r"burglar\w*|break-in|broke into|home invasion|voyeur\w*|indecent|harass\w*|kidnap\w*|"
    r"abduct\w*|agresi[oó]n|violaci[oó]n|acoso|robo en (?:casa|vivienda))"
)


# A named building just before an address in parentheses or after a comma: its address.
_BUILDING_BEFORE = re.compile(
    r"\b[A-Z][\w'.-]*\s+(?:[A-Z][\w'.-]*\s+)?(?:Hall|Center|Centre|Building|Library|Tower|"
    r"Towers|Commons|Complex|Stadium|Arena|Union|Gym|Gymnasium|Chapel|Auditorium|Garage|"
    r"Apartments|Village|Court)\s*(?:\(|,|\bat\b|\blocated at\b)\s*$"
)


def _reporting(text: str, spans: list[Span]) -> list[Violation]:
    out = []
    for m in _CHOICE.finditer(text):
        sentence = _sentence_of(spans, m.start())
        lead = text[sentence.start : m.start()]
        if _GENERIC_SUBJECT.search(lead) and not _VICTIM_SIDE.search(lead):
            continue
        if re.search(r"(?i)\b(?:hesitate|afraid|wait)\b", m.group()) or re.search(
            r"(?i)\b(?:do|please|por favor)\s*$", lead
        ):
            continue
        out.append(Violation(
            "confidentiality.reporting_choice",
            "Whether the victim chose to report, press charges or involve the police is "
            "theirs to keep private; remove it.", m.start(), m.end()))
    return out


# Membership of a small program or unit ("a student in the Nursing program", "a member of
# the Robotics Lab"), and what, beside it, narrows the people to one: an injury or a date.
_SMALL_UNIT = re.compile(
    r"\b(?:student|students|member|members|participant|employee|staff member|resident|"
    r"researcher|intern|fellow|estudiante|miembro)s?\s+(?:in|of|from|with|at|del|de la|en)\s+"
    r"(?:the\s+|a\s+|an\s+|el\s+|la\s+)?(?:[\w'\u2019&-]+\s+){1,5}?(?:program|programme|lab|"
    r"laboratory|cohort|unit|studio|clinic|research group|group|institute|center|centre|"
    r"department|office|programa|laboratorio|departamento)\b"
    # "one of six in the Arabic program": a count that says how small the unit is.
    r"|\bone of (?:the |only )?(?:\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|a few|few)\s+(?:[\w-]+\s+)?(?:in|of|from|on)\s+(?:the\s+|a\s+|an\s+)?"
    r"(?:[\w'\u2019&-]+\s+){1,5}?(?:program|programme|lab|laboratory|cohort|unit|studio|"
    r"clinic|group|institute|center|centre|department|office|team|crew|class|section|major)\b",
    re.IGNORECASE,
)
_INJURY = re.compile(
    r"\b(?:injured|injury|injuries|hurt|wounded|hospitali[sz]ed|stabbed|shot|beaten|killed|"
    r"herid[oa]|lesionad[oa])\b",
    re.IGNORECASE,
)
_INJURY_OR_DATE = re.compile(
    r"\b(?:injured|injury|injuries|hurt|wounded|bruised|bruises|broken|broke|fractured|"
    r"fracture|concussion|laceration|cut|stab wound|hospitali[sz]ed|treated for|transported to|"
    r"stitches|sprained|burned|shot in|stabbed|beaten|bleeding|unconscious|killed|died|"
    r"herid[oa]|lesionad[oa]|hospitalizad[oa])\b"
    r"|\b(?:on\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b"
    r"|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b|\bon (?:monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)\b",
    re.IGNORECASE,
)


# A person's job in a named unit: "a graduate assistant in the Physics department", "a lab
# technician at the Smith Institute". A department has few graduate assistants. Officials
# (director, coordinator, dean) are contacts, not in the list.
_ROLE_IN_UNIT = re.compile(
    r"\b(?i:(?:graduate|teaching|research|administrative|lab|laboratory|program|office|"
    r"department|student)\s+(?:assistant|worker|technician|aide)|assistant|professor|"
    r"instructor|lecturer|postdoc|postdoctoral (?:fellow|researcher|scholar)|researcher|"
    r"technician|faculty member|staff member|employee|librarian|intern|fellow|TA|RA)"
    r"\s+(?i:in|of|for|with|at|from)\s+(?i:the\s+)?(?:[A-Z][\w&'\u2019-]*\s+(?:(?:and|of|&)\s+)?)"
    r"{1,4}(?i:department|dept\.?|program|programme|lab|laboratory|office|center|centre|"
    r"institute|faculty|clinic|studio|library|group|unit)\b"
    r"|\b(?i:TAs?|RAs?|assistants?|professors?|instructors?|lecturers?|researchers?|"
    r"technicians?)\s+(?i:in|for|of)"
    r"\s+(?:[A-Z][\w&'\u2019-]*\s+){0,2}[A-Z]{2,5}\s+\d{3,4}\b",
)
# One of a kind in a group names the person: "the only woman on the Geology faculty", "the
# only exchange student in the Dance program".
_ONLY_ONE = re.compile(
    r"\b(?:the\s+(?:only|sole|lone|single)|its\s+only|their\s+only)\s+(?:[\w'.-]+\s+){0,3}?"
    r"(?:student|woman|man|person|member|employee|professor|instructor|faculty member|"
    r"lecturer|researcher|technician|librarian|coach|nurse|custodian|"
    r"athlete|player|resident|undergraduate|female|male|girl|boy|international|senior|junior|"
    r"sophomore|freshman|first-year|transfer|veteran|mother|father|parent)s?\s+"
    r"(?:in|on|of|at|from|with|among)\s+(?:(?:the|our|a|an|this|that|her|his|their|its)\s+"
    r"(?:[\w'\u2019&-]+\s+){0,4}?(?:program|programme|department|dept|faculty|lab|laboratory|"
    r"team|office|cohort|class|major|unit|staff|floor|crew|squad|club|band|choir|ensemble|"
    r"hall|building|company|residence|house|section|course|college|school|group|roster|"
    r"studio|center|centre|institute|clinic|wing|suite)\b"
    # "the only female Ph.D. student in Mechanical Engineering": a field named.
    r"|(?-i:[A-Z][\w&-]+(?:\s+(?:and\s+|&\s+)?[A-Z][\w&-]+){0,3}))",
    re.IGNORECASE,
)
# A license plate: "Washington plate BXY9231", "license plate number KJL-4471", "tag CU 88213".
_PLATE = re.compile(
    r"\b(?i:(?:license|licence|registration|tag)\s+plate|plates?|tag|licen[cs]e)"
    r"(?:\s+(?i:number|no\.?|#|reading|of))?\s*[:#]?\s*"
    r"(?P<plate>(?=[A-Z0-9 -]{0,9}\d)(?=[A-Z0-9 -]{0,9}[A-Z])[A-Z0-9]{1,4}(?:[- ]?[A-Z0-9]{1,5}))"
    r"(?![\w-])"
)
# Words that tie a vehicle or a plate to a victim (an owner), not to the suspect.
_OWNER = re.compile(
    r"\b(?:victim|victim's|victims|complainant|owner|owners|owned|belongs|belonging|belonged|"
    r"registered to|student's|student|resident|her|his|their|v[ií]ctima|propietari[oa])\b",
    re.IGNORECASE,
)


def _plates(text: str, spans: list[Span]) -> list[Violation]:
    """A license plate of a victim's car; a suspect's plate is for the public to look for."""
    out = []
    for m in _PLATE.finditer(text):
        sentence = _sentence_of(spans, m.start())
        body = sentence.text
        at = m.start() - sentence.start
        suspects = _SUSPECT_SIDE.search(body) and not _OWNER.search(body[:at])
        if _side(body, at) == "suspect" or suspects:
            continue
        if not _OWNER.search(body):
            continue
        out.append(Violation(
            "confidentiality.license_plate",
            f'"{m.group("plate")}" is the license plate of a victim\'s vehicle; it identifies '
            "its owner. Remove it (a suspect's plate may stay).",
            m.start("plate"), m.end("plate")))
    return out


def _harmed(body: str) -> bool:
    """True when the sentence says someone was harmed (reporting alone is not enough: "a
    graduate assistant in Physics reported a suspicious package")."""
    return any(
        not re.fullmatch(r"(?i)reported|told police|disclosed|denunci[oó]|report[oó]", m.group())
        for m in _HARMED_OR_REPORTED.finditer(body)
    )


def _not_contact(body: str, index: int) -> bool:
    """True unless the words before index make the person someone to contact or report to."""
    return _CONTACT_BEFORE.search(body[:index]) is None


_CONTACT_BEFORE = re.compile(
    r"\b(?:to|contact|call|email|e-mail|see|ask|with)\s+(?:the\s+|a\s+|an\s+)?$", re.I
)


# A count that makes a unit small: "one of four students in the Turkish language program".
_FEW_IN_UNIT = re.compile(
    r"\bone of (?:the |only )?(?:two|three|four|five|six|seven|eight|nine|ten|[2-9]|1[0-2])\s+"
    r"(?:[\w-]+\s+)?(?:in|of|on|from)\s+(?:the\s+|a\s+|an\s+|its\s+)?"
    r"(?:[\w'\u2019&-]+\s+){0,4}?(?:program|programme|lab|laboratory|cohort|unit|studio|"
    r"clinic|group|department|office|team|crew|class|section|major|staff|faculty)\b",
    re.IGNORECASE,
)


# "the only Scandinavian Studies lecturer": the field named before the occupation.
_ONLY_IN_FIELD = re.compile(
    r"\b(?i:the\s+(?:only|sole|lone))\s+[A-Z][\w&-]+(?:\s+[A-Z][\w&-]+){0,3}\s+"
    r"(?i:lecturer|professor|instructor|researcher|technician|librarian|coach|student|major|"
    r"faculty member|teaching assistant|TA)s?\b"
)


def _identifying(text: str, spans: list[Span], kind: AlertKind) -> list[Violation]:
    out = []
    for sentence in spans:
        body = sentence.text
        only = (
            _ONLY_ONE.search(body) or _ONLY_IN_FIELD.search(body) or _FEW_IN_UNIT.search(body)
        )
        if only is not None and not _doer(body, only.start()):
            out.append(Violation(
                "confidentiality.identifying_details",
                f'"{only.group()}" points to one person. Say "a student" (or "an employee") '
                "instead.", sentence.start + only.start(), sentence.start + only.end()))
            continue
        job = _ROLE_IN_UNIT.search(body)
        if (
            job is not None and not _doer(body, job.start()) and _not_contact(body, job.start())
            and (_VICTIM_WORD.search(body) or _harmed(body) or _ABOUT_THEM.match(body)
                 or _INJURY.search(body))
        ):
            article = re.search(r"\b(?:the|a|an|el|la|un|una)\s+$", body[: job.start()], re.I)
            begin = article.start() if article else job.start()
            out.append(Violation(
                "confidentiality.identifying_details",
                f'"{body[begin : job.end()]}" names a job in one unit, held by few people. Say '
                '"a student" (or "an employee") instead.', sentence.start + begin,
                sentence.start + job.end()))
            continue
        unit = _SMALL_UNIT.search(body)
        if unit is not None and _INJURY_OR_DATE.search(body) and not _doer(body, unit.start()):
            out.append(Violation(
                "confidentiality.identifying_details",
                f'"{unit.group()}" with an injury or a date points to one person in a small '
                'program. Say "a student" instead.',
                sentence.start + unit.start(), sentence.start + unit.end()))
            continue
        group = _small_group(body)
        if group is not None:
            # "The captain of the team" is rewritten whole: "a student", not "The a student".
            article = re.search(r"\b(?:the|a|an|el|la|un|una)\s+$", body[: group[0]], re.I)
            group = (article.start() if article else group[0], group[1])
            out.append(Violation(
                "confidentiality.identifying_details",
                f'"{body[group[0] : group[1]]}" points to one person (a place on a team or in '
                "a small group). Say \"a student\" instead.",
                sentence.start + group[0], sentence.start + group[1]))
            continue
        kinds: dict[str, tuple[int, int]] = {}
        for name, pattern in _ATTRIBUTES.items():
            for m in pattern.finditer(body):
                if _side(body, m.start()) == "suspect":
                    continue
                kinds.setdefault(name, m.span())
        sex = _SEX.search(body)
        if "hometown" in kinds and sex is not None and _side(body, sex.start()) != "suspect":
            # "a 19-year-old female student from Busan": beside a hometown, the sex narrows too.
            kinds.setdefault("sex", sex.span())
        if len(kinds) >= 3:
            start = min(a for a, _ in kinds.values())
            end = max(b for _, b in kinds.values())
            listed = ", ".join(sorted(kinds))
            out.append(Violation(
                "confidentiality.identifying_details",
                f"Together these details ({listed}) point to one person. Keep at most one "
                "general detail about a victim.",
                sentence.start + start, sentence.start + end))
    del kind
    return out


# Words without which no small-group pattern can match: most sentences skip the patterns.
_SMALL_GROUP_HINT = re.compile(
    r"team|squad|club|band|orchestra|choir|chorus|ensemble|crew|cast|troupe|fraternity|"
    r"sorority|chapter|council|government|senate|association|society|league|group|program|"
    r"jersey|uniform|number|no\.|#|player|athlete|member|plays|equipo|banda|coro|orquesta|"
    r"wrestles|swims|rows|dives|fences|golfs|skates|competes|pitches|sprints|throws|boxes|"
    r"cheers|runs|"
    r"fraternidad|hermandad|selecci|camiseta|dorsal|n[uú]mero|jugador|integrante|miembro|"
    + _SPORTS[3:-1],
    re.IGNORECASE,
)


# A group's officer speaking in that role is no victim: "The president of the Student
# Government Association, Jane Doe, asks everyone to...".
_SPEAKING = re.compile(
    r"^(?:\s*,?\s*(?:[A-Z][\w'.-]*\s*){1,4},?){0,2}\s*(?:asks?|says?|said|urges?|urged|reminds?|"
    r"encourages?|invites?|announced|announces|wants|wrote|writes|pide|dice|dijo|invita)\b"
)


_PLACE_NAME = re.compile(r"(?:[A-Z][\w'-]*\s+)+(?:Center|Centre)")


def _small_group(body: str) -> tuple[int, int] | None:
    """The span of a victim's position in a small group (a team, a band, a club), if any."""
    if not _SMALL_GROUP_HINT.search(body):
        return None
    for m in _SMALL_GROUP.finditer(body):
        if _PLACE_NAME.fullmatch(m.group()):
            continue  # "the Bass-Rudd Tennis Center": a building, not a position.
        if not _doer(body, m.start()) and not _SPEAKING.match(body[m.end() :]):
            return m.span()
    if _HARMED_OR_REPORTED.search(body) or _INJURY_OR_DATE.search(body):
        for m in _TEAM_MEMBER.finditer(body):
            if not _doer(body, m.start()):
                return m.start(), m.end()
    return None


def _doer(body: str, index: int) -> bool:
    """True when the words at index describe the suspect ("followed by a football player")."""
    return _side(body, index) == "suspect" or _BY_AGENT.search(body[:index]) is not None


# "followed by a football player": the player did it. "reported by the goalkeeper" is not.
_BY_AGENT = re.compile(
    r"\b(?:robbed|assaulted|attacked|injured|hurt|struck|approached|harassed|threatened|"
    r"followed|stalked|groped|touched|stabbed|shot|beaten|punched|grabbed|pushed|mugged|"
    r"drugged|fondled|confronted|targeted|asaltad[oa]|agredid[oa]|atacad[oa]|seguid[oa]|"
    r"acosad[oa])\s+(?:by|por)\s+(?:the\s+|a\s+|an\s+|el\s+|la\s+|un\s+|una\s+)?$",
    re.IGNORECASE,
)


def _side(body: str, index: int) -> str:
    """Whether an attribute at index describes the victim or the suspect: the nearest cue."""
    before = body[:index]
    victim = [m.end() for m in _VICTIM_SIDE.finditer(before)]
    suspect = [m.end() for m in _SUSPECT_SIDE.finditer(before)]
    if suspect and (not victim or max(suspect) > max(victim)):
        return "suspect"
    if not victim and not suspect and _SUSPECT_SIDE.search(body[index:]):
        return "suspect" if not _VICTIM_SIDE.search(body[index:]) else "victim"
    return "victim"

