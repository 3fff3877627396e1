"""The "expiring per month" report at month edges: which calendar month a validity end falls in.

The report covers ``months`` calendar months counting the current one ([1st of this month, 1st of the
month ``months`` later)), by business date (Asia/Shanghai). Every test pins the clock. The enrollments
get their period set explicitly (a queryset update past the approval service), so the tests do not depend
on the region's benefit-start rule; the ends are the ones ``period_end`` gives for an approval that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from enrollment import report_selectors, services
from enrollment.models import Application, State
from enrollment.periods import add_months, period_end
from tests.enrollment.validity_helpers import SHANGHAI, approve

D = dt.date

pytestmark = pytest.mark.django_db


def clock(day: dt.date, time: dt.time = dt.time(10, 0)) -> time_machine.travel:
    """Stand the clock still at ``time`` on ``day``, business time (Asia/Shanghai)."""
    return time_machine.travel(dt.datetime.combine(day, time, tzinfo=SHANGHAI), tick=False)


def enrollment(world: Any, *, valid_from: dt.date, valid_until: dt.date) -> Application:
    """An approved enrollment (approved on the current clock) with exactly this period."""
    application = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    approve(world, application)
    Application.objects.filter(pk=application.pk).update(valid_from=valid_from, valid_until=valid_until)
    application.refresh_from_db()
    assert application.state == State.APPROVED
    return application


def ending(world: Any, valid_until: dt.date) -> Application:
    """An approved 36-month enrollment that ends on ``valid_until``."""
    return enrollment(world, valid_from=add_months(valid_until + dt.timedelta(days=1), -36), valid_until=valid_until)


def expiring(world: Any, months: int) -> list[dict[str, Any]]:
    return report_selectors.expiring_per_month(world.admin, months=months).rows


def row(month: str, count: int = 1) -> dict[str, Any]:
    return {"month": month, "expiring": count, "renewal_filed": 0}


# An approval with ``validity`` months, on ``approved_on`` (also the day the report is read), ends on
# ``valid_until``; the smallest window that shows it is ``window`` months (one month less shows nothing).
@pytest.mark.parametrize(
    ("approved_on", "validity", "valid_until", "window"),
    [
        # On the 1st, 36 months end on the last day of the 36th calendar month: inside a 36-month window.
        pytest.param(D(2026, 3, 1), 36, D(2029, 2, 28), 36, id="1st-of-month"),
        # Any later day ends in month 37: on the 2nd, the end is the 1st of month 37.
        pytest.param(D(2026, 3, 2), 36, D(2029, 3, 1), 37, id="2nd-of-month"),
        pytest.param(D(2026, 1, 31), 36, D(2029, 1, 30), 37, id="31-january"),
        # 31 Jan + 1 month has no 31 Feb: the period ends on February's last day, in the next month.
        pytest.param(D(2027, 1, 31), 1, D(2027, 2, 28), 2, id="31-january-to-end-of-february"),
        pytest.param(D(2028, 1, 31), 1, D(2028, 2, 29), 2, id="31-january-to-leap-day"),
        # From the leap day: no 29 Feb 2031, so 28 Feb 2031 — still month 37 of a window from February 2028.
        pytest.param(D(2028, 2, 29), 36, D(2031, 2, 28), 37, id="leap-day"),
        # Year end: the window starts in December and counts across the new year.
        pytest.param(D(2026, 12, 31), 36, D(2029, 12, 30), 37, id="31-december"),
        pytest.param(D(2026, 12, 1), 36, D(2029, 11, 30), 36, id="1-december"),
    ],
)
def test_expiring_window_edge_for_an_approval_on(world, approved_on, validity, valid_until, window):
    assert period_end(approved_on, validity) == valid_until
    with clock(approved_on):
        enrollment(world, valid_from=approved_on, valid_until=valid_until)
    # The whole business day reads the same, also its first half hour (the UTC date is still yesterday).
    for time in (dt.time(0, 30), dt.time(10, 0), dt.time(23, 59)):
        with clock(approved_on, time):
            assert expiring(world, window) == [row(f"{valid_until:%Y-%m}")], time
            assert expiring(world, window - 1) == [], time


@pytest.mark.parametrize(
    "today",
    [
        pytest.param(D(2026, 2, 1), id="1st-of-month"),
        pytest.param(D(2026, 2, 28), id="last-day-of-february"),
        pytest.param(D(2028, 2, 29), id="leap-day"),
        pytest.param(D(2026, 12, 31), id="year-end"),
    ],
)
def test_an_enrollment_ending_this_month_is_inside_a_one_month_window(world, today):
    last_day = add_months(today.replace(day=1), 1) - dt.timedelta(days=1)
    first_of_next = last_day + dt.timedelta(days=1)
    with clock(today):
        ending(world, last_day)
        ending(world, first_of_next)
    for time in (dt.time(0, 30), dt.time(23, 59)):
        with clock(today, time):
            assert expiring(world, 1) == [row(f"{today:%Y-%m}")], time
            assert expiring(world, 2) == [row(f"{today:%Y-%m}"), row(f"{first_of_next:%Y-%m}")], time


def test_an_enrollment_that_ended_yesterday_is_not_shown_at_the_start_of_a_month(world):
    # Half past midnight on 1 May 2026 in Shanghai is still 30 April in UTC; the sweep has not run yet,
    # so the enrollment that ended on 30 April is still "approved". It belongs to April: not shown.
    with clock(D(2026, 5, 1), dt.time(0, 30)):
        ending(world, D(2026, 4, 30))  # ended yesterday
        ending(world, D(2026, 5, 1))  # ends today
        ending(world, D(2026, 5, 31))
        ending(world, D(2026, 6, 1))
        assert expiring(world, 1) == [row("2026-05", 2)]
        assert expiring(world, 2) == [row("2026-05", 2), row("2026-06")]
        assert expiring(world, 36) == [row("2026-05", 2), row("2026-06")]
