"""Thin Celery tasks: take an id, call one service; safe to run twice (DESIGN §7)."""

from __future__ import annotations

from celery import shared_task

from interop import services


@shared_task(queue="default", acks_late=True)
def run_roster_import(import_id: int) -> None:
    """The dry run or the commit of a roster import, whichever its state asks for."""
    services.roster_import_run(import_id=import_id)


@shared_task(queue="default")
def requeue_roster_imports() -> int:
    """Beat, every 10 minutes: queue imports whose task was never queued or was lost (broker down or restarted)."""
    return len(services.roster_imports_requeue())
