"""Run the monthly review batch by hand: ``manage.py assemble_review_batch --period 2026-03 [--region 530124]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from enrollment.models import Application, Region, State
from enrollment.periods import period_key
from enrollment.services import get_system_user
from kernel.errors import DomainError
from reviews import services, tasks


class Command(BaseCommand):
    help = (
        "Assemble (or resume) the review batch of a period for one region, or for every region with "
        "diagnosed applications. Safe to run twice."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--period", help="YYYY-MM; default the current month (Asia/Shanghai).")
        parser.add_argument(
            "--region", help="6- or 9-digit (township) region code; default every region with diagnosed applications."
        )
        parser.add_argument(
            "--queue", action="store_true", help="Send the work to the Celery 'batch' queue instead of running here."
        )

    def handle(self, *args: Any, period: str | None, region: str | None, queue: bool, **options: Any) -> None:
        period = period or period_key(timezone.localdate())
        if region:
            try:
                regions = [Region.objects.get(code=region)]
            except Region.DoesNotExist:
                raise CommandError(f"No region with code {region}.")
        else:
            ids = Application.objects.filter(state=State.DIAGNOSED).order_by().values_list("region_id", flat=True)
            regions = list(Region.objects.filter(pk__in=list(ids.distinct())))
        if not regions:
            self.stdout.write("No region has diagnosed applications waiting; nothing to do.")
            return
        actor = get_system_user()
        for item in regions:
            if queue:
                tasks.assemble_batch.delay(item.pk, period)
                self.stdout.write(f"{item.code} {period}: queued")
                continue
            try:
                batch = services.batch_assemble(region_id=item.pk, period=period, actor=actor)
            except DomainError as exc:
                raise CommandError(str(exc.message))
            self.stdout.write(
                self.style.SUCCESS(
                    f"{item.code} {period}: batch #{batch.pk} {batch.state}, {batch.item_count} items "
                    f"(cutoff {timezone.localtime(batch.cutoff):%Y-%m-%d %H:%M})"
                )
            )
