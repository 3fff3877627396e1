"""Fault injection with real processes: a Celery worker killed with SIGKILL in the middle of a monthly batch.

The test owns every process it disturbs: it starts a worker (``celery -A config worker``) on the real
Redis broker against the committed test database, sends the batch task, kills the worker with SIGKILL
while chunks are being moved, starts a fresh worker and sends the task again (what the next daily beat
run does). Afterwards every eligible application is in the batch exactly once and every audit row exists
exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from enrollment.models import Application, AuditEntry, Person, State
from reviews.models import ReviewBatch, ReviewItem
from tests.factories import synthetic_id_number
from tests.reliability.processes import database_url, kill, start_worker, stop, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APPLICATIONS = 1500
CHUNK = 10  # many small chunks, so that the kill lands between and inside them


def eligible_applications(world: Any) -> list[int]:
    """Diagnosed applications, committed, diagnosed long before this month's batch cutoff (fixture rows)."""
    region, county = world.region, world.county
    diagnosed_at = timezone.now() - dt.timedelta(days=60)
    persons = Person.objects.bulk_create(
        [
            Person(
                id_number=(number := synthetic_id_number()),
                name=f"故障测试{n}",
                sex="1" if int(number[16]) % 2 else "2",
                birth_date=dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
                insured_region=region,
            )
            for n in range(APPLICATIONS)
        ]
    )
    applications = Application.objects.bulk_create(
        [
            Application(
                person=person,
                disease=world.hypertension,
                filing_institution=county,
                treating_institution=county,
                region=region,
                filed_by=world.clerk,
                state=State.DIAGNOSED,
                icd10_code="I10",
                diagnosis_date=diagnosed_at.date(),
                physician=world.physician,
                diagnosed_by=world.physician_user,
                diagnosed_at=diagnosed_at,
            )
            for person in persons
        ]
    )
    return [a.pk for a in applications]


def test_worker_killed_mid_batch_then_rerun_gives_each_application_exactly_once(world, tmp_path):
    from reviews import tasks

    ids = eligible_applications(world)
    period = f"{timezone.localdate():%Y-%m}"
    log = tmp_path / "worker.log"

    def worker(*, purge: bool = False) -> Any:
        env = {"REVIEW_BATCH_CHUNK_SIZE": str(CHUNK)}
        return start_worker(log, redis_url=settings.REDIS_URL, queues=("batch",), env=env, purge=purge)

    first = worker(purge=True)
    try:
        tasks.assemble_batch.delay(world.region.pk, period)

        def moving() -> bool:
            batch = ReviewBatch.objects.filter(region=world.region, period=period).first()
            return batch is not None and batch.item_count >= 20 * CHUNK

        wait_until(moving, 90, "the first chunks to be moved", log)
    finally:
        kill(first)

    batch = ReviewBatch.objects.get(region=world.region, period=period)
    moved_before_kill = batch.item_count
    assert batch.assembled_at is None, "the kill came too late to interrupt the batch; raise APPLICATIONS"
    assert 0 < moved_before_kill < APPLICATIONS
    # What the kill left behind is consistent: items, states and audit rows agree chunk by chunk.
    assert ReviewItem.objects.filter(batch=batch).count() == moved_before_kill
    assert Application.objects.filter(pk__in=ids, state=State.IN_REVIEW).count() == moved_before_kill
    assert AuditEntry.objects.filter(batch_id=batch.pk, transition="enqueue").count() == moved_before_kill

    second = worker()
    try:
        tasks.assemble_batch.delay(world.region.pk, period)  # the next daily beat run re-creates the work
        wait_until(
            lambda: ReviewBatch.objects.filter(pk=batch.pk, assembled_at__isnull=False).exists(),
            120,
            "the batch to be assembled",
            log,
        )
        tasks.assemble_batch.delay(world.region.pk, period)  # and once more: nothing may change
        time.sleep(2)
    finally:
        stop(second)

    batch.refresh_from_db()
    assert batch.item_count == APPLICATIONS
    assert set(ReviewItem.objects.filter(batch=batch).values_list("application_id", flat=True)) == set(ids)
    per_application = ReviewItem.objects.filter(batch=batch).values("application_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_application} == {1}
    assert Application.objects.filter(pk__in=ids).exclude(state=State.IN_REVIEW).count() == 0
    enqueues = (
        AuditEntry.objects.filter(application_id__in=ids, transition="enqueue")
        .values("application_id")
        .annotate(n=Count("id"))
    )
    assert len(enqueues) == APPLICATIONS and {row["n"] for row in enqueues} == {1}


def test_database_connection_killed_mid_request_gives_a_clean_error_and_writes_nothing(world):
    """A filing blocks on the person's row lock; its PostgreSQL backend is terminated while it waits.

    The client gets a JSON 500 (no traceback, no half answer), nothing of the filing is stored, and the
    next request on a fresh connection files normally.
    """
    import threading

    import psycopg
    from django.test import Client

    from enrollment.models import Document

    person = world.person()
    body = {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.county.code}
    dsn = database_url().replace("postgres://", "postgresql://", 1)
    results: dict[str, Any] = {}

    def file_application(key: str) -> None:
        client = Client(raise_request_exception=False)
        client.force_login(world.clerk)
        try:
            results[key] = client.post("/api/v1/applications/", body, content_type="application/json")
        finally:
            connection.close()

    with psycopg.connect(dsn) as locker:
        with locker.cursor() as cursor:
            cursor.execute("SELECT id FROM enrollment_person WHERE id = %s FOR UPDATE", [person.pk])
            worker = threading.Thread(target=file_application, args=("killed",))
            worker.start()
            deadline = time.monotonic() + 30
            pids: list[int] = []
            with psycopg.connect(dsn, autocommit=True) as monitor:
                # A separate autocommit connection: pg_stat_activity is a per-transaction snapshot.
                while not pids and time.monotonic() < deadline:
                    rows = monitor.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> %s",
                        [locker.info.backend_pid],
                    ).fetchall()
                    pids = [row[0] for row in rows]
                    time.sleep(0.05)
                if not pids:
                    worker.join(timeout=5)
                assert pids, f"the filing never waited on the person's row lock: {results}"
                monitor.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
            worker.join(timeout=30)
        locker.rollback()

    response = results["killed"]
    assert response.status_code == 500
    assert response.json() == {
        "code": "server_error",
        "message": response.json()["message"],
        "details": {},
    }
    assert person.id_number not in response.content.decode()
    assert not Application.objects.filter(person=person).exists()
    assert not AuditEntry.objects.filter(application__person=person).exists()
    assert not Document.objects.exists()

    retry = threading.Thread(target=file_application, args=("retry",))
    retry.start()
    retry.join(timeout=30)
    assert results["retry"].status_code == 201, results["retry"].content
    assert Application.objects.filter(person=person).count() == 1
