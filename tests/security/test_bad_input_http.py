"""Bad input at the HTTP level: every case is a 4xx with a JSON message a clerk can act on, never a 500,
and nothing is stored. (Service-level upload checks live in tests/enrollment/test_services.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import Application, Document
from tests.conftest import PDF_BYTES, pdf_upload


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def application(world):
    return services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )


def stored_files() -> list[Path]:
    root = Path(django_settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_clear_400(response, code: str | None = None) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["message"] and isinstance(body["details"], dict)
    if code:
        assert body["code"] == code
    return body


@pytest.mark.parametrize(
    ("name", "content", "content_type", "expect"),
    [
        ("scan.exe", b"MZ\x90\x00" + b"\x00" * 100, "application/octet-stream", "PDF, JPEG or PNG"),
        ("scan.pdf", b"", "application/pdf", "empty"),
        ("scan.pdf", b"GIF89a" + b"\x00" * 100, "application/pdf", "does not contain"),
        ("scan.png", PDF_BYTES, "image/png", "does not contain"),
        ("x" * 240 + ".pdf", PDF_BYTES, "application/pdf", "longer than"),
        ("scan.pdf", b"%PDF-" + b"0" * 4096, "application/pdf", "limit"),
    ],
    ids=["wrong-type", "empty", "fake-pdf", "pdf-named-png", "huge-filename", "oversized"],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(
    world, application, settings, name, content, content_type, expect
):
    settings.DOCUMENT_MAX_BYTES = 2048
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    response = client_for(world.clerk).post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"doc_type": "test_report", "file": upload},
        format="multipart",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    body = assert_clear_400(response)
    assert body["code"] in {"invalid_document", "invalid"}
    assert expect in body["message"]
    assert not Document.objects.exists()
    assert stored_files() == []


def test_a_refused_diagnosis_upload_leaves_no_file(world, application):
    response = client_for(world.physician_user).post(
        f"/api/v1/applications/{application.pk}/diagnose/",
        {"icd10_code": "Z99.9", "diagnosis_date": "2026-01-05", "certificate": pdf_upload()},
        format="multipart",
    )
    assert response.status_code == 409 and response.json()["code"] == "diagnosis_mismatch"
    assert not Document.objects.exists() and stored_files() == []


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01", "26-1-1", "", "tomorrow"])
def test_impossible_dates_in_bodies_are_400(world, application, date):
    response = client_for(world.physician_user).post(
        f"/api/v1/applications/{application.pk}/diagnose/",
        {"icd10_code": "I10", "diagnosis_date": date},
        format="json",
    )
    assert_clear_400(response, "invalid")


def test_future_diagnosis_date_is_400(world, application):
    response = client_for(world.physician_user).post(
        f"/api/v1/applications/{application.pk}/diagnose/",
        {"icd10_code": "I10", "diagnosis_date": "2999-01-01", "certificate": pdf_upload()},
        format="multipart",
    )
    assert_clear_400(response)


@pytest.mark.parametrize(
    "params",
    [{"page": "-1"}, {"page": "0"}, {"page": "abc"}, {"page": "99999999999999999999"}, {"page_size": "0"}],
)
def test_bad_pages_are_4xx_json(world, application, params):
    response = client_for(world.clerk).get("/api/v1/applications/", params)
    assert response.status_code in (400, 404)
    assert response.json()["code"] in {"invalid", "not_found"}


@pytest.mark.parametrize("count", [-1, 0, 201, "many", None])
def test_negative_or_silly_claim_counts_are_400(world, count):
    response = client_for(world.reviewer).post("/api/v1/queue/claim/", {"count": count}, format="json")
    assert_clear_400(response)


@pytest.mark.parametrize("limit", ["-5", "0", "1e9", "x"])
def test_queue_limits_are_400(world, limit):
    assert_clear_400(client_for(world.reviewer).get("/api/v1/queue/", {"limit": limit}))


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2, 3]", "application/json", 400),
        ('"just a string"', "application/json", 400),
        ("null", "application/json", 400),
        ("<xml/>", "application/xml", 415),
        ("a=b", "text/plain", 415),
    ],
)
def test_malformed_bodies_and_wrong_content_types(world, body, content_type, status):
    response = client_for(world.clerk).post("/api/v1/applications/", data=body, content_type=content_type)
    assert response.status_code == status, response.content
    assert response.json()["message"]


def test_a_body_larger_than_the_upload_limit_is_refused_cleanly(world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    big = '{"id_number": "' + "1" * 4096 + '"}'
    response = client_for(world.clerk).post("/api/v1/applications/", data=big, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")


def test_unknown_api_address_is_json_404(world):
    response = client_for(world.clerk).get("/api/v1/applications/1.5/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client_for(world.clerk).get("/api/v1/no-such-thing/").json()["code"] == "not_found"


@pytest.mark.parametrize("bad_id", ["abc", "1,2", "-1", "0", "99999999999999999999"])
def test_malformed_object_ids_are_404_not_500(world, bad_id):
    client = client_for(world.admin)
    assert client.get(f"/api/v1/applications/{bad_id}/").status_code == 404
    response = client.post(f"/api/v1/applications/{bad_id}/withdraw/", {}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# ---------------------------------------------------------------------------
# Hostile input (issue 18 item 5): each of these was a 500 before — RecursionError, PostgreSQL's DataError on a
# NUL, year 10000 — and is now a 400 in the API's error format, naming the field.
# ---------------------------------------------------------------------------


def assert_names_field(response, field: str, code: str = "invalid") -> dict:
    body = assert_clear_400(response, code)
    assert body["details"]["field"] == field, body
    return body


@pytest.mark.parametrize("depth", [100_000, 1_000, 33])
def test_deeply_nested_json_is_400_not_a_recursion_error(world, depth):
    body = '{"id_number": ' + "[" * depth + "]" * depth + ', "disease": "M03900"}'
    response = client_for(world.clerk).post("/api/v1/applications/", data=body, content_type="application/json")
    assert_clear_400(response, "parse_error")
    assert "nested" in response.json()["message"] or "嵌套" in response.json()["message"]


def test_json_nested_within_the_limit_is_answered_by_the_view(world):
    body = '{"id_number": ' + "[" * 30 + "]" * 30 + ', "disease": "M03900"}'
    response = client_for(world.clerk).post("/api/v1/applications/", data=body, content_type="application/json")
    assert_clear_400(response, "invalid")  # the serializer's "not a valid string", not the depth limit


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id_number": "53012419\u00006005170031", "disease": "M03900", "treating_institution": "x"}, "id_number"),
        (
            {"id_number": "530124196005170031", "disease": "M03900", "treating_institution": "\u0000"},
            "treating_institution",
        ),
        ({"id_number": "530124196005170031", "disease\u0000": "M03900"}, "disease\\0"),
        ({"id_number": ["530124196005170031", {"nested": "a\u0000b"}]}, "id_number[1].nested"),
    ],
    ids=["value", "code-field", "key", "nested"],
)
def test_nul_in_a_json_body_is_400_naming_the_field(world, body, field):
    response = client_for(world.clerk).post("/api/v1/applications/", body, format="json")
    assert_names_field(response, field)
    assert not Application.objects.exists()


def test_nul_in_the_access_reason_is_400_and_nothing_is_logged(world, application):
    from enrollment.models import PersonalDataAccess

    client = client_for(world.clerk)
    number = application.person.id_number
    assert_names_field(client.get("/api/v1/persons/", {"id_number": number, "reason": "audit\x00"}), "reason")
    assert_names_field(client.get(f"/api/v1/applications/{application.pk}/", {"reason": "\x00"}), "reason")
    lookup = client.post("/api/v1/persons/lookup/", {"id_number": number, "reason": "a\x00b"}, format="json")
    assert_names_field(lookup, "reason")
    assert not PersonalDataAccess.objects.exists()


def test_nul_in_a_multipart_field_is_400(world, application):
    response = client_for(world.clerk).post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"doc_type": "test_report\x00", "file": pdf_upload()},
        format="multipart",
    )
    assert_names_field(response, "doc_type")
    assert not Document.objects.exists() and stored_files() == []


def test_nul_in_an_upload_file_name_never_reaches_the_database(world, application):
    response = client_for(world.clerk).post(
        f"/api/v1/applications/{application.pk}/documents/",
        {"doc_type": "test_report", "file": pdf_upload(name="scan\x00.pdf")},
        format="multipart",
    )
    # Django's multipart parser drops unprintable characters from file names: stored as "scan.pdf".
    assert response.status_code == 201, response.content
    assert Document.objects.get().original_name == "scan.pdf"


def test_nul_in_a_header_or_the_path_is_400(world):
    client = client_for(world.clerk)
    headed = client.post("/api/v1/applications/", {}, format="json", HTTP_IDEMPOTENCY_KEY="key\x00")
    assert_names_field(headed, "Idempotency-Key")
    assert_names_field(client.get("/api/v1/diseases/M03%00/"), "path")
    assert_names_field(client.get("/api/v1/institutions/%00/"), "path")


@pytest.mark.parametrize("period", ["9999-12", "0000-01", "10000-01"])
def test_an_export_period_out_of_range_is_400(world, period):
    response = client_for(world.admin).get(
        "/api/v1/exports/enrollments/", {"region": world.region.code, "period": period}
    )
    details = assert_clear_400(response, "invalid")["details"]
    assert details.get("field") == "period" or "period" in details, details


def test_period_bounds_reach_the_last_representable_month():
    import datetime as dt

    from interop.selectors import period_bounds
    from kernel.errors import InvalidInput

    assert period_bounds("9999-11") == (dt.date(9999, 11, 1), dt.date(9999, 12, 1))
    with pytest.raises(InvalidInput) as refused:
        period_bounds("9999-12")
    assert refused.value.details == {"field": "period"}


def test_web_pages_answer_nul_with_400_not_500(world):
    from django.test import Client

    client = Client()
    client.force_login(world.clerk)
    filing = client.post(
        "/applications/new/",
        {"id_number": "530124\x00", "disease": world.hypertension.pk, "treating_institution": world.county.pk},
    )
    assert filing.status_code == 400 and b"NUL" in filing.content
    assert client.get("/applications/", {"state": "submitted\x00"}).status_code == 400
    check = client.post("/applications/new/check.json", {"id_number": "\x00", "disease": world.hypertension.pk})
    assert check.status_code == 400
    assert Client().post("/login/", {"username": "clerk\x00", "password": "x"}).status_code == 400
    assert not Application.objects.exists()


def test_without_the_middleware_django_forms_still_refuse_nul(world, settings):
    """Defence in depth, and what the issue asked to verify: Django's CharField refuses NUL (a form error), and a
    ModelChoiceField looked up by pk never sends the text to the database."""
    from django.test import Client

    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "kernel.input_guard.RejectNulInputMiddleware"]
    client = Client()
    client.force_login(world.clerk)
    response = client.post(
        "/applications/new/",
        {
            "id_number": "530124\x00",
            "name": "\x00",
            "insured_region": "1\x00",
            "disease": f"{world.hypertension.pk}\x00",
            "treating_institution": "\x00",
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert {"id_number", "disease", "treating_institution"} <= set(form.errors)
    assert not Application.objects.exists()


def test_a_catalogue_file_nested_too_deeply_is_400(world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    deep = b'{"version": "9", "diseases": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    response = client_for(world.admin).post(
        "/api/v1/catalogue-imports/",
        {"file": SimpleUploadedFile("catalogue.json", deep, content_type="application/json")},
        format="multipart",
    )
    assert_clear_400(response, "invalid_catalogue")
