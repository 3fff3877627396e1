"""Run the sample re-check draw for a month: ``manage.py draw_rechecks --period 2026-03`` or ``--date 2026-04-01``
(the month before the date, as beat does). Safe to run again: a completed draw changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from enrollment.services import get_system_user
from kernel.errors import DomainError
from oversight import services
from oversight.tasks import previous_period


class Command(BaseCommand):
    help = "Draw a month's immediate and single-stage approvals into the sample re-check queue (once per region)."

    def add_arguments(self, parser: Any) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--period", help="the month of the approvals, YYYY-MM")
        group.add_argument("--date", help="YYYY-MM-DD: draw the month before this date (what beat does that day)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["period"]:
            period = options["period"]
        else:
            try:
                day = dt.date.fromisoformat(options["date"]) if options["date"] else timezone.localdate()
            except ValueError as error:
                raise CommandError(f"--date: {error}") from error
            period = previous_period(day)
        try:
            draws = services.recheck_draws_for_period(period=period, actor=get_system_user())
        except DomainError as error:
            raise CommandError(str(error.message)) from error
        for draw in draws:
            self.stdout.write(
                f"{draw.region.code} {draw.period}: {draw.sampled} of {draw.candidates} drawn (seed {draw.seed})"
            )
        if not draws:
            self.stdout.write(f"{period}: no approvals to draw from")
