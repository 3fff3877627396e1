"""A batch a dead worker left half-assembled is resumed by beat within 15 minutes (issue 18 item 11).

Before: the killed task waited in Redis' ``unacked`` set for the visibility timeout (an hour) and the daily
02:00 beat; nothing looked sooner. Now ``resume_stalled_batches`` (beat, every 5 minutes) sends the assembly
again once no chunk has committed for REVIEW_BATCH_RESUME_AFTER_MINUTES (10).
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from celery.schedules import crontab

from enrollment.models import Application, AuditEntry, State
from enrollment.services import get_system_user
from reviews import tasks
from reviews.models import BatchState, ReviewBatch, ReviewItem
from reviews.services import assembly
from tests.reviews.helpers import MARCH_2, PERIOD, assemble, diagnosed

pytestmark = pytest.mark.django_db


def crash_assembly(world, monkeypatch, *, on_chunk: int) -> None:
    """Assemble at MARCH_2 in chunks of 2 with the worker 'killed' in chunk ``on_chunk`` (after its
    applications moved and items were written, before its audit rows: the chunk rolls back whole)."""
    real_insert = assembly._insert_enqueue_audit_rows
    calls = {"n": 0}

    def killed(**kwargs):
        calls["n"] += 1
        if calls["n"] == on_chunk:
            raise RuntimeError("worker killed")
        return real_insert(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(assembly, "_insert_enqueue_audit_rows", killed)
        with pytest.raises(RuntimeError):
            assemble(world, chunk_size=2)


@pytest.fixture
def sent():
    """What the beat job sends, recorded instead of going to a broker."""
    messages: list[tuple] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks.assemble_batch, "delay", lambda *args: messages.append(args))
        yield messages


def run_beat_job(at: dt.datetime, sent: list[tuple]) -> list[tuple]:
    """The beat job at ``at``, then the assembly tasks it sent, as a worker would run them."""
    before = len(sent)
    with time_machine.travel(at, tick=False):
        tasks.resume_stalled_batches.apply().get()
        new = sent[before:]
        for args in new:
            tasks.assemble_batch.apply(args=args).get()
    return new


@pytest.mark.parametrize("on_chunk", [2, 1], ids=["after-one-chunk", "before-any-chunk"])
def test_a_half_assembled_batch_is_resumed_after_the_bound_and_not_before(world, monkeypatch, settings, sent, on_chunk):
    settings.REVIEW_BATCH_RESUME_AFTER_MINUTES = 10
    applications = [diagnosed(world) for _ in range(5)]
    crash_assembly(world, monkeypatch, on_chunk=on_chunk)
    batch = ReviewBatch.objects.get()
    assert (batch.state, batch.assembled_at, batch.item_count) == (BatchState.OPEN, None, 2 * (on_chunk - 1))

    # The last progress was at MARCH_2 (the committed chunk, or the batch's creation): not yet.
    assert run_beat_job(MARCH_2 + dt.timedelta(minutes=10, seconds=-1), sent) == []
    batch.refresh_from_db()
    assert batch.assembled_at is None and batch.item_count == 2 * (on_chunk - 1)

    # Past the bound: resumed, every application in exactly once.
    assert run_beat_job(MARCH_2 + dt.timedelta(minutes=10, seconds=1), sent) == [(world.region.pk, PERIOD)]
    batch.refresh_from_db()
    assert (batch.state, batch.item_count) == (BatchState.REVIEWING, 5)
    assert batch.assembled_at is not None
    for application in applications:
        assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
        assert AuditEntry.objects.filter(application=application, transition="enqueue").count() == 1
        assert ReviewItem.objects.filter(application=application).count() == 1

    # Assembled: nothing more to resume.
    assert run_beat_job(MARCH_2 + dt.timedelta(minutes=20), sent) == []


def test_a_run_that_keeps_committing_chunks_is_left_alone(world, monkeypatch, settings, sent):
    """Progress is the newest chunk, not the batch's age: a long assembly still moving is not resumed."""
    settings.REVIEW_BATCH_RESUME_AFTER_MINUTES = 10
    [diagnosed(world) for _ in range(6)]
    crash_assembly(world, monkeypatch, on_chunk=3)  # two chunks committed at MARCH_2 …
    batch = ReviewBatch.objects.get()
    # … then the run went on: one more chunk committed 9 minutes later.
    later = MARCH_2 + dt.timedelta(minutes=9)
    with time_machine.travel(later, tick=False):
        resumed_by_hand = assembly._assemble_chunk(batch_id=batch.pk, actor=get_system_user(), size=2)
    assert resumed_by_hand is not None
    assert run_beat_job(MARCH_2 + dt.timedelta(minutes=15), sent) == []
    assert run_beat_job(later + dt.timedelta(minutes=10, seconds=1), sent) == [(world.region.pk, PERIOD)]
    batch.refresh_from_db()
    assert (batch.state, batch.item_count) == (BatchState.REVIEWING, 6)


def test_two_workers_resuming_the_same_batch_put_every_application_in_once(world, monkeypatch, settings, sent):
    settings.REVIEW_BATCH_RESUME_AFTER_MINUTES = 10
    applications = [diagnosed(world) for _ in range(5)]
    crash_assembly(world, monkeypatch, on_chunk=2)
    with time_machine.travel(MARCH_2 + dt.timedelta(minutes=11), tick=False):
        tasks.resume_stalled_batches.apply().get()
        tasks.resume_stalled_batches.apply().get()  # a second beat, or the job redelivered
        assert sent == [(world.region.pk, PERIOD)] * 2
        for args in sent:
            tasks.assemble_batch.apply(args=args).get()
    assert ReviewBatch.objects.get().item_count == 5
    for application in applications:
        assert AuditEntry.objects.filter(application=application, transition="enqueue").count() == 1


def test_beat_runs_the_job_every_five_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["resume-stalled-batches"]
    assert entry["task"] == tasks.resume_stalled_batches.name
    assert entry["schedule"] == crontab(minute="*/5")
    # The documented bound: idle time + beat interval.
    assert settings.REVIEW_BATCH_RESUME_AFTER_MINUTES + 5 <= 15


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_stuck_inside_a_chunk_holds_the_batch_and_is_not_resumed_on_top(world, monkeypatch, settings):
    """A live run waiting inside a chunk (e.g. on an application's row lock) holds the batch row: beat skips
    the batch rather than sending resumes that would queue up behind it; once the holder is gone, it resumes."""
    from reviews import selectors
    from tests.locking import held_open

    settings.REVIEW_BATCH_RESUME_AFTER_MINUTES = 10
    [diagnosed(world) for _ in range(3)]
    crash_assembly(world, monkeypatch, on_chunk=2)
    batch = ReviewBatch.objects.get()
    later = MARCH_2 + dt.timedelta(minutes=30)
    with held_open(lambda: list(ReviewBatch.objects.select_for_update().filter(pk=batch.pk))):
        assert selectors.stalled_batches(now=later, idle=dt.timedelta(minutes=10)) == []
    assert selectors.stalled_batches(now=later, idle=dt.timedelta(minutes=10)) == [
        selectors.DueBatch(world.region.pk, PERIOD)
    ]
