"""Monthly batch assembly (docs/design.md: Reviews; issue 3 item 1): set-based, chunked, idempotent, resumable."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from enrollment import services
from enrollment.models import Application, AuditEntry, State
from kernel.errors import NotPermitted
from reviews import selectors, tasks
from reviews import services as review_services
from reviews.models import BatchState, ReviewBatch, ReviewItem
from reviews.services import assembly
from tests.factories import PolicyFactory
from tests.reviews.helpers import FEBRUARY, MARCH_2, PERIOD, SHANGHAI, assemble, diagnosed, item_of

pytestmark = pytest.mark.django_db


def enqueue_rows(application):
    return AuditEntry.objects.filter(application=application, transition="enqueue")


def test_batch_freezes_diagnosed_applications_of_the_region_before_the_cutoff(world):
    chronic = diagnosed(world)
    special = diagnosed(world, disease=world.renal)
    late = diagnosed(world, at=dt.datetime(2026, 3, 1, 0, 30, tzinfo=SHANGHAI))  # after the cutoff
    elsewhere = diagnosed(world, person=world.person(insured_region=world.other_region))
    with time_machine.travel(FEBRUARY, tick=False):
        submitted = services.application_submit(
            person=world.person(), disease=world.copd, treating_institution=world.county, actor=world.clerk
        )

    batch = assemble(world, chunk_size=1)

    assert (batch.period, batch.state, batch.item_count) == (PERIOD, BatchState.REVIEWING, 2)
    assert batch.cutoff == dt.datetime(2026, 3, 1, tzinfo=SHANGHAI)
    assert batch.assembled_at is not None
    states = dict(Application.objects.values_list("pk", "state"))
    assert states[chronic.pk] == states[special.pk] == State.IN_REVIEW
    assert states[late.pk] == states[elsewhere.pk] == State.DIAGNOSED
    assert states[submitted.pk] == State.SUBMITTED
    for application, stages in ((chronic, ["initial_review"]), (special, ["initial_review", "recheck", "approval"])):
        entry = enqueue_rows(application).get()
        assert (entry.from_state, entry.to_state, entry.batch_id, entry.is_system) == (
            "diagnosed",
            "in_review",
            batch.pk,
            True,
        )
        item = item_of(application)
        assert (item.batch_id, item.stages, item.stage, item.round, item.outcome) == (
            batch.pk,
            stages,
            "initial_review",
            1,
            "pending",
        )


def test_set_based_rows_equal_what_the_per_row_path_writes(world):
    """The chunk's INSERT … SELECTs write, column for column, the audit row ``audit_entry`` defines and
    the review item the per-row path (``stages_for``, next round) would."""
    chronic = diagnosed(world)
    special = diagnosed(world, disease=world.renal)
    system = services.get_system_user()
    batch = assemble(world, chunk_size=10)
    skip = {"id", "application"}
    for application, stages in ((chronic, ["initial_review"]), (special, ["initial_review", "recheck", "approval"])):
        stored = enqueue_rows(application).get()
        with time_machine.travel(MARCH_2, tick=False):
            expected = services.audit_entry(
                application_id=application.pk,
                transition="enqueue",
                from_state=State.DIAGNOSED,
                to_state=State.IN_REVIEW,
                actor=system,
                fields=services.AuditFields(batch_id=batch.pk, stage=stages[0], details={"period": PERIOD}),
            )
        for field in AuditEntry._meta.concrete_fields:
            if field.name not in skip:
                assert getattr(stored, field.attname) == getattr(expected, field.attname), field.name
        assert stored.application_id == application.pk
        item = item_of(application)
        assert (item.region_id, item.queued_at, item.stages) == (
            world.region.pk,
            MARCH_2,
            selectors.stages_for(application.disease),
        )
        assert (item.claimed_by_id, item.lease_expires_at, item.decided_at) == (None, None, None)


def test_disease_stages_override_the_type_default(world, settings):
    world.copd.review_stages = ["initial_review", "approval"]
    world.copd.save()
    settings.REVIEW_STAGES = {"11": ["initial_review", "recheck"], "12": ["initial_review"]}
    own = diagnosed(world, disease=world.copd)
    default = diagnosed(world)
    special = diagnosed(world, disease=world.renal)
    assemble(world)
    assert item_of(own).stages == ["initial_review", "approval"]
    assert item_of(default).stages == ["initial_review", "recheck"]
    assert item_of(special).stages == ["initial_review"]


def test_running_twice_changes_nothing(world):
    applications = [diagnosed(world) for _ in range(3)]
    first = assemble(world, chunk_size=2)
    # Diagnosed before the cutoff but back in "diagnosed" only after assembly (as a resubmission is):
    # it waits for the next month even if the batch is re-run.
    newcomer = diagnosed(world, at=dt.datetime(2026, 2, 20, tzinfo=SHANGHAI))
    audit_rows = AuditEntry.objects.count()
    second = assemble(world, chunk_size=2, at=MARCH_2 + dt.timedelta(hours=3))
    assert second.pk == first.pk and ReviewBatch.objects.count() == 1
    assert second.item_count == 3 and ReviewItem.objects.count() == 3
    assert AuditEntry.objects.count() == audit_rows
    assert all(enqueue_rows(a).count() == 1 for a in applications)
    assert Application.objects.get(pk=newcomer.pk).state == State.DIAGNOSED


def test_an_interrupted_run_is_resumed_with_every_application_in_once(world, monkeypatch):
    applications = [diagnosed(world) for _ in range(5)]
    # The crash comes after the chunk's applications were moved and its review items inserted, just
    # before its audit rows: nothing of that chunk may survive.
    real_insert = assembly._insert_enqueue_audit_rows
    calls = {"n": 0}

    def crash_on_second_chunk(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real_insert(**kwargs)

    monkeypatch.setattr(assembly, "_insert_enqueue_audit_rows", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        assemble(world, chunk_size=2)
    monkeypatch.undo()

    batch = ReviewBatch.objects.get()
    # The first chunk committed; the failed one rolled back whole (no state change without its audit row).
    assert (batch.state, batch.assembled_at, batch.item_count) == (BatchState.OPEN, None, 2)
    assert Application.objects.filter(state=State.IN_REVIEW).count() == 2
    assert AuditEntry.objects.filter(transition="enqueue").count() == 2
    assert ReviewItem.objects.count() == 2
    assert selectors.due_batches(dt.date(2026, 3, 2)) == [selectors.DueBatch(world.region.pk, PERIOD)]

    resumed = assemble(world, chunk_size=2)
    assert resumed.pk == batch.pk and ReviewBatch.objects.count() == 1
    assert (resumed.state, resumed.item_count) == (BatchState.REVIEWING, 5)
    for application in applications:
        assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
        assert enqueue_rows(application).count() == 1
        assert ReviewItem.objects.filter(application=application).count() == 1


def test_only_the_system_assembles(world):
    with pytest.raises(NotPermitted):
        review_services.batch_assemble(region_id=world.region.pk, period=PERIOD, actor=world.reviewer)


def test_a_batch_with_nothing_in_it_closes_at_once(world):
    batch = assemble(world)
    assert (batch.state, batch.item_count) == (BatchState.CLOSED, 0)
    assert batch.closed_at is not None


def test_due_on_the_policys_batch_day_and_caught_up_after(world):
    PolicyFactory(region=world.province, batch_day=5)
    diagnosed(world)
    assert selectors.due_batches(dt.date(2026, 3, 4)) == []
    due = selectors.due_batches(dt.date(2026, 3, 5))
    assert due == [selectors.DueBatch(world.region.pk, PERIOD)]
    # A missed beat day is caught up the next day; once assembled, nothing is due.
    assert selectors.due_batches(dt.date(2026, 3, 6)) == due
    # The real beat path: assemble_due_batches sends one assemble_batch per due batch, run here as a worker would.
    with (
        time_machine.travel(dt.datetime(2026, 3, 6, 2, 0, tzinfo=SHANGHAI), tick=False),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(tasks.assemble_batch, "delay", lambda *args: tasks.assemble_batch.apply(args=args).get())
        sent = tasks.assemble_due_batches.apply(kwargs={"day": "2026-03-06"}).get()
    assert [selectors.DueBatch(*item) for item in sent] == due
    batch = ReviewBatch.objects.get()
    assert batch.cutoff == dt.datetime(2026, 3, 5, tzinfo=SHANGHAI)
    assert selectors.due_batches(dt.date(2026, 3, 7)) == []


def test_assemble_batch_task_calls_the_service(world):
    application = diagnosed(world)
    with time_machine.travel(MARCH_2, tick=False):
        batch_id = tasks.assemble_batch.apply(args=(world.region.pk, PERIOD)).get()
    assert ReviewBatch.objects.get(pk=batch_id).item_count == 1
    assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW


def test_management_command_runs_a_period_for_a_region(world):
    application = diagnosed(world)
    out = StringIO()
    with time_machine.travel(MARCH_2, tick=False):
        call_command("assemble_review_batch", "--period", PERIOD, "--region", world.region.code, stdout=out)
    assert f"{world.region.code} {PERIOD}: batch #" in out.getvalue()
    assert "1 items" in out.getvalue()
    assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
    with pytest.raises(Exception, match="No region"):
        call_command("assemble_review_batch", "--period", PERIOD, "--region", "999999", stdout=StringIO())
    with pytest.raises(Exception, match="YYYY-MM"):
        call_command("assemble_review_batch", "--period", "2026/03", "--region", world.region.code, stdout=out)
