"""Proactive filing from monitoring rosters (能办则办、合办帮办、应办尽办), and catalogue versions.

A roster import is an uploaded file, a per-row report and progress; its commit puts eligible
people on an assisted-filing worklist of a county hospital, where staff file with one click.
Services (interop/services.py) are the only writers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from enrollment.models import Application, Disease, Institution, Person, Region, mask_id_number
from kernel.models import ImportReportRow, ImportState, UploadedImport


class RosterImport(UploadedImport):
    """One uploaded roster of monitored people (监测对象名单) and what became of it (the file, its state and
    counts: kernel.models.UploadedImport)."""

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="roster_imports", verbose_name=_("uploaded by")
    )
    institution = models.ForeignKey(
        Institution,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="roster_imports",
        verbose_name=_("uploader's institution"),
    )
    scope_region = models.ForeignKey(
        Region,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="roster_imports",
        verbose_name=_("rows limited to region"),
        help_text=_("Empty: any region (administrators)."),
    )
    lines_done = models.PositiveIntegerField(_("lines processed"), default=0)
    # Set while a worker runs a phase; a phase whose worker stopped beating may be taken over.
    heartbeat_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    committed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("committed by"),
    )

    class Meta(UploadedImport.Meta):
        verbose_name = _("roster import")
        verbose_name_plural = _("roster imports")

    @property
    def progress(self) -> int:
        """Percent of lines processed in the current phase."""
        if self.state in (ImportState.VALIDATED, ImportState.COMMITTED):
            return 100
        if not self.lines_total:
            return 0
        return min(100, self.lines_done * 100 // self.lines_total)


class RowStatus(models.TextChoices):
    ELIGIBLE = "eligible", _("eligible")
    VALID = "valid", _("valid (no condition declared)")
    ALREADY_ENROLLED = "already_enrolled", _("already enrolled for this disease")
    LIMIT_EXCEEDED = "limit_exceeded", _("would exceed the chronic limit")
    NOT_ELIGIBLE = "not_eligible", _("not eligible")
    INVALID = "invalid", _("invalid")


class RowAction(models.TextChoices):
    NONE = "", _("dry run: nothing written")
    NOT_WRITTEN = "not_written", _("nothing written")
    PERSON_REGISTERED = "person_registered", _("person registered or updated")
    FILING_CREATED = "filing_created", _("person registered, put on the worklist")
    FILING_EXISTS = "filing_exists", _("person registered, already on the worklist")


class RosterRow(ImportReportRow):
    """One entry of an import's report: a line of the file and one condition it declares.

    A line declaring two conditions gives two entries; a line with none, or one that cannot be
    read, gives one. Every line of the file has at least one entry. (Its line, reason code and
    message: kernel.models.ImportReportRow.)
    """

    roster_import = models.ForeignKey(RosterImport, on_delete=models.CASCADE, related_name="rows")
    id_number = models.CharField(_("ID number"), max_length=40, blank=True)
    name = models.CharField(_("name"), max_length=100, blank=True)
    region_code = models.CharField(_("region"), max_length=20, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    support_categories = models.JSONField(_("support categories"), default=list, blank=True)
    declared = models.CharField(_("declared condition"), max_length=100, blank=True)
    disease = models.ForeignKey(Disease, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(_("status"), max_length=20, choices=RowStatus.choices)
    action = models.CharField(_("action"), max_length=20, choices=RowAction.choices, blank=True, default="")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["roster_import", "line", "id"]
        verbose_name = _("roster report row")
        verbose_name_plural = _("roster report rows")
        indexes = [models.Index(fields=["roster_import", "status"], name="roster_row_status")]

    def __str__(self) -> str:
        return f"{self.roster_import_id}:{self.line} {self.status}"

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)


class FilingState(models.TextChoices):
    OPEN = "open", _("to file")
    FILED = "filed", _("filed")
    DISMISSED = "dismissed", _("dismissed")


class AssistedFiling(models.Model):
    """合办帮办: a person on a roster who qualifies for a disease, waiting for the hospital to file."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="assisted_filings")
    disease = models.ForeignKey(Disease, on_delete=models.PROTECT, related_name="assisted_filings")
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="assisted_filings", verbose_name=_("filing hospital")
    )
    roster_import = models.ForeignKey(
        RosterImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="filings"
    )
    roster_line = models.PositiveIntegerField(_("roster line"), null=True, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=FilingState.choices, default=FilingState.OPEN)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("application")
    )
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    dismiss_reason = models.TextField(_("reason for dismissal"), blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("assisted filing")
        verbose_name_plural = _("assisted filings")
        constraints = [
            models.UniqueConstraint(
                fields=["person", "disease"], condition=Q(state="open"), name="one_open_assisted_filing"
            )
        ]
        indexes = [models.Index(fields=["institution", "state", "created_at"], name="assisted_inst_state")]

    def __str__(self) -> str:
        return f"{self.person} {self.disease.code} ({self.get_state_display()})"


class CatalogueImport(models.Model):
    """A new version of the disease catalogue: the diff is shown before it is applied."""

    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(_("file name"), max_length=255)
    version = models.CharField(_("catalogue version"), max_length=20)
    data = models.JSONField(_("catalogue document"))
    diff = models.JSONField(_("difference to the catalogue in use"), default=dict)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    result = models.JSONField(_("result"), default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("catalogue import")
        verbose_name_plural = _("catalogue imports")

    def __str__(self) -> str:
        return f"{self.version} ({self.original_name})"
