"""The queue page's hand-written statement (reviews.sql.queue_page) answers exactly what the queryset
``queue_for`` + lease filter + ``with_queue_row`` answers — rows, order and every value a queue row shows —
across scopes, stages, claims (live, expired, another reviewer's), separation of duties, keyset cursors,
overdue and escalated items, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.db.models import Q
from django.utils import timezone

from enrollment.services import get_system_user
from reviews import selectors
from reviews import services as review_services
from reviews.models import Escalation, ReviewItem, StageDecision
from reviews.serializers import ReviewItemSerializer
from tests.reviews.helpers import MARCH_2, assemble, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db


def reference_page(user: Any, *, after: Any = None, limit: int = 50, mine: bool = False, stage: Any = None) -> list:
    """The queryset the statement replaced (the page as it was computed before)."""
    now = timezone.now()
    queryset = selectors.queue_for(user, stage=stage)
    mine_q = Q(claimed_by=user, lease_expires_at__gt=now)
    queryset = queryset.filter(mine_q if mine else (mine_q | selectors.lease_free(now)))
    if after is not None:
        queryset = queryset.filter(Q(queued_at__gt=after[0]) | Q(queued_at=after[0], id__gt=after[1]))
    return list(selectors.with_queue_row(queryset)[:limit])


def rows(items: list) -> list[dict]:
    return [dict(ReviewItemSerializer(item).data) for item in items]


def same(user: Any, **kwargs: Any) -> list:
    page = selectors.queue_page(user, **kwargs)
    assert rows(page) == rows(reference_page(user, **kwargs))
    return page


@pytest.fixture
def queue(world):
    applications = [diagnosed(world) for _ in range(6)]
    applications.append(diagnosed(world, disease=world.renal))
    # one the reviewer diagnosed would be refused by separation of duties
    own = diagnosed(world)
    own.diagnosed_by = world.reviewer
    own.save(update_fields=["diagnosed_by"])
    batch = assemble(world)
    other = diagnosed(world, person=world.person(insured_region=world.other_region))
    with time_machine.travel(MARCH_2, tick=False):
        review_services.batch_assemble(region_id=world.other_region.pk, period="2026-03", actor=get_system_user())
    assert item_of(other).region_id == world.other_region.pk
    # same queued_at for two items: the cursor must break the tie by id
    items = [item_of(a) for a in applications]
    ReviewItem.objects.filter(pk__in=[items[1].pk, items[2].pk]).update(queued_at=MARCH_2)
    return {"applications": applications, "items": items, "batch": batch}


def test_the_statement_answers_what_the_queryset_answers(world, queue):
    second = reviewer(world, ["initial_review"], username="second-reviewer")
    with time_machine.travel(MARCH_2 + dt.timedelta(hours=1), tick=False):
        assert len(same(world.reviewer)) == 7
        assert len(same(world.other_reviewer)) == 1
        same(world.clerk)
        same(world.reviewer, stage="initial_review")
        same(world.reviewer, stage="no_such_stage")
        review_services.queue_claim(actor=world.reviewer, count=2)
        review_services.queue_claim(actor=second, count=2)
        assert len(same(world.reviewer, mine=True)) == 2
        page = same(world.reviewer)
        assert len(page) == 5 and {row["claimed_by"] for row in rows(page)} == {None, world.reviewer.username}
        first = same(world.reviewer, limit=2)
        same(world.reviewer, after=(first[-1].queued_at, first[-1].pk), limit=3)
        same(world.reviewer, after=(MARCH_2, 0), limit=50)
    # the second reviewer's lease ran out: their items are free again; due dates passed, one escalated
    item = queue["items"][3]
    Escalation.objects.create(item=item, stage=item.stage, due_on=item.due_on, escalated_at=timezone.now())
    with time_machine.travel(MARCH_2 + dt.timedelta(days=40), tick=False):
        page = same(world.reviewer)
        assert len(page) == 7
        assert all(row["overdue"] for row in rows(page))
        assert [row["escalated"] for row in rows(page)].count(True) == 1


def test_a_decision_at_another_stage_takes_the_item_out_of_that_reviewers_queue(world, queue):
    application = queue["applications"][0]
    item = item_of(application)
    StageDecision.objects.create(
        application=application,
        batch=queue["batch"],
        round=item.round,
        stage="some_earlier_stage",
        decision="approve",
        decided_by=world.reviewer,
        decided_at=MARCH_2,
    )
    with time_machine.travel(MARCH_2 + dt.timedelta(hours=1), tick=False):
        page = same(world.reviewer)
        assert item.pk not in [i.pk for i in page]
