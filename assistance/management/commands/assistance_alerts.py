from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assistance import services
from kernel.errors import DomainError


class Command(BaseCommand):
    help = (
        "Compute the assistance of a month's settlements not yet computed, then create the high-cost alerts of "
        "the month (monthly and, where the policy sets it, rolling 12-month); safe to repeat. Default: last month."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", help="the month, YYYY-MM (default: last month)")

    def handle(self, *args: Any, period: str | None, **options: Any) -> None:
        try:
            month = services.parse_period(period) if period else None
            result = services.monthly_run(actor=services.system_user(), period=month)
        except DomainError as exc:
            raise CommandError(str(exc.message))
        self.stdout.write(f"{result.period:%Y-%m}:")
        for kind, n in result.created.items():
            self.stdout.write(f"  {kind:12} {result.candidates[kind]} over the threshold, {n} new alerts")
