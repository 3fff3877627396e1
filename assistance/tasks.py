"""Thin Celery tasks: take ids or a month, call one service; safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from assistance import services


@shared_task(
    queue="default",
    acks_late=True,
    soft_time_limit=settings.ROSTER_TASK_SECONDS,
    time_limit=settings.ROSTER_TASK_SECONDS + 60,
)
def run_settlement_import(import_id: int) -> None:
    """The dry run or the commit of a settlement file (read here, never in the upload request)."""
    services.settlement_import_run(import_id=import_id)


@shared_task(queue="batch", acks_late=True)
def monthly_cost_alerts(period: str = "") -> dict[str, int]:
    """Beat, on the 2nd of each month: compute last month's assistance and scan it for high costs."""
    result = services.monthly_run(
        actor=services.system_user(), period=services.parse_period(period) if period else None
    )
    return result.created
