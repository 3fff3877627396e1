"""Settlement files (dry run, per-row report, GBK/BOM, XLSX, idempotent commit), the API, the web pages."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from assistance import services
from assistance.models import (
    AssistanceLine,
    HighCostAlert,
    Settlement,
    SettlementImportRow,
    SettlementImportState,
)
from kernel.errors import InvalidInput
from tests.assistance.helpers import category, record, row

pytestmark = pytest.mark.django_db
HEADER = "结算流水号,身份证号,结算日期,机构编码,机构名称,机构级别,待遇类型,病种编码,医疗费总额,基金支付,个人自付\n"


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def _file(world, person):
    return (
        HEADER
        + f"A-1,{person.id_number},2026-03-05,H1,村卫生室,村,两病,M03900,100.00,70.00,30.00\n"
        + f'A-2,{person.id_number},2026/03/06,H2,县医院,县级,,,"1,200.50",1000.00,200.50\n'
        + f"A-3,{person.id_number},2026-03-07,H2,县医院,hospital,,,10,0,10\n"
        + "A-4,110101199003070000,2026-03-07,H2,县医院,县,,,10,0,10\n"
    )


def _run(world, content: bytes, name="settlements.csv", commit=False):
    record_ = services.settlement_import_create(name=name, content=content, actor=world.officer, queue=False)
    record_ = services.settlement_import_run(import_id=record_.pk)
    if commit:
        services.settlement_import_request_commit(import_id=record_.pk, actor=world.officer, queue=False)
        record_ = services.settlement_import_run(import_id=record_.pk)
    return record_


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_dry_run_reports_every_row_and_writes_nothing(world, encoding):
    person = world.person()
    result = _run(world, _file(world, person).encode(encoding))
    assert result.state == SettlementImportState.VALIDATED
    assert result.counts["by_status"] == {"new": 2, "invalid": 2}
    reasons = dict(SettlementImportRow.objects.filter(status="invalid").values_list("line", "reason_code"))
    assert reasons == {4: "invalid_level", 5: "invalid_id_number"}
    assert not Settlement.objects.exists()


def test_commit_stores_computes_and_a_second_file_is_all_duplicates(world):
    person = world.person()
    category(person, "orphan", dt.date(2026, 1, 1))
    content = _file(world, person).encode("gbk")
    committed = _run(world, content, commit=True)
    assert committed.state == SettlementImportState.COMMITTED and committed.counts["created"] == 2
    assert Settlement.objects.get(serial_number="A-2").out_of_pocket == Decimal("200.50")
    assert AssistanceLine.objects.filter(person=person).count() == 3  # 两病 top-up + 2 category lines
    again = _run(world, content, commit=True)
    assert again.counts["by_status"] == {"duplicate": 2, "invalid": 2} and again.counts["created"] == 0
    assert Settlement.objects.count() == 2


def test_xlsx_file_and_bad_files(world):
    from openpyxl import Workbook

    person = world.person()
    workbook = Workbook()
    sheet = workbook.active
    for line in _file(world, person).splitlines()[:2]:
        sheet.append(line.split(","))
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert _run(world, buffer.getvalue(), name="s.xlsx").counts["by_status"] == {"new": 1}
    failed = _run(world, "姓名\n张三\n".encode())
    assert failed.state == SettlementImportState.FAILED and "结算流水号" in failed.error
    with pytest.raises(InvalidInput):
        services.settlement_import_create(name="x.csv", content=b"", actor=world.officer, queue=False)


def test_command_dry_run_then_commit(world, tmp_path, django_user_model):
    person = world.person()
    path = tmp_path / "s.csv"
    path.write_bytes(_file(world, person).encode("utf-8-sig"))
    out = io.StringIO()
    call_command("import_settlements", str(path), "--user", world.officer.username, stdout=out)
    assert "validated" in out.getvalue() and not Settlement.objects.exists()
    report = tmp_path / "report.csv"
    call_command("import_settlements", str(path), "--user", world.officer.username, "--commit", "--report", str(report))
    assert Settlement.objects.count() == 2 and "invalid_level" in report.read_text("utf-8-sig")


def test_alerts_command_for_a_period(world):
    person = world.person()
    record(world.officer, row(person, day=dt.date(2026, 1, 31), oop="7000.01"))
    out = io.StringIO()
    call_command("assistance_alerts", "--period", "2026-01", stdout=out)
    call_command("assistance_alerts", "--period", "2026-01", stdout=out)
    assert HighCostAlert.objects.count() == 1 and "1 over the threshold, 0 new alerts" in out.getvalue()


def _api(user):
    client = Client()
    client.force_login(user)
    return client


def test_api_batch_idempotent_and_scoped(world):
    person = world.person()
    body = {"rows": [row(person, day=dt.date(2026, 3, 5), oop="40.00", fund="60.00", serial_number="API-1")]}
    for _ in range(2):
        response = _api(world.officer).post("/api/v1/settlements/", json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content
    assert response.json()["rows"][0]["status"] == "duplicate" and Settlement.objects.count() == 1
    bad = {"rows": [dict(body["rows"][0], out_of_pocket=40.001)]}
    assert _api(world.officer).post("/api/v1/settlements/", bad, content_type="application/json").status_code == 400
    assert _api(world.reviewer).post("/api/v1/settlements/", body, content_type="application/json").status_code == 403
    too_many = {"rows": body["rows"] * 1001}
    assert _api(world.admin).post("/api/v1/settlements/", too_many, content_type="application/json").status_code == 400


def test_api_alerts_list_and_actions(world):
    person = world.person()
    record(world.officer, row(person, day=dt.date(2026, 3, 5), oop="8000.00"))
    services.alerts_scan(period=dt.date(2026, 3, 1), actor=world.officer)
    client = _api(world.officer)
    listed = client.get("/api/v1/cost-alerts/").json()
    alert_id = listed["results"][0]["id"]
    assert listed["results"][0]["amount"] == "8000.00" and "id_number" not in listed["results"][0]
    response = client.post(f"/api/v1/cost-alerts/{alert_id}/refer/", {}, content_type="application/json")
    assert response.status_code == 200 and response.json()["state"] == "referred"
    again = client.post(f"/api/v1/cost-alerts/{alert_id}/acknowledge/", {}, content_type="application/json")
    assert again.status_code == 409


def test_worklist_statement_and_report_pages(world):
    person = world.person()
    category(person, "minimum_living", dt.date(2026, 1, 1))
    record(world.officer, row(person, day=dt.date(2026, 3, 5), oop="8000.00", serial_number="=HYPERLINK(1)x"[1:10]))
    services.alerts_scan(period=dt.date(2026, 3, 1), actor=world.officer)
    client = _api(world.officer)
    page = client.get("/assistance/alerts/")
    assert page.status_code == 200 and person.name in page.content.decode()
    alert = HighCostAlert.objects.get()
    client.post(f"/assistance/alerts/{alert.pk}/close/", {"note": "paid"})
    alert.refresh_from_db()
    assert alert.state == "closed"
    statement = client.get(f"/assistance/statements/{person.pk}/?period=2026-03").content.decode()
    assert "6000.00" in statement and "2000.00" in statement  # 75 % assisted, the person pays the rest
    assert "css/assistance.css" in statement
    other = world.person(insured_region=world.other_region)
    assert client.get(f"/assistance/statements/{other.pk}/").status_code == 404
    csv = _api(world.admin).get("/assistance/reports/by_category.csv?months=12")
    assert csv.status_code == 200 and "6000.00" in csv.content.decode("utf-8-sig")
    reports = _api(world.admin).get("/reports/").content.decode()
    assert "report-assistance" in reports and "assistance-by_region" in reports


def test_report_export_neutralises_formulas(world):
    person = world.person()
    record(
        world.officer,
        row(person, day=dt.date(2026, 3, 5), oop="10.00", benefit="门慢", disease_code="M03900"),
    )
    from assistance.models import Settlement as S

    S.objects.update(disease_code="=1+1")  # a value a sender could smuggle past another path
    csv = _api(world.admin).get("/assistance/reports/by_disease.csv").content.decode("utf-8-sig")
    assert "'=1+1" in csv
