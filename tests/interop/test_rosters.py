"""Roster import: the per-row dry run, the commit, file formats, the worklist, the API.

docs/design.md: Rosters and exports.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import load_workbook

from enrollment import services as enrollment_services
from enrollment.idnumbers import make_id_number, parse_id_number
from enrollment.models import Application, AuditEntry, InsuranceType, Person, State
from interop import services
from interop.models import AssistedFiling, FilingState, ImportState, RosterImport, RowAction, RowStatus
from kernel.errors import InvalidInput
from tests.factories import synthetic_id_number
from tests.interop.helpers import EN_HEADER, approved_enrollment, client_for, csv_bytes, xlsx_bytes


def run_import(content: bytes, actor, name: str = "roster.csv", commit: bool = False) -> RosterImport:
    roster = services.roster_import_create(name=name, content=content, actor=actor, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    if commit:
        services.roster_import_request_commit(import_id=roster.pk, actor=actor, queue=False)
        roster = services.roster_import_run(import_id=roster.pk)
    return roster


def entries(roster: RosterImport) -> dict[tuple[int, str], tuple[str, str]]:
    return {(r.line, r.declared): (r.status, r.reason_code) for r in roster.rows.all()}


def bad_checksum(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


@pytest.fixture
def roster_case(world):
    """A roster with every kind of row; returns (content, facts)."""
    enrolled = world.person()
    approved_enrollment(world, person=enrolled)
    at_limit = world.person()
    for disease in (world.hypertension, world.diabetes):
        enrollment_services.application_submit(
            person=at_limit, disease=disease, treating_institution=world.county, actor=world.clerk
        )
    on_dialysis = world.person()
    enrollment_services.application_submit(
        person=on_dialysis, disease=world.dialysis, treating_institution=world.county, actor=world.clerk
    )
    employee = world.person(insurance_type=InsuranceType.EMPLOYEE, insurance_number="E-0042", phone="13900000000")
    new = [synthetic_id_number() for _ in range(8)]
    rows = [
        [new[0], "甲", "530100", "13800000001", "监测对象", "M03900"],  # 2 eligible by code
        [bad_checksum(new[1]), "乙", "530100", "", "", "M03900"],  # 3 bad checksum
        [new[2], "丙", "530100", "", "低保", "M99999"],  # 4 unknown disease code
        [new[3], "丁", "999999", "", "", "M03900"],  # 5 unknown region
        [new[0], "甲", "530100", "", "", "M03900"],  # 6 duplicate of line 2
        [enrolled.id_number, enrolled.name, "530100", "", "", "高血压病"],  # 7 already enrolled (by name)
        [at_limit.id_number, at_limit.name, "530100", "", "", "冠心病"],  # 8 would exceed the limit
        [new[4], "戊", "530100", "", "脱贫人口", "E11.9;I10"],  # 9 two eligible by ICD-10
        [new[5], "己", "530100", "", "", "N18.5"],  # 10 ICD-10 fits two diseases
        [new[6], "庚", "530100", "", "特困", ""],  # 11 no condition: valid
        [new[7], "辛", "530100", "", "富人", "M03900"],  # 12 unknown support category
        [synthetic_id_number(), "", "530100", "", "", "M03900"],  # 13 missing name
        [on_dialysis.id_number, on_dialysis.name, "530100", "", "", "M07800"],  # 14 mutually exclusive
        [synthetic_id_number(), "壬", "530100", "", "", "M03900、M01600、M04600"],  # 15 third is over the limit
        [employee.id_number, employee.name, "530100", "", "", "M05300"],  # 16 existing person, eligible
        [synthetic_id_number(), "癸", "530300", "", "", "M03900"],  # 17 outside the officer's region
        ["", "子", "530100", "", "", "M03900"],  # 18 no ID number
    ]
    return csv_bytes(rows), {"new": new, "employee": employee, "at_limit": at_limit}


EXPECTED = {
    (2, "M03900"): (RowStatus.ELIGIBLE, ""),
    (3, "M03900"): (RowStatus.INVALID, "invalid_id_number"),
    (4, "M99999"): (RowStatus.INVALID, "unknown_disease"),
    (5, "M03900"): (RowStatus.INVALID, "unknown_region"),
    (6, "M03900"): (RowStatus.INVALID, "duplicate_row"),
    (7, "高血压病"): (RowStatus.ALREADY_ENROLLED, "duplicate_disease"),
    (8, "冠心病"): (RowStatus.LIMIT_EXCEEDED, "limit_reached"),
    (9, "E11.9"): (RowStatus.ELIGIBLE, ""),
    (9, "I10"): (RowStatus.ELIGIBLE, ""),
    (10, "N18.5"): (RowStatus.INVALID, "ambiguous_disease"),
    (11, ""): (RowStatus.VALID, "no_condition"),
    (12, "M03900"): (RowStatus.INVALID, "unknown_support_category"),
    (13, "M03900"): (RowStatus.INVALID, "missing_name"),
    (14, "M07800"): (RowStatus.NOT_ELIGIBLE, "mutually_exclusive"),
    (15, "M03900"): (RowStatus.ELIGIBLE, ""),
    (15, "M01600"): (RowStatus.ELIGIBLE, ""),
    (15, "M04600"): (RowStatus.LIMIT_EXCEEDED, "limit_reached"),
    (16, "M05300"): (RowStatus.ELIGIBLE, ""),
    (17, "M03900"): (RowStatus.INVALID, "region_out_of_scope"),
    (18, "M03900"): (RowStatus.INVALID, "invalid_id_number"),
}


def snapshot() -> tuple[int, int, int, int]:
    return (
        Person.objects.count(),
        Application.objects.count(),
        AuditEntry.objects.count(),
        AssistedFiling.objects.count(),
    )


def test_dry_run_reports_every_kind_of_row_and_writes_nothing(world, roster_case):
    content, facts = roster_case
    before = snapshot()
    roster = run_import(content, world.officer)
    assert roster.state == ImportState.VALIDATED and roster.progress == 100
    assert entries(roster) == EXPECTED
    assert snapshot() == before
    assert roster.counts["lines"] == 17
    assert roster.counts["by_status"][RowStatus.ELIGIBLE] == 6
    assert sum(roster.counts["by_status"].values()) == roster.counts["entries"] == len(EXPECTED)
    assert set(roster.rows.values_list("action", flat=True)) == {RowAction.NOT_WRITTEN}
    # The refusal carries the ID-number parser's own message (whatever the language).
    with pytest.raises(InvalidInput) as caught:
        parse_id_number(bad_checksum(facts["new"][1]))
    assert roster.rows.get(line=3).message == str(caught.value.message)


def test_commit_registers_persons_fills_the_worklist_and_accounts_for_every_line(world, roster_case):
    content, facts = roster_case
    persons_before = Person.objects.count()
    applications_before = Application.objects.count()
    roster = run_import(content, world.officer, commit=True)
    assert roster.state == ImportState.COMMITTED
    assert bytes(roster.content) == b""  # the uploaded file is not kept once committed
    assert set(roster.rows.values_list("line", flat=True)) == set(range(2, 19))
    assert entries(roster) == EXPECTED
    assert roster.counts["by_action"] == {
        # Every invalid row: lines 3, 5, 12, 13, 17, 18 (person data), 4 and 10 (the only condition is
        # unknown or ambiguous), 6 (a duplicate of line 2).
        RowAction.NOT_WRITTEN: 9,
        RowAction.PERSON_REGISTERED: 5,
        RowAction.FILING_CREATED: 6,
        RowAction.FILING_EXISTS: 0,
    }
    actions = {(r.line, r.declared): r.action for r in roster.rows.all()}
    for key, (status, _code) in EXPECTED.items():
        if status == RowStatus.INVALID:
            assert actions[key] == RowAction.NOT_WRITTEN, key
        elif status == RowStatus.ELIGIBLE:
            assert actions[key] == RowAction.FILING_CREATED, key
        else:
            assert actions[key] == RowAction.PERSON_REGISTERED, key
    # New persons: lines 2, 9, 11, 15 (four); lines 4 and 10 declare nothing usable and are not
    # registered; existing persons were updated, not duplicated.
    assert Person.objects.count() == persons_before + 4
    assert not Person.objects.filter(id_number__in=[facts["new"][2], facts["new"][5]]).exists()
    assert Application.objects.count() == applications_before
    filings = AssistedFiling.objects.filter(state=FilingState.OPEN)
    assert filings.count() == 6
    assert set(filings.values_list("institution", flat=True)) == {world.county.pk}
    assert set(filings.values_list("disease__code", "roster_line")) == {
        ("M03900", 2),
        ("M01600", 9),
        ("M03900", 9),
        ("M03900", 15),
        ("M01600", 15),
        ("M05300", 16),
    }
    first = Person.objects.get(id_number=facts["new"][0])
    assert (first.name, first.phone, first.support_categories) == ("甲", "13800000001", ["monitored"])
    employee = Person.objects.get(pk=facts["employee"].pk)
    assert (employee.insurance_type, employee.insurance_number, employee.phone) == ("310", "E-0042", "13900000000")


def test_commit_twice_and_a_second_import_do_not_duplicate_the_worklist(world):
    number = synthetic_id_number()
    content = csv_bytes([[number, "甲", "530100", "", "", "M03900"]])
    first = run_import(content, world.admin, commit=True)
    assert services.roster_import_run(import_id=first.pk) is None  # nothing left to do
    second = run_import(content, world.admin, commit=True)
    assert entries(second) == {(2, "M03900"): (RowStatus.ELIGIBLE, "on_worklist")}
    assert second.rows.get().action == RowAction.FILING_EXISTS
    assert AssistedFiling.objects.count() == 1


def test_dry_run_is_idempotent_and_commit_needs_a_finished_dry_run(world):
    content = csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "M03900"]])
    roster = services.roster_import_create(name="r.csv", content=content, actor=world.admin, queue=False)
    from kernel.errors import RuleViolation

    with pytest.raises(RuleViolation):
        services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    services.roster_import_run(import_id=roster.pk)
    assert services.roster_import_run(import_id=roster.pk) is None
    assert roster.rows.count() == 1


def test_xlsx_roster_with_english_headers(world):
    number = synthetic_id_number()
    content = xlsx_bytes([[number, "Zhang", 530100, "138", "monitored", "M03900, I25.1"]], header=EN_HEADER)
    roster = run_import(content, world.admin, name="roster.xlsx")
    assert roster.file_format == "xlsx"
    assert entries(roster) == {(2, "M03900"): (RowStatus.ELIGIBLE, ""), (2, "I25.1"): (RowStatus.ELIGIBLE, "")}
    assert roster.rows.filter(declared="I25.1").get().disease == world.coronary


def test_xlsx_id_number_stored_as_a_number_is_reported_not_lost(world):
    content = xlsx_bytes([[530124196005170000, "Li", "530100", "", "", "M03900"]])
    roster = run_import(content, world.admin, name="roster.xlsx")
    row = roster.rows.get()
    assert (row.line, row.status, row.reason_code) == (2, RowStatus.INVALID, "invalid_id_number")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_encodings(world, encoding):
    number = synthetic_id_number()
    content = csv_bytes([[number, "张三", "530100", "", "低保、监测对象", "糖尿病"]], encoding=encoding)
    assert content.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    roster = run_import(content, world.admin)
    row = roster.rows.get()
    assert (row.name, row.declared, row.status) == ("张三", "糖尿病", RowStatus.ELIGIBLE)
    assert row.support_categories == ["minimum_living", "monitored"]
    assert roster.encoding == ("gbk" if encoding == "gbk" else "utf-8")


def test_missing_columns_fail_the_dry_run_with_the_columns_named(world):
    # The upload request no longer parses the file (issue 18 item 6): the header is the task's to check.
    roster = services.roster_import_create(name="r.csv", content="姓名,电话\n甲,1\n".encode(), actor=world.admin)
    assert roster.state == ImportState.PENDING
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.FAILED and roster.rows.count() == 0
    with pytest.raises(InvalidInput) as caught:
        from interop.rosters import REQUIRED_COLUMNS, ROSTER_COLUMNS
        from kernel.tabular import map_header

        map_header(["姓名", "电话"], ROSTER_COLUMNS, REQUIRED_COLUMNS)
    assert caught.value.code == "missing_columns"
    assert set(caught.value.details["missing"]) == {"id_number", "region", "conditions"}
    assert roster.error == str(caught.value.message)


@pytest.mark.parametrize(
    "content, name",
    [
        (b"", "r.csv"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "r.xls"),  # old binary Excel
        ("身份证号,姓名\n".encode(), "r.xlsx"),  # called .xlsx, not a ZIP
        (b"\xff\xfe\xfa\x80" * 100, "r.csv"),  # neither UTF-8 nor GBK
    ],
)
def test_upload_refuses_what_its_first_bytes_show_cannot_be_read(world, content, name):
    with pytest.raises(InvalidInput) as caught:
        services.roster_import_create(name=name, content=content, actor=world.admin)
    assert caught.value.code == "invalid_file"
    assert RosterImport.objects.count() == 0


# ---------------------------------------------------------------------------
# The worklist: one-click filing
# ---------------------------------------------------------------------------


def worklist_item(world) -> AssistedFiling:
    run_import(csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "M03900"]]), world.officer, commit=True)
    return AssistedFiling.objects.get()


def test_one_click_filing_submits_through_the_enrollment_service(world):
    item = worklist_item(world)
    response = client_for(world.clerk).post(f"/api/v1/assisted-filings/{item.pk}/file/")
    assert response.status_code == 200, response.json()
    item.refresh_from_db()
    application = item.application
    assert item.state == FilingState.FILED and item.closed_by == world.clerk
    assert (application.state, application.person, application.disease) == (
        State.SUBMITTED,
        item.person,
        world.hypertension,
    )
    assert application.treating_institution == world.county and application.filed_by == world.clerk
    audit = AuditEntry.objects.get(application=application)
    assert (audit.transition, audit.actor) == ("submit", world.clerk)
    again = client_for(world.clerk).post(f"/api/v1/assisted-filings/{item.pk}/file/")
    assert again.status_code == 409 and again.json()["code"] == "filing_closed"
    assert Application.objects.filter(person=item.person).count() == 1


def test_filing_refused_by_a_rule_keeps_the_item_open(world):
    item = worklist_item(world)
    enrollment_services.application_submit(
        person=item.person, disease=world.hypertension, treating_institution=world.township, actor=world.admin
    )
    response = client_for(world.clerk).post(f"/api/v1/assisted-filings/{item.pk}/file/")
    assert response.status_code == 409 and response.json()["code"] == "duplicate_disease"
    item.refresh_from_db()
    assert item.state == FilingState.OPEN and item.application is None


def test_worklist_is_scoped_to_the_hospital(world):
    item = worklist_item(world)
    assert [
        row["id"] for row in client_for(world.clerk).get("/api/v1/assisted-filings/?state=open").json()["results"]
    ] == [item.pk]
    assert client_for(world.other_clerk).get("/api/v1/assisted-filings/").json()["results"] == []
    assert client_for(world.other_clerk).post(f"/api/v1/assisted-filings/{item.pk}/file/").status_code == 404
    assert client_for(world.reviewer).get("/api/v1/assisted-filings/").json()["results"] == []
    listed = client_for(world.clerk).get("/api/v1/assisted-filings/").json()["results"][0]
    assert "*" in listed["id_number"] and item.person.id_number not in str(listed)


def test_dismiss_needs_a_reason(world):
    item = worklist_item(world)
    client = client_for(world.clerk)
    assert client.post(f"/api/v1/assisted-filings/{item.pk}/dismiss/", {}, format="json").status_code == 400
    response = client.post(f"/api/v1/assisted-filings/{item.pk}/dismiss/", {"reason": "moved away"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == FilingState.DISMISSED


# ---------------------------------------------------------------------------
# API: upload, task, progress, commit, report; who may import
# ---------------------------------------------------------------------------


@pytest.fixture
def eager_celery():
    from config.celery import app

    # The app reads Django settings with the CELERY_ namespace, so the key carries it too.
    previous = app.conf.task_always_eager
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = previous


def upload(client, content: bytes, name: str = "roster.csv"):
    return client.post("/api/v1/roster-imports/", {"file": SimpleUploadedFile(name, content)}, format="multipart")


def test_api_upload_runs_the_task_and_shows_progress_and_counts(
    world, roster_case, eager_celery, django_capture_on_commit_callbacks
):
    content, _facts = roster_case
    client = client_for(world.officer)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, content)
    assert response.status_code == 202, response.json()
    roster_id = response.json()["id"]
    detail = client.get(f"/api/v1/roster-imports/{roster_id}/").json()
    assert (detail["state"], detail["progress"], detail["lines_total"]) == ("validated", 100, 17)
    assert detail["counts"]["by_status"]["eligible"] == 6 and detail["counts"]["entries"] == len(EXPECTED)
    invalid = client.get(f"/api/v1/roster-imports/{roster_id}/rows/?status=invalid").json()
    assert invalid["count"] == sum(1 for status, _code in EXPECTED.values() if status == RowStatus.INVALID) == 9
    assert all("*" in row["id_number"] for row in invalid["results"] if row["id_number"])
    with django_capture_on_commit_callbacks(execute=True):
        committed = client.post(f"/api/v1/roster-imports/{roster_id}/commit/")
    assert committed.status_code == 202
    detail = client.get(f"/api/v1/roster-imports/{roster_id}/").json()
    assert detail["state"] == "committed" and detail["counts"]["by_action"]["filing_created"] == 6


def test_report_downloads_account_for_every_line(world, roster_case):
    content, facts = roster_case
    roster = run_import(content, world.officer, commit=True)
    client = client_for(world.officer)
    response = client.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {int(row["line"]) for row in rows} == set(range(2, 19))
    assert len(rows) == len(EXPECTED)
    assert facts["new"][0] not in text  # masked
    xlsx = client.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=xlsx")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content)), read_only=True).worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:2] == ("line", "id_number") and len(values) == len(EXPECTED) + 1


@pytest.mark.parametrize("who", ["clerk", "reviewer", "physician_user"])
def test_only_admins_and_officers_import(world, who):
    content = csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "M03900"]])
    response = upload(client_for(getattr(world, who)), content)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert RosterImport.objects.count() == 0


def test_imports_are_visible_to_their_institution_only(world):
    roster = run_import(csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "M03900"]]), world.admin)
    assert client_for(world.admin).get(f"/api/v1/roster-imports/{roster.pk}/").status_code == 200
    assert client_for(world.officer).get(f"/api/v1/roster-imports/{roster.pk}/").status_code == 404
    assert client_for(world.clerk).get(f"/api/v1/roster-imports/{roster.pk}/rows/").status_code == 404


@pytest.mark.parametrize(
    "raw",
    [
        make_id_number("530124", dt.date(1960, 5, 17), 11),
        make_id_number("530124", dt.date(1988, 2, 29), 12, sex="2"),
        make_id_number("110101", dt.date(1975, 1, 1), 7),
        make_id_number("000000", dt.date(1975, 1, 1), 7),  # no such birth place
        make_id_number("530124", dt.date(2200, 1, 1), 7),  # born in the future
        "11010119900230123X",  # 30 February
        "530124196005170011".lower(),
        " 5301241960051700 ",
        "53012419600517001A",
    ],
)
def test_fast_id_check_agrees_with_the_parser(raw):
    from django.utils import timezone

    from interop.rosters import check_id_number

    try:
        expected = (parse_id_number(raw).number, "")
    except InvalidInput as exc:
        expected = (raw, str(exc.message))
    assert check_id_number(raw, timezone.localdate()) == expected


def test_task_runs_once_and_a_dead_workers_phase_is_taken_over(world, eager_celery):
    from django.utils import timezone

    from interop.tasks import run_roster_import

    content = csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "M03900"]])
    roster = services.roster_import_create(name="r.csv", content=content, actor=world.admin, queue=False)
    # Another worker is on it (fresh heartbeat): this delivery does nothing.
    RosterImport.objects.filter(pk=roster.pk).update(state=ImportState.VALIDATING, heartbeat_at=timezone.now())
    run_roster_import.delay(roster.pk)
    assert RosterImport.objects.get(pk=roster.pk).state == ImportState.VALIDATING and roster.rows.count() == 0
    # That worker died long ago: the next delivery runs the phase from the start.
    RosterImport.objects.filter(pk=roster.pk).update(heartbeat_at=timezone.now() - services.STALE_AFTER * 2)
    run_roster_import.delay(roster.pk)
    run_roster_import.delay(roster.pk)  # delivered twice: the second finds nothing to do
    roster.refresh_from_db()
    assert roster.state == ImportState.VALIDATED and roster.rows.count() == 1 and roster.heartbeat_at is None


def test_a_roster_replaces_support_categories_as_of_its_date_instead_of_merging(world):
    import time_machine

    from enrollment import selectors
    from enrollment.models import PersonCategory
    from enrollment.services import person_status
    from tests.enrollment.validity_helpers import SHANGHAI

    person = world.person()
    person_status.person_categories_replace(
        person=person,
        categories=["minimum_living", "orphan"],
        as_of=dt.date(2026, 1, 1),
        source="office",
        reference="list-1",
        actor=world.officer,
    )
    content = csv_bytes([[person.id_number, person.name, "530100", "", "监测对象", "M03900"]])
    with time_machine.travel(dt.datetime(2026, 4, 1, 10, tzinfo=SHANGHAI), tick=False):
        run_import(content, world.admin, commit=True)
    person.refresh_from_db()
    assert person.support_categories == ["monitored"]  # replaced, not merged with the older list
    ended = PersonCategory.objects.get(person=person, category="minimum_living")
    assert ended.valid_until == dt.date(2026, 3, 31)
    answer = selectors.coverage_on(person=person, disease=world.hypertension, on=dt.date(2026, 3, 31))
    assert answer.support_categories == ["minimum_living", "orphan"]  # the day before the roster: the old list
    answer = selectors.coverage_on(person=person, disease=world.hypertension, on=dt.date(2026, 4, 1))
    assert answer.support_categories == ["monitored"]
