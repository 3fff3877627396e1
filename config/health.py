"""Liveness endpoints for load balancers and monitoring: web, database, broker, worker.

Each answers 200 ``{"status": "ok", …}`` or 503 ``{"status": "unavailable", "detail": …}`` within a couple
of seconds; none needs a login and none says anything about the data. Failures are logged by
exception class only (a driver's message can carry host names or credentials).

``/health/worker/`` does not ping the workers for every caller (issue 18 item 7: sixteen anonymous
callers, each holding a web thread for the one-second broadcast ping, raised a clerk's p50 from 78 ms to
995 ms). The answer of the last ping is kept in the cache for HEALTH_WORKER_CACHE_SECONDS (15) and says
its age; only one request of a process pings at a time (a cache lock), the others get the last answer.
Monitoring that sends ``Authorization: Bearer <HEALTH_TOKEN>`` gets a fresh ping every time.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Short enough for a load balancer's probe, long enough for a busy worker to answer.
BROKER_TIMEOUT_SECONDS = 1.0
WORKER_PING_TIMEOUT_SECONDS = 1.0
# The worker answer in the cache, and the lock held while one request pings (released at the latest after
# the longest a ping can take, should the pinging process die).
WORKER_ANSWER_KEY = "health:worker:answer"
WORKER_PING_LOCK_KEY = "health:worker:pinging"
WORKER_PING_LOCK_SECONDS = int(BROKER_TIMEOUT_SECONDS + WORKER_PING_TIMEOUT_SECONDS) + 3


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


def _ping_workers() -> dict[str, Any]:
    """One broadcast ping: ``{"ok": True, "workers": n}`` or ``{"ok": False, "detail": …}``."""
    from config.celery import app

    try:
        with app.connection_for_write() as connection:
            # kombu's stubs say int; kombu adds the timeout to time() and takes a float as well.
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)  # type: ignore[arg-type]
            replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS, connection=connection)
    except Exception as exc:  # noqa: BLE001
        logger.warning("health check worker failed: %s", type(exc).__name__)
        return {"ok": False, "detail": "The broker does not answer, so no worker can be reached."}
    if not replies:
        detail = f"No Celery worker answered within {WORKER_PING_TIMEOUT_SECONDS:g} s; start one or check its logs."
        return {"ok": False, "detail": detail}
    return {"ok": True, "workers": len(replies)}


def _worker_answer(*, fresh: bool) -> dict[str, Any]:
    """The last ping's answer with its ``checked_at`` (epoch seconds); pings when it is older than
    HEALTH_WORKER_CACHE_SECONDS, or always when ``fresh``. One ping at a time: whoever finds another
    request pinging serves the last answer (or, with none yet or ``fresh``, waits for that ping)."""
    cached = cache.get(WORKER_ANSWER_KEY)
    max_age = settings.HEALTH_WORKER_CACHE_SECONDS
    if cached is not None and not fresh and time.time() - cached["checked_at"] < max_age:
        return cached
    if cache.add(WORKER_PING_LOCK_KEY, True, timeout=WORKER_PING_LOCK_SECONDS):
        try:
            answer = {**_ping_workers(), "checked_at": time.time()}
            # Kept well beyond its freshness, so that a stale answer can be served while the next ping runs.
            cache.set(WORKER_ANSWER_KEY, answer, timeout=max(60, 20 * max_age))
            return answer
        finally:
            cache.delete(WORKER_PING_LOCK_KEY)
    if cached is not None and not fresh:
        return cached
    deadline = time.monotonic() + WORKER_PING_LOCK_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        answer = cache.get(WORKER_ANSWER_KEY)
        if answer is not None and (cached is None or answer["checked_at"] > cached["checked_at"]):
            return answer
    return cached or {"ok": False, "detail": "The worker check is still running; ask again.", "checked_at": time.time()}


def _health_token_given(request: HttpRequest) -> bool | None:
    """True for the right ``Authorization: Bearer <HEALTH_TOKEN>``, False for a wrong one, None for none."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _space, given = header.partition(" ")
    expected = settings.HEALTH_TOKEN
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


@_probe
def worker(request: HttpRequest) -> JsonResponse:
    """At least one Celery worker answered a broadcast ping within the timeout, at most
    HEALTH_WORKER_CACHE_SECONDS ago (``age_seconds``); with the health token, just now."""
    authorised = _health_token_given(request)
    if authorised is False:
        return JsonResponse(
            {"status": "unauthorized", "component": "worker", "detail": "Wrong health token."}, status=401
        )
    answer = _worker_answer(fresh=bool(authorised))
    age = max(0.0, time.time() - answer["checked_at"])
    when = {
        "checked_at": dt.datetime.fromtimestamp(answer["checked_at"], tz=dt.UTC).isoformat(timespec="seconds"),
        "age_seconds": round(age, 1),
    }
    if answer["ok"]:
        response = _ok(workers=answer["workers"], **when)
    else:
        response = JsonResponse(
            {"status": "unavailable", "component": "worker", "detail": answer["detail"], **when}, status=503
        )
    response["Age"] = str(int(age))
    return response


urlpatterns = [
    path("", web, name="health"),
    path("db/", database, name="health-db"),
    path("redis/", broker, name="health-redis"),
    path("worker/", worker, name="health-worker"),
]
