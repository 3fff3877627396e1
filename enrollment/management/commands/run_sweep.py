"""``manage.py run_sweep [--date YYYY-MM-DD [--force]] [--deliver]``: the daily validity sweep for one date."""

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from enrollment import services
from kernel.errors import DomainError


class Command(BaseCommand):
    help = (
        "Run the validity sweep for a date (default today, Asia/Shanghai): approved → expiring inside the "
        "renewal window, → expired after valid_until + grace, and the expiry reminders now due. Safe to run "
        "twice; run it for each missed day or just for today, it catches up either way."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", dest="day", help="business date YYYY-MM-DD (default: today)")
        parser.add_argument(
            "--force",
            action="store_true",
            help="allow a --date after today (it moves real states: enrollments expire early, reminders go out early)",
        )
        parser.add_argument("--chunk-size", type=int, default=None, help="applications per transaction")
        parser.add_argument(
            "--deliver",
            action="store_true",
            help="send the SMS and e-mail reminders from this process instead of handing them to the workers",
        )

    def handle(
        self,
        *args: Any,
        day: str | None = None,
        chunk_size: int | None = None,
        deliver: bool = False,
        force: bool = False,
        **options: Any,
    ) -> None:
        try:
            date = dt.date.fromisoformat(day) if day else None
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, got {day!r}")
        today = timezone.localdate()
        # A sweep for a later day is not a rehearsal: it expires enrollments that still cover people today
        # and sends their reminders early, and the next daily run cannot undo either.
        if date is not None and date > today and not force:
            raise CommandError(
                f"--date {date.isoformat()} is after today ({today.isoformat()}): the sweep would expire "
                "enrollments that are still valid and send reminders early. Add --force only on a copy of the data."
            )
        try:
            result = services.validity_sweep(
                day=date, actor=services.get_system_user(), chunk_size=chunk_size, enqueue=not deliver
            )
        except DomainError as exc:
            raise CommandError(str(exc.message))
        self.stdout.write(
            f"Sweep {result.day.isoformat()}: {result.expiring} now expiring, {result.expired} expired, "
            f"{result.reminders_due} enrollments with reminders due, {result.reminders_skipped} superseded."
        )
        if deliver:
            statuses: dict[str, int] = {}
            for reminder_id in result.to_send:
                status = services.reminder_deliver(reminder_id=reminder_id).status
                statuses[status] = statuses.get(status, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "none"
            self.stdout.write(f"Reminders delivered here: {summary}.")
        else:
            self.stdout.write(f"{len(result.to_send)} reminders handed to the reminders queue.")
        self.stdout.write(self.style.SUCCESS("Done."))
