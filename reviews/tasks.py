"""Thin Celery tasks for reviews: take ids, call one service, safe to run twice (docs/design.md: Runtime rules).

All of them route to the ``batch`` queue (settings.CELERY_TASK_ROUTES). ``acks_late`` is on
because each is idempotent: a task redelivered after a worker died mid-way resumes the work.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from enrollment.services import get_system_user
from reviews import selectors, services


@shared_task(name="reviews.tasks.assemble_due_batches", acks_late=True)
def assemble_due_batches(day: str | None = None) -> list[list]:
    """Beat, daily at 02:00: fan out one assembly task per region whose batch day has come.

    ``day`` (YYYY-MM-DD) lets an operator or a test run it "as of" a date; default today (Asia/Shanghai).
    """
    as_of = dt.date.fromisoformat(day) if day else timezone.localdate()
    due = selectors.due_batches(as_of)
    for item in due:
        assemble_batch.delay(item.region_id, item.period)
    return [[item.region_id, item.period] for item in due]


@shared_task(name="reviews.tasks.resume_stalled_batches", acks_late=True)
def resume_stalled_batches() -> list[list]:
    """Beat, every 5 minutes: resume each batch a dead worker left half-assembled.

    A worker killed mid-assembly leaves its message unacknowledged, and Redis redelivers it only after the
    visibility timeout (an hour); this finds the batch once nothing has moved into it for
    REVIEW_BATCH_RESUME_AFTER_MINUTES and sends its assembly again (safe beside a late redelivery or a
    second run: chunks lock the batch row and take only applications still ``diagnosed``).
    """
    idle = dt.timedelta(minutes=settings.REVIEW_BATCH_RESUME_AFTER_MINUTES)
    stalled = selectors.stalled_batches(now=timezone.now(), idle=idle)
    for item in stalled:
        assemble_batch.delay(item.region_id, item.period)
    return [[item.region_id, item.period] for item in stalled]


@shared_task(name="reviews.tasks.assemble_batch", acks_late=True)
def assemble_batch(region_id: int, period: str) -> int:
    """Assemble (or resume) one region's batch for one period; returns the batch id."""
    batch = services.batch_assemble(region_id=region_id, period=period, actor=get_system_user())
    return batch.pk


@shared_task(name="reviews.tasks.escalate_overdue", acks_late=True)
def escalate_overdue() -> list[int]:
    """Beat, daily: escalate each pending item past its stage's due date, once per item and stage."""
    return services.escalate_overdue(actor=get_system_user()).escalated


@shared_task(name="reviews.tasks.sweep_supplements", acks_late=True)
def sweep_supplements() -> dict[str, list[int]]:
    """Beat, daily: remind unanswered 补正 requests once, withdraw those past their answer-by day."""
    result = services.supplements_sweep(actor=get_system_user())
    return {"reminded": result.reminded, "withdrawn": result.withdrawn}
