"""Oversight after the decision: sample re-checks of approvals (抽查复核) and public notices (公示).

Re-checks: every month a seeded, reproducible draw takes a policy share of the approvals that had
little review (immediate approvals, 即时办结, and approvals after a single review stage) into a queue,
where a reviewer who had no part in the application records pass or fail; a failure terminates the enrollment or
returns the approval to the filing clinic for correction (CorrectionRequest). Notices: an officer publishes a
batch's approved list with masked names and ID numbers for a number of days; objections (异议) received
by phone or letter hold an entry until an officer resolves them. Writes happen in oversight/services.py
only; every write leaves an OversightAuditEntry (append-only).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from enrollment.models import Application, Disease, Document, Institution, Region
from kernel.models import AppendOnlyModel
from reviews.models import SupplementReason

DEFAULT_RECHECK_PERCENT = Decimal("10.00")
DEFAULT_NOTICE_DAYS = 7


def mask_name(name: str) -> str:
    """A name as a public notice shows it: 张*, 张*三, 欧**明 — the first character and, from three
    characters on, the last stay; every other character is one asterisk. Spaces are dropped first (a
    name typed with a space would otherwise keep an extra character)."""
    chars = [c for c in (name or "").strip() if not c.isspace()]
    if len(chars) <= 1:
        return "*" * len(chars)
    if len(chars) == 2:
        return chars[0] + "*"
    return chars[0] + "*" * (len(chars) - 2) + chars[-1]


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------


class RecheckRate(models.Model):
    """The share of a region's low-review approvals drawn for a re-check.

    A rate may name a disease, an institution, both, or neither (the region's default). For an approval,
    the most specific rate wins: disease + institution, then disease, then institution, then the region's
    default; among equally specific rates, the one of the nearest region (the application's region, then
    its ancestors). No rate anywhere: settings.OVERSIGHT_RECHECK_PERCENT (10 %). 0 switches re-checks off.
    """

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="recheck_rates", verbose_name=_("region"))
    disease = models.ForeignKey(
        Disease, null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("disease")
    )
    institution = models.ForeignKey(
        Institution,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("institution"),
        help_text=_("The treating (diagnosing) institution of the application."),
    )
    percent = models.DecimalField(
        _("re-check rate (%)"),
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text=_("0 switches sample re-checks off for these approvals."),
    )

    class Meta:
        verbose_name = _("re-check rate")
        verbose_name_plural = _("re-check rates")
        constraints = [
            models.UniqueConstraint(
                fields=["region"],
                condition=Q(disease__isnull=True, institution__isnull=True),
                name="one_default_recheck_rate_per_region",
            ),
            models.UniqueConstraint(
                fields=["region", "disease"],
                condition=Q(disease__isnull=False, institution__isnull=True),
                name="one_recheck_rate_per_region_disease",
            ),
            models.UniqueConstraint(
                fields=["region", "institution"],
                condition=Q(disease__isnull=True, institution__isnull=False),
                name="one_recheck_rate_per_region_institution",
            ),
            models.UniqueConstraint(
                fields=["region", "disease", "institution"],
                condition=Q(disease__isnull=False, institution__isnull=False),
                name="one_recheck_rate_per_region_disease_institution",
            ),
            models.CheckConstraint(
                condition=Q(percent__gte=0) & Q(percent__lte=100), name="recheck_percent_between_0_and_100"
            ),
        ]

    def __str__(self) -> str:
        scope = " / ".join(str(part) for part in (self.disease, self.institution) if part) or _("default")
        return f"{self.region} {scope}: {self.percent}%"

    @property
    def specificity(self) -> int:
        return (2 if self.disease_id else 0) + (1 if self.institution_id else 0)


class NoticePolicy(models.Model):
    """How long a region's approved lists stay published (公示期), in calendar days."""

    region = models.OneToOneField(
        Region, on_delete=models.CASCADE, related_name="notice_policy", verbose_name=_("region")
    )
    notice_days = models.PositiveSmallIntegerField(
        _("notice period (calendar days)"),
        default=DEFAULT_NOTICE_DAYS,
        validators=[MinValueValidator(5), MaxValueValidator(30)],
    )

    class Meta:
        verbose_name = _("notice policy")
        verbose_name_plural = _("notice policies")

    def __str__(self) -> str:
        return f"{self.region}: {self.notice_days}"


# ---------------------------------------------------------------------------
# Sample re-checks (抽查复核)
# ---------------------------------------------------------------------------


class RecheckDraw(models.Model):
    """One region's draw for one month of approvals: its seed makes every pick reproducible."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="recheck_draws", verbose_name=_("region"))
    period = models.CharField(_("period of the approvals"), max_length=7, help_text="YYYY-MM")
    seed = models.CharField(_("seed"), max_length=64)
    drawn_at = models.DateTimeField(_("drawn at"))
    drawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    candidates = models.PositiveIntegerField(_("candidates"), default=0)
    sampled = models.PositiveIntegerField(_("sampled"), default=0)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        ordering = ["-period", "region__code"]
        verbose_name = _("re-check draw")
        verbose_name_plural = _("re-check draws")
        constraints = [models.UniqueConstraint(fields=["region", "period"], name="one_recheck_draw_per_region_period")]

    def __str__(self) -> str:
        return f"{self.region.code} {self.period}"


class SampleKind(models.TextChoices):
    IMMEDIATE = "immediate", _("immediate approval (即时办结)")
    SINGLE_STAGE = "single_stage", _("approved after one review stage")


class RecheckState(models.TextChoices):
    PENDING = "pending", _("waiting for a re-check")
    PASSED = "passed", _("passed")
    FAILED = "failed", _("failed")
    RETURNED = "returned", _("returned to the clinic for correction")


class Correction(models.TextChoices):
    NONE = "", _("none")
    TERMINATED = "terminated", _("enrollment terminated")
    ALREADY_ENDED = "already_ended", _("nothing to correct: the enrollment had already ended")
    # A return (the enrollment keeps covering): while the clinic holds it, and after its answer until the next
    # decision; then "corrected" (passed), "terminated" or another return.
    RETURNED = "returned", _("returned to the clinic for correction")
    CORRECTED = "corrected", _("corrected by the clinic after a return")
    UNANSWERED = "unanswered", _("enrollment terminated: the correction request was not answered in time")


class RecheckSample(models.Model):
    """One approval drawn for a re-check; each application is drawn at most once, ever."""

    draw = models.ForeignKey(RecheckDraw, on_delete=models.PROTECT, related_name="samples", verbose_name=_("draw"))
    application = models.OneToOneField(
        Application, on_delete=models.PROTECT, related_name="recheck_sample", verbose_name=_("application")
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("region"))
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("treating institution")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=SampleKind.choices)
    approved_at = models.DateTimeField(_("approved at"))
    percent = models.DecimalField(_("rate applied (%)"), max_digits=5, decimal_places=2)
    rate_source = models.CharField(_("rate from"), max_length=80)
    score = models.DecimalField(
        _("draw score"), max_digits=9, decimal_places=6, help_text=_("From the seed and the application id; < rate.")
    )
    state = models.CharField(_("state"), max_length=10, choices=RecheckState.choices, default=RecheckState.PENDING)
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checked_at = models.DateTimeField(_("re-checked at"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    correction = models.CharField(_("correction"), max_length=20, choices=Correction.choices, blank=True, default="")
    returns = models.PositiveSmallIntegerField(
        _("returns to the clinic"), default=0, help_text=_("How many times a failed re-check returned it.")
    )

    class Meta:
        ordering = ["approved_at", "id"]
        verbose_name = _("re-check sample")
        verbose_name_plural = _("re-check samples")
        indexes = [
            models.Index(fields=["region", "state", "approved_at"], name="recheck_queue"),
            models.Index(fields=["institution", "state"], name="recheck_institution_state"),
        ]

    def __str__(self) -> str:
        return f"#{self.application_id} {self.get_state_display()}"


class CorrectionState(models.TextChoices):
    OPEN = "open", _("waiting for the clinic")
    ANSWERED = "answered", _("answered by the clinic")
    LAPSED = "lapsed", _("not answered in time")


class CorrectionRequest(models.Model):
    """A failed re-check returned to the clinic that filed the application: the named documents or corrections
    (reviews' 补正 checklist and a note) to supply by ``answer_by``. The enrollment keeps covering meanwhile; the
    application's state machine is not involved. Answered: the sample goes back to the re-check queue. Not
    answered by then: the system terminates the enrollment (reason ``recheck_failed``)."""

    sample = models.ForeignKey(
        RecheckSample, on_delete=models.PROTECT, related_name="correction_requests", verbose_name=_("re-check sample")
    )
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="+", verbose_name=_("application")
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="+", verbose_name=_("filing institution")
    )
    codes = models.JSONField(_("what is asked for"), default=list, blank=True)
    note = models.TextField(_("note to the clinic"), blank=True)
    state = models.CharField(_("state"), max_length=10, choices=CorrectionState.choices, default=CorrectionState.OPEN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"))
    answer_by = models.DateField(
        _("answer by"), help_text=_("After this day the system terminates the enrollment (failed re-check).")
    )
    remind_on = models.DateField(_("remind on"), null=True, blank=True)
    reminded_at = models.DateTimeField(_("reminder sent at"), null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("answered by"),
    )
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    answer = models.TextField(_("the clinic's answer"), blank=True)
    documents = models.ManyToManyField(Document, blank=True, related_name="+", verbose_name=_("documents added"))
    lapsed_at = models.DateTimeField(_("lapsed at"), null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("correction request")
        verbose_name_plural = _("correction requests")
        constraints = [
            models.UniqueConstraint(
                fields=["sample"], condition=Q(state="open"), name="one_open_correction_per_sample"
            ),
        ]
        indexes = [
            models.Index(fields=["institution", "state"], name="correction_institution_state"),
            models.Index(fields=["state", "answer_by"], name="correction_open_due"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} ({self.application_id}) {self.get_state_display()}"

    def reasons(self) -> list[str]:
        """The checklist in the clinic's words (never the internal codes)."""
        labels = dict(SupplementReason.choices)
        return [str(labels[code]) for code in self.codes if code in labels]


# ---------------------------------------------------------------------------
# Public notices (公示)
# ---------------------------------------------------------------------------


class PublicNotice(models.Model):
    """A batch's approved list, published from ``starts_on`` to ``ends_on`` (both included).

    The public page is found by ``token`` (random, not a sequence number) and reads only the snapshot
    in NoticeEntry: masked name, masked ID number, disease and institution names, never a person's row.
    """

    batch = models.OneToOneField(
        "reviews.ReviewBatch", on_delete=models.PROTECT, related_name="public_notice", verbose_name=_("batch")
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("region"))
    token = models.CharField(max_length=32, unique=True)
    starts_on = models.DateField(_("published from"))
    ends_on = models.DateField(_("published until"))
    days = models.PositiveSmallIntegerField(_("notice period (calendar days)"))
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(_("published at"))

    class Meta:
        ordering = ["-starts_on", "-id"]
        verbose_name = _("public notice")
        verbose_name_plural = _("public notices")
        constraints = [
            models.CheckConstraint(condition=Q(ends_on__gte=models.F("starts_on")), name="notice_period_ordered")
        ]
        indexes = [models.Index(fields=["ends_on", "starts_on"], name="notice_period")]

    def __str__(self) -> str:
        return f"{self.batch} {self.starts_on}–{self.ends_on}"

    def is_open_on(self, day: object) -> bool:
        return self.starts_on <= day <= self.ends_on  # type: ignore[operator]


class NoticeEntry(models.Model):
    """One line of a notice: a snapshot of what may be shown publicly, taken when it was published."""

    notice = models.ForeignKey(PublicNotice, on_delete=models.PROTECT, related_name="entries")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="notice_entries")
    number = models.PositiveIntegerField(_("no."))
    masked_name = models.CharField(_("name"), max_length=50)
    masked_id_number = models.CharField(_("ID number"), max_length=18)
    disease_name = models.CharField(_("disease"), max_length=100)
    institution_name = models.CharField(_("institution"), max_length=200)
    held = models.BooleanField(_("under verification"), default=False)
    withdrawn = models.BooleanField(
        _("approval withdrawn after verification"),
        default=False,
        help_text=_("An objection was upheld and the enrollment terminated."),
    )

    class Meta:
        ordering = ["notice", "number"]
        verbose_name = _("notice entry")
        verbose_name_plural = _("notice entries")
        constraints = [
            models.UniqueConstraint(fields=["notice", "application"], name="one_entry_per_notice_application"),
            models.UniqueConstraint(fields=["notice", "number"], name="one_entry_number_per_notice"),
        ]

    def __str__(self) -> str:
        return f"{self.notice_id} #{self.number}"


class ObjectionChannel(models.TextChoices):
    PHONE = "phone", _("phone")
    LETTER = "letter", _("letter")
    VISIT = "visit", _("in person")
    EMAIL = "email", _("e-mail")


class ObjectionState(models.TextChoices):
    OPEN = "open", _("under verification")
    UPHELD = "upheld", _("upheld: enrollment corrected")
    REJECTED = "rejected", _("rejected: hold released")


class Objection(models.Model):
    """An objection (异议) to a notice entry, as an officer received it. The objector's text and contact are
    personal data: shown only to the region's officers and administrators, never on the public page."""

    entry = models.ForeignKey(NoticeEntry, on_delete=models.PROTECT, related_name="objections")
    channel = models.CharField(_("received by"), max_length=10, choices=ObjectionChannel.choices)
    text = models.TextField(_("objection"))
    contact = models.CharField(_("objector's contact"), max_length=200, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(_("recorded at"))
    state = models.CharField(_("state"), max_length=10, choices=ObjectionState.choices, default=ObjectionState.OPEN)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolution = models.TextField(_("resolution"), blank=True)

    class Meta:
        ordering = ["recorded_at", "id"]
        verbose_name = _("objection")
        verbose_name_plural = _("objections")
        indexes = [models.Index(fields=["entry", "state"], name="objection_entry_state")]

    def __str__(self) -> str:
        return f"{self.entry} {self.get_state_display()}"


# ---------------------------------------------------------------------------
# Audit trail
# ---------------------------------------------------------------------------


class OversightAction(models.TextChoices):
    DRAW = "draw", _("re-check draw")
    RECHECK_PASSED = "recheck_passed", _("re-check passed")
    RECHECK_FAILED = "recheck_failed", _("re-check failed")
    RECHECK_RETURNED = "recheck_returned", _("re-check failed: returned to the clinic for correction")
    CORRECTION_ANSWERED = "correction_answered", _("correction request answered by the clinic")
    CORRECTION_REMINDED = "correction_reminded", _("correction request reminded")
    CORRECTION_LAPSED = "correction_lapsed", _("correction request not answered in time")
    NOTICE_PUBLISHED = "notice_published", _("notice published")
    OBJECTION_RECORDED = "objection_recorded", _("objection recorded")
    OBJECTION_UPHELD = "objection_upheld", _("objection upheld")
    OBJECTION_REJECTED = "objection_rejected", _("objection rejected")


class OversightAuditEntry(AppendOnlyModel):
    """One row per oversight write, in the same transaction (append-only; a trigger guards it on PostgreSQL).

    Details never hold an objector's text or contact, nor an ID number.
    """

    action = models.CharField(_("action"), max_length=30, choices=OversightAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(_("at"))
    application = models.ForeignKey(Application, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    draw = models.ForeignKey(RecheckDraw, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sample = models.ForeignKey(RecheckSample, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    notice = models.ForeignKey(PublicNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    objection = models.ForeignKey(Objection, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    correction_request = models.ForeignKey(
        CorrectionRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(_("reason"), blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("oversight audit entry")
        verbose_name_plural = _("oversight audit entries")
        indexes = [models.Index(fields=["application", "at"], name="oversight_audit_app_at")]

    def __str__(self) -> str:
        return f"{self.action} {self.at:%Y-%m-%d %H:%M}"
