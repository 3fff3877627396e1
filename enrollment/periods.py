"""Calendar arithmetic for validity periods, with python-dateutil's relativedelta.

docs/design.md: Validity, renewal and reminders.
"""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta


def add_months(day: dt.date, months: int) -> dt.date:
    """31 Jan + 1 month = 28/29 Feb; relativedelta clips to the month's last day."""
    return day + relativedelta(months=months)


def first_of_next_month(day: dt.date) -> dt.date:
    return day.replace(day=1) + relativedelta(months=1)


def period_end(valid_from: dt.date, validity_months: int) -> dt.date | None:
    """Last covered day: valid_from + months − 1 day; None for long-term (0 months).

    When the end month has no day corresponding to ``valid_from`` (a period from 31 Jan or 29 Feb),
    the period ends on that month's last day, as the Civil Code counts month periods (民法典 第二百零三条:
    没有对应日的，月末日为期间的最后一日). Naive clipping would end a period from 29 Feb 2024 on
    27 Feb 2027 and silently shorten it by a day; the next period then starts on the 1st.
    """
    if validity_months == 0:
        return None
    corresponding = add_months(valid_from, validity_months)
    if corresponding.day != valid_from.day:
        return corresponding  # clipped to the month's last day: no corresponding day exists
    return corresponding - dt.timedelta(days=1)


def period_key(day: dt.date) -> str:
    """A batch period, ``YYYY-MM``."""
    return f"{day:%Y-%m}"


# The national platform has no empty end date: a long-term enrollment (validity 0 months, no valid_until)
# is filed and exported with this end (docs/platform.md).
PLATFORM_OPEN_END = dt.date(2099, 12, 31)
