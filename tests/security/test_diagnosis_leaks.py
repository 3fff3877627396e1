"""Issue 18, item 3: a filing error must not tell a clinic about another institution's diagnoses, and the
coverage API answers only within the caller's scope, writing an access-log row for every look-up."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import PersonalDataAccess
from kernel.errors import RuleViolation
from tests.factories import DiseaseFactory, InstitutionFactory, RegionFactory, staff_user

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_duplicate_at_another_institution_does_not_name_the_application(world):
    person = world.person()
    held = services.application_submit(
        person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    with pytest.raises(RuleViolation) as refused:
        services.application_submit(
            person=person, disease=world.hypertension, treating_institution=world.other_clinic, actor=world.other_clerk
        )
    assert refused.value.code == "duplicate_disease"
    assert f"#{held.pk}" not in str(refused.value.message) and "application" not in refused.value.details
    assert world.county.name not in str(refused.value.message)
    # The filing clinic itself is told which application.
    with pytest.raises(RuleViolation) as own:
        services.application_submit(
            person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )
    assert f"#{held.pk}" in str(own.value.message) and own.value.details == {"application": held.pk}


def test_limit_and_exclusion_at_another_institution_do_not_name_the_diseases(world):
    hiv = DiseaseFactory(code="M00101", name="艾滋病", icd10_prefixes=["B20"], counts_toward_limit=True)
    person = world.person()
    for disease in (hiv, world.diabetes):
        services.application_submit(
            person=person, disease=disease, treating_institution=world.county, actor=world.clerk
        )
    response = client_for(world.other_clerk).post(
        "/api/v1/applications/",
        {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.other_clinic.code},
        format="json",
    )
    assert response.status_code == 409 and response.json()["code"] == "limit_reached"
    text = response.content.decode()
    assert "艾滋病" not in text and "M00101" not in text and "糖尿病" not in text
    assert response.json()["details"] == {"held": [], "held_count": 2, "limit": 2}
    # Exclusion: the held disease is not named to another institution either.
    hiv.exclusive_with.add(world.copd)
    other = world.person()
    services.application_submit(person=other, disease=hiv, treating_institution=world.county, actor=world.clerk)
    response = client_for(world.other_clerk).post(
        "/api/v1/applications/",
        {"id_number": other.id_number, "disease": "M05300", "treating_institution": world.other_clinic.code},
        format="json",
    )
    assert response.status_code == 409 and response.json()["code"] == "mutually_exclusive"
    assert "艾滋病" not in response.content.decode()


def test_coverage_is_scoped_and_every_lookup_is_logged(world):
    person = world.person()
    other_province = RegionFactory(code="440000", name="广东省")
    far_clinic = InstitutionFactory(level=2, region=RegionFactory(code="440100", parent=other_province))
    far_clerk = staff_user("clinic_staff", institution=far_clinic)
    params = {"id_number": person.id_number, "disease": "M03900"}
    before = PersonalDataAccess.objects.count()
    for user in (world.clerk, world.other_clerk, world.physician_user, world.officer, world.reviewer, world.admin):
        response = client_for(user).get("/api/v1/coverage/", params)
        assert response.status_code == 200, (user.username, response.content)
    assert PersonalDataAccess.objects.count() == before + 6
    entry = PersonalDataAccess.objects.order_by("-id").first()
    assert (entry.purpose, entry.person_id, entry.viewer_id) == ("coverage_query", person.pk, world.admin.pk)
    # Another province's clinic and another region's reviewer are refused, and nothing is logged for them.
    for user in (far_clerk, world.other_reviewer):
        response = client_for(user).get("/api/v1/coverage/", params)
        assert response.status_code == 403 and response.json()["code"] == "outside_scope"
    assert PersonalDataAccess.objects.count() == before + 6
