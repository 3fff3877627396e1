"""Monthly review batches and staged review decisions (DESIGN §5)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from enrollment.models import Region


class BatchState(models.TextChoices):
    OPEN = "open", _("open")
    REVIEWING = "reviewing", _("reviewing")
    CLOSED = "closed", _("closed")


class ReviewBatch(models.Model):
    """One region's monthly review batch (每月集中审批)."""

    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="review_batches", verbose_name=_("region")
    )
    period = models.CharField(_("period"), max_length=7, help_text="YYYY-MM")
    cutoff = models.DateTimeField(_("cutoff"))
    state = models.CharField(_("state"), max_length=10, choices=BatchState.choices, default=BatchState.OPEN)
    item_count = models.PositiveIntegerField(_("items"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        ordering = ["-period", "region__code"]
        verbose_name = _("review batch")
        verbose_name_plural = _("review batches")
        constraints = [models.UniqueConstraint(fields=["region", "period"], name="one_batch_per_region_period")]

    def __str__(self) -> str:
        return f"{self.region.code} {self.period}"
