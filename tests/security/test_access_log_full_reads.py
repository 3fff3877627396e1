"""Every read of a full record is in the access log (issue 18 item 9, LOW).

The review found the log missed full-record reads: opening a diagnosis document, and exports carrying full
ID numbers (the national shape; the office list for administrators; the operator's command). Now each
writes ``PersonalDataAccess`` rows: one per document opened, one per person per export (in one bulk insert
per chunk of rows), the command's under the system user. Masked reads write none.
"""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from enrollment.models import AccessPurpose, PersonalDataAccess
from interop import selectors as interop_selectors
from interop import services as interop_services
from tests.interop.helpers import approved_enrollment, client_for

EXPORT_URL = "/api/v1/exports/enrollments/"


def web_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def consume(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def exported(world):
    """Three persons with covering enrollments this month; the first holds two (hypertension and diabetes)."""
    first = world.person()
    applications = [
        approved_enrollment(world, person=first),
        approved_enrollment(world, person=first, disease=world.diabetes, icd="E11"),
        approved_enrollment(world),
        approved_enrollment(world),
    ]
    return {
        "period": f"{timezone.localdate():%Y-%m}",
        "persons": {a.person_id for a in applications},
        "applications": applications,
    }


def access_rows(**filters) -> list[PersonalDataAccess]:
    return list(PersonalDataAccess.objects.filter(**filters).order_by("id"))


# ---------------------------------------------------------------------------
# Diagnosis documents and the application page
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["clerk", "physician_user", "reviewer", "admin"])
def test_opening_a_diagnosis_document_is_logged_for_whoever_opens_it(world, who):
    application = approved_enrollment(world)
    document = application.documents.get()
    user = getattr(world, who)
    response = web_client(user).get(reverse("document-download", args=[document.pk]))
    assert response.status_code == 200 and consume(response).startswith(b"%PDF")
    [row] = access_rows()
    assert (row.viewer, row.person, row.application, row.purpose) == (
        user,
        application.person,
        application,
        AccessPurpose.DOCUMENT_VIEW,
    )
    assert row.reason == f"document #{document.pk} (diagnosis_certificate)"
    web_client(user).get(reverse("document-download", args=[document.pk]))
    assert len(access_rows(purpose=AccessPurpose.DOCUMENT_VIEW)) == 2  # every opening


def test_a_document_outside_the_viewers_scope_is_404_and_not_logged(world):
    document = approved_enrollment(world).documents.get()
    assert web_client(world.other_clerk).get(reverse("document-download", args=[document.pk])).status_code == 404
    assert access_rows() == []


def test_the_application_page_logs_exactly_when_it_shows_the_full_number(world):
    application = approved_enrollment(world)
    number = application.person.id_number
    page = web_client(world.clerk).get(reverse("application-detail", args=[application.pk]))
    assert page.status_code == 200 and number in page.content.decode()
    [row] = access_rows()
    assert (row.viewer, row.application, row.purpose) == (world.clerk, application, AccessPurpose.APPLICATION_DETAIL)
    masked = web_client(world.reviewer).get(reverse("application-detail", args=[application.pk]))
    assert masked.status_code == 200 and number not in masked.content.decode()
    assert len(access_rows()) == 1  # the reviewer saw the masked number: nothing more
    api = client_for(world.admin).get(f"/api/v1/applications/{application.pk}/")
    assert api.json()["person_id_number"] == number
    assert access_rows()[-1].viewer == world.admin and access_rows()[-1].purpose == AccessPurpose.APPLICATION_DETAIL


# ---------------------------------------------------------------------------
# Exports with full ID numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("shape", ["national", "office"])
def test_an_administrators_export_logs_each_person_once(world, exported, shape, file_format):
    response = client_for(world.admin).get(
        EXPORT_URL, {"region": "530100", "period": exported["period"], "shape": shape, "file_format": file_format}
    )
    assert response.status_code == 200
    content = consume(response)
    assert exported["applications"][0].person.id_number.encode() in content or file_format == "xlsx"
    rows = access_rows()
    assert {row.person_id for row in rows} == exported["persons"] and len(rows) == 3  # one per person, not per row
    assert {(row.viewer, row.purpose, row.application) for row in rows} == {
        (world.admin, AccessPurpose.EXPORT_FULL_ID, None)
    }
    assert {row.reason for row in rows} == {
        f"enrollment export (api): shape={shape} region=530100 period={exported['period']} basis=decided"
    }


def test_a_masked_export_writes_no_access_row(world, exported):
    for file_format in ("csv", "xlsx"):
        response = client_for(world.reviewer).get(
            EXPORT_URL, {"region": "530100", "period": exported["period"], "file_format": file_format}
        )
        assert response.status_code == 200
        assert b"*" in consume(response) or file_format == "xlsx"
    assert access_rows() == []


@pytest.mark.parametrize("shape", ["national", "office"])
def test_the_operators_command_logs_under_the_system_user(world, exported, shape, tmp_path):
    output = tmp_path / "export.csv"
    call_command("export_enrollments", region="530100", period=exported["period"], shape=shape, output=str(output))
    rows = access_rows()
    assert {row.person_id for row in rows} == exported["persons"] and len(rows) == 3
    assert {row.viewer.username for row in rows} == {settings.SYSTEM_USERNAME}
    assert {row.reason for row in rows} == {
        f"enrollment export (operator command): shape={shape} region=530100 period={exported['period']} basis=decided"
    }
    call_command("export_enrollments", region="530100", period=exported["period"], shape=shape, stdout=io.StringIO())
    assert len(access_rows()) == 6  # each export is its own read


def test_access_rows_are_written_in_one_bulk_insert_per_chunk_before_the_chunk_goes_out(world, exported):
    request = interop_selectors.export_request(
        viewer=world.admin, region_code="530100", period=exported["period"], shape="national"
    )
    _header, rows = interop_services.export_enrollments(viewer=world.admin, request=request, chunk_size=2)
    assert access_rows() == []  # nothing is read or logged until the rows are taken
    first = next(rows)
    assert len(access_rows()) == 1  # the first chunk holds the first person's two enrollments: one person
    assert first[1] == exported["applications"][0].person.id_number
    with CaptureQueriesContext(connection) as queries:
        rest = list(rows)
    insert = 'INSERT INTO "enrollment_personaldataaccess"'
    inserts = [query for query in queries.captured_queries if query["sql"].startswith(insert)]
    assert len(rest) == 3 and len(inserts) == 1  # the second chunk: two new persons, one INSERT
    assert {row.person_id for row in access_rows()} == exported["persons"] and len(access_rows()) == 3
