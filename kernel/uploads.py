"""The upload kit: what every uploaded-file import (interop's rosters, assistance's settlement files) does alike.

An import is a file stored with its run (``kernel.models.UploadedImport``, states ``ImportState``), read by a
worker in a dry run with a per-row report, then committed on request. Here: reading the stored file
(``read_upload``: CSV in UTF-8, UTF-8 with BOM or GBK, or XLSX, through ``kernel.tabular``), chunking
(``chunks``), the pages' shared parts (``upload_file_field``, ``CommitForm``, ``report_context``,
``request_commit_from``) and the operator command's scaffolding (``FileImportCommand``, ``StoredImportCommand``).
What a row means, who may import and what a commit writes stay each app's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kernel import roles
from kernel.errors import DomainError, InvalidInput
from kernel.models import ImportState, UploadedImport
from kernel.sql import chunks
from kernel.tabular import Table, map_header, read_table, sniff_format, write_report_file

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

__all__ = [
    "RUNNING_STATES",
    "CommitForm",
    "FileImportCommand",
    "ImportState",
    "StoredImportCommand",
    "UploadedImport",
    "check_upload",
    "chunks",
    "read_upload",
    "report_context",
    "request_commit_from",
    "upload_file_field",
    "upload_name",
]

# States in which a worker is (or will be) busy: an import's page polls while in one of them.
RUNNING_STATES = (
    ImportState.PENDING,
    ImportState.VALIDATING,
    ImportState.COMMIT_REQUESTED,
    ImportState.COMMITTING,
)


# ---------------------------------------------------------------------------
# The upload request: only the size and the first bytes are checked (nothing is parsed there)
# ---------------------------------------------------------------------------


def check_upload(content: bytes, name: str, *, max_bytes: int, too_large: str) -> str:
    """The file's format ("csv" or "xlsx", ``kernel.tabular.sniff_format``); a file over ``max_bytes`` is refused
    with ``too_large``, a message with a ``%(max)d`` (megabytes) in it."""
    if len(content) > max_bytes:
        raise InvalidInput(too_large % {"max": max_bytes // 1048576}, code="invalid_file")
    return sniff_format(content, name)


def upload_name(name: str, default: str) -> str:
    """The name to keep of an uploaded file: without any folder, at most 255 characters, ``default`` if empty."""
    return (name or default).replace("\\", "/").rsplit("/", 1)[-1][:255]


# ---------------------------------------------------------------------------
# Reading the stored file (in the worker, never in the upload request)
# ---------------------------------------------------------------------------


def read_upload(
    record: UploadedImport,
    aliases: dict[str, Sequence[str]],
    required: Sequence[str],
    *,
    no_rows_message: str,
) -> tuple[Table, dict[str, int]]:
    """The stored file read within ROSTER_MAX_ROWS rows and ROSTER_READ_SECONDS, its header mapped (``aliases``,
    ``required``: ``kernel.tabular.map_header``); a header without rows is refused with ``no_rows_message``. The
    import's format, encoding and line count are recorded on it."""
    table = read_table(
        bytes(record.content),
        record.original_name,
        max_rows=settings.ROSTER_MAX_ROWS,
        max_seconds=settings.ROSTER_READ_SECONDS,
    )
    columns = map_header(table.header, aliases, required)
    if not table.rows:
        raise InvalidInput(no_rows_message, code="invalid_file")
    type(record)._default_manager.filter(pk=record.pk).update(
        file_format=table.file_format, encoding=table.encoding, lines_total=len(table.rows)
    )
    return table, columns


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

UPLOAD_ACCEPT = ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload_file_field(label: StrOrPromise, help_text: StrOrPromise) -> forms.FileField:
    """The file field of an upload form: CSV or XLSX."""
    return forms.FileField(
        label=label, help_text=help_text, widget=forms.ClearableFileInput(attrs={"accept": UPLOAD_ACCEPT})
    )


class CommitForm(forms.Form):
    confirm = forms.BooleanField(label=gettext_lazy("I have checked the dry-run report and confirm"), required=True)


def report_context(
    request: HttpRequest, record: UploadedImport, statuses: type[models.TextChoices]
) -> tuple[str, dict[str, Any]]:
    """The status filter asked for (``?status=``, "" when none or unknown) and the detail page's shared context:
    whether a worker is busy, each status with its count, the filter, its query string and the commit form."""
    status = request.GET.get("status") or ""
    if status not in statuses.values:
        status = ""
    by_status = (record.counts or {}).get("by_status", {})
    return status, {
        "running": record.state in RUNNING_STATES,
        "statuses": [(value, label, by_status.get(value, 0)) for value, label in statuses.choices],
        "status": status,
        "query": f"status={status}" if status else "",
        "commit_form": CommitForm() if record.state == ImportState.VALIDATED else None,
    }


def request_commit_from(request: HttpRequest, request_commit: Callable[[], object]) -> None:
    """The commit button: without the ticked confirmation nothing happens; else ``request_commit()`` is called and
    its refusal (a ``DomainError``) or its start shown as a message."""
    if not CommitForm(request.POST).is_valid():
        messages.error(request, _("Tick the confirmation to commit the import."))
        return
    try:
        request_commit()
    except DomainError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(request, _("The commit has started."))


# ---------------------------------------------------------------------------
# Operator commands: a dry run with a per-row report, and with --commit the commit
# ---------------------------------------------------------------------------


class FileImportCommand(BaseCommand):
    """``<command> PATH --user NAME [--commit] [--report FILE]``: the file read, the import run as ``--user``
    (``run_import``), a summary printed (``summarise``) and the per-row report written (``report_rows``).
    A refusal (``DomainError``) ends the command with its message."""

    user_help = "an administrator or centre officer: who imports"
    commit_help = "commit after the dry run (default: dry run only)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--user", required=True, help=self.user_help)
        self.add_options(parser)
        parser.add_argument("--commit", action="store_true", help=self.commit_help)
        parser.add_argument("--report", help="write the per-row report to this .csv or .xlsx file")

    def add_options(self, parser: CommandParser) -> None:
        """Options of a command of its own, between --user and --commit."""

    def handle(self, *args: Any, path: str, user: str, commit: bool, report: str | None, **options: Any) -> None:
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"No user {user!r}.")
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        try:
            result = self.run_import(name=Path(path).name, content=content, actor=actor, commit=commit, **options)
        except DomainError as exc:
            raise CommandError(str(exc.message))
        self.summarise(result)
        if report:
            header, rows = self.report_rows(result)
            write_report_file(report, header, rows)
            self.stdout.write(f"Report written to {report}")

    def run_import(self, *, name: str, content: bytes, actor: roles.Actor, commit: bool, **options: Any) -> Any:
        raise NotImplementedError

    def summarise(self, result: Any) -> None:
        raise NotImplementedError

    def report_rows(self, result: Any) -> tuple[Sequence[str], Any]:
        raise NotImplementedError


class StoredImportCommand(FileImportCommand):
    """An import stored as an ``UploadedImport`` and run in this process instead of a worker: created, its dry
    run done, and with --commit (if the dry run succeeded) its commit requested and done. A failed import ends
    the command with its error."""

    def create(self, *, name: str, content: bytes, actor: roles.Actor) -> UploadedImport:
        """The service that stores the file (not queued)."""
        raise NotImplementedError

    def run(self, import_id: int) -> UploadedImport | None:
        """The service that runs the phase the import's state asks for."""
        raise NotImplementedError

    def request_commit(self, *, import_id: int, actor: roles.Actor) -> None:
        """The service that asks for the commit (not queued)."""
        raise NotImplementedError

    def run_import(
        self, *, name: str, content: bytes, actor: roles.Actor, commit: bool, **options: Any
    ) -> UploadedImport:
        record = self._run(self.create(name=name, content=content, actor=actor).pk)
        if commit and record.state == ImportState.VALIDATED:
            self.request_commit(import_id=record.pk, actor=actor)
            record = self._run(record.pk)
        if record.state == ImportState.FAILED:
            raise CommandError(f"Import #{record.pk} failed: {record.error}")
        return record

    def _run(self, import_id: int) -> UploadedImport:
        record = self.run(import_id)
        if record is None:  # cannot happen: nothing else runs an import this command created and has not queued
            raise CommandError(f"Import #{import_id} was not run.")
        return record
