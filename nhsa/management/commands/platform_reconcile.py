"""Compare a region's enrollments with the platform's filings (5301) and store the differences."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrollment.models import Region
from nhsa import reconcile_services
from nhsa.client import platform_enabled


class Command(BaseCommand):
    help = "Reconcile a region's 门慢 enrollments with the national platform (5301); see docs/platform.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--region", required=True, help="region code (a province compares all its regions)")
        parser.add_argument("--date", help="as of YYYY-MM-DD (default today)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not platform_enabled():
            raise CommandError("PLATFORM_URL is not set: there is no platform to compare with.")
        region = Region.objects.filter(code=options["region"]).first()
        if region is None:
            raise CommandError(f"No region with code {options['region']}.")
        try:
            day = dt.date.fromisoformat(options["date"]) if options["date"] else None
        except ValueError as exc:
            raise CommandError("--date must be YYYY-MM-DD.") from exc
        run = reconcile_services.reconcile_region(region=region, day=day)
        counts: dict[str, int] = {}
        for kind in run.differences.values_list("kind", flat=True):
            counts[kind] = counts.get(kind, 0) + 1
        self.stdout.write(
            f"reconciliation #{run.pk}: {run.persons} persons, {sum(counts.values())} differences {counts}"
            + (f"; stopped: {run.error}" if run.error else "")
        )
        if run.error:
            raise CommandError(run.error)
