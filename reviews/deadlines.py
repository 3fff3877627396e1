"""Promised review time limits in working days (承诺时限): reads only (the services write due dates).

- **Whole application**: ``ReviewTimeLimit`` with an empty stage, per disease type, counted from a *complete
  filing* — the moment the application is diagnosed (its documents were given at filing and the diagnosis is
  recorded: ``Application.diagnosed_at``). Each 补正 request pauses it: the working days the clinic held
  the application (``SupplementRequest.paused_working_days``) move the due date; while a request is open the
  clock is stopped and the due date shown is the one it would have if answered today.
- **Stage**: ``ReviewTimeLimit`` with the stage, counted from entering the stage (``ReviewItem.queued_at``);
  stored on the item as ``due_on`` when it enters the stage, so that queues sort and flag in SQL.

A region's own limit wins over its ancestors', which win over the default (region empty).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, Region, State
from reviews.models import ReviewTimeLimit, SupplementRequest, SupplementState
from reviews.workdays import WorkCalendar


def time_limits_for(region: Region) -> dict[tuple[str, str], int]:
    """``{(disease_type, stage): working_days}`` in force for the region (one query for the lineage)."""
    lineage = enrollment_selectors.region_lineage_ids(region)
    rank = {region_id: position for position, region_id in enumerate(lineage)}
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for region_id, disease_type, stage, days in ReviewTimeLimit.objects.filter(
        Q(region_id__in=lineage) | Q(region__isnull=True)
    ).values_list("region_id", "disease_type", "stage", "working_days"):
        position = rank.get(region_id, len(lineage)) if region_id is not None else len(lineage)
        key = (disease_type, stage)
        if key not in best or position < best[key][0]:
            best[key] = (position, days)
    return {key: days for key, (_position, days) in best.items()}


def stage_due_on(
    calendar: WorkCalendar, *, limits: dict[tuple[str, str], int], disease_type: str, stage: str, entered: dt.datetime
) -> dt.date | None:
    days = limits.get((disease_type, stage))
    if days is None:
        return None
    return calendar.add_working_days(timezone.localdate(entered), days)


# Application states in which the promise is still running or was kept or broken.
DECIDED_STATES = (State.APPROVED, State.REJECTED, State.EXPIRING, State.EXPIRED, State.RENEWED, State.TERMINATED)


@dataclass(frozen=True)
class ApplicationDeadline:
    started_on: dt.date
    working_days: int
    paused_working_days: int
    due_on: dt.date
    paused: bool  # a 补正 request is open: the clock is stopped
    paused_since: dt.date | None
    working_days_left: int | None  # None once decided or while paused
    overdue: bool
    decided_on: dt.date | None
    on_time: bool | None  # None while undecided
    provisional: bool  # a year of the calendar was not known (docs/reviews.md, "Working days")

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_on": self.started_on,
            "working_days": self.working_days,
            "paused_working_days": self.paused_working_days,
            "due_on": self.due_on,
            "paused": self.paused,
            "working_days_left": self.working_days_left,
            "overdue": self.overdue,
            "on_time": self.on_time,
            "provisional": self.provisional,
        }


def application_deadline(
    application: Application,
    *,
    calendar: WorkCalendar | None = None,
    limits: dict[tuple[str, str], int] | None = None,
    today: dt.date | None = None,
) -> ApplicationDeadline | None:
    """The promised decision date of an application, or None before a complete filing or without a limit."""
    if application.diagnosed_at is None or application.kind == "two_diseases":
        return None
    calendar = calendar or WorkCalendar()
    limits = limits if limits is not None else time_limits_for(application.region)
    days = limits.get((application.disease.disease_type, ""))
    if days is None:
        return None
    today = today or timezone.localdate()
    started_on = timezone.localdate(application.diagnosed_at)
    answered = 0
    open_since: dt.date | None = None
    for state, paused, requested_at in SupplementRequest.objects.filter(application=application).values_list(
        "state", "paused_working_days", "requested_at"
    ):
        if state == SupplementState.OPEN:
            open_since = timezone.localdate(requested_at)
        else:
            answered += paused
    running = calendar.working_days_between(open_since, today) if open_since else 0
    due_on = calendar.add_working_days(started_on, days + answered + running)
    decided_on = timezone.localdate(application.decided_at) if application.decided_at else None
    decided = decided_on if application.state in DECIDED_STATES else None
    if decided is not None:
        left = None
        on_time: bool | None = decided <= due_on
        overdue = not on_time
    elif application.state == State.WITHDRAWN:
        left, on_time, overdue = None, None, False
    else:
        left = None if open_since else calendar.working_days_left(today, due_on)
        on_time = None
        overdue = open_since is None and today > due_on
    return ApplicationDeadline(
        started_on=started_on,
        working_days=days,
        paused_working_days=answered + running,
        due_on=due_on,
        paused=open_since is not None,
        paused_since=open_since,
        working_days_left=left,
        overdue=overdue,
        decided_on=decided,
        on_time=on_time,
        provisional=calendar.provisional,
    )
