"""Reviewer queues: scope, order, keyset pages, claims with leases, release (issue 3 item 3)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from enrollment.services import get_system_user
from kernel.errors import InvalidInput, NotPermitted
from reviews import selectors
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.reviews.helpers import SHANGHAI, assemble, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(world):
    """Seven chronic items and one special item of world.region, one chronic item of the other region."""
    applications = [diagnosed(world) for _ in range(7)]
    special = diagnosed(world, disease=world.renal)
    other = diagnosed(world, person=world.person(insured_region=world.other_region))
    assemble(world)
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI), tick=False):
        review_services.batch_assemble(region_id=world.other_region.pk, period="2026-03", actor=get_system_user())
    # Make the queue order differ from the id order: the last filed waits longest.
    for n, application in enumerate(reversed(applications)):
        ReviewItem.objects.filter(application=application).update(
            queued_at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI) + dt.timedelta(minutes=n)
        )
    ReviewItem.objects.filter(application=special).update(queued_at=dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI))
    return {"chronic": [item_of(a) for a in applications], "special": item_of(special), "other": item_of(other)}


def test_queue_holds_the_region_items_at_held_stages_oldest_first(world, queued):
    chronic = queued["chronic"]
    assert [i.pk for i in selectors.queue_for(world.reviewer)] == [i.pk for i in reversed(chronic)] + [
        queued["special"].pk
    ]
    assert [i.pk for i in selectors.queue_for(world.other_reviewer)] == [queued["other"].pk]
    assert not selectors.queue_for(reviewer(world, ["recheck"])).exists()
    assert not selectors.queue_for(world.clerk).exists()


def test_keyset_pages_cover_the_queue_once(world, queued):
    seen = []
    after = None
    while True:
        page = selectors.queue_page(world.reviewer, after=after, limit=3)
        if not page:
            break
        seen.extend(i.pk for i in page)
        after = (page[-1].queued_at, page[-1].pk)
    assert seen == [i.pk for i in selectors.queue_for(world.reviewer)]
    assert len(seen) == len(set(seen)) == 8


def test_claims_never_overlap_and_release_returns_items(world, queued):
    second = reviewer(world, ["initial_review"])
    first_claim = review_services.queue_claim(actor=world.reviewer, count=3)
    second_claim = review_services.queue_claim(actor=second, count=3)
    oldest = [i.pk for i in selectors.queue_for(world.reviewer)]
    assert [i.pk for i in first_claim] == oldest[:3]
    assert [i.pk for i in second_claim] == oldest[3:6]
    for item in first_claim:
        item.refresh_from_db()
        assert item.claimed_by == world.reviewer
        assert item.lease_expires_at == pytest.approx(
            timezone.now() + dt.timedelta(minutes=30), abs=dt.timedelta(seconds=60)
        )
    # My page shows my claims and free items, not the other reviewer's.
    page = [i.pk for i in selectors.queue_page(world.reviewer, limit=50)]
    assert set(page) == set(oldest) - {i.pk for i in second_claim}
    assert [i.pk for i in selectors.queue_page(world.reviewer, limit=50, mine=True)] == oldest[:3]

    assert review_services.queue_release(actor=world.reviewer, item_ids=[first_claim[0].pk]) == 1
    assert review_services.queue_release(actor=world.reviewer, item_ids=[second_claim[0].pk]) == 0
    third_claim = review_services.queue_claim(actor=second, count=10, stage="initial_review")
    assert first_claim[0].pk in [i.pk for i in third_claim]
    assert review_services.queue_release(actor=second) == 8 - 2


def test_an_expired_lease_returns_the_item_to_the_queue(world, queued):
    second = reviewer(world, ["initial_review"])
    mine = review_services.queue_claim(actor=world.reviewer, count=8)
    assert len(mine) == 8
    assert review_services.queue_claim(actor=second, count=8) == []
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=29)):
        assert review_services.queue_claim(actor=second, count=8) == []
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        assert len(review_services.queue_claim(actor=second, count=8)) == 8
        assert not selectors.claimed_by(world.reviewer).exists()


def test_lease_length_comes_from_settings(world, queued, settings):
    settings.REVIEW_LEASE_MINUTES = 5
    [item] = review_services.queue_claim(actor=world.reviewer, count=1)
    assert item.lease_expires_at == pytest.approx(
        timezone.now() + dt.timedelta(minutes=5), abs=dt.timedelta(seconds=60)
    )


def test_claim_input_and_roles(world, queued):
    with pytest.raises(InvalidInput):
        review_services.queue_claim(actor=world.reviewer, count=0)
    with pytest.raises(InvalidInput):
        review_services.queue_claim(actor=world.reviewer, count=201)
    with pytest.raises(NotPermitted):
        review_services.queue_claim(actor=world.clerk, count=1)
    with pytest.raises(NotPermitted):
        review_services.queue_claim(actor=world.other_reviewer, count=1, stage="approval")
    assert review_services.queue_claim(actor=world.reviewer, count=5, stage="recheck") == []
