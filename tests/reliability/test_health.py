"""Health endpoints (/health/…): web, database, broker, worker — a clear 200 or a clear 503."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_cached_worker_answer():
    """/health/worker/ keeps the last ping's answer for a few seconds: no test may see another's."""
    from django.core.cache import cache

    from config.health import WORKER_ANSWER_KEY, WORKER_PING_LOCK_KEY

    cache.delete_many([WORKER_ANSWER_KEY, WORKER_PING_LOCK_KEY])
    yield
    cache.delete_many([WORKER_ANSWER_KEY, WORKER_PING_LOCK_KEY])


def test_web_is_up_without_login_or_database(db):
    response = Client().get("/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_health_is_read_only(db):
    assert Client().post("/health/").status_code == 405


def test_database_answers(db, settings):
    response = Client().get("/health/db/")
    assert response.status_code == 200
    assert response.json()["vendor"] == ("postgresql" if settings.IS_POSTGRES else "sqlite")


def probe_in_subprocess(path: str, **env: str) -> tuple[int, str]:
    """Ask a fresh process, configured by ``env``, for ``path`` (a real unreachable server, not a mock)."""
    code = f"from django.test import Client;r = Client().get({path!r});print(r.status_code); print(r.content.decode())"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    return int(lines[-2]), lines[-1]


def test_database_down_is_a_503():
    status, body = probe_in_subprocess("/health/db/", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert status == 503
    assert '"component": "database"' in body and "does not answer" in body


def test_embedded_broker_folder(db, settings, tmp_path):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    assert Client().get("/health/redis/").json() == {"status": "ok", "broker": "filesystem"}
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "missing")}
    response = Client().get("/health/redis/")
    assert response.status_code == 503 and "folder" in response.json()["detail"]


def test_unreachable_redis_is_a_quick_503(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    started = time.monotonic()
    response = Client().get("/health/redis/")
    assert response.status_code == 503 and response.json()["detail"] == "Redis does not answer."
    assert time.monotonic() - started < 5


@pytest.mark.redis
def test_real_redis_answers(db, settings):
    response = Client().get("/health/redis/")
    assert response.status_code == 200 and response.json()["broker"] == "redis"


def test_no_worker_is_a_clear_503(db):
    """No worker runs during the test: the ping times out and says so (within a few seconds)."""
    started = time.monotonic()
    response = Client().get("/health/worker/")
    assert response.status_code == 503
    body = response.json()
    assert body["component"] == "worker" and ("No Celery worker" in body["detail"] or "broker" in body["detail"])
    assert time.monotonic() - started < 10


@pytest.mark.redis
def test_a_running_worker_answers_the_ping(db, settings, tmp_path):
    """Start a real worker on the Redis broker (a process this test owns) and see it answer (asked with the
    health token, so that every poll pings instead of reading the last answer)."""
    settings.HEALTH_TOKEN = "health-token-for-tests-0123456789"
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "VAR_DIR": str(tmp_path)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "-Q",
            "default",
            "--hostname",
            f"health-{os.getpid()}@%h",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline:
            response = Client().get("/health/worker/", HTTP_AUTHORIZATION=f"Bearer {settings.HEALTH_TOKEN}")
            if response.status_code == 200:
                break
            time.sleep(1)
        assert response is not None and response.status_code == 200, response and response.content
        assert response.json()["workers"] >= 1
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
