from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from interop import selectors, services
from kernel.errors import DomainError
from kernel.tabular import write_report_file


class Command(BaseCommand):
    help = (
        "Import a roster of monitored people (CSV in UTF-8/GBK, or XLSX): a dry run with a per-row report, "
        "and with --commit, persons registered and eligible people put on the assisted-filing worklist."
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
            roster = services.roster_import_create(name=Path(path).name, content=content, actor=actor, queue=False)
            roster = services.roster_import_run(import_id=roster.pk)
            if commit and roster.state == "validated":
                services.roster_import_request_commit(import_id=roster.pk, actor=actor, queue=False)
                roster = services.roster_import_run(import_id=roster.pk)
        except DomainError as exc:
            raise CommandError(str(exc.message))
        if roster.state == "failed":
            raise CommandError(f"Import #{roster.pk} failed: {roster.error}")
        counts = roster.counts
        self.stdout.write(
            f"Roster import #{roster.pk} ({roster.state}): {counts['lines']} lines, {counts['entries']} entries"
        )
        for status, n in counts["by_status"].items():
            self.stdout.write(f"  {status:18} {n}")
        for action, n in counts.get("by_action", {}).items():
            self.stdout.write(f"  {action:18} {n}")
        if report:
            header, rows = selectors.ROSTER_REPORT_HEADER, selectors.roster_report_rows(roster)
            write_report_file(report, header, rows)
            self.stdout.write(f"Report written to {report}")
