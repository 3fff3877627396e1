"""Fault injection with real processes: the Redis broker killed and restarted while tasks are queued.

Each test starts its own ``redis-server`` on a free port (never the shared one) and kills it with SIGKILL
(a crash, an OOM kill, a replaced container), then restarts it on the same port and directory:

- with the production set-up (``appendonly yes``, ``appendfsync everysec``) the queued reminder sends are
  still there after the restart and a worker started afterwards sends each exactly once;
- with a Redis that keeps nothing (``save ""``, ``appendonly no``) the queue is empty after the restart; the
  reminders stay ``pending`` in the database, and the next sweep hands them over again (rows pending for
  more than 15 minutes): they go out late, each exactly once, never lost and never twice;
- while Redis is down the web stays up: ``/health/redis/`` answers 503 and 200 again after the restart,
  filing works, and a roster upload (which queues its dry run) is stored and answered; the next scan queues it.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import Application, AuditEntry, Reminder, ReminderChannel, ReminderStatus, State
from tests.factories import synthetic_id_number
from tests.reliability import outbox
from tests.reliability.data import bulk_enrollments, bulk_persons
from tests.reliability.processes import broker, redis_server, start_worker, stop, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ENROLLMENTS = 40  # each gets a due 30-day reminder: one SMS and one e-mail send queued
CHANNELS = (ReminderChannel.SMS, ReminderChannel.EMAIL)
UNSENT = (ReminderStatus.PENDING, ReminderStatus.SENDING, ReminderStatus.FAILED)


def due_enrollments(world: Any, day: dt.date) -> list[int]:
    """Committed enrollments 20 days before their end: the 30-day reminder is due (the 90-day one skipped)."""
    persons = bulk_persons(world, ENROLLMENTS, name="重启测试", phone_prefix="139")
    world.clerk.email = "clinic@example.invalid"
    world.clerk.save(update_fields=["email"])
    period = (day - dt.timedelta(days=1000), day + dt.timedelta(days=20))
    return [a.pk for a in bulk_enrollments(world, persons, [period] * ENROLLMENTS, state=State.EXPIRING)]


def sweep(day: dt.date, *, minutes_later: int = 0) -> services.SweepResult:
    """The daily sweep in this process (sends queued through this process's broker), optionally later on."""
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=minutes_later), tick=True):
        return services.validity_sweep(day=day, actor=services.get_system_user(), enqueue=True)


def unsent() -> int:
    return Reminder.objects.filter(channel__in=CHANNELS, status__in=UNSENT).count()


def assert_each_sent_once(ids: list[int], sent_dir: Path) -> None:
    sms_rows = set(
        Reminder.objects.filter(channel=ReminderChannel.SMS, offset_days=30, status=ReminderStatus.SENT).values_list(
            "pk", flat=True
        )
    )
    assert len(sms_rows) == ENROLLMENTS and unsent() == 0
    sms = outbox.sms_sends(sent_dir)
    assert set(sms) == sms_rows and set(sms.values()) == {1}
    emails = outbox.email_sends(sent_dir)
    assert set(emails) == set(ids) and set(emails.values()) == {1}


def test_queued_sends_survive_a_redis_crash_with_appendonly(world, tmp_path):
    day = timezone.localdate()
    ids = due_enrollments(world, day)
    sent_dir = tmp_path / "outbox"
    sent_dir.mkdir()
    log = tmp_path / "worker.log"
    with redis_server(tmp_path / "redis", appendonly=True) as redis, broker(redis.url):
        result = sweep(day)
        assert len(result.to_send) == 2 * ENROLLMENTS
        assert redis.queued("reminders") == 2 * ENROLLMENTS  # no worker runs yet
        time.sleep(1.5)  # appendfsync everysec: what was written to the AOF is on disk now

        redis.kill()
        redis.start()
        queued_after_restart = redis.queued("reminders")
        assert queued_after_restart == 2 * ENROLLMENTS
        assert unsent() == 2 * ENROLLMENTS

        worker = start_worker(log, redis_url=redis.url, queues=("reminders",), env=outbox.worker_env(sent_dir))
        try:
            wait_until(lambda: unsent() == 0, 45, "the queued reminders to be sent", log)
            time.sleep(1)
        finally:
            stop(worker)
        assert redis.queued("reminders") == 0
    assert_each_sent_once(ids, sent_dir)
    print(f"\nAOF restart: {queued_after_restart} queued before and after the kill; sent once each")  # noqa: T201


def test_sends_lost_with_a_non_persistent_redis_are_handed_over_by_the_next_sweep(world, tmp_path):
    day = timezone.localdate()
    ids = due_enrollments(world, day)
    sent_dir = tmp_path / "outbox"
    sent_dir.mkdir()
    log = tmp_path / "worker.log"
    with redis_server(tmp_path / "redis", appendonly=False) as redis, broker(redis.url):
        assert len(sweep(day).to_send) == 2 * ENROLLMENTS
        assert redis.queued("reminders") == 2 * ENROLLMENTS

        redis.kill()
        redis.start()
        assert redis.queued("reminders") == 0  # the queue is gone: only the database knows what is due

        worker = start_worker(log, redis_url=redis.url, queues=("reminders",), env=outbox.worker_env(sent_dir))
        try:
            # A sweep the same day does not resend rows handed over minutes ago (their tasks may still be queued).
            assert sweep(day).to_send == []
            time.sleep(2)
            assert unsent() == 2 * ENROLLMENTS and not outbox.sms_sends(sent_dir)
            # The next run (tomorrow's beat, or any run 15 minutes on) hands the pending rows over again.
            handed_over = sweep(day, minutes_later=20).to_send
            assert len(handed_over) == 2 * ENROLLMENTS
            wait_until(lambda: unsent() == 0, 45, "the re-queued reminders to be sent", log)
            assert sweep(day, minutes_later=40).to_send == []  # sent rows are never handed over again
            time.sleep(1)
        finally:
            stop(worker)
    assert_each_sent_once(ids, sent_dir)
    print(f"\nnon-persistent restart: queue emptied; {len(handed_over)} handed over again; sent once each")  # noqa: T201


def test_web_stays_up_while_redis_is_down(world, tmp_path, settings):
    """Health says 503 then 200; filing needs no broker; a roster upload is stored, answered and queued later."""
    from interop.models import ImportState, RosterImport

    person = world.person()
    with redis_server(tmp_path / "redis", appendonly=True) as redis, broker(redis.url):
        settings.REDIS_URL = redis.url
        assert Client().get("/health/redis/").status_code == 200

        redis.kill()
        started = time.monotonic()
        down = Client().get("/health/redis/")
        assert down.status_code == 503 and down.json()["detail"] == "Redis does not answer."
        assert time.monotonic() - started < 5

        clerk = APIClient()
        clerk.force_authenticate(world.clerk)
        filed = clerk.post(
            "/api/v1/applications/",
            {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.county.code},
            format="json",
        )
        assert filed.status_code == 201, filed.content
        application = Application.objects.get(person=person)
        assert AuditEntry.objects.filter(application=application, transition="submit").count() == 1

        officer = APIClient()
        officer.force_authenticate(world.officer)
        roster = f"身份证号,姓名,区划,电话,帮扶类别,申报病种\r\n{synthetic_id_number()},甲,530100,,,M03900\r\n"
        started = time.monotonic()
        uploaded = officer.post(
            "/api/v1/roster-imports/",
            {"file": SimpleUploadedFile("roster.csv", roster.encode("utf-8-sig"))},
            format="multipart",
        )
        upload_seconds = time.monotonic() - started
        # Stored and answered: the clerk sees the import waiting; nothing half-written, no 500.
        assert uploaded.status_code == 202, uploaded.content
        assert RosterImport.objects.get().state == ImportState.PENDING
        assert upload_seconds < 10

        redis.start()
        assert Client().get("/health/redis/").status_code == 200
        log = tmp_path / "worker.log"
        worker = start_worker(log, redis_url=redis.url, queues=("default",))
        try:
            from interop import tasks

            # The scan beat runs: an import whose queueing was lost is queued again and runs.
            with time_machine.travel(timezone.now() + dt.timedelta(minutes=20), tick=True):
                requeued = tasks.requeue_roster_imports.apply().get()
            assert requeued == 1
            wait_until(lambda: RosterImport.objects.get().state == ImportState.VALIDATED, 45, "the roster dry run", log)
        finally:
            stop(worker)
    print(f"\nweb with Redis down: filing 201; roster upload 202 in {upload_seconds:.1f} s")  # noqa: T201
