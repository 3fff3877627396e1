"""Thin Celery tasks of the platform outbox: take ids, safe to run twice, no far-future ETA.

``deliver`` is queued when a message commits; ``deliver_due`` (beat, every minute) hands over what is
due from the database: pending rows whose back-off has passed and rows a killed worker left ``sending``.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task

from nhsa import services

logger = logging.getLogger(__name__)


@shared_task(name="nhsa.tasks.deliver")
def deliver(message_id: int) -> str:
    return services.platform_message_deliver(message_id=message_id).state


@shared_task(name="nhsa.tasks.deliver_due")
def deliver_due() -> int:
    ids = services.due_message_ids()
    for message_id in ids:
        deliver.delay(message_id)
    if ids:
        logger.info("platform outbox: %d messages handed over", len(ids))
    return len(ids)


@shared_task(name="nhsa.tasks.reconcile_all")
def reconcile_all(day: str | None = None) -> int:
    """Beat, nightly: one 5301 comparison per region with enrollments (docs/platform.md, "Reconciliation")."""
    from nhsa import reconcile_services

    runs = reconcile_services.reconcile_regions(day=dt.date.fromisoformat(day) if day else None)
    return len(runs)
