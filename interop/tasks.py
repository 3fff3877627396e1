"""Thin Celery tasks: take an id, call one service; safe to run twice (docs/design.md: Runtime rules)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from interop import services


@shared_task(
    queue="default",
    acks_late=True,
    # A phase may take ROSTER_TASK_SECONDS: then the service fails the import with a message (soft limit);
    # a worker still busy a minute later (stuck in C code) is killed (hard limit).
    soft_time_limit=settings.ROSTER_TASK_SECONDS,
    time_limit=settings.ROSTER_TASK_SECONDS + 60,
)
def run_roster_import(import_id: int) -> None:
    """The dry run or the commit of a roster import, whichever its state asks for (the file is read here,
    never in the upload request)."""
    services.roster_import_run(import_id=import_id)


@shared_task(queue="default")
def requeue_roster_imports() -> int:
    """Beat, every 10 minutes: queue imports whose task was never queued or was lost (broker down or restarted)."""
    return len(services.roster_imports_requeue())
