"""Fault injection with real processes: Celery workers killed with SIGKILL in the middle of the daily expiry sweep.

The test starts its own workers (``celery -A config worker -Q batch,reminders``) on the real Redis broker
against the committed test database, with a sweep chunk of 10 applications and SMS / e-mail backends that
append every message to a file (``tests/reliability/outbox.py``), so that sends are counted across
processes, killed ones included. It sends ``sweep_validity``, kills the worker once while applications are
being expired and once more while reminder rows are being written, and each time starts a fresh worker and
sends the task again (what the next beat run or an operator's ``run_sweep`` does). A last sweep run after
the 15-minute hand-over window (the clock moved with time-machine) hands over the reminders the killed run
had written but not yet queued.

Afterwards every application has been expired or marked expiring exactly once with exactly one audit row,
every due reminder row exists once, and every SMS and e-mail went out exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from enrollment.models import Application, AuditEntry, Reminder, ReminderChannel, ReminderStatus, State
from tests.reliability import outbox
from tests.reliability.data import bulk_enrollments, bulk_persons
from tests.reliability.processes import kill, start_worker, stop, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHUNK = 10  # many small transactions, so that each kill lands between and inside them
TO_EXPIRE = 400
# Enrollments per due reminder (90-, 30-, 7- and 0-day) and their valid_until − day. Each also gets rows for
# the earlier offsets, recorded "skipped" (superseded) because the sweep never ran on their day. The 30-day
# group is the large one: the second kill lands while its rows are written.
GROUPS = {90: (40, 60), 30: (150, 20), 7: (40, 5), 0: (40, 0)}
OFFSETS = (90, 30, 7, 0)
UNSENT = (ReminderStatus.PENDING, ReminderStatus.SENDING, ReminderStatus.FAILED)


def enrollments(world: Any, day: dt.date) -> dict[str, list[int]]:
    """Committed approved enrollments: some past their end (to expire), the rest inside the renewal window."""
    specs: list[tuple[str, int]] = [("expire", -70)] * TO_EXPIRE  # past the default 60 grace days
    for offset, (size, days_left) in GROUPS.items():
        specs += [(f"due_{offset}", days_left)] * size
    persons = bulk_persons(world, len(specs), name="到期测试", phone_prefix="138")
    periods = [
        (day + dt.timedelta(days=days_left) - dt.timedelta(days=3 * 365), day + dt.timedelta(days=days_left))
        for _group, days_left in specs
    ]
    applications = bulk_enrollments(world, persons, periods)
    groups: dict[str, list[int]] = {}
    for application, (group, _days_left) in zip(applications, specs, strict=True):
        groups.setdefault(group, []).append(application.pk)
    return groups


def test_workers_killed_mid_sweep_then_rerun_expire_and_remind_exactly_once(world, tmp_path):
    from enrollment import tasks

    day = timezone.localdate()
    groups = enrollments(world, day)
    world.clerk.email = "clinic@example.invalid"  # the filing clinic's staff get the e-mail reminders
    world.clerk.save(update_fields=["email"])
    to_expire = groups["expire"]
    reminded = [pk for offset in OFFSETS for pk in groups[f"due_{offset}"]]
    log = tmp_path / "worker.log"
    sent_dir = tmp_path / "outbox"
    sent_dir.mkdir()
    env = {"VALIDITY_SWEEP_CHUNK_SIZE": str(CHUNK), **outbox.worker_env(sent_dir)}

    def worker(*, purge: bool = False) -> Any:
        return start_worker(log, redis_url=settings.REDIS_URL, queues=("batch", "reminders"), env=env, purge=purge)

    def audit_rows(transition: str) -> int:
        return AuditEntry.objects.filter(transition=transition).count()

    # 1. Killed while applications are being expired.
    first = worker(purge=True)
    try:
        tasks.sweep_validity.delay(day.isoformat())
        wait_until(lambda: audit_rows("expire") >= 10 * CHUNK, 60, "the first chunks to expire", log)
    finally:
        kill(first)
    expired_at_kill = Application.objects.filter(pk__in=to_expire, state=State.EXPIRED).count()
    assert expired_at_kill < TO_EXPIRE, "the kill came too late to interrupt the expiry; raise TO_EXPIRE"
    # What the kill left behind is consistent chunk by chunk: each expired application has its audit row.
    assert audit_rows("expire") == expired_at_kill
    assert expired_at_kill % CHUNK == 0
    assert not Reminder.objects.exists()

    # 2. Killed again while reminder rows are being written (the 30-day reminders that are due).
    second = worker()
    try:
        tasks.sweep_validity.delay(day.isoformat())  # the next beat run (or an operator) re-creates the work

        def writing_30_day_rows() -> bool:
            return (
                Reminder.objects.filter(offset_days=30, status=ReminderStatus.PENDING, channel=ReminderChannel.SMS)
                .values("pk")[: 3 * CHUNK]
                .count()
                >= 3 * CHUNK
            )

        wait_until(writing_30_day_rows, 60, "the 30-day reminders to be written", log)
    finally:
        kill(second)
    rows_at_kill = Reminder.objects.count()
    assert not Reminder.objects.filter(offset_days=7).exists(), "the second kill came too late; grow the 30-day group"
    assert Application.objects.filter(pk__in=to_expire, state=State.EXPIRED).count() == TO_EXPIRE
    pending_30_at_kill = Reminder.objects.filter(offset_days=30, status=ReminderStatus.PENDING).count()

    # 3. A fresh worker and the task once more: the sweep completes.
    third = worker()
    try:
        tasks.sweep_validity.delay(day.isoformat())
        wait_until(
            lambda: Reminder.objects.filter(offset_days=0).count() == 3 * len(groups["due_0"]), 60, "the sweep", log
        )
        # The rows the killed run wrote were never handed over; the sweep hands pending rows over again
        # once they are 15 minutes old (validity_sweep's "leftovers"): a later run, here 20 minutes on.
        time.sleep(1)
        with time_machine.travel(timezone.now() + dt.timedelta(minutes=20), tick=True):
            tasks.sweep_validity.apply(kwargs={"day": day.isoformat()})
        channels = (ReminderChannel.SMS, ReminderChannel.EMAIL)
        wait_until(
            lambda: not Reminder.objects.filter(channel__in=channels, status__in=UNSENT).exists(),
            60,
            "every SMS and e-mail reminder to be sent",
            log,
        )
        time.sleep(1)  # anything still queued twice would go out now
    finally:
        stop(third)

    # Transitions: exactly once each, one audit row each.
    assert Application.objects.filter(pk__in=to_expire).exclude(state=State.EXPIRED).count() == 0
    assert Application.objects.filter(pk__in=reminded).exclude(state=State.EXPIRING).count() == 0
    per_application = Counter(
        AuditEntry.objects.filter(application_id__in=to_expire + reminded).values_list("application_id", "transition")
    )
    assert per_application == Counter(
        {(pk, "expire"): 1 for pk in to_expire} | {(pk, "mark_expiring"): 1 for pk in reminded}
    )

    # Reminder rows: the due offset once per channel, the superseded earlier ones recorded skipped.
    assert not Reminder.objects.filter(application_id__in=to_expire).exists()
    rows = Reminder.objects.values_list("application_id", "offset_days", "channel", "status")
    expected_rows = set()
    for due in OFFSETS:
        for pk in groups[f"due_{due}"]:
            for offset in OFFSETS[: OFFSETS.index(due) + 1]:
                for channel in ReminderChannel.values:
                    expected_rows.add(
                        (pk, offset, channel, ReminderStatus.SENT if offset == due else ReminderStatus.SKIPPED)
                    )
    assert len(rows) == len(expected_rows)
    assert set(rows) == expected_rows

    # Sends, counted at the backend across all worker processes: every one exactly once.
    sms_rows = set(
        Reminder.objects.filter(channel=ReminderChannel.SMS, status=ReminderStatus.SENT).values_list("pk", flat=True)
    )
    sms = outbox.sms_sends(sent_dir)
    assert set(sms) == sms_rows and len(sms_rows) == len(reminded)
    assert set(sms.values()) == {1}, {pk: n for pk, n in sms.items() if n > 1}
    emails = outbox.email_sends(sent_dir)
    assert set(emails) == set(reminded) and set(emails.values()) == {1}
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nsweep kill: expired at first kill {expired_at_kill}/{TO_EXPIRE}; reminder rows at second kill "
        f"{rows_at_kill} (30-day pending {pending_30_at_kill}); final rows {len(rows)}; "
        f"SMS sent {sum(sms.values())} for {len(sms_rows)} rows; e-mails {sum(emails.values())}"
    )
