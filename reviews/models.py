"""Monthly review batches and staged review decisions (docs/design.md: Reviews).

A batch (每月集中审批) freezes a region's diagnosed applications once a month. Each application in
it gets a ReviewItem that walks through the review stages of its disease (初审 / 复核 / 审批);
every stage decision is one StageDecision row. Writes happen in reviews/services.py only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from enrollment.models import Application, DiseaseType, Region


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
    due_on = models.DateField(
        _("stage due on"), null=True, blank=True, help_text=_("The stage's time limit in working days from queued_at.")
    )
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
    due_on = models.DateField(
        _("stage was due on"), null=True, blank=True, help_text=_("For the on-time rates of the reports.")
    )
    application_due_on = models.DateField(
        _("application was due on"),
        null=True,
        blank=True,
        help_text=_(
            "Set on the decision that decided the application: its promised date (承诺时限, 补正 pauses counted), "
            "for the on-time rates per region and institution."
        ),
    )
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


# ---------------------------------------------------------------------------
# Working-day deadlines (issue 15): the calendar, time limits per region, escalations
# ---------------------------------------------------------------------------


class CalendarDay(models.Model):
    """One date whose working status an administrator declares (节假日 / 调休), consulted before the library.

    Used for a year the ``chinese-calendar`` library does not know yet (the State Council publishes the next
    year's schedule in late autumn) and to correct a single day. See docs/reviews.md, "Working days".
    """

    date = models.DateField(_("date"), unique=True)
    is_working_day = models.BooleanField(
        _("working day"), help_text=_("Ticked: a make-up working day (调休上班); unticked: a public holiday (放假).")
    )
    note = models.CharField(_("note"), max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("calendar day")
        verbose_name_plural = _("calendar days")

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {'working' if self.is_working_day else 'holiday'}"


class CalendarYear(models.Model):
    """A year whose whole holiday schedule is entered as calendar days: its other dates follow Monday–Friday."""

    year = models.PositiveSmallIntegerField(_("year"), unique=True)
    note = models.CharField(_("source"), max_length=200, blank=True, help_text=_("e.g. the State Council notice."))

    class Meta:
        ordering = ["year"]
        verbose_name = _("declared calendar year")
        verbose_name_plural = _("declared calendar years")

    def __str__(self) -> str:
        return str(self.year)


class ReviewTimeLimit(models.Model):
    """Promised working days (承诺时限): for the whole application (``stage`` empty, counted from a complete
    filing) or for one review stage (counted from entering it). ``region`` empty: the default everywhere;
    a region's own row wins over its ancestors' and over the default."""

    region = models.ForeignKey(
        Region,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="review_time_limits",
        verbose_name=_("region"),
        help_text=_("Empty: the default for every region."),
    )
    disease_type = models.CharField(_("disease type"), max_length=2, choices=DiseaseType.choices)
    stage = models.CharField(
        _("stage"), max_length=30, blank=True, help_text=_("Empty: the whole application, from a complete filing.")
    )
    working_days = models.PositiveSmallIntegerField(_("working days"))

    class Meta:
        ordering = ["region__code", "disease_type", "stage"]
        verbose_name = _("review time limit")
        verbose_name_plural = _("review time limits")
        constraints = [
            models.UniqueConstraint(
                fields=["region", "disease_type", "stage"],
                condition=Q(region__isnull=False),
                name="one_time_limit_per_region",
            ),
            models.UniqueConstraint(
                fields=["disease_type", "stage"], condition=Q(region__isnull=True), name="one_default_time_limit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region or '*'} {self.disease_type} {self.stage or 'application'}: {self.working_days}"


class SupplementPolicy(models.Model):
    """How long a clinic may hold a 补正 request before the system withdraws the application, and when it is
    reminded. Without a row for the region or an ancestor: settings REVIEW_SUPPLEMENT_ANSWER_DAYS / _REMINDER_DAYS."""

    region = models.OneToOneField(
        Region, on_delete=models.CASCADE, related_name="supplement_policy", verbose_name=_("region")
    )
    answer_days = models.PositiveSmallIntegerField(
        _("days to answer"), default=30, help_text=_("Calendar days from the request; then the system withdraws.")
    )
    reminder_days = models.PositiveSmallIntegerField(
        _("remind this many days before"), default=7, help_text=_("0: no reminder.")
    )

    class Meta:
        verbose_name = _("补正 policy")
        verbose_name_plural = _("补正 policies")

    def __str__(self) -> str:
        return f"{self.region or '*'}: {self.answer_days} / {self.reminder_days}"


class SupplementReason(models.TextChoices):
    """The coded checklist of a 补正 request; the labels are what the clinic reads."""

    DIAGNOSIS_CERTIFICATE = "diagnosis_certificate", _("the diagnosis certificate is missing")
    UNCLEAR_SCAN = "unclear_scan", _("a scanned document cannot be read clearly")
    ID_COPY = "id_copy", _("a copy of the ID card is missing")
    WRONG_DISEASE_CODE = "wrong_disease_code", _("the disease or ICD-10 code does not match the documents")
    MEDICAL_RECORDS = "medical_records", _("medical records or test reports are missing")
    OTHER = "other", _("other (see the note)")


class SupplementState(models.TextChoices):
    OPEN = "open", _("waiting for the clinic")
    ANSWERED = "answered", _("answered: resubmitted")
    WITHDRAWN = "withdrawn", _("withdrawn: not answered in time")
    CLOSED = "closed", _("closed: the application was withdrawn or closed")


class SupplementRequest(models.Model):
    """A 补正 request: a reviewer (or an officer, on the spot) returns an application asking for named documents
    or corrections. The review clock pauses while it is open."""

    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="supplement_requests", verbose_name=_("application")
    )
    decision = models.OneToOneField(
        StageDecision, on_delete=models.PROTECT, related_name="supplement_request", verbose_name=_("decision")
    )
    codes = models.JSONField(_("what is asked for"), default=list)
    note = models.TextField(_("note to the clinic"), blank=True)
    state = models.CharField(_("state"), max_length=10, choices=SupplementState.choices, default=SupplementState.OPEN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"))
    answer_by = models.DateField(_("answer by"), help_text=_("After this day the system withdraws the application."))
    remind_on = models.DateField(_("remind on"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("reminder sent at"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    paused_working_days = models.PositiveSmallIntegerField(
        _("working days paused"), default=0, help_text=_("Set on the answer: the due date moves by this much.")
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("补正 request")
        verbose_name_plural = _("补正 requests")
        constraints = [
            models.UniqueConstraint(
                fields=["application"], condition=Q(state="open"), name="one_open_supplement_per_application"
            ),
        ]
        indexes = [models.Index(fields=["state", "answer_by"], name="supplement_open_due")]

    def __str__(self) -> str:
        return f"#{self.application_id} 补正 {self.get_state_display()}"

    def reasons(self) -> list[str]:
        """The checklist in the clinic's words (never the internal codes)."""
        labels = dict(SupplementReason.choices)
        return [str(labels[code]) for code in self.codes if code in labels]


class Escalation(models.Model):
    """An item past its stage deadline, reported once to the stage's supervisors (unique per item and stage)."""

    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="escalations", verbose_name=_("item"))
    stage = models.CharField(_("stage"), max_length=30)
    due_on = models.DateField(_("was due on"))
    escalated_at = models.DateTimeField(_("escalated at"))
    notified = models.PositiveSmallIntegerField(_("people notified"), default=0)

    class Meta:
        ordering = ["-escalated_at", "-id"]
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")
        constraints = [models.UniqueConstraint(fields=["item", "stage"], name="one_escalation_per_item_stage")]

    def __str__(self) -> str:
        return f"#{self.item_id} {self.stage} due {self.due_on}"


class Notification(models.Model):
    """An in-app notification (站内消息) to one user: 补正 requests and reminders, escalations."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="review_notifications",
        verbose_name=_("recipient"),
    )
    kind = models.CharField(_("kind"), max_length=30)
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("application")
    )
    subject = models.CharField(_("subject"), max_length=200)
    message = models.TextField(_("message"), blank=True)
    created_at = models.DateTimeField(_("created at"))
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.subject
