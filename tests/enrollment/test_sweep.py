"""The daily validity sweep: set-based, chunked, one audit row per change, idempotent, catches up (issue 4)."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from enrollment import services, tasks
from enrollment.models import Application, AuditEntry, State
from enrollment.services import sweep as sweep_module
from kernel.errors import NotPermitted
from tests.enrollment.validity_helpers import at, audit_of, enrol, sweep
from tests.factories import PolicyFactory

D = dt.date


def states(*applications):
    return [Application.objects.get(pk=a.pk).state for a in applications]


def test_approved_becomes_expiring_on_the_first_day_of_the_renewal_window(world):
    enrollment = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14; window (180 days) from 2028-09-15
    result = sweep(D(2028, 9, 14))
    assert result.expiring == 0 and states(enrollment) == [State.APPROVED]
    result = sweep(D(2028, 9, 15))
    assert result.expiring == 1 and states(enrollment) == [State.EXPIRING]
    (entry,) = audit_of(enrollment, "mark_expiring")
    assert (entry.from_state, entry.to_state, entry.is_system) == ("approved", "expiring", True)
    assert entry.actor == services.get_system_user()
    assert entry.details == {"sweep_date": "2028-09-15"}


def test_expiring_becomes_expired_after_valid_until_plus_grace(world):
    PolicyFactory(region=world.region, grace_days=15)
    enrollment = enrol(world, on=D(2026, 3, 15))
    sweep(D(2029, 1, 1))
    sweep(D(2029, 3, 29))  # valid_until + 15 days: still inside grace
    assert states(enrollment) == [State.EXPIRING]
    result = sweep(D(2029, 3, 30))
    assert result.expired == 1
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.ended_on) == (State.EXPIRED, D(2029, 3, 14))
    (entry,) = audit_of(enrollment, "expire")
    assert (entry.from_state, entry.to_state) == ("expiring", "expired")


def test_running_twice_changes_nothing_the_second_time(world):
    enrollments = [enrol(world, on=D(2026, 3, 15)) for _ in range(3)]
    first = sweep(D(2028, 10, 1))
    audit_count = AuditEntry.objects.count()
    second = sweep(D(2028, 10, 1))
    assert (first.expiring, second.expiring, second.expired) == (3, 0, 0)
    assert AuditEntry.objects.count() == audit_count
    assert states(*enrollments) == [State.EXPIRING] * 3


def test_catches_up_after_missed_days_with_one_audit_row_per_change(world):
    PolicyFactory(region=world.region, grace_days=0)  # expiry the day after valid_until
    long_ago = enrol(world, on=D(2026, 1, 10))  # until 2029-01-09
    in_window = enrol(world, on=D(2026, 6, 1))  # until 2029-05-31
    untouched = enrol(world, on=D(2027, 6, 1))
    # The sweep did not run for months; one run on 2029-02-01 sets everything right.
    result = sweep(D(2029, 2, 1))
    assert (result.expired, result.expiring) == (1, 1)
    assert states(long_ago, in_window, untouched) == [State.EXPIRED, State.EXPIRING, State.APPROVED]
    (entry,) = audit_of(long_ago, "expire")
    assert (entry.from_state, entry.to_state) == ("approved", "expired")  # straight from approved
    assert audit_of(long_ago, "mark_expiring") == []


def test_chunks_cover_every_row(world):
    enrollments = [enrol(world, on=D(2026, 3, 15)) for _ in range(5)]
    result = sweep(D(2028, 10, 1), chunk_size=2)
    assert result.expiring == 5
    assert AuditEntry.objects.filter(transition="mark_expiring").count() == 5
    assert states(*enrollments) == [State.EXPIRING] * 5


def test_each_region_uses_its_own_policy(world):
    PolicyFactory(region=world.other_region, renewal_window_days=30)
    here = enrol(world, on=D(2026, 3, 15))
    there_person = world.person(insured_region=world.other_region)
    there = enrol(world, on=D(2026, 3, 15), person=there_person)
    sweep(D(2029, 1, 1))  # 72 days before the end: inside 180, outside 30
    assert states(here, there) == [State.EXPIRING, State.APPROVED]


def test_terminated_and_long_term_enrollments_are_left_alone(world):
    terminated = enrol(world, on=D(2026, 3, 15))
    with at(D(2027, 1, 1)):
        services.application_terminate(application_id=terminated.pk, actor=world.reviewer, reason="cured")
    sweep(D(2030, 1, 1))
    assert states(terminated) == [State.TERMINATED]


def test_only_the_system_runs_the_sweep(world):
    with pytest.raises(NotPermitted):
        services.validity_sweep(day=D(2029, 1, 1), actor=world.admin)


def test_run_sweep_command_for_a_date(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    out = StringIO()
    with at(D(2029, 5, 1)):
        call_command("run_sweep", "--date", "2028-10-01", "--deliver", stdout=out)
    assert "1 now expiring" in out.getvalue()
    assert states(enrollment) == [State.EXPIRING]
    with pytest.raises(CommandError):
        call_command("run_sweep", "--date", "01/10/2028")


def test_run_sweep_refuses_a_future_date_without_force(world):
    enrollment = enrol(world, on=D(2026, 3, 15))  # renewal window from 2028-09-15
    audit_rows = AuditEntry.objects.count()
    with at(D(2028, 9, 14), hour=23):  # 23:00 in Asia/Shanghai: the 15th is still tomorrow
        with pytest.raises(CommandError, match="after today"):
            call_command("run_sweep", "--date", "2028-09-15", "--deliver", stdout=StringIO())
    assert states(enrollment) == [State.APPROVED]
    assert AuditEntry.objects.count() == audit_rows
    with at(D(2028, 9, 14)):
        call_command("run_sweep", "--date", "2028-09-15", "--force", "--deliver", stdout=StringIO())
    assert states(enrollment) == [State.EXPIRING]


def test_run_sweep_counts_today_in_asia_shanghai_not_utc(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    # 16:30 UTC on the 14th is 00:30 on the 15th in Asia/Shanghai: the 15th is today, no --force needed.
    with time_machine.travel(dt.datetime(2028, 9, 14, 16, 30, tzinfo=dt.UTC), tick=False):
        call_command("run_sweep", "--date", "2028-09-15", "--deliver", stdout=StringIO())
    assert states(enrollment) == [State.EXPIRING]


def test_beat_task_runs_the_sweep_for_today(world):
    PolicyFactory(region=world.region, grace_days=0)  # expiry the day after valid_until
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 3, 15), hour=1):
        summary = tasks.sweep_validity.apply().get()
    assert summary["day"] == "2029-03-15" and summary["expired"] == 1
    assert states(enrollment) == [State.EXPIRED]


def test_a_crash_mid_chunk_leaves_no_partial_chunk_and_a_rerun_finishes(world, monkeypatch):
    enrollments = [enrol(world, on=D(2026, 3, 15)) for _ in range(5)]
    real_insert = services.audit_rows_insert
    calls = {"n": 0}

    def crash_on_second_chunk(**kwargs):
        # After the chunk's UPDATE moved its rows, before their audit rows are written.
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real_insert(**kwargs)

    monkeypatch.setattr(sweep_module, "audit_rows_insert", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        sweep(D(2028, 10, 1), chunk_size=2)
    monkeypatch.undo()
    # The first chunk committed whole; the second rolled back whole (no state change without its audit row).
    assert states(*enrollments).count(State.EXPIRING) == 2
    assert AuditEntry.objects.filter(transition="mark_expiring").count() == 2

    result = sweep(D(2028, 10, 1), chunk_size=2)
    assert result.expiring == 3
    assert states(*enrollments) == [State.EXPIRING] * 5
    for enrollment in enrollments:
        assert len(audit_of(enrollment, "mark_expiring")) == 1


def test_expire_from_either_covering_state_records_each_source(world):
    PolicyFactory(region=world.region, grace_days=0)  # expiry the day after valid_until
    expiring = enrol(world, on=D(2026, 1, 10))  # until 2029-01-09
    approved = enrol(world, on=D(2026, 6, 10))  # until 2029-06-09
    sweep(D(2028, 12, 1))  # only the first is inside its renewal window
    assert states(expiring, approved) == [State.EXPIRING, State.APPROVED]
    result = sweep(D(2029, 7, 1), chunk_size=10)  # one chunk holding both source states
    assert result.expired == 2
    assert [(e.from_state, e.to_state) for e in audit_of(approved, "expire")] == [("approved", "expired")]
    assert [(e.from_state, e.to_state) for e in audit_of(expiring, "expire")] == [("expiring", "expired")]
    assert audit_of(approved, "mark_expiring") == []
    ended = dict(Application.objects.filter(pk__in=[approved.pk, expiring.pk]).values_list("pk", "ended_on"))
    assert ended == {expiring.pk: D(2029, 1, 9), approved.pk: D(2029, 6, 9)}


@pytest.mark.postgres
@pytest.mark.parametrize(("threshold", "analyzed"), [(3, True), (10_000, False)])
def test_the_planner_statistics_of_the_reminder_table_are_refreshed_after_many_new_rows(
    world, settings, threshold, analyzed
):
    """After writing many reminder rows the sweep runs ANALYZE, so that its next anti-join against the table
    is not planned for an empty one (a catch-up sweep at 300k applications took 7 s instead of 40 ms)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.REMINDER_ANALYZE_AFTER_ROWS = threshold
    for _ in range(2):
        enrol(world, on=D(2026, 3, 15), person=world.person(phone="13812345678"))
    with CaptureQueriesContext(connection) as queries:
        result = sweep(D(2029, 3, 14) - dt.timedelta(days=7))
    assert result.reminders_due + result.reminders_skipped >= 2
    ran = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
    # The table name comes from the model, quoted by the backend (enrollment.sql).
    assert bool(ran) is analyzed and all(sql == 'ANALYZE "enrollment_reminder"' for sql in ran)
