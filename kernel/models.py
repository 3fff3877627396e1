"""The kernel's one table, idempotent POSTs (a clinic's retry never files twice), and the abstract bases the
apps' models share: append-only rows (audit trails, access logs) and an uploaded file's import run."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        # The table kept its name when the model moved from the enrollment app to the kernel.
        db_table = "enrollment_idempotencyrecord"
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


# ---------------------------------------------------------------------------
# Append-only rows
# ---------------------------------------------------------------------------


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit row."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("The audit log is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only.")


class AppendOnlyModel(models.Model):
    """Rows that are written once: no update or delete through the ORM. On PostgreSQL each concrete table also
    gets a trigger that refuses UPDATE and DELETE, installed by its app's migration (the function
    ``enrollment_refuse_change`` is created by enrollment's migration 0006)."""

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")


# ---------------------------------------------------------------------------
# Uploaded files and their import runs (kernel/uploads.py has the rest of the kit)
# ---------------------------------------------------------------------------


class ImportState(models.TextChoices):
    PENDING = "pending", _("waiting for the dry run")
    VALIDATING = "validating", _("dry run in progress")
    VALIDATED = "validated", _("dry run done")
    COMMIT_REQUESTED = "commit_requested", _("waiting to commit")
    COMMITTING = "committing", _("commit in progress")
    COMMITTED = "committed", _("committed")
    FAILED = "failed", _("failed")


class UploadedImport(models.Model):
    """One uploaded file (CSV or XLSX), read by a worker in a dry run, then committed: what became of it.

    A concrete import adds who uploaded it, the region its rows are limited to, who committed it and its own
    report rows."""

    original_name = models.CharField(_("file name"), max_length=255)
    file_format = models.CharField(_("format"), max_length=10)
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    # The file itself lives in the database, not on a shared disk, so that a worker on any
    # machine can read it; it is emptied once the import is committed.
    content = models.BinaryField(_("file content"), editable=False)
    state = models.CharField(_("state"), max_length=20, choices=ImportState.choices, default=ImportState.PENDING)
    lines_total = models.PositiveIntegerField(_("lines"), default=0)
    counts = models.JSONField(_("counts by status"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    validated_at = models.DateTimeField(_("dry run finished at"), null=True, blank=True)
    committed_at = models.DateTimeField(_("committed at"), null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name} ({self.get_state_display()})"


class ImportReportRow(models.Model):
    """One entry of an import's per-row report: the file's line, and why it was refused or noted. A concrete
    report adds its import, its status (with its own choices) and what it reports of the line."""

    line = models.PositiveIntegerField(_("line"))
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    message = models.TextField(_("message"), blank=True)

    class Meta:
        abstract = True
