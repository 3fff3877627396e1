"""Batch visibility and control (issue 15 item 5): the outlook, assembling from the web, stragglers."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from enrollment.models import Application, AuditEntry, State
from kernel import roles
from kernel.errors import NotPermitted
from reviews import selectors
from reviews import services as review_services
from reviews.models import ReviewBatch
from tests.factories import staff_user
from tests.reviews.helpers import SHANGHAI, assemble, diagnosed, reviewer

pytestmark = pytest.mark.django_db
D = dt.date
FEB_12 = dt.datetime(2026, 2, 12, 10, 0, tzinfo=SHANGHAI)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_outlook_says_when_diagnosed_applications_are_batched(world):
    diagnosed(world)
    diagnosed(world)
    with time_machine.travel(FEB_12, tick=False):
        (outlook,) = selectors.batch_outlook(world.clerk)
        assert (outlook.region, outlook.count, outlook.batch_on) == (world.region, 2, D(2026, 3, 1))
        page = login(world.reviewer).get("/").content.decode()
    assert 'data-testid="batch-outlook"' in page and "已诊断 2 件，将于" in page


def test_after_the_batch_day_a_new_diagnosis_waits_for_next_month(world):
    assemble(world)  # March's batch, assembled on 2 March
    later = diagnosed(world, at=dt.datetime(2026, 3, 5, 10, 0, tzinfo=SHANGHAI))
    with time_machine.travel(dt.datetime(2026, 3, 6, 10, 0, tzinfo=SHANGHAI), tick=False):
        assert selectors.application_batch_on(later) == D(2026, 4, 1)
        (outlook,) = selectors.batch_outlook(world.admin)
    assert (outlook.count, outlook.batch_on) == (1, D(2026, 4, 1))


def test_assembling_from_the_web(world):
    applications = [diagnosed(world), diagnosed(world)]
    other_officer = staff_user(roles.CENTER_OFFICER, institution=world.other_clinic)
    same_region_reviewer = reviewer(world, ["initial_review"], username="rv")
    with time_machine.travel(FEB_12, tick=False):
        for user in (world.clerk, world.other_reviewer, same_region_reviewer):
            assert (
                login(user).post("/reviews/batches/assemble/", {"region": world.region.pk, "confirm": "on"}).status_code
                == 403
            )
        # An officer of another region is offered no such region: nothing happens.
        answer = login(other_officer).post("/reviews/batches/assemble/", {"region": world.region.pk, "confirm": "on"})
        assert answer.status_code == 302 and not ReviewBatch.objects.exists()
        # Without the confirmation tick nothing happens either.
        login(world.officer).post("/reviews/batches/assemble/", {"region": world.region.pk})
        assert not ReviewBatch.objects.exists()
        answer = login(world.officer).post("/reviews/batches/assemble/", {"region": world.region.pk, "confirm": "on"})
        batch = ReviewBatch.objects.get()
        assert answer.status_code == 302 and answer["Location"] == f"/reviews/batches/{batch.pk}/"
        assert (batch.period, batch.item_count, batch.state) == ("2026-02", 2, "reviewing")
        assert all(Application.objects.get(pk=a.pk).state == State.IN_REVIEW for a in applications)
        rows = AuditEntry.objects.filter(transition="enqueue")
        assert rows.count() == 2 and set(rows.values_list("actor_id", flat=True)) == {world.officer.pk}
        # Twice: no change.
        login(world.officer).post("/reviews/batches/assemble/", {"region": world.region.pk, "confirm": "on"})
        again = review_services.batch_assemble(region_id=world.region.pk, period="2026-02", actor=world.officer)
        assert again.pk == batch.pk and ReviewBatch.objects.get().item_count == 2
        assert AuditEntry.objects.filter(transition="enqueue").count() == 2
        with pytest.raises(NotPermitted):
            review_services.batch_assemble(region_id=world.region.pk, period="2026-02", actor=other_officer)


def test_batch_list_offers_the_form_to_officers_only(world):
    diagnosed(world)
    with time_machine.travel(FEB_12, tick=False):
        officer_page = login(world.officer).get("/reviews/batches/").content.decode()
        reviewer_page = login(world.reviewer).get("/reviews/batches/").content.decode()
    assert 'id="assemble-batch"' in officer_page and "1 diagnosed" in officer_page
    assert 'id="assemble"' not in reviewer_page


def test_batch_page_lists_stragglers_oldest_first(world):
    early = diagnosed(world)
    diagnosed(world)
    batch = assemble(world)
    with time_machine.travel(dt.datetime(2026, 3, 11, 9, 0, tzinfo=SHANGHAI), tick=False):
        from enrollment import services

        review_services.escalate_overdue(actor=services.get_system_user())
        stragglers = selectors.batch_stragglers(batch)
        page = login(world.reviewer).get(f"/reviews/batches/{batch.pk}/").content.decode()
    assert [s.application_id for s in stragglers][0] == early.pk
    assert all(s.overdue and s.escalated and s.overdue_by == 2 for s in stragglers)
    assert 'id="stragglers"' in page and f'href="/applications/{early.pk}/"' in page
