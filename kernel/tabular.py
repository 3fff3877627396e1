"""Reading and writing the spreadsheets offices exchange: CSV (UTF-8 with or without BOM, or GBK)
and XLSX (openpyxl). Writers stream: CSV chunk by chunk, XLSX in openpyxl's write-only mode.

Every CSV and XLSX the service writes goes through ``csv_chunks`` / ``write_xlsx``, and every text cell
of those through ``spreadsheet_safe`` (issue 18: formula injection). Readers do bounded work whatever
a file claims about itself (issue 18: a 57 KiB XLSX held a web worker for 23 s)."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.http import FileResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from kernel.errors import InvalidInput

XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary Excel format (OLE compound file)
# Excel's own limit. A file with more lines (empty ones included) is not a sheet a clerk saved: refused
# without reading on, so that row numbers a file claims (an XLSX row r="1000000000") cannot cost time.
MAX_LINES = 1_048_576
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Cells right of this column are ignored: an XLSX cell at column XFD would otherwise widen its row to 16,384.
MAX_COLUMNS = 256
# How often (in lines, empty ones included) a reader looks at its deadline.
_DEADLINE_EVERY = 1024


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


def sniff_format(content: bytes, name: str = "") -> str:
    """The format, "xlsx" or "csv", from the first bytes only: all an upload request may afford (nothing is parsed).

    Refuses an empty file, an old binary .xls, a ".xlsx" that is not a ZIP, and text that is neither
    UTF-8 nor GBK in its first 64 KiB. Anything else is for ``read_table`` (in the background task) to judge.
    """
    if not content:
        raise InvalidInput(_("The file is empty."), code="invalid_file")
    if content.startswith(XLSX_MAGIC):
        return "xlsx"
    if content.startswith(XLS_MAGIC):
        raise InvalidInput(_("This is an old Excel (.xls) file; save it as XLSX or CSV."), code="invalid_file")
    if name.lower().endswith(".xlsx"):
        raise InvalidInput(_("The file cannot be read as an XLSX workbook."), code="invalid_file")
    prefix = content[:65536]
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(prefix, final=False)
        except UnicodeDecodeError:
            continue
        return "csv"
    raise InvalidInput(
        _("The file is neither UTF-8 nor GBK text; save it as CSV (UTF-8) or XLSX."), code="invalid_file"
    )


def read_table(
    content: bytes, name: str = "", *, max_rows: int | None = None, max_seconds: float | None = None
) -> Table:
    """The rows of the first sheet (XLSX) or of the CSV, as strings; blank lines dropped (the others keep
    their spreadsheet row numbers).

    The work is bounded whatever the file says about itself:

    - an XLSX sheet's declared dimension is ignored (openpyxl would pad every missing row to its width, and
      stop reading at its height), so empty rows cost next to nothing and no row is cut off;
    - at most ``MAX_LINES`` lines, empty ones included, and ``MAX_COLUMNS`` columns are read;
    - ``max_rows``: more rows than that after the header → ``too_many_rows``, without reading on;
    - ``max_seconds``: reading takes longer → ``read_timeout``.
    """
    if not content:
        raise InvalidInput(_("The file is empty."), code="invalid_file")
    if content.startswith(XLSX_MAGIC) or name.lower().endswith(".xlsx"):
        file_format, encoding, lines = "xlsx", "", _xlsx_lines(content)
    else:
        text, encoding = decode_text(content)
        file_format, lines = "csv", _csv_lines(text)
    deadline = time.monotonic() + max_seconds if max_seconds is not None else None
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for number, raw in enumerate(lines, start=1):
            if number > MAX_LINES:
                raise InvalidInput(
                    _(
                        "The file has more than %(max)d lines (empty ones included), more than a spreadsheet "
                        "holds; remove the empty rows or split the file."
                    )
                    % {"max": MAX_LINES},
                    code="too_many_rows",
                    details={"max_lines": MAX_LINES},
                )
            if deadline is not None and number % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                raise InvalidInput(
                    _(
                        "The file could not be read within %(seconds)d seconds; remove empty rows and columns, "
                        "or split the file."
                    )
                    % {"seconds": max_seconds},
                    code="read_timeout",
                )
            if raw.count(None) == len(raw):  # an empty row (openpyxl: all None; csv: []) costs no more
                continue
            cells = [_cell(value) for value in raw[:MAX_COLUMNS]]
            if not any(cells):
                continue
            if header is None:
                header = cells
                continue
            if max_rows is not None and len(rows) >= max_rows:
                raise InvalidInput(
                    _("The file has more than %(max)d rows; split the file.") % {"max": max_rows},
                    code="too_many_rows",
                    details={"max_rows": max_rows},
                )
            rows.append((number, cells))
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()  # the XLSX reader's generator closes its workbook
    if header is None:
        raise InvalidInput(_("The file has no header row."), code="invalid_file")
    return Table(file_format=file_format, encoding=encoding, header=header, rows=rows)


def _csv_lines(text: str) -> Iterator[Sequence[Any]]:
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        yield from reader
    except csv.Error as exc:
        raise InvalidInput(
            _("The file cannot be read as CSV (line %(line)d): %(error)s") % {"line": reader.line_num, "error": exc},
            code="invalid_file",
        )


def _xlsx_lines(content: bytes) -> Iterator[Sequence[Any]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
    except Exception:  # openpyxl raises many types for a broken file
        raise InvalidInput(_("The file cannot be read as an XLSX workbook."), code="invalid_file")
    try:
        # The <dimension> a file declares is not trusted: with it openpyxl pads each missing row to the declared
        # width (A1:XFD400000 → 400,000 × 16,384 cells) and stops at the declared height (rows below are lost).
        # Without it a missing row is an empty tuple and a row is as wide as its last cell.
        sheet.reset_dimensions()
        yield from sheet.iter_rows(values_only=True)
    except Exception:
        raise InvalidInput(_("The file cannot be read as an XLSX workbook."), code="invalid_file")
    finally:
        workbook.close()


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


# The first characters that make a spreadsheet program read a text cell as a formula (OWASP, "CSV
# injection"): = + - @, and a tab or carriage return before them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What XML (and so XLSX) cannot carry; openpyxl would refuse the whole file for one such character.
_XML_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")


def spreadsheet_safe(value: Any) -> Any:
    """A cell value that no spreadsheet program runs as a formula.

    Text starting with = + - @, a tab or a carriage return gets a leading apostrophe (``'=HYPERLINK(…)``):
    the value stays readable, and is shown as the text it is. Numbers (also negative ones), dates, booleans
    and None are not text and are returned as they are. Lazy translations count as text.
    """
    if isinstance(value, Promise):
        value = str(value)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], lines_per_chunk: int = 500) -> Iterator[bytes]:
    """CSV bytes a few hundred lines at a time; a UTF-8 BOM first so that Excel reads Chinese.

    Every cell goes through ``spreadsheet_safe``: no text cell is a formula when the file is opened.
    """
    writer = csv.writer(_Echo())
    yield ("\ufeff" + writer.writerow([spreadsheet_safe(value) for value in header])).encode("utf-8")
    buffer: list[str] = []
    for row in rows:
        buffer.append(writer.writerow([spreadsheet_safe(value) for value in row]))
        if len(buffer) >= lines_per_chunk:
            yield "".join(buffer).encode("utf-8")
            buffer = []
    if buffer:
        yield "".join(buffer).encode("utf-8")


def _xlsx_row(sheet: Any, row: Sequence[Any]) -> list[Any]:
    """A row for openpyxl's write-only sheet: text neutralised (``spreadsheet_safe``) and always stored as a
    string cell. openpyxl types a str itself — "=…" as a formula, "#N/A" as an error — so a text it could
    take for something else is handed over as a cell whose type is set to string; characters XML cannot
    carry become U+FFFD instead of failing the whole file."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES

    values: list[Any] = []
    for value in row:
        value = spreadsheet_safe(value)
        if value is None:
            value = ""
        elif isinstance(value, str):
            value = _XML_ILLEGAL.sub("\ufffd", value)
            if value.startswith("=") or value in ERROR_CODES:  # cannot start with "=" after spreadsheet_safe
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"
                value = cell
        values.append(value)
    return values


def write_xlsx(header: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "export") -> str:
    """Write an XLSX in openpyxl's write-only mode (rows are not kept in memory); return its path.

    Every cell goes through ``spreadsheet_safe``, and text is stored as text (data type "s"), never as a
    formula. The caller opens the file and unlinks it (see ``open_and_unlink``).
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(_xlsx_row(sheet, header))
    for row in rows:
        sheet.append(_xlsx_row(sheet, row))
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="export-")
    os.close(handle)
    workbook.save(path)
    return path


def open_and_unlink(path: str) -> Any:
    """An open binary file whose name is already gone: nothing is left behind on disk."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by FileResponse
    os.unlink(path)
    return handle


def write_report_file(path: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """An operator command's ``--report``: XLSX when the name ends in .xlsx, else CSV (both neutralised)."""
    from pathlib import Path

    if path.endswith(".xlsx"):
        Path(write_xlsx(header, rows, title="report")).replace(path)
        return
    with open(path, "wb") as handle:
        for chunk in csv_chunks(header, rows):
            handle.write(chunk)


def tabular_response(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, file_format: str, filename: str
) -> HttpResponseBase:
    """CSV streamed chunk by chunk; XLSX written in write-only mode to a temp file, then streamed."""
    if file_format == "xlsx":
        path = write_xlsx(header, rows, title=filename)
        return FileResponse(
            open_and_unlink(path),
            as_attachment=True,
            filename=f"{filename}.xlsx",
            content_type=XLSX_TYPE,
        )
    response = StreamingHttpResponse(csv_chunks(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
