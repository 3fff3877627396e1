"""Roster uploads are parsed in the background task, within bounds (issue 18 item 6, MEDIUM).

The attack: a small XLSX with 400,000 empty rows held a web worker for 23 s, because the upload request
parsed the whole file (and openpyxl padded every row to the width the sheet declared). Now the request
only stores the bytes (size and format magic checked) and answers at once; the task reads the file with
a row limit (ROSTER_MAX_ROWS), a deadline (ROSTER_READ_SECONDS) and a soft time limit
(ROSTER_TASK_SECONDS), ignoring the dimension the sheet declares; empty rows cost next to nothing.
"""

from __future__ import annotations

import io
import re
import zipfile
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook

from interop import services
from interop.models import ImportState, RosterImport, RowStatus
from tests.factories import synthetic_id_number
from tests.interop.helpers import client_for

HEADER = ["身份证号", "姓名", "医保区划", "申报病种"]


def roster_xlsx(rows, *, empty_rows: int = 0, dimension: str | None = None, tail: bytes = b"") -> bytes:
    """An XLSX roster: header, ``rows``, then ``empty_rows`` empty <row> elements, then ``tail`` (raw sheet
    XML), with the sheet's declared <dimension> replaced by ``dimension``. Built by hand: small and quick."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    plain = io.BytesIO()
    workbook.save(plain)
    source = zipfile.ZipFile(io.BytesIO(plain.getvalue()))
    out = io.BytesIO()
    first_empty = len(rows) + 2
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                if dimension:
                    data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="%s"' % dimension.encode(), data)
                empty = b"".join(b'<row r="%d"/>' % n for n in range(first_empty, first_empty + empty_rows))
                data = data.replace(b"</sheetData>", empty + tail + b"</sheetData>")
            target.writestr(item.filename, data)
    return out.getvalue()


def people(n: int) -> list[list[str]]:
    return [[synthetic_id_number(), f"甲{i}", "530100", "M03900"] for i in range(n)]


def upload(client, content: bytes, name: str = "roster.xlsx"):
    return client.post("/api/v1/roster-imports/", {"file": SimpleUploadedFile(name, content)}, format="multipart")


@pytest.fixture(autouse=True)
def english():
    """The task stores its message in the active language (Chinese by default); these tests read English."""
    with translation.override("en"):
        yield


@pytest.fixture
def eager_celery():
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = previous


def test_upload_only_stores_the_file_and_the_task_reads_400000_empty_rows_cheaply(world, eager_celery):
    from interop.tasks import run_roster_import

    content = roster_xlsx(people(3), empty_rows=400_000)
    client = client_for(world.officer)
    web = Client()
    web.force_login(world.officer)
    parsed = AssertionError("the file was parsed in the upload request")
    with (
        mock.patch("openpyxl.load_workbook", side_effect=parsed),
        mock.patch("kernel.tabular.read_table", side_effect=parsed),
        mock.patch("kernel.uploads.read_table", side_effect=parsed),  # the upload kit reads stored files
    ):
        response = upload(client, content)  # the dry run is queued on commit: not run inside this test
        page = web.post(reverse("roster-list"), {"file": SimpleUploadedFile("roster.xlsx", content)})  # the web form
    assert response.status_code == 202, response.json()
    assert page.status_code == 302
    body = response.json()
    assert (body["state"], body["lines_total"], body["lines_done"]) == ("pending", 0, 0)
    roster = RosterImport.objects.get(pk=body["id"])
    assert bytes(roster.content) == content and roster.file_format == "xlsx" and roster.rows.count() == 0
    assert RosterImport.objects.filter(state=ImportState.PENDING).count() == 2
    # The worker reads the file: the real rows only.
    run_roster_import.delay(roster.pk)
    roster.refresh_from_db()
    assert roster.state == ImportState.VALIDATED, roster.error
    assert roster.lines_total == 3 and roster.counts["lines"] == 3
    assert sorted(roster.rows.values_list("line", flat=True)) == [2, 3, 4]
    assert set(roster.rows.values_list("status", flat=True)) == {RowStatus.ELIGIBLE}


def test_a_declared_dimension_neither_pads_nor_cuts_rows(world):
    # 400,000 rows × 16,384 columns declared, and one empty cell far away: openpyxl padded every missing row to
    # the declared width (hours of work for a 5 KB file). A dimension smaller than the data: openpyxl stopped
    # reading at it, and the rows below were silently lost.
    wide = roster_xlsx(
        people(3), dimension="A1:XFD400005", tail=b'<row r="400005"><c r="XFD400005" t="inlineStr"/></row>'
    )
    assert len(wide) < 10_000
    short = roster_xlsx(people(4), dimension="A1:D2")
    for content, lines in ((short, [2, 3, 4, 5]), (wide, [2, 3, 4])):
        roster = services.roster_import_create(name="r.xlsx", content=content, actor=world.admin, queue=False)
        roster = services.roster_import_run(import_id=roster.pk)
        assert roster.state == ImportState.VALIDATED, roster.error
        assert sorted(roster.rows.values_list("line", flat=True)) == lines


def test_a_file_over_the_row_limit_fails_with_a_message_for_the_clerk(world, settings, eager_celery):
    from interop.tasks import run_roster_import

    settings.ROSTER_MAX_ROWS = 3
    client = client_for(world.officer)
    as_csv = "\n".join(",".join(row) for row in [HEADER, *people(4)]).encode()
    for content, name in ((roster_xlsx(people(4)), "r.xlsx"), (as_csv, "r.csv")):
        response = upload(client, content, name)
        assert response.status_code == 202
        with translation.override("en"):  # the request activated the default language (Chinese)
            run_roster_import.delay(response.json()["id"])
        detail = client.get(f"/api/v1/roster-imports/{response.json()['id']}/").json()
        assert detail["state"] == "failed"
        assert detail["error"] == "The file has more than 3 rows; split the file."
    # Exactly at the limit is fine; empty rows do not count.
    roster = services.roster_import_create(
        name="r.xlsx", content=roster_xlsx(people(3), empty_rows=50), actor=world.officer, queue=False
    )
    assert services.roster_import_run(import_id=roster.pk).state == ImportState.VALIDATED


def test_reading_stops_at_its_deadline(world, settings):
    settings.ROSTER_READ_SECONDS = 0
    content = roster_xlsx(people(1), empty_rows=5000)  # the deadline is looked at every 1,024 lines
    roster = services.roster_import_create(name="r.xlsx", content=content, actor=world.officer, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.FAILED
    assert roster.error.startswith("The file could not be read within 0 seconds")


def test_more_lines_than_a_sheet_holds_fail_without_reading_on(world):
    tail = b'<row r="2000000"><c r="A2000000" t="inlineStr"><is><t>x</t></is></c></row>'
    roster = services.roster_import_create(
        name="r.xlsx", content=roster_xlsx(people(1), tail=tail), actor=world.officer, queue=False
    )
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.FAILED
    assert "more than 1048576 lines" in roster.error


def test_the_task_has_a_time_limit_and_a_phase_over_it_fails_with_a_message(world, settings):
    from celery.exceptions import SoftTimeLimitExceeded

    from interop.tasks import run_roster_import

    assert run_roster_import.soft_time_limit == settings.ROSTER_TASK_SECONDS
    assert run_roster_import.time_limit > run_roster_import.soft_time_limit
    roster = services.roster_import_create(
        name="r.xlsx", content=roster_xlsx(people(1)), actor=world.officer, queue=False
    )
    with mock.patch("interop.services._run_phase", side_effect=SoftTimeLimitExceeded()):
        roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.FAILED
    assert roster.error == (
        f"The import took longer than {settings.ROSTER_TASK_SECONDS // 60} minutes and was stopped; split the file."
    )
