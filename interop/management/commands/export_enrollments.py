import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from interop import selectors, services
from kernel.errors import DomainError
from kernel.tabular import csv_chunks, write_xlsx


class Command(BaseCommand):
    help = (
        "Export approved and expiring enrollments of a region and period: the office's list (office) or "
        "the national platform's filing records (national). CSV or XLSX (by the output's extension). "
        "Full ID numbers: every person exported is written to the access log, under the system user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--region", required=True, help="6-digit region code; regions inside it are included")
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument("--format", dest="shape", choices=selectors.SHAPES, default=selectors.OFFICE)
        parser.add_argument(
            "--basis",
            choices=selectors.BASES,
            default=selectors.DECIDED,
            help="decided: approved during the period (default); covering: valid on any day of it",
        )
        parser.add_argument("--output", help="a .csv or .xlsx file; default: CSV on standard output")

    def handle(
        self, *args: Any, region: str, period: str, shape: str, basis: str, output: str | None, **options: Any
    ) -> None:
        try:
            request = selectors.export_request(viewer=None, region_code=region, period=period, shape=shape, basis=basis)
            # Full ID numbers: each person exported is written to the access log under the system user.
            header, rows = services.export_enrollments(viewer=None, request=request)
            if output and output.endswith(".xlsx"):
                Path(write_xlsx(header, rows, title=f"{region}-{period}")).replace(output)
            else:
                handle = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
                try:
                    for chunk in csv_chunks(header, rows):
                        handle.write(chunk)
                finally:
                    if output:
                        handle.close()
        except DomainError as exc:
            raise CommandError(str(exc.message))
        if output:
            self.stderr.write(f"Written to {output}")
