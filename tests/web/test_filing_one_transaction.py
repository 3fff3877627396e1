"""The filing page registers or corrects the person and files the application in one transaction (issue 14):
before, person_register and application_submit were two transactions, so a refused filing left the person
changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from enrollment import services
from enrollment.models import Application, Person, PersonAuditEntry
from kernel.errors import InvalidInput
from tests.factories import synthetic_id_number
from tests.web.conftest import file_application
from tests.web.test_views import _filing_data

pytestmark = pytest.mark.django_db


def test_a_refused_filing_leaves_the_persons_correction_undone(world: Any, client_for: Any) -> None:
    person = world.person(name="老病人", phone="13900000000")
    for disease in (world.diabetes, world.copd):
        file_application(world, person=person, disease=disease)  # the clerk's clinic holds the person's filings
    audit_before = PersonAuditEntry.objects.filter(person=person).count()
    response = client_for(world.clerk).post(
        reverse("application-file"), _filing_data(world, id_number=person.id_number, phone="13700000000")
    )
    assert response.status_code == 200
    assert "already holds 2 of 2" in " ".join(response.context["form"].non_field_errors())
    person.refresh_from_db()
    assert person.phone == "13900000000"
    assert PersonAuditEntry.objects.filter(person=person).count() == audit_before
    assert not Application.objects.filter(disease=world.hypertension).exists()


def test_an_accepted_filing_keeps_the_persons_correction(world: Any, client_for: Any) -> None:
    person = world.person(name="老病人", phone="13900000000")
    file_application(world, person=person, disease=world.diabetes)
    response = client_for(world.clerk).post(
        reverse("application-file"), _filing_data(world, id_number=person.id_number, phone="13700000000")
    )
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.phone == "13700000000"
    assert PersonAuditEntry.objects.filter(person=person, action="person_changed").count() == 1


def test_a_new_person_is_not_registered_when_the_filing_is_refused(world: Any) -> None:
    number = synthetic_id_number()
    not_a_pdf = SimpleUploadedFile("certificate.pdf", b"MZ\x90\x00 not a document", content_type="application/pdf")
    with pytest.raises(InvalidInput):
        services.application_file_with_person(
            person=None,
            person_details=services.PersonDetails(id_number=number, name="新病人", insured_region=world.region),
            disease=world.hypertension,
            treating_institution=world.county,
            actor=world.clerk,
            documents=[("diagnosis_certificate", not_a_pdf)],
        )
    assert not Person.objects.filter(id_number=number).exists()
    application = services.application_file_with_person(
        person=None,
        person_details=services.PersonDetails(id_number=number, name="新病人", insured_region=world.region),
        disease=world.hypertension,
        treating_institution=world.county,
        actor=world.clerk,
    )
    assert application.person.id_number == number and application.filed_by == world.clerk
