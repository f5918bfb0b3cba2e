"""Incident request bodies as they arrive (HTTP, CLI, the example file): unknown keys refused."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dispatcher.incidents.model import (
    HATE_ONLY,
    Bias,
    Category,
    Disposition,
    Geography,
    Source,
)

_TEXT = 500
# Moments outside these years are typing errors, and the local calendar day of one at the
# edge of what `datetime` holds would overflow.
FIRST_YEAR, LAST_YEAR = 1900, 9998


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PrivateInput(_Strict):
    """A victim's or reporter's details: free keys (name, phone, email, notes), short values."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=200)
    affiliation: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=4000)

    def as_dict(self) -> dict[str, str]:
        """The fields given."""
        return {k: v for k, v in self.model_dump().items() if v}


class IncidentInput(_Strict):
    """A reported crime to record; times without an offset are the institution's local time."""

    reported_at: datetime
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    location: str = Field(min_length=1, max_length=_TEXT)
    geography: Geography
    category: Category | None = None
    bias: Bias | None = None
    nature: str = Field(min_length=1, max_length=_TEXT)
    disposition: Disposition = Disposition.OPEN
    source: Source = Source.CAMPUS_POLICE
    victim: PrivateInput | None = None
    reporter: PrivateInput | None = None

    @field_validator("reported_at", "occurred_from", "occurred_to")
    @classmethod
    def _in_calendar(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise ValueError(f"a moment in the years {FIRST_YEAR} to {LAST_YEAR}")
        return moment

    @model_validator(mode="after")
    def _consistent(self) -> IncidentInput:
        if self.occurred_to is not None and self.occurred_from is None:
            raise ValueError("occurred_to needs occurred_from (the start of the range)")
        if self.category in HATE_ONLY and self.bias is None:
            raise ValueError(
                f"category {self.category} counts only as a hate crime: give its bias, or "
                "leave category out for a crime that is not a Clery crime"
            )
        if self.bias is not None and self.category is None:
            raise ValueError("a bias needs the offense it motivated (category)")
        return self


class DispositionInput(_Strict):
    """A change of disposition (`PATCH /v1/incidents/{id}`)."""

    disposition: Disposition
    note: str = Field(default="", max_length=2000)


class HoldInput(_Strict):
    """Why an entry is held back from the public log."""

    reason: str = Field(min_length=5, max_length=2000)


class DecisionInput(_Strict):
    """The timely-warning decision: warn or not, and why."""

    warn: bool
    reasons: str = Field(min_length=5, max_length=4000)


class StatisticsRequestInput(_Strict):
    """A year's request to local law enforcement for its crime statistics."""

    year: int = Field(ge=1990, le=9999)
    requested_on: date
    agency: str = Field(min_length=1, max_length=300)
    response: str = Field(default="", max_length=4000)
