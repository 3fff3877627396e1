from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from interop.status_import import REPORT_HEADER, status_events_import
from kernel.errors import DomainError
from kernel.tabular import write_report_file


class Command(BaseCommand):
    help = (
        "Import dated status events (insurance suspended/resumed/ended, moved out, died, left poverty, categories "
        "set) from a CSV (UTF-8/GBK) or XLSX file: a dry run with a per-row report; with --commit each valid row "
        "is recorded. Idempotent: a row whose reference was recorded before changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--user", required=True, help="an administrator or centre officer: who records")
        parser.add_argument("--source", default="import", help="the sending system; with each reference, the key")
        parser.add_argument("--commit", action="store_true", help="record the valid rows (default: dry run only)")
        parser.add_argument("--report", help="write the per-row report to this .csv or .xlsx file")

    def handle(self, *args, path, user, source, commit, report, **options):
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"No user {user!r}.")
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        try:
            result = status_events_import(
                content=content, name=Path(path).name, source=source, actor=actor, commit=commit
            )
        except DomainError as exc:
            raise CommandError(str(exc.message))
        mode = "committed" if commit else "dry run"
        self.stdout.write(f"Status events ({mode}): {len(result.rows)} rows")
        for status, n in sorted(result.counts().items()):
            self.stdout.write(f"  {status:18} {n}")
        for row in result.rows:
            if row.status == "invalid":
                self.stdout.write(f"  line {row.line}: {row.code}: {row.message}")
        if report:
            rows = (row.report() for row in result.rows)
            write_report_file(report, REPORT_HEADER, rows)
            self.stdout.write(f"Report written to {report}")
