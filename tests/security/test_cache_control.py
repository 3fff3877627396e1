"""No copy of personal data in a browser's or a proxy's cache (issue 18 item 11, part).

Before, API answers and logged-in pages carried no ``Cache-Control`` at all, so a shared counter PC's browser
(back button, disk cache) or a caching proxy could keep a person's record. Now every /api/ answer and every
answer to a logged-in user says ``Cache-Control: no-store`` and ``Pragma: no-cache`` — unless the view chose its
own caching; the schema and the bundled JavaScript stay cacheable.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from enrollment import services
from tests.conftest import pdf_upload


def assert_no_store(response) -> None:
    assert response["Cache-Control"] == "no-store", (response.status_code, response.get("Cache-Control"))
    assert response["Pragma"] == "no-cache"


@pytest.fixture
def application(world):
    return services.application_submit(
        person=world.person(),
        disease=world.hypertension,
        treating_institution=world.county,
        actor=world.clerk,
        documents=[("diagnosis_certificate", pdf_upload())],
    )


def test_api_answers_are_not_stored(world, application):
    client = APIClient()
    client.force_authenticate(world.clerk)
    person = application.person
    for response in (
        client.get("/api/v1/applications/"),
        client.get(f"/api/v1/applications/{application.pk}/"),
        client.post("/api/v1/persons/lookup/", {"id_number": person.id_number}, format="json"),
        client.get("/api/v1/persons/", {"id_number": person.id_number}),
        client.post("/api/v1/coverage/", {"id_number": person.id_number, "disease": "M03900"}, format="json"),
        client.get("/api/v1/applications/999999/"),  # errors too
        APIClient().get("/api/v1/applications/"),  # and the refusal of an anonymous caller
    ):
        assert response.status_code < 500
        assert_no_store(response)


def test_logged_in_pages_are_not_stored(world, application):
    client = Client()
    client.force_login(world.clerk)
    document = application.documents.get()
    for path in ("/", "/applications/", f"/applications/{application.pk}/", f"/documents/{document.pk}/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_no_store(response)


def test_what_holds_no_personal_data_stays_cacheable(world):
    client = Client()
    client.force_login(world.clerk)
    plotly = client.get("/assets/plotly.min.js")
    assert plotly["Cache-Control"] == "public, max-age=86400" and "Pragma" not in plotly
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and "no-store" not in schema.get("Cache-Control", "")
    login = Client().get("/login/")  # Django's own never_cache: kept as it is
    assert "no-store" in login["Cache-Control"] and "private" in login["Cache-Control"]
