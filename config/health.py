"""Liveness endpoints for load balancers and monitoring: web, database, broker, worker.

Each answers 200 ``{"status": "ok", …}`` or 503 ``{"status": "unavailable", "detail": …}`` within a couple
of seconds; none needs a login and none says anything about the data. Failures are logged by
exception class only (a driver's message can carry host names or credentials).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Short enough for a load balancer's probe, long enough for a busy worker to answer.
BROKER_TIMEOUT_SECONDS = 1.0
WORKER_PING_TIMEOUT_SECONDS = 1.0


def _ok(**extra: Any) -> JsonResponse:
    return JsonResponse({"status": "ok", **extra})


def _unavailable(component: str, detail: str, exc: BaseException | None = None) -> JsonResponse:
    if exc is not None:
        logger.warning("health check %s failed: %s", component, type(exc).__name__)
    return JsonResponse({"status": "unavailable", "component": component, "detail": detail}, status=503)


def _probe(view: Any) -> Any:
    return require_safe(never_cache(view))


@_probe
def web(request: HttpRequest) -> JsonResponse:
    """The web process answers: nothing else is touched."""
    return _ok()


@_probe
def database(request: HttpRequest) -> JsonResponse:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        return _unavailable("database", "The database does not answer.", exc)
    return _ok(vendor=connections["default"].vendor)


@_probe
def broker(request: HttpRequest) -> JsonResponse:
    """Redis when REDIS_URL is set; otherwise the embedded filesystem broker's folders."""
    if settings.REDIS_URL:
        import redis

        try:
            client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                socket_timeout=BROKER_TIMEOUT_SECONDS,
            )
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001
            return _unavailable("broker", "Redis does not answer.", exc)
        return _ok(broker="redis")
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    folder = Path(options.get("data_folder_in", ""))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return _unavailable("broker", "The embedded broker's queue folder is missing or not writable.")
    return _ok(broker="filesystem")


@_probe
def worker(request: HttpRequest) -> JsonResponse:
    """At least one Celery worker answers a broadcast ping within the timeout."""
    from config.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
            replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS, connection=connection)
    except Exception as exc:  # noqa: BLE001
        return _unavailable("worker", "The broker does not answer, so no worker can be reached.", exc)
    if not replies:
        return _unavailable(
            "worker",
            f"No Celery worker answered within {WORKER_PING_TIMEOUT_SECONDS:g} s; start one or check its logs.",
        )
    return _ok(workers=len(replies))


urlpatterns = [
    path("", web, name="health"),
    path("db/", database, name="health-db"),
    path("redis/", broker, name="health-redis"),
    path("worker/", worker, name="health-worker"),
]
