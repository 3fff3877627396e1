"""Reading and writing the spreadsheets offices exchange: CSV (UTF-8 with or without BOM, or GBK)
and XLSX (openpyxl). Writers stream: CSV chunk by chunk, XLSX in openpyxl's write-only mode."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from enrollment.errors import InvalidInput

XLSX_MAGIC = b"PK\x03\x04"


@dataclass
class Table:
    file_format: str  # "csv" | "xlsx"
    encoding: str
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (spreadsheet row number, cells); the header is row 1


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # Excel keeps long digit strings typed as numbers; 18 digits lose precision, which the
        # ID-number check then reports as a checksum mismatch rather than hiding it.
        return str(int(value))
    return str(value).strip()


def decode_text(content: bytes) -> tuple[str, str]:
    """UTF-8 (a BOM is dropped) or, failing that, GB18030, the superset of the GBK offices use."""
    try:
        return content.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        raise InvalidInput(
            _("The file is neither UTF-8 nor GBK text; save it as CSV (UTF-8) or XLSX."), code="invalid_file"
        )


def read_table(content: bytes, name: str = "") -> Table:
    """All rows of the first sheet (XLSX) or of the CSV, as strings; blank lines dropped."""
    if not content:
        raise InvalidInput(_("The file is empty."), code="invalid_file")
    if content.startswith(XLSX_MAGIC) or name.lower().endswith(".xlsx"):
        return _read_xlsx(content)
    text, encoding = decode_text(content)
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        rows = [[_cell(v) for v in row] for row in reader]
    except csv.Error as exc:
        raise InvalidInput(
            _("The file cannot be read as CSV (line %(line)d): %(error)s") % {"line": reader.line_num, "error": exc},
            code="invalid_file",
        )
    return _split_header(rows, "csv", encoding)


def _read_xlsx(content: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types for a broken file
        raise InvalidInput(_("The file cannot be read as an XLSX workbook."), code="invalid_file")
    try:
        sheet = workbook.worksheets[0]
        rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    return _split_header(rows, "xlsx", "")


def _split_header(rows: list[list[str]], file_format: str, encoding: str) -> Table:
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(cell for cell in row)]
    if not numbered:
        raise InvalidInput(_("The file has no header row."), code="invalid_file")
    return Table(file_format=file_format, encoding=encoding, header=numbered[0][1], rows=numbered[1:])


def normalise_header(value: str) -> str:
    return "".join(ch for ch in value.strip().lower() if ch not in " _-()（）*:：")


def map_header(header: Sequence[str], aliases: dict[str, Sequence[str]], required: Sequence[str]) -> dict[str, int]:
    """Column index of each known field; Chinese and English names are both accepted."""
    lookup = {normalise_header(alias): field for field, names in aliases.items() for alias in names}
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        field = lookup.get(normalise_header(title))
        if field and field not in found:
            found[field] = index
    missing = [field for field in required if field not in found]
    if missing:
        expected = "; ".join(f"{field}: {' / '.join(aliases[field][:3])}" for field in missing)
        raise InvalidInput(
            _("Columns missing from the header row: %(missing)s.") % {"missing": expected},
            code="missing_columns",
            details={"missing": missing, "header": list(header)},
        )
    return found


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], lines_per_chunk: int = 500) -> Iterator[bytes]:
    """CSV bytes a few hundred lines at a time; a UTF-8 BOM first so that Excel reads Chinese."""
    writer = csv.writer(_Echo())
    yield ("\ufeff" + writer.writerow(header)).encode("utf-8")
    buffer: list[str] = []
    for row in rows:
        buffer.append(writer.writerow(row))
        if len(buffer) >= lines_per_chunk:
            yield "".join(buffer).encode("utf-8")
            buffer = []
    if buffer:
        yield "".join(buffer).encode("utf-8")


def write_xlsx(header: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "export") -> str:
    """Write an XLSX in openpyxl's write-only mode (rows are not kept in memory); return its path.

    The caller opens the file and unlinks it (see ``open_and_unlink``).
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(list(header))
    for row in rows:
        sheet.append(["" if value is None else value for value in row])
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="export-")
    os.close(handle)
    workbook.save(path)
    return path


def open_and_unlink(path: str) -> Any:
    """An open binary file whose name is already gone: nothing is left behind on disk."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by FileResponse
    os.unlink(path)
    return handle
