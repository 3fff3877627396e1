"""Catalogue maintenance: a new version's diff before it is applied; removal deactivates and may terminate."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from enrollment.models import Application, AuditEntry, Disease, State
from interop import services
from interop.models import CatalogueImport
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from tests.interop.helpers import approved_enrollment, client_for


def entry_of(disease: Disease, **changes) -> dict:
    entry = {
        "code": disease.code,
        "name": disease.name,
        "type": disease.disease_type,
        "validity_months": disease.validity_months,
        "counts_toward_limit": disease.counts_toward_limit,
        "min_institution_level": disease.min_institution_level,
        "min_physician_title": disease.min_physician_title,
        "required_documents": disease.required_documents,
        "review_mode": disease.review_mode,
        "icd10_prefixes": disease.icd10_prefixes,
    }
    return {**entry, **changes}


def new_version(world) -> bytes:
    """M03900 renamed and re-timed, M00501 added, M07800 (renal, non-dialysis) left out."""
    diseases = [
        entry_of(world.hypertension, name="原发性高血压", validity_months=60),
        entry_of(world.diabetes),
        entry_of(world.coronary),
        entry_of(world.copd),
        entry_of(world.dialysis),
        {"code": "M00501", "name": "测试新增病种", "type": "12", "icd10_prefixes": ["B20"]},
    ]
    return json.dumps({"version": "2027.1", "diseases": diseases}, ensure_ascii=False).encode()


@pytest.fixture
def renal_cases(world):
    enrollment = approved_enrollment(world, disease=world.renal, icd="N18.4")
    from enrollment import services as enrollment_services

    pending = enrollment_services.application_submit(
        person=world.person(), disease=world.renal, treating_institution=world.county, actor=world.clerk
    )
    return enrollment, pending


def test_diff_shows_added_changed_removed_and_changes_nothing(world, renal_cases):
    record = services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.admin)
    diff = record.diff
    assert diff["version"] == "2027.1"
    assert diff["added"] == [{"code": "M00501", "name": "测试新增病种", "type": "12"}]
    assert diff["changed"] == [
        {
            "code": "M03900",
            "name": "高血压病",
            "fields": {"name": ["高血压病", "原发性高血压"], "validity_months": [36, 60]},
        }
    ]
    assert diff["removed"] == [
        {"code": "M07800", "name": world.renal.name, "enrollments": 1, "pending_applications": 1}
    ]
    assert diff["unchanged"] == 4
    world.hypertension.refresh_from_db()
    world.renal.refresh_from_db()
    assert world.hypertension.name == "高血压病" and world.renal.active
    assert not Disease.objects.filter(code="M00501").exists()


def test_apply_with_termination_deactivates_and_terminates_through_the_service(world, renal_cases):
    enrollment, pending = renal_cases
    record = services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.admin)
    result = services.catalogue_import_apply(import_id=record.pk, actor=world.admin, terminate_enrollments=True)
    assert (result["added"], result["changed"], result["deactivated"], result["terminated"]) == (1, 1, 1, 1)
    renal = Disease.objects.get(code="M07800")
    assert not renal.active and renal.catalogue_version == "2027.1"  # deactivated, not deleted
    assert Disease.objects.get(code="M03900").validity_months == 60
    assert Disease.objects.get(code="M00501").active
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.termination_reason) == (State.TERMINATED, "disease_removed")
    audit = AuditEntry.objects.filter(application=enrollment).order_by("-id").first()
    assert (audit.transition, audit.reason_code, audit.actor) == ("terminate", "disease_removed", world.admin)
    pending.refresh_from_db()
    assert pending.state == State.SUBMITTED  # not an enrollment: left for review, new filings are refused
    with pytest.raises(RuleViolation):
        services.catalogue_import_apply(import_id=record.pk, actor=world.admin)


def test_apply_without_termination_keeps_enrollments(world, renal_cases):
    enrollment, _pending = renal_cases
    record = services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.admin)
    result = services.catalogue_import_apply(import_id=record.pk, actor=world.admin)
    assert result["terminated"] == 0
    enrollment.refresh_from_db()
    assert enrollment.state == State.APPROVED
    assert not Disease.objects.get(code="M07800").active


def test_csv_catalogue(world):
    content = (
        "code,name,type,validity_months,icd10_prefixes,active,exclusive_with\n"
        f"M03900,{world.hypertension.name},11,36,I10;I11;I12;I13;I15,是,\n"
        "M00501,测试新增病种,12,0,B20,1,M03900\n"
    ).encode("gbk")
    record = services.catalogue_import_create(name="c.csv", content=content, actor=world.admin, version="2027.2")
    assert record.version == "2027.2"
    assert [item["code"] for item in record.diff["added"]] == ["M00501"]
    assert record.data["exclusive_pairs"] == [["M00501", "M03900"]]
    assert {item["code"] for item in record.diff["removed"]} == {"M01600", "M04600", "M05300", "M07803", "M07800"}


def test_invalid_catalogue_lists_every_error(world):
    bad = {"version": "x", "diseases": [{"code": "X1", "name": "a", "type": "11"}, {"code": "M00001", "type": "11"}]}
    with pytest.raises(InvalidInput) as caught:
        services.catalogue_import_create(name="c.json", content=json.dumps(bad).encode(), actor=world.admin)
    assert len(caught.value.details["errors"]) == 2
    assert CatalogueImport.objects.count() == 0


def test_only_admins_maintain_the_catalogue(world):
    with pytest.raises(NotPermitted):
        services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.officer)
    response = client_for(world.clerk).post(
        "/api/v1/catalogue-imports/", {"file": SimpleUploadedFile("c.json", new_version(world))}, format="multipart"
    )
    assert response.status_code == 403
    assert client_for(world.reviewer).get("/api/v1/catalogue-imports/").status_code == 403


def test_api_upload_diff_and_apply(world, renal_cases):
    enrollment, _pending = renal_cases
    client = client_for(world.admin)
    created = client.post(
        "/api/v1/catalogue-imports/", {"file": SimpleUploadedFile("c.json", new_version(world))}, format="multipart"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert [item["code"] for item in body["diff"]["removed"]] == ["M07800"] and body["applied_at"] is None
    applied = client.post(
        f"/api/v1/catalogue-imports/{body['id']}/apply/", {"terminate_enrollments": True}, format="json"
    )
    assert applied.status_code == 200 and applied.json()["result"]["terminated"] == 1
    enrollment.refresh_from_db()
    assert enrollment.state == State.TERMINATED


def test_command_dry_run_by_default_then_apply(world, renal_cases, tmp_path):
    enrollment, _pending = renal_cases
    path = tmp_path / "catalogue.json"
    path.write_bytes(new_version(world))
    out = io.StringIO()
    call_command("catalogue_update", str(path), stdout=out)
    text = out.getvalue()
    assert "+ M00501" in text and "~ M03900" in text and "- M07800" in text and "Dry run" in text
    assert Disease.objects.get(code="M07800").active
    out = io.StringIO()
    call_command("catalogue_update", str(path), "--apply", "--terminate-enrollments", stdout=out)
    assert "1 enrollments terminated" in out.getvalue()
    enrollment.refresh_from_db()
    assert enrollment.state == State.TERMINATED
    assert Application.objects.get(pk=enrollment.pk).termination_reason == "disease_removed"


def test_applying_the_same_version_again_finishes_the_terminations(world, renal_cases):
    enrollment, _pending = renal_cases
    first = services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.admin)
    services.catalogue_import_apply(import_id=first.pk, actor=world.admin)  # deactivated, not terminated
    again = services.catalogue_import_create(name="c.json", content=new_version(world), actor=world.admin)
    assert again.diff["removed"] == []  # already inactive
    result = services.catalogue_import_apply(import_id=again.pk, actor=world.admin, terminate_enrollments=True)
    assert result["terminated"] == 1
    enrollment.refresh_from_db()
    assert enrollment.termination_reason == "disease_removed"
