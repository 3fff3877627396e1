from typing import Any

from django.core.management.base import CommandParser

from interop.status_import import REPORT_HEADER, ImportResult, status_events_import
from kernel import roles
from kernel.uploads import FileImportCommand


class Command(FileImportCommand):
    help = (
        "Import dated status events (insurance suspended/resumed/ended, moved out, died, left poverty, categories "
        "set) from a CSV (UTF-8/GBK) or XLSX file: a dry run with a per-row report; with --commit each valid row "
        "is recorded. Idempotent: a row whose reference was recorded before changes nothing."
    )
    user_help = "an administrator or centre officer: who records"
    commit_help = "record the valid rows (default: dry run only)"

    def add_options(self, parser: CommandParser) -> None:
        parser.add_argument("--source", default="import", help="the sending system; with each reference, the key")

    def run_import(
        self, *, name: str, content: bytes, actor: roles.Actor, commit: bool, **options: Any
    ) -> ImportResult:
        return status_events_import(content=content, name=name, source=options["source"], actor=actor, commit=commit)

    def summarise(self, result: Any) -> None:
        mode = "committed" if result.committed else "dry run"
        self.stdout.write(f"Status events ({mode}): {len(result.rows)} rows")
        for status, n in sorted(result.counts().items()):
            self.stdout.write(f"  {status:18} {n}")
        for row in result.rows:
            if row.status == "invalid":
                self.stdout.write(f"  line {row.line}: {row.code}: {row.message}")

    def report_rows(self, result: Any) -> tuple[tuple[str, ...], Any]:
        return REPORT_HEADER, (row.report() for row in result.rows)
