"""Thin Celery tasks for oversight: call one service, safe to run twice (a completed draw is never redone, a
reminded or ended correction request is not touched again)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from enrollment.services import get_system_user
from oversight import services


def previous_period(day: dt.date) -> str:
    """The month before ``day``'s, ``YYYY-MM`` (1 January → December of the year before)."""
    first = day.replace(day=1) - dt.timedelta(days=1)
    return f"{first:%Y-%m}"


@shared_task(name="oversight.tasks.draw_rechecks", acks_late=True)
def draw_rechecks(day: str | None = None) -> list[list]:
    """Beat, daily at 02:45: draw last month's low-review approvals of every region (once per region and month).

    ``day`` (YYYY-MM-DD) runs it as of another date; default today (Asia/Shanghai).
    """
    as_of = dt.date.fromisoformat(day) if day else timezone.localdate()
    draws = services.recheck_draws_for_period(period=previous_period(as_of), actor=get_system_user())
    return [[draw.region_id, draw.period, draw.sampled] for draw in draws]


@shared_task(name="oversight.tasks.sweep_corrections", acks_late=True)
def sweep_corrections(day: str | None = None) -> dict[str, list[int]]:
    """Beat, daily at 02:50: remind open re-check correction requests once, and terminate the enrollments of those
    not answered by their day (each exactly once: a second run finds them done).

    ``day`` (YYYY-MM-DD) runs it as of another date; default today (Asia/Shanghai).
    """
    as_of = dt.date.fromisoformat(day) if day else None
    result = services.corrections_sweep(actor=get_system_user(), today=as_of)
    return {"reminded": result.reminded, "terminated": result.terminated}
