"""What the reviews app adds to enrollment's pages through its registries (reviews/apps.py): the deadline card
on the application page, the ``deadline`` key of the application API, the on-time section of the reports page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from reviews import deadlines, selectors


def _deadline_json(application: Any) -> dict[str, Any] | None:
    deadline = deadlines.application_deadline(application)
    if deadline is None:
        return None
    data = deadline.as_dict()
    batch_on = selectors.application_batch_on(application)
    data["batch_on"] = batch_on
    return {key: value.isoformat() if isinstance(value, dt.date) else value for key, value in data.items()}


def application_panel(request: Any, application: Any) -> dict[str, Any] | None:
    """enrollment.selectors.APPLICATION_PANELS: due date, working days left, 补正 requests, batch day."""
    deadline = deadlines.application_deadline(application)
    requests = list(selectors.supplements_of(application))
    batch_on = selectors.application_batch_on(application)
    if deadline is None and not requests and batch_on is None:
        return None
    return {
        "template": "reviews/_application_panel.html",
        "deadline": deadline,
        "supplements": requests,
        "batch_on": batch_on,
    }


def application_extra(application: Any) -> dict[str, Any] | None:
    """enrollment.selectors.APPLICATION_EXTRAS: ``deadline`` of the API detail (null before a complete filing)."""
    return _deadline_json(application)


def report_months(request: Any) -> int:
    try:
        months = int(request.GET.get("months", 12))
    except (TypeError, ValueError):
        months = 12
    return min(max(months, 1), 36)


def on_time_since(months: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=31 * months)


def report_panel(request: Any) -> dict[str, Any] | None:
    """enrollment.selectors.REPORT_PANELS: on-time rates per region, stage and institution."""
    months = report_months(request)
    rows = selectors.on_time_rates(request.user, since=on_time_since(months))
    return {"template": "reviews/_report_panel.html", "rows": rows, "months": months}
