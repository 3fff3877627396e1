"""The outbox of the national medical-insurance platform link (docs/platform.md).

Enrollment never imports this app: its transition hook (nhsa.services.on_transition, registered in
NhsaConfig.ready) writes a PlatformMessage in the same transaction as the approval or termination, and
the delivery service sends it afterwards with the msgid fixed at creation.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MessageKind(models.TextChoices):
    FILE = "file", _("filing (2503)")
    CANCEL = "cancel", _("cancellation (2504)")


INFNO = {MessageKind.FILE: "2503", MessageKind.CANCEL: "2504"}


class MessageState(models.TextChoices):
    PENDING = "pending", _("queued")
    HELD = "held", _("held for an officer")
    SENDING = "sending", _("being sent")
    SENT = "sent", _("accepted by the platform")
    FAILED = "failed", _("failed")
    SUPERSEDED = "superseded", _("not needed any more")
    CANCELLED = "cancelled", _("cancelled by an officer")


OPEN_MESSAGE_STATES = (MessageState.PENDING, MessageState.HELD, MessageState.SENDING, MessageState.FAILED)


class PlatformPerson(models.Model):
    """What the platform's 1101 answered for a person: its 人员编号 and insurance record."""

    person = models.OneToOneField(
        "enrollment.Person", on_delete=models.CASCADE, related_name="platform_person", verbose_name=_("person")
    )
    psn_no = models.CharField(_("platform person number"), max_length=30)
    psn_name = models.CharField(_("name on the platform"), max_length=50, blank=True)
    insutype = models.CharField(_("platform insurance type"), max_length=6, blank=True)
    insuplc_admdvs = models.CharField(_("platform insured area"), max_length=9, blank=True)
    looked_up_at = models.DateTimeField(_("looked up at"), default=timezone.now)

    class Meta:
        verbose_name = _("platform person")
        verbose_name_plural = _("platform persons")

    def __str__(self) -> str:
        return self.psn_no


class FilingState(models.TextChoices):
    FILED = "filed", _("filed")
    CANCELLED = "cancelled", _("cancelled")


class PlatformFiling(models.Model):
    """The platform's 待遇申报明细流水号 of an enrollment: one per application, once it was filed."""

    application = models.OneToOneField(
        "enrollment.Application",
        on_delete=models.PROTECT,
        related_name="platform_filing",
        verbose_name=_("application"),
    )
    trt_dcla_detl_sn = models.CharField(_("platform serial number"), max_length=50)
    state = models.CharField(_("state"), max_length=10, choices=FilingState.choices, default=FilingState.FILED)
    filed_at = models.DateTimeField(_("filed at"))
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("platform filing")
        verbose_name_plural = _("platform filings")

    def __str__(self) -> str:
        return self.trt_dcla_detl_sn


class PlatformMessage(models.Model):
    """One 2503 or 2504 call, written with the change it reports and sent (again) with the same msgid."""

    application = models.ForeignKey(
        "enrollment.Application",
        on_delete=models.PROTECT,
        related_name="platform_messages",
        verbose_name=_("application"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=MessageKind.choices)
    msgid = models.CharField(_("message id"), max_length=40, unique=True)
    payload = models.JSONField(_("input as sent"), default=dict)
    state = models.CharField(_("state"), max_length=12, choices=MessageState.choices, default=MessageState.PENDING)
    depends_on = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dependents",
        verbose_name=_("waits for"),
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Set (and committed) before the request leaves: from then on the platform may hold what it carries.
    transmitted = models.BooleanField(_("transmitted at least once"), default=False)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    held_reason = models.CharField(_("held because"), max_length=500, blank=True)
    answer_code = models.CharField(_("platform answer code"), max_length=20, blank=True)
    answer_message = models.CharField(_("platform answer message"), max_length=500, blank=True)
    sent_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("last handled by"),
    )
    handled_at = models.DateTimeField(_("last handled at"), null=True, blank=True)
    handled_note = models.CharField(_("officer's note"), max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("platform message")
        verbose_name_plural = _("platform messages")
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="nhsa_msg_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.msgid}"


class DifferenceKind(models.TextChoices):
    MISSING_ON_PLATFORM = "missing_on_platform", _("approved here, not on the platform")
    ENDED_HERE = "ended_here", _("on the platform, ended here")
    DATES_DIFFER = "dates_differ", _("dates differ")
    DISEASE_DIFFERS = "disease_differs", _("disease differs")


class Resolution(models.TextChoices):
    OPEN = "", _("open")
    RESENT = "resent", _("filed again")
    CANCELLED = "cancelled", _("cancellation sent")
    ACCEPTED = "accepted", _("accepted as is")


class PlatformReconciliation(models.Model):
    """One run of the 5301 comparison for a region."""

    region = models.ForeignKey(
        "enrollment.Region", on_delete=models.PROTECT, related_name="+", verbose_name=_("region")
    )
    day = models.DateField(_("as of"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    persons = models.PositiveIntegerField(_("persons compared"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("started by")
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("platform reconciliation")
        verbose_name_plural = _("platform reconciliations")

    def __str__(self) -> str:
        return f"{self.region_id} {self.day}"


class PlatformDifference(models.Model):
    reconciliation = models.ForeignKey(
        PlatformReconciliation, on_delete=models.CASCADE, related_name="differences", verbose_name=_("run")
    )
    kind = models.CharField(_("difference"), max_length=30, choices=DifferenceKind.choices)
    application = models.ForeignKey(
        "enrollment.Application",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("application"),
    )
    person = models.ForeignKey(
        "enrollment.Person", on_delete=models.PROTECT, related_name="+", verbose_name=_("person")
    )
    trt_dcla_detl_sn = models.CharField(_("platform serial number"), max_length=50, blank=True)
    ours = models.JSONField(_("here"), default=dict, blank=True)
    theirs = models.JSONField(_("on the platform"), default=dict, blank=True)
    resolution = models.CharField(
        _("resolution"), max_length=10, choices=Resolution.choices, default=Resolution.OPEN, blank=True
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    message = models.ForeignKey(
        PlatformMessage,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("message sent to resolve it"),
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("platform difference")
        verbose_name_plural = _("platform differences")

    def __str__(self) -> str:
        return f"{self.kind} {self.application_id or self.person_id}"
