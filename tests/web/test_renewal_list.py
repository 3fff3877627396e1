"""The renewal worklist page (issue 15, working lists): enrollments ending soon, filtered by disease, institution,
region and end date, sorted and paged by GET links that never carry a name or ID number, within the viewer's scope."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from enrollment import list_selectors, services
from enrollment.models import Application, Person
from tests.web.conftest import diagnose, file_application

pytestmark = pytest.mark.django_db


def ending_in(world: Any, days: int, *, disease: Any = None, icd10: str = "I10") -> Application:
    """An approved enrollment whose validity ends in ``days`` days (the validity moved: a test-only shortcut)."""
    application = diagnose(world, file_application(world, disease=disease), icd10=icd10)
    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=services.get_system_user())
    services.application_approve(application_id=application.pk, actor=world.reviewer)
    end = timezone.localdate() + dt.timedelta(days=days)
    Application.objects.filter(pk=application.pk).update(valid_from=end - dt.timedelta(days=1094), valid_until=end)
    application.refresh_from_db()
    return application


@pytest.fixture
def worklist(world: Any) -> dict[str, Application]:
    """Four enrollments of the county clinic: one of diabetes, one of a person insured in the other region, one
    treated elsewhere, and one ending after the 180-day horizon."""
    soon = ending_in(world, 20)
    diabetes = ending_in(world, 60, disease=world.diabetes, icd10="E11.9")
    other_region = ending_in(world, 100)
    Person.objects.filter(pk=other_region.person_id).update(insured_region=world.other_region)
    treated_elsewhere = ending_in(world, 150)
    Application.objects.filter(pk=treated_elsewhere.pk).update(treating_institution=world.township)
    later = ending_in(world, 200)
    return {
        "soon": soon,
        "diabetes": diabetes,
        "other_region": other_region,
        "treated_elsewhere": treated_elsewhere,
        "later": later,
    }


def rows(user: Any, data: dict[str, Any], *, valid: bool = True) -> list[int]:
    filterset = list_selectors.renewal_list_filter(user, data, within_days=180)
    if data:
        assert filterset.is_valid() is valid, filterset.errors
    return [a.pk for a in list_selectors.renewal_list_rows(filterset)]


def pks(worklist: dict[str, Application], *names: str) -> list[int]:
    return [worklist[name].pk for name in names]


# -- the selector, one filter at a time ------------------------------------------------------------


def test_scope_is_the_horizon_soonest_end_first(world: Any, worklist: Any) -> None:
    assert rows(world.clerk, {}) == pks(worklist, "soon", "diabetes", "other_region", "treated_elsewhere")
    assert rows(world.other_clerk, {}) == []  # another clinic's viewer sees none of them


def test_filter_by_disease(world: Any, worklist: Any) -> None:
    assert rows(world.clerk, {"disease": world.diabetes.code}) == pks(worklist, "diabetes")


def test_filter_by_institution_filing_or_treating(world: Any, worklist: Any) -> None:
    assert rows(world.clerk, {"institution": world.township.code}) == pks(worklist, "treated_elsewhere")
    assert len(rows(world.clerk, {"institution": world.county.code})) == 4  # the filing clinic of all four


def test_filter_by_insured_region_and_below(world: Any, worklist: Any) -> None:
    assert rows(world.clerk, {"region": world.other_region.code}) == pks(worklist, "other_region")
    assert len(rows(world.clerk, {"region": world.province.code})) == 4


def test_filter_by_valid_until_range(world: Any, worklist: Any) -> None:
    today = timezone.localdate()
    window = {
        "valid_until_after": (today + dt.timedelta(days=50)).isoformat(),
        "valid_until_before": (today + dt.timedelta(days=100)).isoformat(),
    }
    assert rows(world.clerk, window) == pks(worklist, "diabetes", "other_region")
    # The range narrows the horizon; it never widens it.
    beyond = {"valid_until_after": (today + dt.timedelta(days=190)).isoformat()}
    assert rows(world.clerk, beyond) == []


def test_sort_keys_both_ways(world: Any, worklist: Any) -> None:
    assert rows(world.clerk, {"o": "-valid_until"}) == pks(
        worklist, "treated_elsewhere", "other_region", "diabetes", "soon"
    )
    assert rows(world.clerk, {"o": "-id"}) == sorted(rows(world.clerk, {}), reverse=True)
    # Not a sort key: ignored.
    assert rows(world.clerk, {"o": "person__id_number"}, valid=False) == rows(world.clerk, {})


# -- the page --------------------------------------------------------------------------------------


def test_page_filters_sorts_and_pages_by_links_without_id_numbers(world: Any, client_for: Any, worklist: Any) -> None:
    client = client_for(world.clerk)
    url = reverse("renewal-list")
    page = client.get(url)
    assert page.status_code == 200
    assert [a.pk for a in page.context["page"].object_list] == pks(
        worklist, "soon", "diabetes", "other_region", "treated_elsewhere"
    )
    assert [a.reminders_sent for a in page.context["page"].object_list] == [0, 0, 0, 0]
    body = page.content.decode()
    assert reverse("application-renew", args=[worklist["soon"].pk]) in body
    # Only what the scope holds is offered; the application list's other filters are not part of this page.
    fields = page.context["filterset"].form.fields
    assert set(fields) == {"disease", "institution", "region", "valid_until", "o"}
    assert {d.code for d in fields["disease"].queryset} == {world.hypertension.code, world.diabetes.code}
    filtered = client.get(url, {"disease": world.hypertension.code, "o": "-valid_until"})
    assert [a.pk for a in filtered.context["page"].object_list] == pks(
        worklist, "treated_elsewhere", "other_region", "soon"
    )
    assert filtered.context["columns"]["valid_until"]["href"] == f"?disease={world.hypertension.code}&o=valid_until"
    original = list_selectors.LIST_PAGE_SIZE
    list_selectors.LIST_PAGE_SIZE = 2
    try:
        first = client.get(url, {"region": world.province.code})
        second = client.get(url, {"region": world.province.code, "page": 2})
    finally:
        list_selectors.LIST_PAGE_SIZE = original
    assert first.context["page"].paginator.num_pages == 2
    assert f"?region={world.province.code}&amp;page=2" in first.content.decode()
    assert [a.pk for a in second.context["page"].object_list] == pks(worklist, "other_region", "treated_elsewhere")
    # No name or ID number in any link of the page.
    for application in worklist.values():
        for href in _links(first.content.decode()):
            assert application.person.id_number not in href and application.person.name not in href


def test_page_is_scoped_and_offers_filing_only_to_filers(world: Any, client_for: Any, worklist: Any) -> None:
    assert list(client_for(world.other_clerk).get(reverse("renewal-list")).context["page"].object_list) == []
    officer = client_for(world.reviewer).get(reverse("renewal-list"))
    assert officer.status_code == 200
    for application in officer.context["page"].object_list:
        assert reverse("application-renew", args=[application.pk]) not in officer.content.decode()


def test_clinic_home_links_to_the_page(world: Any, client_for: Any) -> None:
    assert reverse("renewal-list") in client_for(world.clerk).get(reverse("home")).content.decode()


def _links(body: str) -> list[str]:
    import re

    return re.findall(r'href="([^"]*)"', body)
