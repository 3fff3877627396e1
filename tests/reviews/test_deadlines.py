"""Review deadlines (issue 15 item 1): due dates on items and applications, queue flags, escalation once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from enrollment import services
from enrollment.models import AuditEntry
from reviews import deadlines, selectors
from reviews import services as review_services
from reviews.models import Escalation, Notification, ReviewTimeLimit
from tests.reviews.helpers import FEBRUARY, SHANGHAI, assemble, claim_and_decide, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db
D = dt.date


def test_default_limits_are_seeded(world):
    limits = deadlines.time_limits_for(world.region)
    assert limits[("11", "")] == 15 and limits[("11", "initial_review")] == 5
    assert limits[("12", "")] == 20 and limits[("12", "recheck")] == 5


def test_a_regions_own_limit_wins(world):
    ReviewTimeLimit.objects.create(region=world.province, disease_type="11", stage="", working_days=10)
    ReviewTimeLimit.objects.create(region=world.region, disease_type="11", stage="", working_days=12)
    assert deadlines.time_limits_for(world.region)[("11", "")] == 12
    assert deadlines.time_limits_for(world.other_region)[("11", "")] == 10


def test_application_due_date_counts_working_days_over_the_spring_festival(world):
    application = diagnosed(world)  # diagnosed (a complete filing) on Tuesday 10 Feb 2026
    deadline = deadlines.application_deadline(application, today=D(2026, 2, 12))
    # 11, 12, 13, 14 (make-up Saturday), holiday 15–23, 24 … 28 (Saturday worked), 2–6 March, 9 March = 15th.
    assert deadline.started_on == D(2026, 2, 10)
    assert deadline.due_on == D(2026, 3, 9)
    assert deadline.working_days_left == 13 and not deadline.overdue and not deadline.paused


def test_assembly_and_stage_advance_set_the_stage_due_date(world):
    chronic = diagnosed(world)
    special = diagnosed(world, disease=world.renal)
    assemble(world)  # Monday 2 March
    assert item_of(chronic).due_on == D(2026, 3, 9)  # 5 working days: 3, 4, 5, 6, 9
    special_item = item_of(special)
    assert special_item.due_on == D(2026, 3, 9)
    first = reviewer(world, ["initial_review"], username="first")
    with time_machine.travel(dt.datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI), tick=False):
        claim_and_decide(special_item, first)
    special_item.refresh_from_db()
    assert special_item.stage == "recheck" and special_item.due_on == D(2026, 3, 13)


def test_queue_rows_carry_due_overdue_and_escalated(world):
    application = diagnosed(world)
    assemble(world)
    with time_machine.travel(dt.datetime(2026, 3, 10, 9, 0, tzinfo=SHANGHAI), tick=False):
        row = selectors.items_visible_to(world.reviewer).get(application=application)
        assert (row.due_on, row.overdue, row.escalated) == (D(2026, 3, 9), True, False)
        (row,) = selectors.attach_working_days([row])
        assert row.working_days_left == -1


def test_escalation_happens_once_per_item_and_stage(world):
    application = diagnosed(world)
    assemble(world)
    system = services.get_system_user()
    with time_machine.travel(dt.datetime(2026, 3, 9, 9, 0, tzinfo=SHANGHAI), tick=False):
        assert review_services.escalate_overdue(actor=system).escalated == []  # due today: not late yet
    with time_machine.travel(dt.datetime(2026, 3, 10, 9, 0, tzinfo=SHANGHAI), tick=False):
        first = review_services.escalate_overdue(actor=system)
        second = review_services.escalate_overdue(actor=system)
    item = item_of(application)
    assert first.escalated == [item.pk] and second.escalated == []
    escalation = Escalation.objects.get(item=item)
    assert (escalation.stage, escalation.due_on) == ("initial_review", D(2026, 3, 9))
    assert AuditEntry.objects.filter(application=application, transition="escalate").count() == 1
    recipients = set(Notification.objects.filter(kind="stage_overdue").values_list("recipient_id", flat=True))
    assert recipients == {world.officer.pk, world.admin.pk}  # the region's centre officer and the administrator
    assert escalation.notified == 2
    assert selectors.items_visible_to(world.reviewer).get(pk=item.pk).escalated


def test_escalation_is_refused_to_people(world):
    from kernel.errors import NotPermitted

    with pytest.raises(NotPermitted):
        review_services.escalate_overdue(actor=world.admin)


def test_deadline_in_the_api_detail(world):
    from rest_framework.test import APIClient

    application = diagnosed(world)
    client = APIClient()
    client.force_authenticate(world.clerk)
    with time_machine.travel(dt.datetime(2026, 2, 12, 9, 0, tzinfo=SHANGHAI), tick=False):
        body = client.get(f"/api/v1/applications/{application.pk}/").json()
    assert body["deadline"]["due_on"] == "2026-03-09"
    assert body["deadline"]["working_days_left"] == 13
    assert body["deadline"]["batch_on"] == "2026-03-01"


def test_on_time_rates(world):
    on_time = diagnosed(world)
    late = diagnosed(world)
    assemble(world)
    r = reviewer(world, ["initial_review"], username="rater")
    with time_machine.travel(dt.datetime(2026, 3, 9, 15, 0, tzinfo=SHANGHAI), tick=False):
        claim_and_decide(item_of(on_time), r)
    with time_machine.travel(dt.datetime(2026, 3, 11, 15, 0, tzinfo=SHANGHAI), tick=False):
        claim_and_decide(item_of(late), r)
        rows = selectors.on_time_rates(world.admin, since=FEBRUARY)
    by = {(row.dimension, row.key): (row.decided, row.on_time) for row in rows}
    assert by[("stage", "initial_review")] == (2, 1)
    assert by[("region", world.region.code)] == (2, 1)
    assert by[("institution", str(world.county.pk))] == (2, 1)
