"""The monthly task through a real Celery worker process on the real Redis broker and PostgreSQL.

Not eager mode: the test commits its rows (transactional test database), starts
``celery -A config worker`` against the same test database and broker, sends the beat task and
waits for the worker to have assembled the batch; then sends it again and checks nothing changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from enrollment.models import Application, AuditEntry, State
from reviews import tasks
from reviews.models import BatchState, ReviewBatch
from tests.reviews.helpers import PERIOD, diagnosed

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
WAIT_SECONDS = 90


def test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


class Worker:
    def __init__(self, log: Path, process: subprocess.Popen) -> None:
        self.log = log
        self.process = process

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}):\n{self.output()[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {text!r} in the worker log:\n{self.output()[-3000:]}")


@pytest.fixture
def celery_worker_process(transactional_db: Any, tmp_path: Path):
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    name = f"reviews-test-{uuid.uuid4().hex[:8]}@%h"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "config",
                "worker",
                "-Q",
                "batch,default",
                "--pool",
                "solo",
                "--purge",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                name,
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(log, process)
    try:
        worker.wait_for("ready.")
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(condition, worker: Worker, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out; worker log:\n{worker.output()[-3000:]}")


def test_monthly_task_runs_on_a_real_worker(world, celery_worker_process):
    applications = [diagnosed(world) for _ in range(3)]
    late = diagnosed(world, person=world.person(insured_region=world.other_region))

    first = tasks.assemble_due_batches.apply_async(kwargs={"day": "2026-03-01"})

    def assembled() -> bool:
        return (
            ReviewBatch.objects.filter(
                region=world.region, period=PERIOD, state=BatchState.REVIEWING, item_count=3
            ).exists()
            and ReviewBatch.objects.filter(region=world.other_region, state=BatchState.REVIEWING).exists()
        )

    wait_until(assembled, celery_worker_process)
    celery_worker_process.wait_for(f"[{first.id}] succeeded")
    assert "reviews.tasks.assemble_batch" in celery_worker_process.output()
    for application in applications:
        assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
    assert Application.objects.get(pk=late.pk).state == State.IN_REVIEW
    audit_rows = AuditEntry.objects.count()

    # Running it twice (and the region task once more) changes nothing.
    again = tasks.assemble_due_batches.apply_async(kwargs={"day": "2026-03-01"})
    direct = tasks.assemble_batch.apply_async(args=(world.region.pk, PERIOD))
    celery_worker_process.wait_for(f"[{again.id}] succeeded")
    celery_worker_process.wait_for(f"[{direct.id}] succeeded")
    assert ReviewBatch.objects.count() == 2
    assert ReviewBatch.objects.get(region=world.region).item_count == 3
    assert AuditEntry.objects.count() == audit_rows
    assert AuditEntry.objects.filter(transition="enqueue", is_system=True).count() == 4
