"""Calendar arithmetic shared by every layer: calendar months and day numbers.

Windows, horizons and index dates count calendar months (like dateutil's relativedelta and Polars
`dt.offset_by("Nmo")`); day numbers are the integers a `pl.Date` column holds, so date arithmetic on columns
stays in integers. The contract layer is the lowest layer, so the features, the models, the pipelines and the
synthetic generator all take these from here.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

EPOCH = date(1970, 1, 1)
"""Day 0 of a day number (what a `pl.Date` column counts from)."""


def add_months(d: date, months: int) -> date:
    """`d` moved by whole calendar months: the day is kept and clamped to the end of a shorter month, so
    31 March minus 1 month is 28 or 29 February."""
    month_index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def months_between(start: date, end: date) -> int:
    """Whole calendar months from `start`'s month to `end`'s month (the day of the month is ignored)."""
    return (end.year - start.year) * 12 + (end.month - start.month)


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def day_to_date(day: int) -> date:
    return EPOCH + timedelta(days=int(day))
