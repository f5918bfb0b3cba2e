"""What an incident is: its Clery classification, geography, disposition and source."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Geography(StrEnum):
    """Clery geography of where a crime happened (`none` is outside it)."""

    ON_CAMPUS = "on_campus"
    ON_CAMPUS_HOUSING = "on_campus_housing"
    NONCAMPUS = "noncampus"
    PUBLIC_PROPERTY = "public_property"
    NONE = "none"


class Section(StrEnum):
    """The Annual Security Report's tables."""

    CRIMINAL_OFFENSES = "criminal_offenses"
    HATE_CRIMES = "hate_crimes"
    VAWA_OFFENSES = "vawa_offenses"
    ARRESTS = "arrests"
    REFERRALS = "referrals"


class Category(StrEnum):
    """A Clery crime category (hate-crime-only offenses count only with a bias)."""

    MURDER = "murder"
    NEGLIGENT_MANSLAUGHTER = "negligent_manslaughter"
    RAPE = "rape"
    FONDLING = "fondling"
    INCEST = "incest"
    STATUTORY_RAPE = "statutory_rape"
    ROBBERY = "robbery"
    AGGRAVATED_ASSAULT = "aggravated_assault"
    BURGLARY = "burglary"
    MOTOR_VEHICLE_THEFT = "motor_vehicle_theft"
    ARSON = "arson"
    LARCENY_THEFT = "larceny_theft"
    SIMPLE_ASSAULT = "simple_assault"
    INTIMIDATION = "intimidation"
    DESTRUCTION_OF_PROPERTY = "destruction_of_property"
    DOMESTIC_VIOLENCE = "domestic_violence"
    DATING_VIOLENCE = "dating_violence"
    STALKING = "stalking"
    ARREST_WEAPONS = "arrest_weapons"
    ARREST_DRUG = "arrest_drug"
    ARREST_LIQUOR = "arrest_liquor"
    REFERRAL_WEAPONS = "referral_weapons"
    REFERRAL_DRUG = "referral_drug"
    REFERRAL_LIQUOR = "referral_liquor"


class Bias(StrEnum):
    """The bias of a hate crime, as the Clery Act lists them."""

    RACE = "race"
    RELIGION = "religion"
    SEXUAL_ORIENTATION = "sexual_orientation"
    GENDER = "gender"
    GENDER_IDENTITY = "gender_identity"
    ETHNICITY = "ethnicity"
    NATIONAL_ORIGIN = "national_origin"
    DISABILITY = "disability"


class Disposition(StrEnum):
    """Where the case stands, as the crime log shows it."""

    OPEN = "open"
    UNDER_INVESTIGATION = "under_investigation"
    CLEARED_BY_ARREST = "cleared_by_arrest"
    EXCEPTIONALLY_CLEARED = "exceptionally_cleared"
    REFERRED = "referred"
    INACTIVE = "inactive"
    CLOSED = "closed"
    UNFOUNDED = "unfounded"


class Source(StrEnum):
    """Who reported the crime to the institution."""

    CAMPUS_POLICE = "campus_police"
    CSA_REPORT = "csa_report"
    LOCAL_POLICE = "local_police"


CRIMINAL = frozenset({
    Category.MURDER, Category.NEGLIGENT_MANSLAUGHTER, Category.RAPE, Category.FONDLING,
    Category.INCEST, Category.STATUTORY_RAPE, Category.ROBBERY, Category.AGGRAVATED_ASSAULT,
    Category.BURGLARY, Category.MOTOR_VEHICLE_THEFT, Category.ARSON,
})
HATE_ONLY = frozenset({
    Category.LARCENY_THEFT, Category.SIMPLE_ASSAULT, Category.INTIMIDATION,
    Category.DESTRUCTION_OF_PROPERTY,
})
VAWA = frozenset({Category.DOMESTIC_VIOLENCE, Category.DATING_VIOLENCE, Category.STALKING})
ARRESTS = frozenset({Category.ARREST_WEAPONS, Category.ARREST_DRUG, Category.ARREST_LIQUOR})
REFERRALS = frozenset({
    Category.REFERRAL_WEAPONS, Category.REFERRAL_DRUG, Category.REFERRAL_LIQUOR,
})
CLERY_GEOGRAPHY = frozenset(set(Geography) - {Geography.NONE})


def sections_of(category: Category | None, bias: Bias | None) -> tuple[Section, ...]:
    """The report tables an incident counts in (a hate crime counts as its offense too)."""
    if category is None:
        return ()
    found: list[Section] = []
    if category in CRIMINAL:
        found.append(Section.CRIMINAL_OFFENSES)
    if category in VAWA:
        found.append(Section.VAWA_OFFENSES)
    if category in ARRESTS:
        found.append(Section.ARRESTS)
    if category in REFERRALS:
        found.append(Section.REFERRALS)
    if bias is not None and (category in CRIMINAL or category in HATE_ONLY):
        found.append(Section.HATE_CRIMES)
    return tuple(found)


def needs_decision(category: Category | None, bias: Bias | None, geography: Geography) -> bool:
    """Whether a timely-warning decision must be made and kept.

    Arrests and referrals are statistics, not crimes a warning is about; a larceny without a
    bias is not a Clery crime at all.
    """
    if geography not in CLERY_GEOGRAPHY:
        return False
    sections = set(sections_of(category, bias))
    return bool(sections & {Section.CRIMINAL_OFFENSES, Section.HATE_CRIMES, Section.VAWA_OFFENSES})


@dataclass(frozen=True, slots=True)
class PrivateDetails:
    """Victim and reporter details: sealed in the store, shown only to allowed roles."""

    victim: dict[str, str] = field(default_factory=dict)
    reporter: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The details as the API shows them."""
        return {"victim": dict(self.victim), "reporter": dict(self.reporter)}

    @property
    def empty(self) -> bool:
        """True when nothing private was given."""
        return not self.victim and not self.reporter


@dataclass(frozen=True, slots=True)
class DispositionChange:
    """One entry of an incident's disposition history."""

    at: int
    actor: str
    disposition: Disposition
    note: str

    def as_json(self) -> dict[str, Any]:
        """The change as the API shows it."""
        return {"at": self.at, "actor": self.actor, "disposition": self.disposition.value,
                "note": self.note}


@dataclass(frozen=True, slots=True)
class Decision:
    """The timely-warning decision for one incident: open until someone closes it."""

    incident_id: str
    opened_at: int
    decided_at: int | None = None
    decided_by: str | None = None
    warn: bool | None = None
    reasons: str = ""

    @property
    def open(self) -> bool:
        """True while nobody has decided."""
        return self.decided_at is None

    def as_json(self, *, overdue_after_ms: int, now_ms: int) -> dict[str, Any]:
        """The decision as the API shows it."""
        return {
            "state": "open" if self.open else ("warn" if self.warn else "no_warning"),
            "opened_at": self.opened_at,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "warn": self.warn,
            "reasons": self.reasons,
            "overdue": self.open and now_ms - self.opened_at > overdue_after_ms,
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """A crime reported to the institution, as the crime log and the statistics need it."""

    id: str
    reported_at: int
    occurred_from: int | None
    occurred_to: int | None
    entered_at: int
    location: str
    geography: Geography
    category: Category | None
    bias: Bias | None
    nature: str
    disposition: Disposition
    source: Source
    created_by: str
    held_reason: str | None = None
    held_at: int | None = None
    held_by: str | None = None
    released_at: int | None = None
    released_by: str | None = None
    has_private: bool = False
    # The public case number: the year reported and its place in that year ("2026-000123").
    case_number: str = ""

    @property
    def held(self) -> bool:
        """True while the entry is held back from the public log."""
        return self.held_at is not None and self.released_at is None

    def as_json(self) -> dict[str, Any]:
        """The incident's non-private fields."""
        return {
            "id": self.id,
            "case_number": self.case_number,
            "reported_at": self.reported_at,
            "occurred_from": self.occurred_from,
            "occurred_to": self.occurred_to,
            "entered_at": self.entered_at,
            "location": self.location,
            "geography": self.geography.value,
            "category": None if self.category is None else self.category.value,
            "bias": None if self.bias is None else self.bias.value,
            "sections": [s.value for s in sections_of(self.category, self.bias)],
            "nature": self.nature,
            "disposition": self.disposition.value,
            "source": self.source.value,
            "created_by": self.created_by,
            "held": self.held,
            "held_reason": self.held_reason,
            "held_at": self.held_at,
            "held_by": self.held_by,
            "released_at": self.released_at,
            "released_by": self.released_by,
            "has_private": self.has_private,
        }
