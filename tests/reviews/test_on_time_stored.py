"""On-time rates from stored dates (issue 15): the decision that decides an application keeps the application's
promised date (补正 pauses counted), so that the report is one aggregate query with no cap; the migration fills
existing decisions the way the report computed them before."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
import time_machine
from django.apps import apps

from enrollment import services
from reviews import selectors
from reviews import services as review_services
from reviews.models import ReviewTimeLimit, StageDecision
from tests.reviews.helpers import FEBRUARY, SHANGHAI, assemble, claim_and_decide, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db
D = dt.date


def at(day: dt.date, hour: int = 10) -> time_machine.travel:
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=SHANGHAI), tick=False)


def rates(user) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (row.dimension, row.key): (row.decided, row.on_time) for row in selectors.on_time_rates(user, since=FEBRUARY)
    }


@pytest.fixture
def decided(world):
    """Two applications diagnosed on Tuesday 10 Feb 2026 under a 30-working-day promise (due Monday 30 March),
    both decided on Wednesday 1 April: one held by the clinic for three working days after a return (补正), so
    that its promise moved to Thursday 2 April and it was kept; the other one late."""
    ReviewTimeLimit.objects.filter(region=None, disease_type="11", stage="").update(working_days=30)
    paused = diagnosed(world)
    late = diagnosed(world)
    assemble(world)  # Monday 2 March
    with at(D(2026, 3, 10)):
        claim_and_decide(item_of(paused), world.reviewer, "return", supplement_codes=["unclear_scan"])
    with at(D(2026, 3, 13)):  # Wednesday to Friday held by the clinic
        services.application_resubmit(application_id=paused.pk, actor=world.clerk, note="已补充")
    with at(D(2026, 3, 16)):
        review_services.batch_assemble(
            region_id=world.region.pk,
            period="2026-04",
            actor=services.get_system_user(),
            cutoff=dt.datetime(2026, 3, 16, 9, 0, tzinfo=SHANGHAI),
        )
    rater = reviewer(world, ["initial_review"], username="rater")
    with at(D(2026, 4, 1), hour=15):
        claim_and_decide(item_of(paused), rater)
        claim_and_decide(item_of(late), rater)
    return paused, late


def test_the_deciding_decision_keeps_the_moved_promise(world, decided):
    paused, late = decided
    by_round = dict(StageDecision.objects.filter(application=paused).values_list("decision", "application_due_on"))
    assert by_round == {"return": None, "approve": D(2026, 4, 2)}  # 30 working days + 3 paused
    assert StageDecision.objects.get(application=late).application_due_on == D(2026, 3, 30)
    got = rates(world.admin)
    assert got[("region", world.region.code)] == (2, 1)
    assert got[("institution", str(world.county.pk))] == (2, 1)
    # Per stage: the return on 10 March (due 9 March) and both approvals of 1 April were past the stage's 5 days.
    assert got[("stage", "initial_review")] == (3, 0)
    # Another clinic's viewer sees none of it.
    assert rates(world.other_clerk) == {}


def test_report_is_one_query_whatever_the_number_of_decisions(world, decided, django_assert_num_queries):
    rates(world.admin)  # the viewer's roles are read once and cached on the user
    with django_assert_num_queries(1):
        rows = selectors.on_time_rates(world.admin, since=FEBRUARY)
    assert len(rows) == 3
    for _ in range(3):
        diagnosed(world, at=dt.datetime(2026, 3, 20, 10, 0, tzinfo=SHANGHAI))
    assemble(world, period="2026-05", at=dt.datetime(2026, 4, 2, 9, 0, tzinfo=SHANGHAI))
    rater = reviewer(world, ["initial_review"], username="more")
    with at(D(2026, 4, 3)):
        for item in review_services.queue_claim(actor=rater, count=10):
            review_services.review_decide(item_id=item.pk, actor=rater, decision="approve")
    with django_assert_num_queries(1):
        assert rates(world.admin)[("region", world.region.code)] == (5, 4)


def test_immediate_decisions_keep_the_promise_a_return_does_not(world):
    returned = diagnosed(world, disease=world.dialysis)
    review_services.application_return_immediately(
        application_id=returned.pk, actor=world.officer, supplement_codes=["id_copy"], reason=""
    )
    rejected = diagnosed(world, disease=world.dialysis)
    review_services.application_reject_immediately(
        application_id=rejected.pk, actor=world.officer, reason_code="criteria_not_met", reason="未达标准"
    )
    (returned_decision,) = StageDecision.objects.filter(application=returned)
    assert returned_decision.due_on is not None and returned_decision.application_due_on is None
    (rejected_decision,) = StageDecision.objects.filter(application=rejected)
    assert rejected_decision.application_due_on == rejected_decision.due_on is not None


def test_migration_fills_existing_decisions_as_the_report_computed_them(world, decided):
    stored = dict(StageDecision.objects.values_list("pk", "application_due_on"))
    StageDecision.objects.update(application_due_on=None)
    # The same 30 days as the province's own limit (the default back at 15): the nearest region's row wins.
    ReviewTimeLimit.objects.filter(region=None, disease_type="11", stage="").update(working_days=15)
    ReviewTimeLimit.objects.create(region=world.province, disease_type="11", stage="", working_days=30)
    migration = importlib.import_module("reviews.migrations.0007_decision_application_due_on")
    migration.fill(apps, None)
    assert dict(StageDecision.objects.values_list("pk", "application_due_on")) == stored
