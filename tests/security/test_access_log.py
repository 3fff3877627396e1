"""Viewing a full, unmasked record writes an access-log row: who, whose, when, why.

docs/design.md: Access and privacy.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import AccessPurpose, AppendOnlyError, PersonalDataAccess


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def filed(world, person=None):
    person = person or world.person()
    return services.application_submit(
        person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )


def test_person_lookup_by_full_number_is_logged_with_the_reason(world):
    person = world.person()
    response = client_for(world.clerk).get(
        "/api/v1/persons/", {"id_number": person.id_number, "reason": "filing at the window"}
    )
    assert response.status_code == 200 and response.json()["id_number"] == person.id_number
    row = PersonalDataAccess.objects.get()
    assert (row.viewer, row.person, row.purpose, row.reason) == (
        world.clerk,
        person,
        AccessPurpose.PERSON_LOOKUP,
        "filing at the window",
    )
    assert row.at is not None and row.application is None


def test_lookup_of_an_unregistered_or_invalid_number_logs_nothing(world):
    from tests.factories import synthetic_id_number

    client = client_for(world.clerk)
    assert client.get("/api/v1/persons/", {"id_number": synthetic_id_number()}).status_code == 404
    assert client.get("/api/v1/persons/", {"id_number": "123"}).status_code == 400
    assert not PersonalDataAccess.objects.exists()


def test_application_detail_shows_the_full_number_to_the_filing_clerk_and_logs_it(world):
    application = filed(world)
    response = client_for(world.clerk).get(f"/api/v1/applications/{application.pk}/", {"reason": "patient asked"})
    assert response.status_code == 200
    assert response.json()["person_id_number"] == application.person.id_number
    row = PersonalDataAccess.objects.get()
    assert row.viewer == world.clerk and row.application == application and row.person == application.person
    assert row.purpose == AccessPurpose.APPLICATION_DETAIL and row.reason == "patient asked"


def test_each_viewing_is_a_row(world):
    application = filed(world)
    client = client_for(world.admin)
    for _n in range(3):
        assert client.get(f"/api/v1/applications/{application.pk}/").status_code == 200
    assert PersonalDataAccess.objects.filter(viewer=world.admin, application=application).count() == 3


@pytest.mark.parametrize("who", ["reviewer", "physician_user", "officer"])
def test_roles_that_see_the_masked_number_leave_no_access_row(world, who):
    application = filed(world)
    response = client_for(getattr(world, who)).get(f"/api/v1/applications/{application.pk}/")
    assert response.status_code == 200
    assert response.json()["person_id_number"] == application.person.masked_id_number
    assert application.person.id_number not in response.content.decode()
    assert not PersonalDataAccess.objects.exists()


def test_list_stays_masked_and_is_not_logged(world):
    filed(world)
    response = client_for(world.clerk).get("/api/v1/applications/")
    assert response.status_code == 200 and "*" in response.json()["results"][0]["person_id_number"]
    assert not PersonalDataAccess.objects.exists()


def test_other_institution_gets_404_and_no_row(world):
    application = filed(world)
    response = client_for(world.other_clerk).get(f"/api/v1/applications/{application.pk}/")
    assert response.status_code == 404
    assert not PersonalDataAccess.objects.exists()


def test_an_overlong_reason_is_refused_and_shows_nothing(world):
    person = world.person()
    response = client_for(world.clerk).get("/api/v1/persons/", {"id_number": person.id_number, "reason": "x" * 501})
    assert response.status_code == 400 and response.json()["details"]["field"] == "reason"
    assert person.id_number not in response.content.decode()
    assert not PersonalDataAccess.objects.exists()


def test_the_access_log_is_append_only(world):
    person = world.person()
    row = services.personal_data_access_record(viewer=world.clerk, person=person, purpose="person_lookup")
    row.reason = "edited afterwards"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        PersonalDataAccess.objects.filter(pk=row.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        PersonalDataAccess.objects.all().delete()
    row.refresh_from_db()
    assert row.reason == ""
