"""Thin Celery tasks: take ids or dates, call one service, safe to run twice (docs/design.md: Runtime rules).

Routing (config/settings.py): ``sweep_*`` on the ``batch`` queue, ``send_*`` on ``reminders``.
Reminders are never scheduled as far-future ETA tasks: the daily sweep scans the database and
hands over what is due; only the short retry back-off below uses a countdown.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from enrollment import services
from enrollment.models import ReminderStatus

logger = logging.getLogger(__name__)

# Seconds before the 1st, 2nd, … retry of a failed send; all well under the broker's visibility timeout.
RETRY_BACKOFF = (60, 300, 900, 1800)


@shared_task(name="enrollment.tasks.sweep_validity")
def sweep_validity(day: str | None = None) -> dict[str, int | str]:
    """Beat, daily at 01:00 Asia/Shanghai: expiry transitions and the reminders now due."""
    result = services.validity_sweep(day=dt.date.fromisoformat(day) if day else None, actor=services.get_system_user())
    summary: dict[str, int | str] = {
        "day": result.day.isoformat(),
        "expiring": result.expiring,
        "expired": result.expired,
        "reminders_due": result.reminders_due,
        "reminders_skipped": result.reminders_skipped,
        "handed_over": len(result.to_send),
    }
    logger.info("validity sweep %s", summary)
    return summary


@shared_task(bind=True, name="enrollment.tasks.send_reminder", max_retries=len(RETRY_BACKOFF))
def send_reminder(self: Task[Any, Any], reminder_id: int) -> str:
    """Deliver one reminder; a failed send is retried with growing back-off, never sent twice."""
    reminder = services.reminder_deliver(reminder_id=reminder_id)
    if reminder.status == ReminderStatus.FAILED and reminder.attempts < settings.REMINDER_MAX_ATTEMPTS:
        countdown = RETRY_BACKOFF[min(self.request.retries, len(RETRY_BACKOFF) - 1)]
        raise self.retry(countdown=countdown)
    return reminder.status
