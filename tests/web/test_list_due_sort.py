"""Working lists (issue 15): the application list sorts by the due date of the open review item (the reviews
app's "due" key, an annotation added only for that sort); applications without an open item come last."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from enrollment import list_selectors, services
from enrollment.periods import period_key
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.web.conftest import diagnose, file_application

pytestmark = pytest.mark.django_db


def ids(response: Any) -> list[int]:
    return [a.pk for a in response.context["page"].object_list]


def test_sort_by_due_date_both_ways_with_no_open_item_last(world: Any, client_for: Any) -> None:
    for _ in range(3):
        diagnose(world, file_application(world))
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    waiting = file_application(world)  # not in review: no open item
    items = list(ReviewItem.objects.order_by("pk"))
    today = timezone.localdate()
    for item, days in zip(items, (5, -2, 12), strict=True):
        ReviewItem.objects.filter(pk=item.pk).update(due_on=today + dt.timedelta(days=days))
    soonest, middle, latest = items[1].application_id, items[0].application_id, items[2].application_id
    later = file_application(world)  # no open item either; ties among those go newest number first
    client = client_for(world.admin)
    url = reverse("application-list")
    assert ids(client.get(url, {"o": "due"})) == [soonest, middle, latest, later.pk, waiting.pk]
    assert ids(client.get(url, {"o": "-due"})) == [latest, middle, soonest, later.pk, waiting.pk]
    # Only the open item counts: once decided, its application moves to the end.
    ReviewItem.objects.filter(pk=items[1].pk).update(outcome="approved")
    assert ids(client.get(reverse("application-list"), {"o": "due"}))[:2] == [middle, latest]
    # Offered in the sort choices, and kept in the sort links with the filters.
    page = client.get(reverse("application-list"), {"state": ["in_review"], "o": "due"})
    assert "due" in dict(page.context["filterset"].form.fields["o"].choices)
    assert page.context["columns"]["due"]["href"] == "?state=in_review&o=-due"


def test_due_annotation_is_added_only_for_that_sort(world: Any) -> None:
    file_application(world)
    plain = list_selectors.application_list_rows(list_selectors.application_list_filter(world.admin, {"o": "filed"}))
    assert "review_due_on" not in plain.query.annotations
    due = list_selectors.application_list_rows(list_selectors.application_list_filter(world.admin, {"o": "due"}))
    assert "review_due_on" in due.query.annotations
    assert [a.review_due_on for a in due] == [None]
