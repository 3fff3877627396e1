"""Exports: the office's list and the national platform's filing shape, streamed.

docs/design.md: Rosters and exports.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.db import transaction
from django.http import FileResponse, StreamingHttpResponse
from openpyxl import load_workbook

from enrollment import services as enrollment_services
from enrollment.models import TerminationReason
from enrollment.periods import first_of_next_month
from interop.selectors import NATIONAL_FIELDS
from tests.conftest import pdf_upload
from tests.interop.helpers import approved_enrollment, client_for

URL = "/api/v1/exports/enrollments/"


def read_csv(response) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse), type(response)
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


@pytest.fixture
def enrollments(world, today):
    person = world.person(phone="13800001234", insurance_number="P5301000001")
    first = approved_enrollment(world, person=person)
    second = approved_enrollment(world)
    ended = approved_enrollment(world)
    enrollment_services.application_terminate(
        application_id=ended.pk, actor=world.reviewer, reason=TerminationReason.DEATH
    )
    with transaction.atomic():
        locked = enrollment_services.lock_application(second.pk)
        enrollment_services.run_transition(
            application=locked, name="mark_expiring", actor=enrollment_services.get_system_user()
        )
    return {"first": first, "second": second, "ended": ended, "period": f"{today:%Y-%m}"}


def test_national_shape_field_by_field(world, enrollments):
    first = enrollments["first"]
    first.refresh_from_db()
    person = first.person
    response = client_for(world.admin).get(
        URL, {"region": "530100", "period": enrollments["period"], "shape": "national"}
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith(f'enrollments-530100-{enrollments["period"]}-national.csv"')
    rows = read_csv(response)
    assert list(rows[0].keys()) == list(NATIONAL_FIELDS)
    by_certno = {row["certno"]: row for row in rows}
    assert len(rows) == 2  # approved + expiring; the terminated one is not exported
    row = by_certno[person.id_number]
    assert row["psn_no"] == "P5301000001"
    assert row["certno"] == person.id_number  # in full: the platform identifies people by it
    assert row["psn_name"] == person.name
    assert row["gend"] == person.sex in ("1", "2")
    assert row["brdy"] == person.birth_date.isoformat()
    assert row["tel"] == "13800001234"
    assert row["insutype"] == "390"
    assert row["insu_admdvs"] == "530100"
    assert row["opsp_dise_code"] == "M03900"
    assert row["opsp_dise_name"] == "高血压病"
    assert row["ide_fixmedins_no"] == world.county.code  # the diagnosing physician's institution
    assert row["hosp_ide_date"] == "2026-01-05"
    assert row["diag_dr_codg"] == world.physician.licence_number
    assert row["begndate"] == first.valid_from.isoformat()
    assert row["enddate"] == first.valid_until.isoformat()


def test_office_export_masks_id_numbers_for_reviewers_not_admins(world, enrollments):
    query = {"region": "530100", "period": enrollments["period"]}
    reviewer_rows = read_csv(client_for(world.reviewer).get(URL, query))
    admin_rows = read_csv(client_for(world.admin).get(URL, query))
    assert {row["state"] for row in reviewer_rows} == {"approved", "expiring"}
    assert len(reviewer_rows) == len(admin_rows) == 2
    full = {row["application"]: row["id_number"] for row in admin_rows}
    for row in reviewer_rows:
        assert "*" in row["id_number"] and row["id_number"] != full[row["application"]]
        assert row["id_number"][-4:] == full[row["application"]][-4:]


def test_period_and_basis(world, enrollments, today):
    next_month = f"{first_of_next_month(today):%Y-%m}"
    decided = read_csv(client_for(world.admin).get(URL, {"region": "530100", "period": next_month}))
    assert decided == []  # approved this month, not next
    covering = read_csv(
        client_for(world.admin).get(URL, {"region": "530000", "period": next_month, "basis": "covering"})
    )
    assert len(covering) == 2  # still valid next month; the province includes the city
    assert read_csv(client_for(world.admin).get(URL, {"region": "530300", "period": enrollments["period"]})) == []
    bad = client_for(world.admin).get(URL, {"region": "530100", "period": "2026-13"})
    assert bad.status_code == 400 and bad.json()["details"] == {"field": "period"}


def test_xlsx_export_is_streamed_from_a_write_only_file(world, enrollments):
    response = client_for(world.admin).get(
        URL, {"region": "530100", "period": enrollments["period"], "shape": "national", "file_format": "xlsx"}
    )
    assert isinstance(response, FileResponse) and response.streaming
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == NATIONAL_FIELDS and len(values) == 3
    assert enrollments["first"].person.id_number in {row[1] for row in values[1:]}


@pytest.mark.parametrize(
    "who, query, status",
    [
        ("clerk", {}, 403),
        ("officer", {}, 403),
        ("physician_user", {}, 403),
        ("reviewer", {"shape": "national"}, 403),
        ("other_reviewer", {}, 403),
    ],
)
def test_who_may_export(world, enrollments, who, query, status):
    response = client_for(getattr(world, who)).get(URL, {"region": "530100", "period": enrollments["period"], **query})
    assert response.status_code == status and response.json()["code"] == "permission_denied"


def test_other_regions_reviewer_gets_nothing_of_this_region(world, enrollments):
    rows = read_csv(client_for(world.other_reviewer).get(URL, {"region": "530300", "period": enrollments["period"]}))
    assert rows == []


def test_anonymous_is_refused(world, enrollments):
    from rest_framework.test import APIClient

    assert APIClient().get(URL, {"region": "530100", "period": enrollments["period"]}).status_code in (401, 403)


def test_export_command_writes_the_national_shape(world, enrollments, tmp_path):
    output = tmp_path / "national.csv"
    call_command(
        "export_enrollments", region="530100", period=enrollments["period"], shape="national", output=str(output)
    )
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 2 and list(rows[0]) == list(NATIONAL_FIELDS)
    xlsx = tmp_path / "office.xlsx"
    call_command("export_enrollments", region="530100", period=enrollments["period"], output=str(xlsx))
    values = list(load_workbook(xlsx, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert values[0][0] == "application" and len(values) == 3


def test_national_shape_long_term_enrollment_has_the_platforms_open_end(world, today):
    """A long-term enrollment (dialysis: validity 0, no valid_until) is exported with 2099-12-31, the end the
    platform's 2503 interface takes for 长期 (docs/platform.md), never an empty date."""
    from reviews import services as review_services

    application = enrollment_services.application_submit(
        person=world.person(), disease=world.dialysis, treating_institution=world.county, actor=world.clerk
    )
    enrollment_services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code="N18.5",
        diagnosis_date=today,
        documents=[("diagnosis_certificate", pdf_upload())],
    )
    approved = review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)
    assert approved.valid_until is None
    response = client_for(world.admin).get(URL, {"region": "530100", "period": f"{today:%Y-%m}", "shape": "national"})
    (row,) = [r for r in read_csv(response) if r["opsp_dise_code"] == "M07803"]
    assert row["enddate"] == "2099-12-31"
