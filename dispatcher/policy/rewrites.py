"""Neutral rewrites for what a confidentiality violation points at ("a student", "a residence
hall room", "the 400 block of Oak Street"), in the language of the text.

A rewrite replaces exactly the violation's span. An empty rewrite means: delete the span (an ID
number, a date of birth, the victim's choice about reporting have no neutral form).
"""

from __future__ import annotations

import re

from dispatcher.policy.text import fold

_FACULTY_TITLE = re.compile(
    r"^(?:dr|dra|prof|professor|profesor|profesora|doctor|doctora|instructor|lecturer|"
    r"faculty member)\b\.?"
)
# The article and role a name's span may start with ("the employee Ann Lee").
_ARTICLE = re.compile(r"^(?:a|an|the|one|our|un|una|el|la)\s+")
_STAFF = re.compile(r"^(?:employee|staff member|empleado|empleada)\b")
_STREET = re.compile(r"^(\d{1,6})[A-Z]?\s+(.+?)(?:,?\s*(?:Apt|Apartment|Unit|Suite|Ste|#)\b.*)?$")
_CALLE = re.compile(r"^(.+?)\s+(?:n[úu]m\.?\s*|#\s*)?\d{1,6}\b.*$", re.IGNORECASE)

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "person": "a student",
        "faculty": "a faculty member",
        "staff": "a staff member",
        "room": "a residence hall room",
        "apartment": "an apartment",
        "suite": "a suite",
        "floor": "upper floor",
        "low_floor": "lower floor",
        "unit": "a residence",
        "phone": "the Campus Police number (or 911)",
        "email": "the office's published address",
        "block": "the {block} block of {street}",
        "area": "a nearby landmark",
        "group": "a student",
    },
    "es": {
        "person": "una persona",
        "faculty": "un miembro del profesorado",
        "staff": "un miembro del personal",
        "room": "una habitación de una residencia",
        "apartment": "un apartamento",
        "suite": "una suite",
        "floor": "piso superior",
        "low_floor": "planta baja",
        "unit": "una residencia",
        "phone": "el número de la Policía del Campus (o el 911)",
        "email": "la dirección publicada de la oficina",
        "block": "la cuadra {block} de {street}",
        "area": "un lugar cercano",
        "group": "una persona",
    },
}
_REMOVE = frozenset(
    {
        "confidentiality.ssn",
        "confidentiality.id_number",
        "confidentiality.date_of_birth",
        "confidentiality.reporting_choice",
        "confidentiality.license_plate",
        "confidentiality.account",
    }
)


def rewrite(rule: str, span: str, language: str = "en") -> str:
    """The neutral words that replace `span`, the text a violation of `rule` points at."""
    words = _WORDS.get(language.split("-", 1)[0].lower(), _WORDS["en"])
    if rule in _REMOVE:
        return ""
    if rule == "confidentiality.name":
        said = _ARTICLE.sub("", fold(span))
        if _FACULTY_TITLE.match(said):
            return words["faculty"]
        return words["staff"] if _STAFF.match(said) else words["person"]
    if rule == "confidentiality.residence_unit":
        # A bare number after the building ("West Hall 1104") goes; the building stays.
        return "" if re.fullmatch(r"#?\s?\d{1,4}[A-Za-z]?", span) else words[_unit_kind(fold(span))]
    if rule == "confidentiality.street_address":
        return _block(span, words)
    if rule in ("confidentiality.phone", "confidentiality.email"):
        return words[rule.rsplit(".", 1)[1]]
    if _NUMBERED.match(fold(span)):
        # A jersey number has no neutral form: it goes.
        return ""
    return words["group"]


_NUMBERED = re.compile(
    r"(?:jersey|uniform|wears|wore|wearing|number|no\.|#|camiseta|dorsal|numero)"
)


def _unit_kind(folded: str) -> str:
    if "floor" in folded or "piso" in folded:
        # "the third floor" becomes "the upper floor": the article around the span stays.
        low = re.match(r"(?:ground|first|1st|primer)\b", folded)
        return "low_floor" if low else "floor"
    if re.match(r"(?:apartment|apt|apartamento|depto|departamento)\b", folded):
        return "apartment"
    if re.match(r"(?:suite|ste)\b", folded):
        return "suite"
    if re.match(r"(?:room|rm|habitacion|cuarto|dormitorio)\b", folded) or "hall" in folded:
        return "room"
    return "unit"


def _block(span: str, words: dict[str, str]) -> str:
    """ "412 Oak Street, Apt 3" becomes "the 400 block of Oak Street"."""
    found = _STREET.match(span.strip())
    if found:
        return words["block"].format(block=int(found.group(1)) // 100 * 100,
                                     street=found.group(2).rstrip(", "))
    calle = _CALLE.match(span.strip())
    if calle:
        number = re.search(r"\d{1,6}", span)
        block = int(number.group()) // 100 * 100 if number else 0
        return words["block"].format(block=block, street=calle.group(1))
    return words["area"]
