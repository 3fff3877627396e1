"""Who withdraws and resubmits an application (issue 18 item 11): the institution that filed it.

The applicant's request is held by the clinic that filed it; a treating hospital that did not file may
add documents and diagnose, but not withdraw (or resubmit) another clinic's filing. Administrators may.
Before the fix the service and the page let the treating institution's staff withdraw too, while
docs/api.md said "filing clinic".
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from enrollment import policies, services
from enrollment.models import Application, State
from kernel import roles
from kernel.errors import NotPermitted
from tests.conftest import pdf_upload
from tests.factories import staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def filed_elsewhere(world):
    """Filed by the township clinic, treated at the county hospital (world.clerk's institution)."""
    township_clerk = staff_user(roles.CLINIC_STAFF, institution=world.township)
    application = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=township_clerk
    )
    assert (application.filing_institution_id, application.treating_institution_id) == (
        world.township.pk,
        world.county.pk,
    )
    return township_clerk, application


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def api_post(user, path, body):
    return client_for(user).post(path, data=json.dumps(body), content_type="application/json")


def test_the_treating_hospital_may_not_withdraw_another_clinics_filing(world, filed_elsewhere):
    _township_clerk, application = filed_elsewhere
    response = api_post(world.clerk, f"/api/v1/applications/{application.pk}/withdraw/", {"reason": "x"})
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert Application.objects.get(pk=application.pk).state == State.SUBMITTED
    with pytest.raises(NotPermitted):
        services.application_withdraw(application_id=application.pk, actor=world.clerk, reason="x")


def test_the_page_does_not_offer_withdraw_to_the_treating_hospital(world, filed_elsewhere):
    township_clerk, application = filed_elsewhere
    url = reverse("application-action", args=[application.pk, "withdraw"])
    treating = client_for(world.clerk).get(reverse("application-detail", args=[application.pk]))
    assert treating.status_code == 200  # it sees the application it treats …
    assert "withdraw" not in treating.context["actions"]  # … but is not offered the withdrawal
    assert url not in treating.content.decode()
    refused = client_for(world.clerk).post(url, {"withdraw-confirm": "on", "withdraw-reason": "x"})
    assert refused.status_code == 403
    filing = client_for(township_clerk).get(reverse("application-detail", args=[application.pk]))
    assert "withdraw" in filing.context["actions"] and url in filing.content.decode()
    assert Application.objects.get(pk=application.pk).state == State.SUBMITTED


def test_the_treating_hospital_still_adds_documents_and_diagnoses(world, filed_elsewhere):
    _township_clerk, application = filed_elsewhere
    response = client_for(world.clerk).post(
        f"/api/v1/applications/{application.pk}/documents/", {"doc_type": "test_report", "file": pdf_upload("r.pdf")}
    )
    assert response.status_code == 201
    assert "diagnose" in policies.application_actions_for(world.physician_user, application)


def test_resubmitting_is_the_filing_institutions_too(world, filed_elsewhere):
    township_clerk, application = filed_elsewhere
    Application.objects.filter(pk=application.pk).update(state=State.RETURNED)  # fixture: as a reviewer returned it
    application.refresh_from_db()
    assert "resubmit" not in policies.application_actions_for(world.clerk, application)
    response = api_post(world.clerk, f"/api/v1/applications/{application.pk}/resubmit/", {"reason": "lab added"})
    assert response.status_code == 403
    assert "resubmit" in policies.application_actions_for(township_clerk, application)


@pytest.mark.parametrize("who", ["filing clerk", "admin"])
def test_the_filing_clinic_and_administrators_withdraw(world, filed_elsewhere, who):
    township_clerk, application = filed_elsewhere
    user = township_clerk if who == "filing clerk" else world.admin
    assert "withdraw" in policies.application_actions_for(user, application)
    response = api_post(user, f"/api/v1/applications/{application.pk}/withdraw/", {"reason": "申请人自愿撤回"})
    assert response.status_code == 200, response.content
    assert Application.objects.get(pk=application.pk).state == State.WITHDRAWN
