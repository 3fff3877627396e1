from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistance import services
from assistance.models import SettlementImportState
from kernel.errors import DomainError
from kernel.tabular import write_report_file

REPORT_HEADER = ("line", "serial_number", "status", "reason_code", "message")


class Command(BaseCommand):
    help = (
        "Import monthly settlement data (CSV in UTF-8/GBK, or XLSX): a dry run with a per-row report, and with "
        "--commit the new settlements stored (idempotent by serial number) and their assistance computed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--user", required=True, help="an administrator or centre officer: who imports")
        parser.add_argument("--commit", action="store_true", help="commit after the dry run (default: dry run only)")
        parser.add_argument("--report", help="write the per-row report to this .csv or .xlsx file")

    def handle(self, *args, path, user, commit, report, **options):
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"No user {user!r}.")
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}")
        try:
            record = services.settlement_import_create(name=Path(path).name, content=content, actor=actor, queue=False)
            record = services.settlement_import_run(import_id=record.pk)
            if commit and record.state == SettlementImportState.VALIDATED:
                services.settlement_import_request_commit(import_id=record.pk, actor=actor, queue=False)
                record = services.settlement_import_run(import_id=record.pk)
        except DomainError as exc:
            raise CommandError(str(exc.message))
        if record.state == SettlementImportState.FAILED:
            raise CommandError(f"Import #{record.pk} failed: {record.error}")
        counts = record.counts
        self.stdout.write(f"Settlement import #{record.pk} ({record.state}): {counts['lines']} lines")
        for status, n in sorted(counts["by_status"].items()):
            self.stdout.write(f"  {status:12} {n}")
        if "created" in counts:
            self.stdout.write(f"  stored       {counts['created']}")
        if report:
            rows = record.rows.order_by("line", "pk").values_list(*REPORT_HEADER)
            write_report_file(report, REPORT_HEADER, rows.iterator(chunk_size=5000))
            self.stdout.write(f"Report written to {report}")
