"""REST API: auth, persons, applications, transitions, errors, idempotency and scoping."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import Application, AuditEntry, State
from kernel.models import IdempotencyRecord
from tests.conftest import pdf_upload
from tests.factories import synthetic_id_number


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def file_via_api(world, client=None, person=None, disease="M03900", **headers):
    person = person or world.person()
    client = client or client_for(world.clerk)
    return client.post(
        "/api/v1/applications/",
        {"id_number": person.id_number, "disease": disease, "treating_institution": world.county.code},
        format="json",
        **headers,
    )


def test_token_login_and_revocation(world):
    client = APIClient()
    bad = client.post("/api/v1/auth/token/", {"username": world.clerk.username, "password": "wrong"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "authentication_failed"
    response = client.post(
        "/api/v1/auth/token/", {"username": world.clerk.username, "password": "pw-for-tests-2026"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/applications/").status_code == 200
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert client.get("/api/v1/applications/").status_code == 401


def test_anonymous_is_refused_with_json_error(world):
    response = APIClient().get("/api/v1/applications/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_person_lookup_register_and_masking(world):
    client = client_for(world.clerk)
    number = synthetic_id_number(dt.date(1950, 7, 1), sex="2")
    missing = client.get("/api/v1/persons/", {"id_number": number})
    assert missing.status_code == 404
    # The factory moves the birth date on every 400 numbers made in the run: read it from the number.
    assert missing.json()["details"]["birth_date"] == f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    assert number[6:10] == "1950"
    created = client.post(
        "/api/v1/persons/",
        {"id_number": number, "name": "李娜", "insured_region": world.region.code, "insurance_type": "310"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["sex"] == "2"
    found = client.get("/api/v1/persons/", {"id_number": number.lower()})
    assert found.status_code == 200 and found.json()["id_number"] == number
    bad = client.get("/api/v1/persons/", {"id_number": number[:-1] + ("1" if number[-1] != "1" else "2")})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_id_number"


def test_person_register_refused_for_reviewers(world):
    response = client_for(world.reviewer).post(
        "/api/v1/persons/",
        {"id_number": synthetic_id_number(), "name": "x", "insured_region": world.region.code},
        format="json",
    )
    assert response.status_code == 403


def test_file_application_and_retrieve_with_timeline(world):
    response = file_via_api(world)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "submitted"
    assert body["timeline"][0]["transition"] == "submit"
    assert "*" in body["person_id_number"]
    detail = client_for(world.clerk).get(f"/api/v1/applications/{body['id']}/")
    assert detail.status_code == 200 and detail.json()["id"] == body["id"]


def test_list_masks_id_numbers_and_filters(world):
    person = world.person()
    file_via_api(world, person=person)
    file_via_api(world, person=person, disease="M01600")
    client = client_for(world.clerk)
    listing = client.get("/api/v1/applications/").json()
    assert listing["count"] == 2
    assert all(person.id_number not in str(row) for row in listing["results"])
    assert all(row["person_id_number"] == person.masked_id_number for row in listing["results"])
    assert client.get("/api/v1/applications/", {"disease": "M01600"}).json()["count"] == 1
    assert client.get("/api/v1/applications/", {"state": "diagnosed"}).json()["count"] == 0
    assert client.get("/api/v1/applications/", {"institution": world.county.code}).json()["count"] == 2
    today = dt.date.today().isoformat()
    assert client.get("/api/v1/applications/", {"filed_after": today}).json()["count"] >= 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "bogus"}, "state"),
        ({"filed_after": "2026-02-30"}, "filed_after"),
        ({"page_size": "-3"}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
    ],
)
def test_bad_query_parameters_give_400_with_message(world, params, field):
    response = client_for(world.clerk).get("/api/v1/applications/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["message"]


def test_enormous_page_size_is_capped(world):
    file_via_api(world)
    response = client_for(world.clerk).get("/api/v1/applications/", {"page_size": "100000000"})
    assert response.status_code == 200


def test_limit_reached_is_409_with_code_and_held_enrollments(world):
    person = world.person()
    first = file_via_api(world, person=person).json()["id"]
    second = file_via_api(world, person=person, disease="M01600").json()["id"]
    response = file_via_api(world, person=person, disease="M05300")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "limit_reached"
    assert body["details"]["held"] == [first, second]


def test_invalid_input_is_400(world):
    client = client_for(world.clerk)
    response = client.post(
        "/api/v1/applications/",
        {"id_number": "123", "disease": "M03900", "treating_institution": world.county.code},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_id_number"
    unknown = client.post(
        "/api/v1/applications/",
        {"id_number": synthetic_id_number(), "disease": "M03900", "treating_institution": world.county.code},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "person_not_found"
    bad_disease = file_via_api(world, disease="M00000")
    assert bad_disease.status_code == 400 and "disease" in bad_disease.json()["message"]
    malformed = client.post("/api/v1/applications/", data="{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.json()["code"] == "parse_error"
    wrong_type = client.post("/api/v1/applications/", data="x", content_type="text/plain")
    assert wrong_type.status_code == 415


def test_transition_actions(world):
    created = file_via_api(world).json()
    doctor = client_for(world.physician_user)
    diagnosed = doctor.post(
        f"/api/v1/applications/{created['id']}/diagnose/",
        {"icd10_code": "I10", "diagnosis_date": "2026-01-05", "certificate": pdf_upload()},
        format="multipart",
    )
    assert diagnosed.status_code == 200, diagnosed.json()
    assert diagnosed.json()["state"] == "diagnosed"
    assert diagnosed.json()["documents"][0]["doc_type"] == "diagnosis_certificate"
    again = doctor.post(
        f"/api/v1/applications/{created['id']}/diagnose/",
        {"icd10_code": "I10", "diagnosis_date": "2026-01-05"},
        format="multipart",
    )
    assert again.status_code == 409 and again.json()["code"] == "transition_not_allowed"
    clerk = client_for(world.clerk)
    forbidden = clerk.post(f"/api/v1/applications/{created['id']}/terminate/", {"reason": "death"}, format="json")
    assert forbidden.status_code == 409  # not approved yet: the state refuses first
    withdrawn = clerk.post(
        f"/api/v1/applications/{created['id']}/withdraw/", {"reason": "patient asked"}, format="json"
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert [e["transition"] for e in withdrawn.json()["timeline"]] == ["submit", "diagnose", "withdraw"]


def test_diagnose_rule_errors_via_api(world):
    created = file_via_api(world).json()
    response = client_for(world.physician_user).post(
        f"/api/v1/applications/{created['id']}/diagnose/",
        {"icd10_code": "E11", "diagnosis_date": "2026-01-05", "certificate": pdf_upload()},
        format="multipart",
    )
    assert response.status_code == 409 and response.json()["code"] == "diagnosis_mismatch"
    bad_date = client_for(world.physician_user).post(
        f"/api/v1/applications/{created['id']}/diagnose/",
        {"icd10_code": "I10", "diagnosis_date": "2026-02-30"},
        format="multipart",
    )
    assert bad_date.status_code == 400 and "diagnosis_date" in bad_date.json()["message"]


def test_terminate_via_api(world):
    person = world.person()
    application = services.application_submit(
        person=person, disease=world.dialysis, treating_institution=world.county, actor=world.clerk
    )
    services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code="N18.5",
        diagnosis_date=dt.date(2026, 1, 2),
        documents=[("diagnosis_certificate", pdf_upload())],
    )
    services.application_approve(application_id=application.pk, actor=world.officer, immediate=True)
    clerk = client_for(world.clerk).post(
        f"/api/v1/applications/{application.pk}/terminate/", {"reason": "death"}, format="json"
    )
    assert clerk.status_code == 403 and clerk.json()["code"] == "permission_denied"
    bad = client_for(world.reviewer).post(
        f"/api/v1/applications/{application.pk}/terminate/", {"reason": "nope"}, format="json"
    )
    assert bad.status_code == 400
    # the oversight corrections' own reasons are not given by hand
    for reason in ("recheck_failed", "objection_upheld"):
        refused = client_for(world.reviewer).post(
            f"/api/v1/applications/{application.pk}/terminate/", {"reason": reason}, format="json"
        )
        assert refused.status_code == 400 and "reason" in refused.content.decode()
    ok = client_for(world.reviewer).post(
        f"/api/v1/applications/{application.pk}/terminate/",
        {"reason": "death", "note": "death certificate seen"},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["state"] == "terminated"


def test_document_upload_checks(world):
    created = file_via_api(world).json()
    client = client_for(world.clerk)
    url = f"/api/v1/applications/{created['id']}/documents/"
    ok = client.post(url, {"doc_type": "test_report", "file": pdf_upload("lab.pdf")}, format="multipart")
    assert ok.status_code == 201 and ok.json()["original_name"] == "lab.pdf"
    fake = client.post(url, {"doc_type": "test_report", "file": pdf_upload("lab.pdf", b"GIF89a")}, format="multipart")
    assert fake.status_code == 400 and fake.json()["code"] == "invalid_document"
    empty = client.post(url, {"doc_type": "test_report", "file": pdf_upload("lab.pdf", b"")}, format="multipart")
    assert empty.status_code == 400
    wrong = client.post(url, {"doc_type": "selfie", "file": pdf_upload()}, format="multipart")
    assert wrong.status_code == 400
    assert Application.objects.get(pk=created["id"]).documents.count() == 1


# ---------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------


def test_idempotency_key_replays_first_response_and_never_files_twice(world):
    person = world.person()
    first = file_via_api(world, person=person, HTTP_IDEMPOTENCY_KEY="retry-123")
    second = file_via_api(world, person=person, HTTP_IDEMPOTENCY_KEY="retry-123")
    assert first.status_code == 201
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Application.objects.filter(person=person).count() == 1
    assert AuditEntry.objects.filter(application__person=person).count() == 1


def test_idempotency_key_with_different_body_is_refused(world):
    person = world.person()
    file_via_api(world, person=person, HTTP_IDEMPOTENCY_KEY="k1")
    other = file_via_api(world, person=person, disease="M01600", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert Application.objects.filter(person=person).count() == 1


def test_idempotency_replays_errors_too_and_keys_are_per_user(world):
    person = world.person()
    file_via_api(world, person=person)
    first = file_via_api(world, person=person, HTTP_IDEMPOTENCY_KEY="dup")
    assert first.status_code == 409
    again = file_via_api(world, person=person, HTTP_IDEMPOTENCY_KEY="dup")
    assert again.status_code == 409 and again.json() == first.json()
    from tests.factories import staff_user

    colleague = staff_user("clinic_staff", institution=world.county)
    other_user = file_via_api(world, client=client_for(colleague), HTTP_IDEMPOTENCY_KEY="dup")
    assert other_user.status_code == 201
    assert IdempotencyRecord.objects.filter(key="dup").count() == 2


def test_without_key_each_post_is_processed(world):
    person = world.person()
    assert file_via_api(world, person=person).status_code == 201
    assert file_via_api(world, person=person).status_code == 409


# ---------------------------------------------------------------------------
# Scoping (docs/design.md: Access and privacy): clinic A cannot read, act on or list clinic B's application
# ---------------------------------------------------------------------------


def test_other_clinic_cannot_read_list_or_act(world):
    created = file_via_api(world).json()
    other = client_for(world.other_clerk)
    assert other.get(f"/api/v1/applications/{created['id']}/").status_code == 404
    assert other.get("/api/v1/applications/").json()["count"] == 0
    for action, body in [("withdraw", {}), ("terminate", {"reason": "death"}), ("resubmit", {})]:
        response = other.post(f"/api/v1/applications/{created['id']}/{action}/", body, format="json")
        assert response.status_code == 404, action
        assert response.json()["code"] == "not_found"
    upload = other.post(
        f"/api/v1/applications/{created['id']}/documents/",
        {"doc_type": "test_report", "file": pdf_upload()},
        format="multipart",
    )
    assert upload.status_code == 404
    assert Application.objects.get(pk=created["id"]).state == State.SUBMITTED


def test_reviewer_scope_is_their_region(world):
    created = file_via_api(world).json()
    assert client_for(world.reviewer).get(f"/api/v1/applications/{created['id']}/").status_code == 200
    assert client_for(world.other_reviewer).get(f"/api/v1/applications/{created['id']}/").status_code == 404
    assert client_for(world.admin).get(f"/api/v1/applications/{created['id']}/").status_code == 200


def test_physician_sees_treating_institution_applications(world):
    created = file_via_api(world).json()
    assert client_for(world.physician_user).get(f"/api/v1/applications/{created['id']}/").status_code == 200


def test_list_query_count_does_not_grow_with_page_size(world):
    client = client_for(world.clerk)
    file_via_api(world)
    with CaptureQueriesContext(connection) as small:
        client.get("/api/v1/applications/")
    for _ in range(6):
        file_via_api(world)
    with CaptureQueriesContext(connection) as large:
        client.get("/api/v1/applications/")
    assert len(large) == len(small)


def test_detail_query_count_is_fixed(world):
    person = world.person()
    created = file_via_api(world, person=person).json()
    client = client_for(world.clerk)
    with CaptureQueriesContext(connection) as before:
        client.get(f"/api/v1/applications/{created['id']}/")
    for i in range(3):
        client.post(
            f"/api/v1/applications/{created['id']}/documents/",
            {"doc_type": "test_report", "file": pdf_upload(f"r{i}.pdf")},
            format="multipart",
        )
    with CaptureQueriesContext(connection) as after:
        client.get(f"/api/v1/applications/{created['id']}/")
    assert len(after) == len(before)


def test_catalogue_endpoints_and_schema(world):
    client = client_for(world.clerk)
    diseases = client.get("/api/v1/diseases/").json()
    assert any(d["code"] == "M07803" and d["exclusive_with"] == ["M07800"] for d in diseases)
    assert client.get("/api/v1/institutions/").json()["count"] >= 4
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/applications/" in schema.content
    assert APIClient().get("/api/docs/").status_code == 200
