"""Handing work to a Celery task by its name, so that a service never imports its app's tasks module.

Tasks are thin: they import the services they call. If a service imported the tasks module back to
queue one (``tasks.send_reminder.delay``), the two modules would import each other. A service names
the task instead (``enqueue("enrollment.tasks.send_reminder", reminder_id)``) and every app imports its
own tasks module in ``AppConfig.ready()``, so the name is registered in every process (web, worker,
beat, management commands) before a request or job can queue it.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def enqueue(task_name: str, *args: Any) -> None:
    """Queue ``task_name`` with ``args`` through the registered task object, so that routing and
    ``CELERY_TASK_ALWAYS_EAGER`` apply exactly as for ``task.delay(*args)``. Broker errors reach the
    caller, which decides whether losing the message matters (a beat scan re-queues most work)."""
    try:
        task = current_app.tasks[task_name]
    except KeyError:
        raise LookupError(
            f"Celery task {task_name!r} is not registered: does its app import its tasks module in AppConfig.ready()?"
        ) from None
    task.delay(*args)
