"""The per-process copies of reference data and API tokens are dropped when what they hold changes.

In this process at once (the signals); in another at its next request (the shared version key, which
the tests below change the way another process's bump would, with rows changed behind the signals' back).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from enrollment import reference_cache, selectors, services
from enrollment.authentication import TOKEN_CACHE_KEY
from enrollment.models import ApiToken, Disease, Policy, Region
from enrollment.services.api_tokens import api_token_issue, api_token_revoke
from kernel import reference_cache as kernel_cache
from kernel import roles

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _versions_of_this_test_only(settings):  # noqa: ANN001, ANN202 - fixture
    """The versions in this process's LocMem: the Redis of a service run is shared with other processes,
    whose changes would bump the keys under these tests."""
    settings.REFERENCE_CACHE_ALIAS = "default"


def another_process_bumps(key: str) -> None:
    """What another process's ``bump`` leaves for this one: a new shared version, nothing dropped here."""
    kernel_cache._shared().set(kernel_cache._PREFIX + key, uuid.uuid4().hex, timeout=None)


def in_a_request(fn):  # noqa: ANN001, ANN201 - test helper
    """What request_started/request_finished do for the process caches (sending the signals themselves would
    also close the test's database connection)."""
    kernel_cache._on_request_started()
    try:
        return fn()
    finally:
        kernel_cache._on_request_finished()


def test_policy_change_is_seen_at_once(world):
    assert selectors.policy_for_region(world.region).concurrent_chronic_limit == 2
    Policy.objects.update_or_create(region=world.province, defaults={"concurrent_chronic_limit": 3})
    assert selectors.policy_for_region(world.region).concurrent_chronic_limit == 3
    Policy.objects.update_or_create(region=world.region, defaults={"concurrent_chronic_limit": 5})
    assert selectors.policy_for_region(world.region).concurrent_chronic_limit == 5
    Policy.objects.filter(region=world.region).delete()
    assert selectors.policy_for_region(world.region).concurrent_chronic_limit == 3


def test_held_data_costs_no_query_until_a_change(world):
    reference_cache.warm()
    with CaptureQueriesContext(connection) as queries:
        assert selectors.region_lineage_ids(world.region) == [world.region.pk, world.province.pk]
        selectors.policy_for_region(world.region)
        assert selectors.disease_available_in_region(world.hypertension, world.region)
    assert len(queries) == 0
    world.hypertension.name = "高血压病（改）"
    world.hypertension.save()
    with CaptureQueriesContext(connection) as queries:
        assert reference_cache.disease_by_code(world.hypertension.code).name == "高血压病（改）"
    assert len(queries) > 0  # reloaded


def test_disease_regions_and_exclusions_changes_are_seen(world):
    assert selectors.disease_available_in_region(world.hypertension, world.region)
    world.hypertension.regions.add(world.other_region)
    assert not selectors.disease_available_in_region(world.hypertension, world.region)
    world.hypertension.regions.add(world.province)
    assert selectors.disease_available_in_region(world.hypertension, world.region)
    world.hypertension.regions.clear()
    assert selectors.disease_available_in_region(world.hypertension, world.region)

    assert world.diabetes.pk not in reference_cache.disease_exclusive_ids(world.hypertension.pk)
    world.hypertension.exclusive_with.add(world.diabetes)
    assert world.diabetes.pk in reference_cache.disease_exclusive_ids(world.hypertension.pk)
    assert world.hypertension.pk in reference_cache.disease_exclusive_ids(world.diabetes.pk)  # symmetrical
    world.diabetes.exclusive_with.remove(world.hypertension)
    assert reference_cache.disease_exclusive_ids(world.hypertension.pk) == frozenset()


def test_region_parent_change_is_seen(world):
    county = Region.objects.create(code="530199", name="新县", parent=world.region)
    assert selectors.region_lineage_ids(county) == [county.pk, world.region.pk, world.province.pk]
    assert county.pk in selectors.region_and_descendant_ids(world.region.pk)
    county.parent = world.other_region
    county.save()
    assert selectors.region_lineage_ids(county)[:2] == [county.pk, world.other_region.pk]
    assert county.pk not in selectors.region_and_descendant_ids(world.region.pk)
    assert county.pk in selectors.region_and_descendant_ids(world.other_region.pk)


def test_a_change_in_another_process_is_seen_at_the_next_request(world):
    in_a_request(reference_cache.warm)
    selectors.policy_for_region(world.region)
    # Another process changes the limit and bumps the shared key; this process's copy is untouched.
    Policy.objects.filter(region=world.province).delete()
    Policy.objects.bulk_create([Policy(region=world.province, concurrent_chronic_limit=4)])  # sends no signal
    assert in_a_request(lambda: selectors.policy_for_region(world.region).concurrent_chronic_limit) == 2
    another_process_bumps(reference_cache.KEY)
    assert in_a_request(lambda: selectors.policy_for_region(world.region).concurrent_chronic_limit) == 4


def test_within_a_request_the_version_is_read_once(world):
    in_a_request(reference_cache.warm)

    def twice() -> tuple[int, int]:
        first = selectors.policy_for_region(world.region).concurrent_chronic_limit
        Policy.objects.bulk_create([Policy(region=world.region, concurrent_chronic_limit=7)])
        another_process_bumps(reference_cache.KEY)  # mid-request: seen from the next request on
        return first, selectors.policy_for_region(world.region).concurrent_chronic_limit

    assert in_a_request(twice) == (2, 2)
    assert in_a_request(lambda: selectors.policy_for_region(world.region).concurrent_chronic_limit) == 7


def test_outside_requests_the_version_is_read_every_few_seconds(world, settings):
    settings.REFERENCE_CACHE_CHECK_SECONDS = 0
    reference_cache.warm()
    Policy.objects.bulk_create([Policy(region=world.region, concurrent_chronic_limit=6)])
    another_process_bumps(reference_cache.KEY)
    assert selectors.policy_for_region(world.region).concurrent_chronic_limit == 6


def test_handed_out_instances_are_not_shared(world):
    first = reference_cache.disease_by_code(world.hypertension.code)
    first.name = "changed in memory"
    first.aliases.append("x")
    again = reference_cache.disease_by_code(world.hypertension.code)
    assert again.name == world.hypertension.name and "x" not in again.aliases
    assert isinstance(again, Disease) and not again._state.adding


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------


def api_client(user) -> tuple[APIClient, ApiToken]:  # noqa: ANN001 - test helper
    issued = api_token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    assert client.get("/api/v1/queue/").status_code in (200, 403)
    return client, issued.token


def test_a_held_token_costs_one_primary_key_query(world):
    client, _token = api_client(world.clerk)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/").status_code == 200
    assert len(queries) == 1


def test_revocation_ends_a_held_token_at_once(world):
    client, token = api_client(world.clerk)
    api_token_revoke(user=world.clerk, token_id=token.pk)
    response = client.get("/api/v1/applications/")
    assert response.status_code == 401


def test_a_token_deleted_without_a_signal_ends_at_once(world):
    client, token = api_client(world.clerk)
    ApiToken.objects.filter(pk=token.pk)._raw_delete(ApiToken.objects.db)  # no signal, no version bump
    assert client.get("/api/v1/applications/").status_code == 401


def test_a_profile_change_in_another_process_is_seen_at_the_next_request(world):
    client, _token = api_client(world.clerk)
    services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    assert client.get("/api/v1/applications/").json()["count"] == 1
    world.clerk.groups.through.objects.filter(user_id=world.clerk.pk)._raw_delete(ApiToken.objects.db)
    assert client.get("/api/v1/applications/").json()["count"] == 1  # roles still held: nothing told us
    another_process_bumps(TOKEN_CACHE_KEY)
    response = client.get("/api/v1/applications/")
    assert response.status_code == 200 and response.json()["count"] == 0  # no role any more: sees nothing


def test_expiry_is_checked_on_every_request_from_the_held_token(world):
    client, token = api_client(world.clerk)
    with time_machine.travel(token.expires_at + dt.timedelta(seconds=1), tick=False):
        response = client.get("/api/v1/applications/")
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_password_change_and_deactivation_end_held_tokens(world):
    client, _token = api_client(world.clerk)
    world.clerk.set_password("another-Passw0rd!")
    world.clerk.save()
    assert client.get("/api/v1/applications/").status_code == 401
    client, _token = api_client(world.other_clerk)
    world.other_clerk.is_active = False
    world.other_clerk.save()
    assert client.get("/api/v1/applications/").status_code == 401


def test_role_change_is_seen_at_the_next_request(world):
    client, _token = api_client(world.clerk)
    assert client.get("/api/v1/applications/").status_code == 200
    world.clerk.groups.remove(Group.objects.get(name=roles.CLINIC_STAFF))
    response = client.get("/api/v1/applications/")
    assert response.status_code == 200 and response.json()["count"] == 0  # no role: sees nothing


def test_last_use_is_recorded_at_most_once_a_minute(world):
    client, token = api_client(world.clerk)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=30), tick=False):
        client.get("/api/v1/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    later = timezone.now() + dt.timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        client.get("/api/v1/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == later
