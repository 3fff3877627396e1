"""Working days of the official Chinese calendar (法定节假日 and 调休), for the promised review time limits.

Sources, in order: the admin-editable override table (``CalendarDay``: a declared holiday or make-up working
day on a date), then a year declared complete in the table (``CalendarYear``: its other dates follow
Monday–Friday), then the ``chinese-calendar`` library (holidays and make-up days up to the year of its release).
A date in a year that none of them knows is never silently counted as a plain weekday: by default
(``WORKING_CALENDAR_UNKNOWN_YEAR = "warn"``) it is counted Monday–Friday, the result is marked
*provisional* (shown on the pages and in the API) and a warning is logged once per year and process; with
``"error"`` the computation raises ``CalendarUnknown``. docs/reviews.md, "Working days", says how the
calendar is kept up to date each year.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import chinese_calendar
from django.conf import settings
from django.utils.translation import gettext as _

from kernel.errors import RuleViolation

logger = logging.getLogger(__name__)

_warned_years: set[int] = set()

# A deadline is never further than this many calendar days per working day (guards a misconfigured table).
_MAX_SPAN_PER_WORKING_DAY = 8


class CalendarUnknown(RuleViolation):
    default_code = "calendar_unknown"


class WorkCalendar:
    """One computation's view of the calendar: the override table is read once per year it touches."""

    def __init__(self, *, day_model: Any = None, year_model: Any = None) -> None:
        """``day_model`` / ``year_model``: a migration's historical CalendarDay / CalendarYear (default: the app's)."""
        self._overrides: dict[int, dict[dt.date, bool]] = {}
        self._declared: dict[int, bool] = {}
        self.unknown_years: set[int] = set()
        self._day_model = day_model
        self._year_model = year_model

    @property
    def provisional(self) -> bool:
        """Some date used was in a year nobody knows: its working days were assumed Monday–Friday."""
        return bool(self.unknown_years)

    def _load(self, year: int) -> None:
        if year in self._overrides:
            return
        from reviews.models import CalendarDay, CalendarYear

        days, years = self._day_model or CalendarDay, self._year_model or CalendarYear
        self._overrides[year] = dict(days.objects.filter(date__year=year).values_list("date", "is_working_day"))
        self._declared[year] = years.objects.filter(year=year).exists()

    def is_working_day(self, day: dt.date) -> bool:
        self._load(day.year)
        overrides = self._overrides[day.year]
        if day in overrides:
            return overrides[day]
        if self._declared[day.year]:
            return day.weekday() < 5
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return self._unknown(day)

    def _unknown(self, day: dt.date) -> bool:
        mode = str(getattr(settings, "WORKING_CALENDAR_UNKNOWN_YEAR", "warn")).lower()
        if mode == "error":
            raise CalendarUnknown(
                _(
                    "The official holiday calendar of %(year)s is not known yet: enter it under Reviews → calendar "
                    "days and declare the year, or update the chinese-calendar library."
                )
                % {"year": day.year},
                details={"year": day.year},
            )
        if day.year not in self.unknown_years and day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning(
                "working calendar: %s is known neither to chinese-calendar nor to the override table; "
                "counting Monday-Friday (provisional) until it is declared",
                day.year,
            )
        self.unknown_years.add(day.year)
        return day.weekday() < 5

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        """The ``days``-th working day after ``start`` (the start day itself is not counted, as in the
        administrative licensing law's rule that a period starts the next day). 0 → ``start``."""
        day = start
        remaining = days
        limit = start + dt.timedelta(days=_MAX_SPAN_PER_WORKING_DAY * max(days, 1) + 30)
        while remaining > 0:
            day += dt.timedelta(days=1)
            if day > limit:
                raise CalendarUnknown(_("The calendar has no working day for weeks: check the calendar days table."))
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days ``d`` with ``start < d <= end`` (0 when ``end <= start``)."""
        count = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    def working_days_left(self, today: dt.date, due_on: dt.date) -> int:
        """Working days from today until the due date (0 on the due day, negative once past it)."""
        if due_on >= today:
            return self.working_days_between(today, due_on)
        return -self.working_days_between(due_on, today)


def library_years() -> tuple[int, int]:
    """The first and last year the installed chinese-calendar knows."""
    years = sorted({day.year for day in chinese_calendar.holidays})
    return years[0], years[-1]


def describe(calendar: WorkCalendar) -> dict[str, Any]:
    """What the pages and the API say about a computation's calendar."""
    return {"provisional": calendar.provisional, "unknown_years": sorted(calendar.unknown_years)}
