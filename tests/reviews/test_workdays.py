"""Working days of the official calendar (issue 15 item 1): holidays, make-up days, unknown years, overrides."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from reviews import workdays
from reviews.models import CalendarDay, CalendarYear
from reviews.workdays import CalendarUnknown, WorkCalendar

pytestmark = pytest.mark.django_db
D = dt.date


def test_spring_festival_2026_and_its_make_up_saturdays():
    calendar = WorkCalendar()
    assert calendar.is_working_day(D(2026, 2, 14))  # a Saturday worked in exchange (调休)
    assert not calendar.is_working_day(D(2026, 2, 16))  # a Monday of the holiday
    # The day before the holiday: Friday 13th + 1 = the make-up Saturday; + 2 = the first day back.
    assert calendar.add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 14)
    assert calendar.add_working_days(D(2026, 2, 13), 2) == D(2026, 2, 24)
    # The day after the holiday counts from there.
    assert calendar.add_working_days(D(2026, 2, 24), 1) == D(2026, 2, 25)
    assert calendar.working_days_between(D(2026, 2, 14), D(2026, 2, 24)) == 1
    assert calendar.add_working_days(D(2026, 2, 27), 1) == D(2026, 2, 28)  # month end: a make-up Saturday
    assert not calendar.provisional


def test_national_day_2026():
    calendar = WorkCalendar()
    assert calendar.add_working_days(D(2026, 9, 30), 1) == D(2026, 10, 8)  # the day before → the day after
    assert calendar.add_working_days(D(2026, 10, 7), 3) == D(2026, 10, 10)  # Saturday 10th is worked
    assert calendar.is_working_day(D(2026, 9, 20))  # a Sunday worked before it
    assert calendar.working_days_left(D(2026, 9, 30), D(2026, 10, 9)) == 2
    assert calendar.working_days_left(D(2026, 10, 9), D(2026, 9, 30)) == -2


def test_month_end_and_zero_days():
    calendar = WorkCalendar()
    assert calendar.add_working_days(D(2026, 3, 31), 1) == D(2026, 4, 1)
    assert calendar.add_working_days(D(2026, 3, 31), 0) == D(2026, 3, 31)


def test_year_end_into_an_unknown_year_is_provisional_and_warns(caplog):
    workdays._warned_years.discard(2027)
    calendar = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger="reviews.workdays"):
        due = calendar.add_working_days(D(2026, 12, 30), 3)
    # Dec 31, then 1 Jan 2027 counted as a plain Friday for want of a calendar, then Monday 4th.
    assert due == D(2027, 1, 4)
    assert calendar.provisional and calendar.unknown_years == {2027}
    assert "2027" in caplog.text and "provisional" in caplog.text


def test_a_declared_year_with_its_holidays_is_exact():
    CalendarYear.objects.create(year=2027, note="国务院办公厅通知")
    CalendarDay.objects.create(date=D(2027, 1, 1), is_working_day=False, note="元旦")
    calendar = WorkCalendar()
    assert calendar.add_working_days(D(2026, 12, 30), 3) == D(2027, 1, 5)
    assert not calendar.provisional


def test_unknown_year_refused_in_error_mode(settings):
    settings.WORKING_CALENDAR_UNKNOWN_YEAR = "error"
    with pytest.raises(CalendarUnknown) as refused:
        WorkCalendar().add_working_days(D(2026, 12, 31), 1)
    assert refused.value.details == {"year": 2027}


def test_leap_day_2028():
    calendar = WorkCalendar()
    assert calendar.add_working_days(D(2028, 2, 28), 1) == D(2028, 2, 29)
    assert calendar.provisional
    CalendarYear.objects.create(year=2028)
    declared = WorkCalendar()
    assert declared.working_days_between(D(2028, 2, 27), D(2028, 3, 1)) == 3  # Mon 28, Tue 29, Wed 1
    assert not declared.provisional


def test_an_override_wins_over_the_library():
    CalendarDay.objects.create(date=D(2026, 2, 24), is_working_day=False, note="extra day off")
    assert WorkCalendar().add_working_days(D(2026, 2, 14), 1) == D(2026, 2, 25)


def test_library_years_cover_the_pinned_release():
    first, last = workdays.library_years()
    assert first <= 2004 and last >= 2026
