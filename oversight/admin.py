"""Policy rows are kept in the admin; the records written by services are read-only there."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from oversight.models import CorrectionRequest, NoticePolicy, OversightAuditEntry, RecheckDraw, RecheckRate


@admin.register(RecheckRate)
class RecheckRateAdmin(admin.ModelAdmin):
    list_display = ("region", "disease", "institution", "percent")
    list_filter = ("region",)
    autocomplete_fields = ()
    raw_id_fields = ("disease", "institution")


@admin.register(NoticePolicy)
class NoticePolicyAdmin(admin.ModelAdmin):
    list_display = ("region", "notice_days")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(RecheckDraw)
class RecheckDrawAdmin(ReadOnlyAdmin):
    list_display = ("region", "period", "candidates", "sampled", "seed", "completed_at")


@admin.register(CorrectionRequest)
class CorrectionRequestAdmin(ReadOnlyAdmin):
    list_display = ("pk", "application", "institution", "state", "requested_at", "answer_by", "answered_at")
    list_filter = ("state",)


@admin.register(OversightAuditEntry)
class OversightAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "action", "actor", "application", "notice")
    list_filter = ("action",)
