"""Business days for the crime log's deadline: an entry is due within two of them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

SATURDAY = 5


def is_business_day(day: date, holidays: Collection[date]) -> bool:
    """Monday to Friday and not a configured holiday."""
    return day.weekday() < SATURDAY and day not in holidays


def entry_deadline(reported: date, business_days: int, holidays: Collection[date]) -> date:
    """The last day an entry for a crime reported on `reported` is on time.

    The day of the report does not count: reported on a Friday with two business days, the
    entry is due by Tuesday (Wednesday when that Monday is a holiday).
    """
    day, left = reported, business_days
    while left > 0:
        day += timedelta(days=1)
        if is_business_day(day, holidays):
            left -= 1
    return day


def local_date(ms: int, zone: ZoneInfo) -> date:
    """The calendar day a moment falls on in the institution's time zone."""
    return datetime.fromtimestamp(ms / 1000, tz=zone).date()


def entered_late(
    reported_ms: int, entered_ms: int, *, zone: ZoneInfo, business_days: int,
    holidays: Collection[date],
) -> bool:
    """True when the entry was made after its deadline."""
    deadline = entry_deadline(local_date(reported_ms, zone), business_days, holidays)
    return local_date(entered_ms, zone) > deadline
