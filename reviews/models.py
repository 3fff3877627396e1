"""Monthly review batches and staged review decisions (DESIGN §5).

A batch (每月集中审批) freezes a region's diagnosed applications once a month. Each application in
it gets a ReviewItem that walks through the review stages of its disease (初审 / 复核 / 审批);
every stage decision is one StageDecision row. Writes happen in reviews/services.py only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from enrollment.models import Application, Region


class BatchState(models.TextChoices):
    OPEN = "open", _("open")
    REVIEWING = "reviewing", _("reviewing")
    CLOSED = "closed", _("closed")


class ReviewBatch(models.Model):
    """One region's monthly review batch (每月集中审批).

    ``open`` while it is being assembled, ``reviewing`` once every eligible application is in it,
    ``closed`` when every item is decided.
    """

    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="review_batches", verbose_name=_("region")
    )
    period = models.CharField(_("period"), max_length=7, help_text="YYYY-MM")
    cutoff = models.DateTimeField(_("cutoff"))
    state = models.CharField(_("state"), max_length=10, choices=BatchState.choices, default=BatchState.OPEN)
    item_count = models.PositiveIntegerField(_("items"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    assembled_at = models.DateTimeField(
        _("assembled at"),
        null=True,
        blank=True,
        help_text=_("Set when every eligible application is in the batch; an unset value means resume."),
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        ordering = ["-period", "region__code"]
        verbose_name = _("review batch")
        verbose_name_plural = _("review batches")
        constraints = [models.UniqueConstraint(fields=["region", "period"], name="one_batch_per_region_period")]
        indexes = [models.Index(fields=["state", "period"], name="batch_state_period")]

    def __str__(self) -> str:
        return f"{self.region.code} {self.period}"


class Stage(models.TextChoices):
    INITIAL_REVIEW = "initial_review", _("initial review 初审")
    RECHECK = "recheck", _("re-check 复核")
    APPROVAL = "approval", _("approval 审批")
    # Immediate mode (即时办结): one decision by a center officer, no batch.
    IMMEDIATE = "immediate", _("immediate approval 即时办结")


class Outcome(models.TextChoices):
    PENDING = "pending", _("pending")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")
    RETURNED = "returned", _("returned for more information")
    WITHDRAWN = "withdrawn", _("closed: the application was withdrawn")


class Decision(models.TextChoices):
    APPROVE = "approve", _("approve")
    REJECT = "reject", _("reject")
    RETURN = "return", _("return for more information")


class RejectReason(models.TextChoices):
    CRITERIA_NOT_MET = "criteria_not_met", _("criteria not met")
    INSUFFICIENT_EVIDENCE = "insufficient_evidence", _("insufficient evidence")
    DIAGNOSIS_NOT_CONFIRMED = "diagnosis_not_confirmed", _("diagnosis not confirmed")
    NOT_INSURED = "not_insured", _("not insured in the region")
    OTHER = "other", _("other")


class ReviewItem(models.Model):
    """One application's passage through one batch: which stage it waits at and who holds it.

    ``region`` and ``stage`` are copied from the application so that the queue reads one table
    in the order of one partial index.
    """

    batch = models.ForeignKey(ReviewBatch, on_delete=models.PROTECT, related_name="items", verbose_name=_("batch"))
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="review_items", verbose_name=_("application")
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("region"))
    round = models.PositiveSmallIntegerField(
        _("round"), default=1, help_text=_("1 for the first review; one more after each return and resubmission.")
    )
    stages = models.JSONField(_("stages"), help_text=_("The disease's stages when the item was queued, in order."))
    stage = models.CharField(_("current stage"), max_length=30)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    queued_at = models.DateTimeField(_("waiting at this stage since"))
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="claimed_review_items",
        verbose_name=_("claimed by"),
    )
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        ordering = ["queued_at", "id"]
        verbose_name = _("review item")
        verbose_name_plural = _("review items")
        constraints = [
            models.UniqueConstraint(fields=["batch", "application"], name="one_item_per_batch_application"),
            models.UniqueConstraint(
                fields=["application"], condition=Q(outcome="pending"), name="one_pending_item_per_application"
            ),
        ]
        indexes = [
            # The queue: pending items of a region at a stage, oldest first (keyset pagination).
            models.Index(
                fields=["region", "stage", "queued_at", "id"], condition=Q(outcome="pending"), name="review_queue"
            ),
            # A reviewer holding several stages or regions: PostgreSQL walks this in queue order and
            # filters, instead of sorting every pending item (bench/http_queue.py: 55 ms → 0.7 ms at 1M).
            models.Index(fields=["queued_at", "id"], condition=Q(outcome="pending"), name="review_queue_order"),
            models.Index(fields=["claimed_by", "outcome"], name="review_item_claims"),
            models.Index(fields=["batch", "outcome", "stage"], name="review_item_batch"),
        ]

    def __str__(self) -> str:
        return f"#{self.application_id} {self.stage} ({self.get_outcome_display()})"

    @property
    def is_last_stage(self) -> bool:
        return self.stage == self.stages[-1]

    def next_stage(self) -> str | None:
        index = self.stages.index(self.stage)
        return self.stages[index + 1] if index + 1 < len(self.stages) else None


class StageDecision(models.Model):
    """One reviewer's decision at one stage of one review round (the "who decided what")."""

    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="stage_decisions", verbose_name=_("application")
    )
    item = models.ForeignKey(
        ReviewItem,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
        verbose_name=_("review item"),
        help_text=_("Empty for an immediate approval."),
    )
    batch = models.ForeignKey(
        ReviewBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions", verbose_name=_("batch")
    )
    round = models.PositiveSmallIntegerField(_("round"), default=1)
    stage = models.CharField(_("stage"), max_length=30)
    decision = models.CharField(_("decision"), max_length=10, choices=Decision.choices)
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stage_decisions", verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided at"))
    two_diseases_application = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("两病 enrollment created"),
    )

    class Meta:
        ordering = ["decided_at", "id"]
        verbose_name = _("stage decision")
        verbose_name_plural = _("stage decisions")
        constraints = [
            models.UniqueConstraint(fields=["application", "round", "stage"], name="one_decision_per_stage_round"),
        ]
        indexes = [
            models.Index(fields=["application", "decided_by"], name="stage_decision_app_user"),
            models.Index(fields=["batch", "decided_by"], name="stage_decision_batch_user"),
        ]

    def __str__(self) -> str:
        return f"#{self.application_id} {self.stage} {self.decision}"
