"""Calendar arithmetic for validity periods (§6), with python-dateutil's relativedelta."""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta


def add_months(day: dt.date, months: int) -> dt.date:
    """31 Jan + 1 month = 28/29 Feb; relativedelta clips to the month's last day."""
    return day + relativedelta(months=months)


def first_of_next_month(day: dt.date) -> dt.date:
    return day.replace(day=1) + relativedelta(months=1)


def period_end(valid_from: dt.date, validity_months: int) -> dt.date | None:
    """Last covered day: valid_from + months − 1 day; None for long-term (0 months)."""
    if validity_months == 0:
        return None
    return add_months(valid_from, validity_months) - dt.timedelta(days=1)


def period_key(day: dt.date) -> str:
    """A batch period, ``YYYY-MM``."""
    return f"{day:%Y-%m}"
