"""Real concurrency on PostgreSQL: threads with their own connections, released together by a barrier.

No reviewer is ever given an item another holds; concurrent runs of one batch put every application
in it once; two last decisions committing together still close the batch.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from enrollment.models import Application, AuditEntry, State
from enrollment.services import get_system_user
from reviews import services as review_services
from reviews.models import BatchState, ReviewBatch, ReviewItem, StageDecision
from tests.locking import held_open, lock_timeout
from tests.reviews.helpers import PERIOD, SHANGHAI, assemble, diagnosed, reviewer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CUTOFF = dt.datetime(2026, 3, 1, tzinfo=SHANGHAI)


def run_together(jobs):
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index, job):
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except Exception as exc:  # noqa: BLE001 - reported in the results, and fails the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_concurrent_claims_never_give_an_item_twice(world):
    assert connection.vendor == "postgresql"
    for _ in range(40):
        diagnosed(world)
    assemble(world)
    reviewers = [reviewer(world, ["initial_review"]) for _ in range(6)]

    def claim_until_empty(user):
        def job():
            got = []
            while True:
                items = review_services.queue_claim(actor=user, count=3)
                if not items:
                    return got
                got.extend(i.pk for i in items)

        return job

    results = run_together([claim_until_empty(user) for user in reviewers])
    assert not [r for r in results if isinstance(r, Exception)], results
    claimed = [pk for got in results for pk in got]
    assert len(claimed) == len(set(claimed)) == 40, Counter(claimed).most_common(3)
    for user, got in zip(reviewers, results, strict=True):
        assert set(ReviewItem.objects.filter(claimed_by=user).values_list("pk", flat=True)) == set(got)


def test_concurrent_runs_of_one_batch_put_each_application_in_once(world):
    applications = [diagnosed(world) for _ in range(30)]
    system = get_system_user()

    def run():
        return review_services.batch_assemble(
            region_id=world.region.pk, period=PERIOD, actor=system, cutoff=CUTOFF, chunk_size=4
        ).pk

    results = run_together([run for _ in range(4)])
    assert not [r for r in results if isinstance(r, Exception)], results
    batch = ReviewBatch.objects.get()
    assert set(results) == {batch.pk}
    assert (batch.state, batch.item_count) == (BatchState.REVIEWING, 30)
    assert Application.objects.filter(state=State.IN_REVIEW).count() == 30
    for application in applications:
        assert AuditEntry.objects.filter(application=application, transition="enqueue").count() == 1
        assert ReviewItem.objects.filter(application=application).count() == 1


def test_two_last_decisions_at_once_close_the_batch(world):
    for _ in range(2):
        diagnosed(world)
    batch = assemble(world)
    first, second = reviewer(world, ["initial_review"]), reviewer(world, ["initial_review"])
    [one] = review_services.queue_claim(actor=first, count=1)
    [two] = review_services.queue_claim(actor=second, count=1)

    results = run_together(
        [
            lambda: review_services.review_decide(item_id=one.pk, actor=first, decision="approve"),
            lambda: review_services.review_decide(item_id=two.pk, actor=second, decision="approve"),
        ]
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    batch.refresh_from_db()
    assert batch.state == BatchState.CLOSED


def test_a_decision_in_progress_does_not_hold_up_another_decision_in_the_same_batch(world):
    """Deciding locks the review item only, not the batch row joined to it (which every other decision and
    the still-running assembly of the batch would otherwise queue behind)."""

    for _ in range(2):
        diagnosed(world)
    batch = assemble(world)
    first_reviewer, second_reviewer = reviewer(world, ["initial_review"]), reviewer(world, ["initial_review"])
    (first_item,) = review_services.queue_claim(actor=first_reviewer, count=1)
    (second_item,) = review_services.queue_claim(actor=second_reviewer, count=1)

    def approve(item, user):
        return review_services.review_decide(item_id=item.pk, actor=user, decision="approve")

    with held_open(lambda: approve(first_item, first_reviewer)):
        with lock_timeout(3):
            approve(second_item, second_reviewer)
    assert StageDecision.objects.filter(item__batch=batch).count() == 2
    assert set(StageDecision.objects.values_list("item_id", flat=True)) == {first_item.pk, second_item.pk}
